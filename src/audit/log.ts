import { generateKeyPairSync, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import type { Store, SqlExecutor } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { Sealer } from '../secrets/sealer.js';
import type { Logger } from '../shared/logger.js';
import type { MetricsRegistry } from '../shared/metrics.js';
import { TesseraError } from '../shared/errors.js';
import { hmacSha256 } from '../shared/crypto.js';
import type { AuditEventsOf, AuditWriter } from './port.js';
import type { AuditEvent } from './events.js';
import { canonicalize, checkpointKeyId, GENESIS_HASH, makeRecord, privateKeyFromDer, signPositionAsync, type Checkpoint, type StoredRecord } from './chain.js';
import { checkEventSize, validateAndCanonicalize, validateEvent } from './validate.js';
import { tailAudit, type AuditTailQuery, type AuditTailResult } from './query.js';
import { verifyStore, type StoreVerifyOptions, type StoreVerifyResult } from './verify.js';
import { signStatement, type StatementType } from './statements.js';
import { createSinks, type AuditSink, type AuditSinkConfig } from './sinks/index.js';
import { isRetryableConflict, withSavepoint } from '../store/savepoint.js';

export type { AuditSinkConfig };
export { recordLine } from './sinks/index.js';

export interface AuditLogOptions {
  readonly store: Store;
  readonly clock: Clock;
  /** Master-key sealer: the audit keys are kept sealed in `meta`. */
  readonly sealer: Sealer;
  /** Default: the store only. */
  readonly sinks?: readonly AuditSinkConfig[];
  readonly replicaId: string;
  readonly checkpointEveryEvents?: number;
  readonly checkpointEveryMs?: number;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  /** Where the stdout sink writes (tests pass a collector). Default: process.stdout. */
  readonly stdout?: { write(chunk: string): unknown };
  /** Where the http sink's auth secret is read from (`auth.env`). Default: process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Most events per group commit. */
  readonly maxBatch?: number;
  /**
   * How the events of pass-through actions (PASS_THROUGH_KINDS) reach the disk (ADR 0185).
   * `grouped` (default): their batch is written to the store's log before the caller is answered
   * (survives a crash of the process) and fdatasync-ed by one group flush at most `windowMs`
   * later (default 100); `per_request`: every batch is flushed before the answer. Events of state
   * changes (`commit()`) and of every other kind are always flushed before the answer.
   */
  readonly flush?: { readonly mode: AuditFlushMode; readonly windowMs?: number };
}

export type AuditFlushMode = 'grouped' | 'per_request';

/**
 * Kinds of events about actions that change none of Tessera's state: a tool call passed through
 * the gateway, a resource read, prompt get or completion through it, a refused gateway request,
 * a secret read, a request through the injection proxy, a proxy tunnel opened, closed or refused (src/proxy/connect.ts). Under `audit.flush:
 * grouped` a batch made only of these is not flushed per request (ADR 0185). Every state change
 * (`commit()`), credential issuance, refusal of a credential, limit and detection event is not
 * here and is flushed before the answer.
 */
export const PASS_THROUGH_KINDS: ReadonlySet<AuditEvent['kind']> = new Set(['gateway.tool_call', 'gateway.resource_read', 'gateway.prompt_get', 'gateway.completion', 'gateway.request_refused', 'secret.read', 'proxy.request', 'proxy.tunnel']);

/** The audit log: the AuditWriter every service uses, plus what operators need. */
export interface AuditLog extends AuditWriter {
  /** Base64 of the SPKI DER of the checkpoint public key (pin it out of band for `verify`). */
  readonly publicKey: string;
  readonly keyId: string;
  /** Resolves when every event appended so far is committed (or refused). */
  flush(): Promise<void>;
  /** Writes a checkpoint of the newest event now (no-op when already checkpointed). */
  checkpoint(): Promise<void>;
  tail(query: AuditTailQuery): Promise<AuditTailResult>;
  /** Verifies the store's chain (full unless `incremental`); see verify.ts. */
  verify(options?: Omit<StoreVerifyOptions, 'store' | 'publicKey'> & { publicKey?: KeyObject | string }): Promise<StoreVerifyResult>;
  /** Signs a prune, verified or job statement with the checkpoint key (statements.ts); for archive.ts and jobs.ts. */
  signStatement(type: Extract<StatementType, 'prune' | 'verified' | 'job'>, payload: Record<string, unknown>): string;
  /** Flushes, writes a final checkpoint and stops; later appends reject with TESSERA_AUDIT_UNAVAILABLE. */
  close(): Promise<void>;
  /** What the flush policy did so far (ADR 0185): batches flushed before their answer, deferred ones, group flushes. */
  flushStats(): { mode: AuditFlushMode; windowMs: number; flushed: number; deferred: number; groupFlushes: number; syncFailed: boolean };
  /** Runs the group flush now: every event committed so far is then safe from a power loss. Rejects with TESSERA_AUDIT_UNAVAILABLE when the sync fails. */
  sync(): Promise<void>;
  /** For /readyz: whether the last batch was recorded by at least one sink, and how many sinks failed it. */
  health(): { ok: boolean; closed: boolean; lastBatchAt?: number; failedSinks: number };
}

/** Meta keys. The `sealed:` prefix + AAD = meta key convention is what master-key rotation re-wraps. */
export const META_HMAC_KEY = 'sealed:audit.hmac_key';
export const META_CHECKPOINT_KEY = 'sealed:audit.checkpoint_key';
export const META_PUBLIC_KEY = 'audit.checkpoint_public_key';
export const META_HEAD = 'audit.head';

/** An event ready to record: validated, replica filled in, canonical body computed. */
interface Prepared {
  readonly event: AuditEvent;
  readonly body: string;
}

/** One queued append() or commit(). */
interface Pending {
  readonly at: number;
  readonly resolve: (value?: unknown) => void;
  readonly reject: (e: unknown) => void;
  /** append(): its event; commit(): its events when they were given up front. */
  readonly prepared?: readonly Prepared[];
  /** commit(): the state change, run in the batch's store transaction under its own savepoint. */
  readonly change?: (tx: SqlExecutor) => Promise<unknown>;
  /** commit(): the events derived from the change's result (null: nothing to record). */
  readonly eventsOf?: (result: unknown) => AuditEvent | readonly AuditEvent[] | null;
  /** append() of a pass-through event under `grouped`: its batch may commit deferred. */
  readonly deferrable?: boolean;
}

/** What a change did in one attempt of the batch transaction. */
type Outcome = { readonly ok: true; readonly value: unknown; readonly prepared: readonly Prepared[] } | { readonly ok: false; readonly error: unknown };

const DEFERRED = { durability: 'deferred' } as const;

/** One savepoint name, reused: each change's savepoint is released before the next opens. */
const CHANGE_SAVEPOINT = 'tessera_audit_change';

/** A change failed in an optimistic attempt: the batch is re-run with every change isolated. */
class ChangeFailed extends Error {
  constructor(readonly error: unknown) {
    super('an audited change failed; re-running the batch with each change isolated', { cause: error });
  }
}

/**
 * The checkpoint public key, derived from the sealed private key (so it is as trustworthy as
 * the master key, unlike the clear copy in `meta`); for offline verification.
 */
export async function checkpointPublicKey(store: Store, sealer: Sealer): Promise<KeyObject> {
  const row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_CHECKPOINT_KEY]);
  if (!row) throw new TesseraError('TESSERA_AUDIT_KEY_UNAVAILABLE', 'no audit checkpoint key in this store: nothing has been audited yet');
  let der: Buffer;
  try {
    der = sealer.open(Buffer.from(row.value, 'base64'), META_CHECKPOINT_KEY);
  } catch (e) {
    throw new TesseraError('TESSERA_AUDIT_KEY_UNAVAILABLE', `cannot open ${META_CHECKPOINT_KEY} with master key ${sealer.keyId}`, undefined, { cause: e });
  }
  const key = createPublicKey(privateKeyFromDer(der));
  der.fill(0);
  return key;
}

async function loadSealedKey(store: Store, sealer: Sealer, metaKey: string, generate: () => Buffer): Promise<Buffer> {
  let row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [metaKey]);
  if (!row) {
    const key = generate();
    // Another replica may create it at the same time: the first insert wins, everyone re-reads.
    await store.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [metaKey, sealer.seal(key, metaKey).toString('base64')]);
    key.fill(0);
    row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [metaKey]);
  }
  try {
    return sealer.open(Buffer.from(row!.value, 'base64'), metaKey);
  } catch (e) {
    throw new TesseraError('TESSERA_AUDIT_KEY_UNAVAILABLE', `cannot open ${metaKey} with master key ${sealer.keyId}: is this the master key the data directory was created with?`, undefined, { cause: e });
  }
}

export async function createAuditLog(options: AuditLogOptions): Promise<AuditLog> {
  const { store, clock, sealer, logger } = options;
  const sinkConfigs = options.sinks ?? [{ kind: 'store' }];
  const everyEvents = options.checkpointEveryEvents ?? 1000;
  const everyMs = options.checkpointEveryMs ?? 60_000;
  const maxBatch = options.maxBatch ?? 2000;
  const flushMode: AuditFlushMode = options.flush?.mode ?? 'grouped';
  const flushWindowMs = options.flush?.windowMs ?? 100;

  const hmacKey = await loadSealedKey(store, sealer, META_HMAC_KEY, () => randomBytes(32));
  const privateDer = await loadSealedKey(store, sealer, META_CHECKPOINT_KEY, () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'der' }));
  const privateKey = privateDer.length ? privateKeyFromDer(privateDer) : undefined;
  privateDer.fill(0);
  if (!privateKey) throw new TesseraError('TESSERA_AUDIT_KEY_UNAVAILABLE', `${META_CHECKPOINT_KEY} is empty`);
  const publicKeyObj = createPublicKey(privateKey);
  const publicKey = publicKeyObj.export({ type: 'spki', format: 'der' }).toString('base64');
  const keyId = checkpointKeyId(publicKeyObj);
  await store.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [META_PUBLIC_KEY, publicKey]);

  const eventsTotal = options.metrics?.counter('tessera_audit_events_total', 'Audit events committed to at least one sink.');
  let lastBatch: { ok: boolean; at: number; failedSinks: number } | undefined;
  const sinkErrors = options.metrics?.counter('tessera_audit_sink_errors_total', 'Batches an audit sink failed to write, by sink.');
  const lag = options.metrics?.gauge('tessera_audit_lag_seconds', 'Age of the oldest queued audit event when its batch started.');
  const storeCommits = options.metrics?.counter('tessera_audit_store_commits_total', 'Audit batches committed to the store, by flush: "request" (fdatasync before the answer) or "deferred" (written before the answer, synced by a group flush).');
  const groupFlushes = options.metrics?.counter('tessera_audit_group_flushes_total', 'Group flushes (one fdatasync) of deferred audit batches, by result.');
  let commitsFlushed = 0;
  let commitsDeferred = 0;
  let groupFlushCount = 0;

  const useStore = sinkConfigs.some((s) => s.kind === 'store');
  const otherSinks: AuditSink[] = createSinks(sinkConfigs, { logger, metrics: options.metrics, stdout: options.stdout, env: options.env });

  // In-memory chain head: where the next batch links when the store is not the (working) sink.
  const tail0 = await store.get<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
  let headSeq = tail0 ? Number(tail0.seq) : 0;
  let headHash = tail0 ? tail0.hash : GENESIS_HASH;

  const queue: Pending[] = [];
  let running: Promise<void> | null = null;
  let checkpointRequested = false;
  let closed = false;

  /** Validates an event, fills in the replica and computes its canonical body; throws TESSERA_AUDIT_EVENT_INVALID. */
  function prepare(event: AuditEvent): Prepared {
    const withWhere: AuditEvent = event.where?.replica ? event : ({ ...event, where: { ...event.where, replica: options.replicaId } } as AuditEvent);
    // One walk for the checks and the canonical body; anything unusual takes the two-step path,
    // which gives every refusal its message (validate.ts validateAndCanonicalize).
    let body = validateAndCanonicalize(withWhere);
    if (body === undefined) {
      validateEvent(withWhere);
      try {
        body = canonicalize(withWhere);
      } catch (e) {
        throw new TesseraError('TESSERA_AUDIT_EVENT_INVALID', `audit event cannot be serialized: ${(e as Error).message}`);
      }
    }
    checkEventSize(body);
    return { event: withWhere, body };
  }

  const asList = (e: AuditEvent | readonly AuditEvent[] | null | undefined): readonly AuditEvent[] => (e == null ? [] : Array.isArray(e) ? e : [e as AuditEvent]);

  /**
   * Runs the batch's changes in `tx`, with the events each produces (validated right after its
   * change: an event that cannot be recorded undoes the change).
   *
   * Optimistic first (`isolate` false): no savepoints, so a change costs its own statements only
   * (a savepoint adds two round trips per change on PostgreSQL). The first change that fails aborts the attempt with
   * ChangeFailed, and the caller re-runs the whole batch isolated: each change under a savepoint,
   * so a failing one is rolled back alone and fails alone while the others commit. Serialization
   * failures are never contained (the adapter re-runs the whole transaction, and this with it).
   */
  async function runChanges(tx: SqlExecutor, batch: readonly Pending[], isolate: boolean): Promise<Map<Pending, Outcome>> {
    const outcomes = new Map<Pending, Outcome>();
    const run = async (p: Pending) => {
      const value = await p.change!(tx);
      const prepared = p.prepared ?? asList(p.eventsOf!(value)).map(prepare);
      return { value, prepared };
    };
    for (const p of batch) {
      if (!p.change) continue;
      if (!isolate) {
        try {
          const r = await run(p);
          outcomes.set(p, { ok: true, value: r.value, prepared: r.prepared });
        } catch (e) {
          if (isRetryableConflict(e)) throw e;
          throw new ChangeFailed(e);
        }
        continue;
      }
      const o = await withSavepoint(tx, CHANGE_SAVEPOINT, () => run(p));
      outcomes.set(p, o.ok ? { ok: true, value: o.value.value, prepared: o.value.prepared } : { ok: false, error: o.error });
    }
    return outcomes;
  }

  /** Runs `fn` optimistically, then — if a change failed — once more with every change isolated. */
  async function withChanges<T>(batch: readonly Pending[], fn: (isolate: boolean) => Promise<T>): Promise<T> {
    if (!batch.some((p) => p.change)) return fn(false);
    try {
      return await fn(false);
    } catch (e) {
      if (!(e instanceof ChangeFailed)) throw e;
      return fn(true);
    }
  }

  /** The events to record for `batch`, in order: appends, and the changes that succeeded. */
  function preparedOf(batch: readonly Pending[], outcomes: ReadonlyMap<Pending, Outcome>): Prepared[] {
    const out: Prepared[] = [];
    for (const p of batch) {
      if (!p.change) out.push(...p.prepared!);
      else {
        const o = outcomes.get(p);
        if (o?.ok) out.push(...o.prepared);
      }
    }
    return out;
  }

  /** Records chained onto the in-memory head (when the store is not the sink, or failed). */
  function chainFromHead(items: readonly Prepared[], ts: number): StoredRecord[] {
    const records: StoredRecord[] = [];
    let prev = headHash;
    let seq = headSeq;
    for (const p of items) {
      const r = makeRecord(prev, ++seq, ts, p.event, p.body);
      prev = r.hash;
      records.push(r);
    }
    return records;
  }

  async function storeCommit(tx: SqlExecutor, batch: readonly Pending[], ts: number, forceCheckpoint: boolean, isolate: boolean): Promise<{ records: StoredRecord[]; outcomes: Map<Pending, Outcome>; head?: Checkpoint }> {
    // Changes first, in this same transaction: each commits with its events or not at all.
    const outcomes = await runChanges(tx, batch, isolate);
    // Read the tail inside the transaction: another replica may have appended (PostgreSQL HA),
    // and on a serialization retry this function must recompute from the database alone.
    const last = await tx.get<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    let seq = last ? Number(last.seq) : 0;
    let prev = last ? last.hash : GENESIS_HASH;
    if (headSeq > seq) {
      // Other sinks recorded events the store missed while it was failing; keep seqs aligned
      // (verify then reports exactly those seqs as deleted from the store).
      seq = headSeq;
      prev = headHash;
    }
    const records: StoredRecord[] = [];
    for (const p of preparedOf(batch, outcomes)) {
      seq++;
      const r = makeRecord(prev, seq, ts, p.event, p.body);
      prev = r.hash;
      records.push(r);
    }
    if (seq === 0) return { records, outcomes };
    // Signatures on the libuv pool, started as soon as the head is known: the Ed25519 signature
    // of every batch overlaps with the inserts and with request work on the event loop.
    const position = { seq, ts, hash: prev, keyId };
    const headSigned = signPositionAsync(privateKey!, 'head', position);
    headSigned.catch(() => undefined); // awaited below; a failed insert must not leave it unhandled
    for (const r of records) {
      await tx.run('INSERT INTO audit_events (seq, ts, kind, actor, txn, result, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [r.seq, r.ts, r.kind, r.actor, r.txn, r.result ?? null, r.body, r.prevHash, r.hash]);
    }
    const lastCp = await tx.get<{ seq: number; ts: number }>('SELECT seq, ts FROM audit_checkpoints ORDER BY seq DESC LIMIT 1');
    const cpSeq = lastCp ? Number(lastCp.seq) : 0;
    const cpTs = lastCp ? Number(lastCp.ts) : 0;
    const due = seq > cpSeq && (forceCheckpoint || seq - cpSeq >= everyEvents || (everyMs > 0 && ts - cpTs >= everyMs));
    const [cp, head] = await Promise.all([due ? signPositionAsync(privateKey!, 'checkpoint', position) : undefined, headSigned]);
    if (cp) {
      await tx.run('INSERT INTO audit_checkpoints (seq, ts, hash, key_id, signature) VALUES (?, ?, ?, ?, ?)', [cp.seq, cp.ts, cp.hash, cp.keyId, cp.signature]);
    }
    // The signed head covers truncation after the newest periodic checkpoint. It is signed under
    // its own context (statements.ts), so a checkpoint can never be put in its place.
    await tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [META_HEAD, JSON.stringify(head)]);
    return { records, outcomes, head };
  }

  /**
   * Writes records (and the signed head, when the store signed one: the witness of
   * `verify --witness`) to the other sinks; each failure is counted and logged. Only durable sinks
   * (file, stdout) count as having recorded the events; forwarders (http, syslog) never do.
   */
  async function writeOtherSinks(records: readonly StoredRecord[], head?: Checkpoint): Promise<{ wrote: number; errors: string[] }> {
    let wrote = 0;
    const errors: string[] = [];
    for (const sink of otherSinks) {
      try {
        await sink.write({ records, head });
        if (sink.durable) wrote++;
      } catch (e) {
        sinkErrors?.inc({ sink: sink.name });
        errors.push(`${sink.name}: ${(e as Error).message}`);
        logger.error({ sink: sink.name, err: (e as Error).message, events: records.length }, 'audit sink failed');
      }
    }
    return { wrote, errors };
  }

  const unavailable = (errors: readonly string[]): TesseraError =>
    new TesseraError('TESSERA_AUDIT_UNAVAILABLE', 'no audit sink could record the event, so the request was refused; check the store and the audit sinks in the server log', { sinks: errors });

  /** The error a change gets when its transaction failed (its change was rolled back with its events). */
  const changeFailure = (e: unknown): TesseraError =>
    e instanceof TesseraError ? e : new TesseraError('TESSERA_STORE_UNAVAILABLE', `the change and its audit event could not be committed: ${(e as Error)?.message ?? String(e)}`, undefined, { cause: e });

  function settle(batch: readonly Pending[], outcomes: ReadonlyMap<Pending, Outcome>): void {
    for (const p of batch) {
      if (!p.change) {
        p.resolve();
        continue;
      }
      const o = outcomes.get(p);
      if (o?.ok) p.resolve(o.value);
      else p.reject(o ? o.error : new TesseraError('TESSERA_INTERNAL', 'an audited change was not run'));
    }
  }

  /**
   * Without the store among the sinks there is no audit row to commit with: the changes run in a
   * store transaction that writes their events to the file/stdout sinks BEFORE it commits, and
   * rolls back when no sink could. (A failing COMMIT after the write leaves an event for a change
   * that did not happen: over-recording, never under-recording. ADR 0041.)
   */
  async function commitChangesWithoutStoreSink(changed: readonly Pending[], ts: number): Promise<{ wrote: number; errors: string[] }> {
    let done: { records: StoredRecord[]; outcomes: Map<Pending, Outcome> } | undefined;
    let errors: string[] = [];
    try {
      await withChanges(changed, (isolate) => store.transaction(async (tx) => {
        const outcomes = await runChanges(tx, changed, isolate);
        const records = chainFromHead(preparedOf(changed, outcomes), ts);
        errors = [];
        if (records.length) {
          const w = await writeOtherSinks(records);
          errors = w.errors;
          if (w.wrote === 0) throw unavailable(w.errors);
          // The sinks hold these records now: a retried transaction chains after them.
          headSeq = records[records.length - 1]!.seq;
          headHash = records[records.length - 1]!.hash;
        }
        done = { records, outcomes };
      }));
    } catch (e) {
      for (const p of changed) p.reject(changeFailure(e));
      return { wrote: 0, errors: errors.length ? errors : [`store: ${(e as Error)?.message ?? String(e)}`] };
    }
    eventsTotal?.inc(undefined, done!.records.length);
    settle(changed, done!.outcomes);
    return { wrote: 1, errors };
  }

  async function commit(batch: readonly Pending[], forceCheckpoint: boolean): Promise<void> {
    const ts = clock.now();
    if (batch.length) lag?.set(Math.max(0, ts - batch[0]!.at) / 1000);
    let records: StoredRecord[] | undefined;
    let head: Checkpoint | undefined; // exported to the external sinks: the witness of `verify --witness`
    let outcomes = new Map<Pending, Outcome>();
    /** The queued items whose events `records` holds (failed changes are settled already). */
    let recorded: readonly Pending[] = batch;
    let wrote = 0;
    const errors: string[] = [];
    // Deferred only when every item is a pass-through event: a state change (or any other event)
    // in the batch flushes it, and with it every deferred batch before it (one WAL, one prefix).
    const deferred = flushMode === 'grouped' && batch.length > 0 && batch.every((p) => p.deferrable === true);
    if (useStore) {
      try {
        ({ records, outcomes, head } = await withChanges(batch, (isolate) => store.transaction((tx) => storeCommit(tx, batch, ts, forceCheckpoint, isolate), deferred ? DEFERRED : undefined)));
        wrote++;
        if (deferred) {
          commitsDeferred++;
          storeCommits?.inc({ flush: 'deferred' });
          // Its head goes to the witnesses only once synced (groupFlush): a witness never holds a
          // head the store could lose to a power loss, which `verify --witness` would report as a rollback.
          if (head) unsyncedHead = head;
          head = undefined;
          scheduleGroupFlush();
        } else {
          commitsFlushed++;
          storeCommits?.inc({ flush: 'request' });
          // This flushed head covers every deferred one before it (exported below with its records).
          if (head && records.length > 0) unsyncedHead = undefined;
        }
      } catch (e) {
        sinkErrors?.inc({ sink: 'store' });
        errors.push(`store: ${(e as Error).message}`);
        logger.error({ sink: 'store', err: (e as Error).message, events: batch.length }, 'audit sink failed');
        // The changes were rolled back with their events; plain events may still reach other sinks.
        for (const p of batch) if (p.change) p.reject(changeFailure(e));
        recorded = batch.filter((p) => !p.change);
      }
    } else if (batch.some((p) => p.change)) {
      const w = await commitChangesWithoutStoreSink(batch.filter((p) => p.change), ts);
      wrote += w.wrote;
      errors.push(...w.errors);
      recorded = batch.filter((p) => !p.change);
    }
    if (!records) records = chainFromHead(preparedOf(recorded, outcomes), ts);
    if (records.length) {
      const w = await writeOtherSinks(records, head);
      if (head) exportedHeadSeq = Math.max(exportedHeadSeq, head.seq);
      wrote += w.wrote;
      errors.push(...w.errors);
    }
    if (batch.length === 0) return;
    lastBatch = { ok: wrote > 0, at: clock.now(), failedSinks: errors.length };
    if (recorded.length === 0) return;
    if (wrote === 0) {
      const err = unavailable(errors);
      for (const p of recorded) p.reject(err);
      return;
    }
    if (records.length) {
      const lastRecord = records[records.length - 1]!;
      headSeq = lastRecord.seq;
      headHash = lastRecord.hash;
    }
    eventsTotal?.inc(undefined, records.length);
    settle(recorded, outcomes);
  }

  /** Heads of deferred batches, synced by a group flush, waiting to be exported (in drain: sinks are written one batch at a time). */
  let syncedHead: Checkpoint | undefined;
  let exportedHeadSeq = 0;
  let unsyncedHead: Checkpoint | undefined;
  let groupTimer: NodeJS.Timeout | undefined;
  let groupFlushing: Promise<void> | undefined;
  let syncFailed = false;

  function scheduleGroupFlush(): void {
    if (groupTimer || closed) return;
    groupTimer = setTimeout(() => {
      groupTimer = undefined;
      void groupFlush();
    }, flushWindowMs);
    groupTimer.unref();
  }

  /**
   * One fdatasync for every deferred batch committed so far; then the newest head it covers goes
   * to the other sinks. A failure is logged, counted and shown by health() (`/readyz`), and the
   * sync is tried again after another window.
   */
  async function groupFlush(): Promise<void> {
    if (groupFlushing) return groupFlushing;
    groupFlushing = (async () => {
      const head = unsyncedHead;
      unsyncedHead = undefined;
      try {
        await store.sync();
        syncFailed = false;
        groupFlushCount++;
        groupFlushes?.inc({ result: 'ok' });
        if (head && head.seq > exportedHeadSeq && otherSinks.length > 0) {
          syncedHead = head;
          kick();
        }
      } catch (e) {
        syncFailed = true;
        groupFlushes?.inc({ result: 'failed' });
        logger.error({ err: (e as Error).message }, 'audit group flush failed: deferred audit events are not yet safe from a power loss; retrying');
        if (head && !unsyncedHead) unsyncedHead = head;
        scheduleGroupFlush(); // not after close(): scheduleGroupFlush checks
      } finally {
        groupFlushing = undefined;
      }
    })();
    return groupFlushing;
  }

  async function drain(): Promise<void> {
    // Bounded: each turn removes up to maxBatch events; new arrivals start another turn.
    while (queue.length > 0 || checkpointRequested || syncedHead) {
      if (syncedHead) {
        const h = syncedHead;
        syncedHead = undefined;
        if (h.seq > exportedHeadSeq) {
          await writeOtherSinks([], h);
          exportedHeadSeq = h.seq;
        }
        continue;
      }
      const batch = queue.splice(0, maxBatch);
      const force = checkpointRequested && queue.length === 0;
      if (force) checkpointRequested = false;
      try {
        await commit(batch, force);
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
    }
  }

  function kick(): void {
    if (running) return;
    running = (async () => {
      // Yield once so appends issued in the same turn of the event loop share one commit.
      await new Promise<void>((r) => setImmediate(r));
      try {
        await drain();
      } finally {
        running = null;
        if (queue.length > 0 || checkpointRequested || syncedHead) kick();
      }
    })();
  }

  async function flush(): Promise<void> {
    for (let i = 0; i < 1_000_000 && (running || queue.length > 0); i++) {
      if (!running) kick();
      await running;
    }
  }

  const timer = useStore && everyMs > 0 ? setInterval(() => {
    checkpointRequested = true;
    kick();
  }, everyMs) : undefined;
  timer?.unref();

  return {
    publicKey,
    keyId,
    async append(event: AuditEvent): Promise<void> {
      if (closed) throw new TesseraError('TESSERA_AUDIT_UNAVAILABLE', 'the audit log is closed (server shutting down); retry on another replica');
      const prepared = [prepare(event)];
      const deferrable = flushMode === 'grouped' && PASS_THROUGH_KINDS.has(event.kind);
      return new Promise<void>((resolve, reject) => {
        queue.push({ prepared, at: clock.now(), resolve: () => resolve(), reject, ...(deferrable ? { deferrable } : {}) });
        kick();
      });
    },
    async commit<T>(on: Store, change: (tx: SqlExecutor) => Promise<T>, events: AuditEventsOf<T>): Promise<T> {
      if (closed) throw new TesseraError('TESSERA_AUDIT_UNAVAILABLE', 'the audit log is closed (server shutting down); retry on another replica');
      if (on !== store) throw new TesseraError('TESSERA_INTERNAL', 'audit.commit() was given another store than the audit log\'s: the change and its event could not share a transaction');
      // Events known up front are checked before anything changes (a bad event changes nothing).
      const prepared = typeof events === 'function' ? undefined : asList(events as AuditEvent | readonly AuditEvent[]).map(prepare);
      if (prepared && prepared.length === 0) throw new TesseraError('TESSERA_AUDIT_EVENT_INVALID', 'audit.commit() needs at least one event');
      const eventsOf = typeof events === 'function' ? (events as (result: unknown) => AuditEvent | readonly AuditEvent[] | null) : undefined;
      return new Promise<T>((resolve, reject) => {
        queue.push({ ...(prepared ? { prepared } : {}), ...(eventsOf ? { eventsOf } : {}), change, at: clock.now(), resolve: (v) => resolve(v as T), reject });
        kick();
      });
    },
    hmac(value: string): string {
      return hmacSha256(hmacKey, value).toString('hex');
    },
    flush,
    async checkpoint() {
      if (!useStore) return;
      checkpointRequested = true;
      kick();
      await flush();
    },
    tail: (query) => tailAudit(store, query),
    // The server's own log: verified through the server, so archives are the server's too.
    verify: (o = {}) => verifyStore({ mode: 'online', ...o, store, publicKey: o.publicKey ?? publicKeyObj }),
    signStatement: (type, payload) => signStatement(privateKey, type, payload),
    flushStats: () => ({ mode: flushMode, windowMs: flushWindowMs, flushed: commitsFlushed, deferred: commitsDeferred, groupFlushes: groupFlushCount, syncFailed }),
    async sync() {
      if (groupTimer) clearTimeout(groupTimer);
      groupTimer = undefined;
      await groupFlush();
      await flush();
      if (syncFailed) throw new TesseraError('TESSERA_AUDIT_UNAVAILABLE', 'the audit store could not be synced to disk; see the server log');
    },
    health: () => ({ ok: !closed && !syncFailed && (lastBatch?.ok ?? true), closed, ...(lastBatch ? { lastBatchAt: lastBatch.at } : {}), failedSinks: lastBatch?.failedSinks ?? 0 }),
    async close() {
      if (closed) return;
      if (timer) clearInterval(timer);
      await flush();
      if (useStore && headSeq > 0) {
        checkpointRequested = true;
        kick();
        await flush().catch(() => undefined);
      }
      // Deferred batches the final checkpoint did not cover (it flushes only when it signs).
      if (groupTimer) clearTimeout(groupTimer);
      groupTimer = undefined;
      await groupFlush();
      await flush().catch(() => undefined);
      closed = true;
      for (const s of otherSinks) await s.close?.().catch(() => undefined);
    },
  };
}

export type { Checkpoint };
