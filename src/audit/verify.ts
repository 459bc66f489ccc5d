import { createHash, type KeyObject } from 'node:crypto';
import { basename, join } from 'node:path';
import type { Store } from '../store/port.js';
import { canonicalize } from './canonical.js';
import { createChainVerifier, toPublicKey, type Anchor, type ChainVerifier, type Checkpoint, type Problem, type StoredRecord, type VerifyResult } from './chain.js';
import { readLines } from './jsonl.js';
import { loadPruneChain, type PruneStatement } from './prune.js';
import { loadHead } from './query.js';
import { AUDIT_EVENT_COLUMNS, CHECKPOINT_COLUMNS, toCheckpoint, toStoredRecord, type AuditEventRow, type CheckpointRow } from './rows.js';
import { CHECKPOINT_LINE_TYPE, parseSignedLine } from './sinks/lines.js';
import { verifyStatement } from './statements.js';
import { count } from '../shared/plural.js';

/** Meta key of the signed verification position (statement type `verified`). */
export const META_VERIFIED = 'audit.verified';

export interface StoreVerifyOptions {
  readonly store: Store;
  /** Pin it: the copy in meta is only as trustworthy as the database it sits in. */
  readonly publicKey: KeyObject | string;
  /** Rows per query, 1..50,000 (default 1000). Memory is one page plus the chain verifier's constant state. */
  readonly pageSize?: number;
  /** Total records checked so far (archives and store), after every page. */
  readonly onProgress?: (checked: number) => void;
  /** Resume after the signed verification position (meta `audit.verified`) instead of re-reading everything. */
  readonly incremental?: boolean;
  /** Directory holding the archive segments named by the prune statements: verify pruned history too. */
  readonly archiveDir?: string;
  /** Stops between pages (the result then has `aborted: true`). */
  readonly signal?: AbortSignal;
  /**
   * How the caller verifies archives too, for the note on pruned history: the server's
   * (`online`: `"archives": true`, `tessera audit verify --archives`) or a local directory
   * (`offline`, the default: `tessera audit verify --offline --archive-dir DIR`).
   */
  readonly mode?: 'online' | 'offline';
}

/** What the pruned-history note tells the reader to run, by mode. */
export const ARCHIVES_HINT = {
  online: 'verify with `tessera audit verify --archives` (API: "archives": true) to prove them too',
  offline: 'verify with `tessera audit verify --offline --archive-dir DIR` to prove them too',
} as const;

export interface StoreVerifyResult extends VerifyResult {
  /** `incremental`: events up to `from_seq` were verified earlier and not re-read. */
  readonly mode: 'full' | 'incremental';
  /** Verification started after this seq (0: genesis). */
  readonly from_seq: number;
  /** The last seq verified: the head when ok. */
  readonly to_seq: number;
  /** The hash at `to_seq` (what a `verified` statement records). */
  readonly to_hash: string;
  readonly head: { seq: number; hash: string } | null;
  /** Events archived and removed from the store; `archives` says whether their files were checked. */
  readonly pruned: { segments: number; to_seq: number; archives: 'verified' | 'not_checked' } | null;
  /** What this result cannot prove, in words (e.g. rollback without a witness). */
  readonly notes: string[];
  readonly aborted?: boolean;
}


const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const NOTE_NO_WITNESS = 'rollback of the whole store to an earlier genuine state (events, checkpoints and head together) cannot be detected from the store alone: verify with --witness <sink output> to prove the store holds everything the witness saw';

async function checkpointPage(store: Store, after: number, upTo: number, limit: number): Promise<Checkpoint[]> {
  const rows = await store.all<CheckpointRow>(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, [after, upTo, limit]);
  return rows.map(toCheckpoint);
}

/** Adds every checkpoint in (after, upTo], a page at a time; returns the last seq added. */
async function feedCheckpoints(store: Store, v: ChainVerifier, after: number, upTo: number, limit: number, retain: boolean): Promise<number> {
  let from = after;
  for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
    const cps = await checkpointPage(store, from, upTo, limit);
    if (cps.length) {
      v.addCheckpoints(cps, { retain });
      from = cps[cps.length - 1]!.seq;
    }
    if (cps.length < limit) break;
    await yieldToLoop();
  }
  return Math.max(from, after);
}

interface VerifiedPosition {
  readonly seq: number;
  readonly hash: string;
  readonly ts: number;
  readonly key_id: string;
}

/** Reads the signed verification position; `invalid` when present but not a valid statement. */
export async function loadVerifiedPosition(store: Store, publicKey: KeyObject): Promise<{ position?: VerifiedPosition; invalid?: boolean }> {
  const row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_VERIFIED]);
  if (!row) return {};
  try {
    const v = JSON.parse(row.value) as { payload?: VerifiedPosition; signature?: string };
    const p = v.payload;
    if (p && Number.isSafeInteger(p.seq) && p.seq >= 0 && typeof p.hash === 'string' && Number.isSafeInteger(p.ts) && typeof p.key_id === 'string' && typeof v.signature === 'string') {
      const payload = { seq: p.seq, hash: p.hash, ts: p.ts, key_id: p.key_id };
      if (verifyStatement(publicKey, 'verified', payload, v.signature)) return { position: payload };
    }
  } catch {
    // fall through: unparseable is as bad as forged
  }
  return { invalid: true };
}

/**
 * Verifies the audit log in the store page by page, yielding to the event loop between pages:
 * prune statements, (optionally) archive segments, then the stored records with their
 * checkpoints, then the signed head. Incremental mode starts after the signed verification
 * position (meta `audit.verified`), checking that the event there is still the one verified.
 */
export async function verifyStore(opts: StoreVerifyOptions): Promise<StoreVerifyResult> {
  const { store } = opts;
  const publicKey = toPublicKey(opts.publicKey);
  const pageSize = Math.max(1, Math.min(50_000, Math.floor(opts.pageSize ?? 1000)));
  const notes: string[] = [];
  const earlyProblems: Parameters<ChainVerifier['report']>[0][] = [];

  const prunes = await loadPruneChain(store, publicKey);
  earlyProblems.push(...prunes.problems);
  const boundary = prunes.boundary;

  let checked = 0;
  const progress = (): void => opts.onProgress?.(checked);

  // Where to start: genesis, the pruned boundary, or the verified position.
  let anchor: Anchor | undefined;
  let mode: 'full' | 'incremental' = 'full';
  // The signed verification position proves events up to its seq existed (a rollback signal in
  // both modes); incremental mode also resumes after it.
  const { position, invalid } = await loadVerifiedPosition(store, publicKey);
  if (invalid) earlyProblems.push({ seq: 0, kind: 'bad_verified_signature', message: `meta ${META_VERIFIED} is not a valid signed verification position of this log (forged or altered)${opts.incremental ? '; verified everything instead' : ''}` });
  if (position && position.seq > boundary.seq) {
    const when = new Date(position.ts).toISOString();
    const at = await store.get<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = ?', [position.seq]);
    if (!at) earlyProblems.push({ seq: position.seq, kind: 'rolled_back', message: `event ${position.seq}, verified on ${when}, is no longer in the store: the log was truncated or rolled back` });
    else if (at.hash !== position.hash) earlyProblems.push({ seq: position.seq, kind: 'modified', message: `event ${position.seq} differs from the one verified on ${when}: the chain was rewritten` });
  }
  if (opts.incremental && position && position.seq > 0 && position.seq >= boundary.seq) {
    mode = 'incremental';
    anchor = { seq: position.seq, hash: position.hash, source: `the signed verification position of ${new Date(position.ts).toISOString()}` };
    notes.push(`incremental: events up to seq ${position.seq} were verified on ${new Date(position.ts).toISOString()} and not re-read; verify with --full to re-read everything`);
  }

  const archiveMode = opts.archiveDir !== undefined && prunes.statements.length > 0 && mode === 'full';
  if (!anchor && boundary.seq > 0 && !archiveMode) {
    anchor = { seq: boundary.seq, hash: boundary.hash, source: `the prune statement for events ..${boundary.seq}` };
  }
  const v = createChainVerifier({ publicKey, ...(anchor ? { anchor } : {}) });
  for (const p of earlyProblems) v.report(p);

  if (archiveMode) {
    for (const st of prunes.statements) {
      if (opts.signal?.aborted) break;
      await verifyArchiveSegment(v, opts.archiveDir!, st, pageSize, progress, (n) => {
        checked += n;
      });
    }
  }
  if (prunes.statements.length) {
    const left = await checkLeftovers(store, publicKey, prunes.statements, pageSize);
    for (const p of left.problems) v.report(p);
    if (left.proven > 0) notes.push(`${count(left.proven, 'event')} at or below the pruned boundary (seq ${boundary.seq}) are still in the store (an interrupted prune; the next archive run removes them); they were proven against the signed prune statement`);
  }

  // The stored records, a page at a time, with the checkpoints of each page first.
  const startAfter = anchor ? anchor.seq : archiveMode ? boundary.seq : 0;
  let after = startAfter;
  let cpAfter = startAfter;
  let head: Checkpoint | null = null;
  let aborted = false;
  // Writers keep appending while we read: re-read the head after the last page and read on
  // until it is covered (a bounded number of rounds), so live writes are not reported as inserted.
  for (let round = 0; round < 10 && !aborted; round++) {
    for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
      if (opts.signal?.aborted) {
        aborted = true;
        break;
      }
      const rows = await store.all<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`, [after, pageSize]);
      if (rows.length > 0) {
        const lastSeq = Number(rows[rows.length - 1]!.seq);
        cpAfter = await feedCheckpoints(store, v, cpAfter, lastSeq, pageSize, true);
        cpAfter = Math.max(cpAfter, lastSeq);
        for (const r of rows) v.push(toStoredRecord(r));
        after = lastSeq;
        checked += rows.length;
        progress();
      }
      if (rows.length < pageSize) break;
      await yieldToLoop();
    }
    head = await loadHead(store);
    if (!head || head.seq <= after) break;
  }
  // Checkpoints beyond the last record prove truncation; they are only counted, not kept.
  if (!aborted) await feedCheckpoints(store, v, cpAfter, Number.MAX_SAFE_INTEGER, pageSize, false);

  const result = v.finish(head);
  const pos = v.position();
  const pruneNow = await store.get<{ m: number | null }>('SELECT MAX(to_seq) AS m FROM audit_prunes');
  if (Number(pruneNow?.m ?? 0) > boundary.seq) {
    notes.push(`an archive run pruned events up to seq ${Number(pruneNow!.m)} while this verification ran; problems at or below that seq may come from it: verify again`);
  }
  if (prunes.statements.length && !archiveMode) {
    notes.push(`events 1..${boundary.seq} were archived and removed from the store (${count(prunes.statements.length, 'segment')}); their archives were not checked: ${ARCHIVES_HINT[opts.mode ?? 'offline']}`);
  }
  notes.push(NOTE_NO_WITNESS);
  return {
    ...result,
    checked,
    mode,
    from_seq: startAfter,
    to_seq: pos.seq,
    to_hash: pos.hash,
    head: head ? { seq: head.seq, hash: head.hash } : null,
    pruned: prunes.statements.length ? { segments: prunes.statements.length, to_seq: boundary.seq, archives: archiveMode ? 'verified' : 'not_checked' } : null,
    notes,
    ...(aborted ? { aborted: true, ok: false } : {}),
  };
}

/**
 * Streams one archive segment through the verifier: its records and checkpoints continue the
 * chain; the file's SHA-256 and its first and last positions must be those the signed prune
 * statement names. A missing file is reported and the chain resumes at the statement's end.
 * `count` receives the records pushed, a page at a time, before `onPage`.
 */
async function verifyArchiveSegment(v: ChainVerifier, dir: string, st: PruneStatement, pageSize: number, onPage: () => void, count: (n: number) => void): Promise<void> {
  const p = st.payload;
  const path = join(dir, basename(p.archive.name));
  const digest = createHash('sha256');
  let pageCount = 0;
  let malformed = 0;
  const resume = (): void => v.skipTo({ seq: p.to_seq, hash: p.to_hash, source: `the prune statement for events ${p.from_seq}..${p.to_seq}` });
  const startPos = v.position();
  if (startPos.seq !== p.from_seq - 1 || startPos.hash !== p.from_prev_hash) {
    // The previous segment did not end where this one starts (reported there); start afresh here.
    v.skipTo({ seq: p.from_seq - 1, hash: p.from_prev_hash, source: `the prune statement for events ${p.from_seq}..${p.to_seq}` });
  }
  try {
    for await (const line of readLines(path, { digest })) {
      if (line === null || line.length === 0) {
        if (line === null) malformed++;
        continue;
      }
      if (line.startsWith('{"type":')) {
        if (line.includes(`"${CHECKPOINT_LINE_TYPE}"`)) {
          const cp = parseSignedLine(line, CHECKPOINT_LINE_TYPE);
          if (cp) v.addCheckpoints([cp]);
          else malformed++;
        }
        continue; // the header line
      }
      const r = parseRecordLine(line);
      if (!r) {
        malformed++;
        continue;
      }
      v.push(r);
      if (++pageCount >= pageSize) {
        count(pageCount);
        pageCount = 0;
        onPage();
        await yieldToLoop();
      }
    }
  } catch (e) {
    count(pageCount);
    const code = (e as NodeJS.ErrnoException).code;
    v.report({ seq: p.from_seq, kind: 'archive_missing', message: `the archive ${p.archive.name} of events ${p.from_seq}..${p.to_seq} cannot be read (${code ?? (e as Error).message}); its events are not proven` });
    resume();
    return;
  }
  count(pageCount);
  onPage();
  const sha = digest.digest('hex');
  const end = v.position();
  if (sha !== p.archive.sha256 || malformed > 0 || end.seq !== p.to_seq || end.hash !== p.to_hash) {
    const why = sha !== p.archive.sha256 ? 'its SHA-256 differs from the one in the signed prune statement' : malformed > 0 ? `${malformed} lines are malformed` : `it ends at seq ${end.seq}, not at ${p.to_seq} with the signed hash`;
    v.report({ seq: p.from_seq, kind: 'archive_modified', message: `the archive ${p.archive.name} of events ${p.from_seq}..${p.to_seq} was altered: ${why}` });
    if (end.seq !== p.to_seq || end.hash !== p.to_hash) resume();
  }
}

/** A record line of an archive or a file sink (lines.ts) as the verifier's StoredRecord; null when malformed. */
export function parseRecordLine(line: string): StoredRecord | null {
  try {
    const o = JSON.parse(line) as { seq?: unknown; ts?: unknown; prev_hash?: unknown; hash?: unknown; event?: { kind?: unknown; actor?: { id?: unknown }; txn?: unknown } };
    if (!Number.isSafeInteger(o.seq) || !Number.isSafeInteger(o.ts) || typeof o.prev_hash !== 'string' || typeof o.hash !== 'string' || !o.event || typeof o.event !== 'object') return null;
    const e = o.event;
    return {
      seq: o.seq as number,
      ts: o.ts as number,
      kind: typeof e.kind === 'string' ? e.kind : '',
      actor: typeof e.actor?.id === 'string' ? e.actor.id : null,
      txn: typeof e.txn === 'string' ? e.txn : null,
      body: canonicalize(e),
      prevHash: o.prev_hash,
      hash: o.hash,
    };
  } catch {
    return null;
  }
}

/** The former name (query.ts), kept for callers. */
export const verifyAudit = verifyStore;

/**
 * Events still stored at or below the pruned boundary (ADR 0031: file first, statement second,
 * delete last, in pages from the low end). Only what an interrupted prune leaves is provable: for
 * each signed prune statement, a contiguous run of its events ending at its `to_seq` whose chain
 * ends in its signed `to_hash` (the run's first `prev_hash` is then proven by the chain). Any
 * other stored event below the boundary — a gap, a run that does not reach `to_seq`, a hash that
 * does not end at the signed one — is `pruned_unverifiable`: nothing signed vouches for it, so
 * verification fails instead of trusting it. Reads a page at a time.
 */
async function checkLeftovers(store: StoreVerifyOptions['store'], publicKey: KeyObject, statements: readonly PruneStatement[], pageSize: number): Promise<{ proven: number; problems: Problem[] }> {
  const problems: Problem[] = [];
  let proven = 0;
  for (const st of statements) {
    const { from_seq: from, to_seq: to, to_hash: toHash } = st.payload;
    const first = await store.get<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT 1`, [from, to]);
    if (!first) continue;
    const start = Number(first.seq);
    const v = createChainVerifier({ publicKey, anchor: { seq: start - 1, hash: first.prev_hash, source: `the first remaining event of the pruned segment ${from}..${to}` } });
    let after = start - 1;
    let n = 0;
    for (;;) {
      const rows = await store.all<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, [after, to, pageSize]);
      for (const r of rows) v.push(toStoredRecord(r));
      n += rows.length;
      if (rows.length > 0) after = Number(rows[rows.length - 1]!.seq);
      if (rows.length < pageSize) break;
      await yieldToLoop();
    }
    const end = v.position();
    const chainProblems = v.settle();
    if (chainProblems.length === 0 && end.seq === to && end.hash === toHash) {
      proven += n;
      continue;
    }
    const why = chainProblems[0]?.message ?? (end.seq !== to ? `they end at seq ${end.seq}, not at the segment's end ${to}` : `their chain does not end in the signed hash of seq ${to}`);
    problems.push({
      seq: start,
      kind: 'pruned_unverifiable',
      message: `${count(n, 'event')} between seq ${start} and ${to} ${n === 1 ? 'is' : 'are'} stored below the pruned boundary but cannot be proven by the signed prune statement for ${from}..${to} (${why}): inserted or altered after the prune; they are not trusted`,
    });
  }
  return { proven, problems };
}
