import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { TesseraError } from '../shared/errors.js';
import { canonicalize } from './canonical.js';
import { createChainVerifier, type Checkpoint } from './chain.js';
import { archiveFileName, loadPruneChain, type PrunePayload } from './prune.js';
import { checkpointLine, recordLine } from './sinks/lines.js';
import { AUDIT_EVENT_COLUMNS, CHECKPOINT_COLUMNS, toCheckpoint, toStoredRecord, type AuditEventRow, type CheckpointRow } from './rows.js';

/**
 * Retention (ADR 0031): sealed segments of the chain — from just after the previous prune
 * boundary to a signed checkpoint — are written to an archive file, then removed from the store
 * with a signed prune statement naming the range, the hashes at both ends and the file's
 * SHA-256. `tessera audit verify --archive-dir` then proves the whole history.
 *
 * Archive file (JSON lines, lines.ts): a header
 *   {"type":"tessera.audit.archive","v":1,"key_id":…,"from_seq":…,"to_seq":…,"from_prev_hash":…}
 * then every record line in seq order, each checkpoint line right after the record it signs.
 * The content is a pure function of the stored rows, so an interrupted run rewrites it identically.
 */
export interface RetentionPolicy {
  readonly archiveDir: string;
  /** Keep at least this many newest events in the store (at least 1: the newest always stays). */
  readonly keepEvents: number;
  /** Keep at least the events of the last `keepForMs` milliseconds. */
  readonly keepForMs: number;
  /** Aim for at most this many events per archive file (a segment always ends at a checkpoint). */
  readonly segmentEvents: number;
}

export interface ArchivedSegment {
  readonly from_seq: number;
  readonly to_seq: number;
  readonly file: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly records: number;
}

export interface ArchiveResult {
  readonly segments: ArchivedSegment[];
  /** Events removed from the store by this run (segments and an interrupted earlier run's leftovers). */
  readonly pruned_events: number;
  /** The store's chain now starts after this seq. */
  readonly boundary: number;
}

export interface ArchiveOptions {
  readonly store: Store;
  readonly publicKey: KeyObject;
  readonly keyId: string;
  /** Signs a prune statement with the checkpoint key (AuditLog.signStatement). */
  readonly sign: (type: 'prune', payload: Record<string, unknown>) => string;
  readonly clock: Clock;
  readonly policy: RetentionPolicy;
  readonly logger: Logger;
  /** Rows per query and per delete (default 1000). */
  readonly pageSize?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: { archived: number; pruned: number }) => void;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));


async function cpRow(store: Store, sql: string, params: (number | string)[]): Promise<Checkpoint | undefined> {
  const r = await store.get<CheckpointRow>(sql, params);
  return r ? toCheckpoint(r) : undefined;
}

/** The end of the next segment after `boundary`: the newest eligible checkpoint within segmentEvents, else the oldest eligible one. */
async function nextSegmentEnd(store: Store, boundary: number, policy: RetentionPolicy, now: number): Promise<Checkpoint | undefined> {
  const last = await store.get<{ m: number | null }>('SELECT MAX(seq) AS m FROM audit_events');
  // The newest event always stays: the writer continues the chain from the newest stored row.
  const maxSeq = Number(last?.m ?? 0) - Math.max(1, policy.keepEvents);
  const maxTs = now - policy.keepForMs;
  if (maxSeq <= boundary) return undefined;
  const cols = `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints`;
  return (
    (await cpRow(store, `${cols} WHERE seq > ? AND seq <= ? AND ts <= ? ORDER BY seq DESC LIMIT 1`, [boundary, Math.min(maxSeq, boundary + policy.segmentEvents), maxTs])) ??
    (await cpRow(store, `${cols} WHERE seq > ? AND seq <= ? AND ts <= ? ORDER BY seq LIMIT 1`, [boundary, maxSeq, maxTs]))
  );
}

/** Deletes events (and checkpoints) in (after, upTo] from the store, a page at a time. */
async function prune(store: Store, after: number, upTo: number, pageSize: number): Promise<number> {
  let deleted = 0;
  for (let from = after; from < upTo; from += pageSize) {
    const to = Math.min(upTo, from + pageSize);
    deleted += (await store.run('DELETE FROM audit_events WHERE seq > ? AND seq <= ?', [from, to])).changes;
    await yieldToLoop();
  }
  await store.run('DELETE FROM audit_checkpoints WHERE seq <= ?', [upTo]);
  return deleted;
}

/**
 * Archives and prunes every segment the policy allows (run it under a leader lock on
 * PostgreSQL). Each segment is verified while it is written; if it fails, nothing of it is pruned
 * (TESSERA_AUDIT_ARCHIVE_UNVERIFIED). Crash-safe: file first (fsynced, then renamed), then the
 * signed prune statement, then the deletes — a rerun finishes an interrupted delete.
 */
export async function archiveAudit(o: ArchiveOptions): Promise<ArchiveResult> {
  const { store, policy } = o;
  const pageSize = Math.max(1, Math.min(50_000, o.pageSize ?? 1000));
  const prunes = await loadPruneChain(store, o.publicKey);
  if (prunes.problems.length) {
    throw new TesseraError('TESSERA_AUDIT_ARCHIVE_UNVERIFIED', `the stored prune statements fail verification (${prunes.problems[0]!.message}); nothing was archived`, { problems: prunes.problems.slice(0, 20) });
  }
  let boundary = prunes.boundary;
  // Rows an interrupted earlier run left below the boundary.
  const first = await store.get<{ m: number | null }>('SELECT MIN(seq) AS m FROM audit_events');
  const firstSeq = first?.m === null || first?.m === undefined ? undefined : Number(first.m);
  let prunedEvents = firstSeq !== undefined && firstSeq <= boundary.seq ? await prune(store, firstSeq - 1, boundary.seq, pageSize) : 0;
  const segments: ArchivedSegment[] = [];
  let archived = 0;
  for (let i = 0; i < Number.MAX_SAFE_INTEGER && !o.signal?.aborted; i++) {
    const end = await nextSegmentEnd(store, boundary.seq, policy, o.clock.now());
    if (!end) break;
    const seg = await writeSegment(o, boundary, end, pageSize, (n) => o.onProgress?.({ archived: archived + n, pruned: prunedEvents }));
    const payload: PrunePayload = {
      key_id: o.keyId,
      from_seq: boundary.seq + 1,
      to_seq: end.seq,
      from_prev_hash: boundary.hash,
      to_hash: end.hash,
      ts: o.clock.now(),
      archive: { name: seg.name, sha256: seg.sha256, bytes: seg.bytes, records: seg.records, checkpoints: seg.checkpoints },
    };
    const signature = o.sign('prune', payload);
    // A copy next to the archive, so the directory documents itself (the store's copy is the one verified).
    await writeFile(join(policy.archiveDir, `${seg.name}.prune.json`), `${JSON.stringify({ type: 'tessera.audit.prune', payload, signature })}\n`, { mode: 0o600 });
    const ins = await store.run('INSERT INTO audit_prunes (to_seq, from_seq, statement, signature, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (to_seq) DO NOTHING', [end.seq, boundary.seq + 1, canonicalize(payload), signature, payload.ts]);
    if (ins.changes === 0) throw new TesseraError('TESSERA_AUDIT_ARCHIVE_UNVERIFIED', `another archive run recorded the segment ending at seq ${end.seq} at the same time; nothing more was pruned by this run`);
    prunedEvents += await prune(store, boundary.seq, end.seq, pageSize);
    archived += seg.records;
    segments.push({ from_seq: boundary.seq + 1, to_seq: end.seq, file: seg.name, sha256: seg.sha256, bytes: seg.bytes, records: seg.records });
    o.logger.info({ from_seq: boundary.seq + 1, to_seq: end.seq, file: seg.name, bytes: seg.bytes }, 'audit segment archived and pruned');
    boundary = { seq: end.seq, hash: end.hash };
    o.onProgress?.({ archived, pruned: prunedEvents });
  }
  return { segments, pruned_events: prunedEvents, boundary: boundary.seq };
}

/** Writes and verifies one segment (after `from`, up to the checkpoint `end`); returns its file facts. */
async function writeSegment(o: ArchiveOptions, from: { seq: number; hash: string }, end: Checkpoint, pageSize: number, onRows: (n: number) => void) {
  const dir = o.policy.archiveDir;
  const name = archiveFileName(o.keyId, from.seq + 1, end.seq);
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const digest = createHash('sha256');
  let bytes = 0;
  let records = 0;
  let checkpoints = 0;
  const v = createChainVerifier({ publicKey: o.publicKey, anchor: { seq: from.seq, hash: from.hash, source: from.seq ? `the previous prune boundary (seq ${from.seq})` : 'genesis' } });
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    fh = await open(tmp, 'wx', 0o600);
  } catch (e) {
    throw new TesseraError('TESSERA_AUDIT_ARCHIVE_WRITE_FAILED', `cannot create an archive file in ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const write = async (text: string): Promise<void> => {
    const buf = Buffer.from(text, 'utf8');
    digest.update(buf);
    bytes += buf.length;
    await fh.write(buf);
  };
  try {
    await write(`${JSON.stringify({ type: 'tessera.audit.archive', v: 1, key_id: o.keyId, from_seq: from.seq + 1, to_seq: end.seq, from_prev_hash: from.hash })}\n`);
    let after = from.seq;
    while (after < end.seq) {
      if (o.signal?.aborted) throw new TesseraError('TESSERA_AUDIT_ARCHIVE_WRITE_FAILED', 'the archive run was stopped (server shutting down); nothing of this segment was pruned');
      const rows = await o.store.all<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, [after, end.seq, pageSize]);
      if (rows.length === 0) break;
      const lastSeq = Number(rows[rows.length - 1]!.seq);
      const cpRows = await o.store.all<CheckpointRow>(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq`, [after, lastSeq]);
      const cps = cpRows.map(toCheckpoint);
      v.addCheckpoints(cps);
      const bySeq = new Map(cps.map((c) => [c.seq, c]));
      let chunk = '';
      for (const row of rows) {
        const r = toStoredRecord(row);
        v.push(r);
        chunk += recordLine(r);
        const cp = bySeq.get(r.seq);
        if (cp) {
          chunk += checkpointLine(cp);
          checkpoints++;
        }
      }
      await write(chunk);
      records += rows.length;
      after = lastSeq;
      onRows(records);
      await yieldToLoop();
    }
    const problems = v.settle();
    const pos = v.position();
    if (problems.length || pos.seq !== end.seq || pos.hash !== end.hash) {
      const first = problems[0]?.message ?? `the segment ends at seq ${pos.seq}, not at the checkpoint ${end.seq}`;
      throw new TesseraError('TESSERA_AUDIT_ARCHIVE_UNVERIFIED', `events ${from.seq + 1}..${end.seq} fail verification (${first}); nothing was archived or pruned`, { problems: problems.slice(0, 20) });
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, join(dir, name));
    await syncDir(dir);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    if (e instanceof TesseraError) throw e;
    throw new TesseraError('TESSERA_AUDIT_ARCHIVE_WRITE_FAILED', `cannot write the archive ${name} in ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); nothing was pruned`);
  }
  return { name, sha256: digest.digest('hex'), bytes, records, checkpoints };
}

/** fsync of the directory, so the rename survives a crash (POSIX; a no-op where unsupported). */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r').catch(() => null);
  if (!d) return;
  await d.sync().catch(() => undefined);
  await d.close().catch(() => undefined);
}
