import { randomBytes, type KeyObject } from 'node:crypto';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { TesseraError } from '../shared/errors.js';
import { archiveAudit, type ArchiveResult, type RetentionPolicy } from './archive.js';
import type { AuditLog } from './log.js';
import { META_VERIFIED, type StoreVerifyResult } from './verify.js';
import { verifyStatement } from './statements.js';

/**
 * Background audit jobs (verify, archive), so the work never runs on a request: the HTTP
 * endpoint starts a job and returns; progress and the result are read with
 * GET /v1/admin/audit/jobs/:id from any replica (the state is kept in `audit_jobs`). One job runs
 * at a time per replica; starting the same kind again returns the running job.
 */
export type AuditJobKind = 'verify' | 'archive';
export type AuditJobState = 'running' | 'done' | 'failed' | 'abandoned';

export interface AuditJobView {
  readonly id: string;
  readonly kind: AuditJobKind;
  readonly state: AuditJobState;
  readonly replica: string;
  readonly params: Record<string, unknown>;
  readonly progress: Record<string, number>;
  readonly result?: unknown;
  readonly error?: { code: string; message: string };
  readonly started_at: string;
  readonly updated_at: string;
  readonly finished_at?: string;
}

export interface AuditJobsDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly replicaId: string;
  readonly logger: Logger;
  readonly audit: Pick<AuditLog, 'verify' | 'signStatement' | 'keyId'>;
  readonly publicKey: KeyObject;
  /** Archiving is available only with a retention policy (audit.retention.archive_dir). */
  readonly retention?: RetentionPolicy;
  /** Rows per page for verification and archiving (default 1000). */
  readonly pageSize?: number;
  /** A running job of another replica not updated for this long is reported `abandoned` (default 5 min). */
  readonly staleMs?: number;
}

export interface AuditJobs {
  /** Starts a job, or returns the running one of the same kind (`created: false`). */
  start(kind: 'verify', params: { full: boolean; archives?: boolean }): Promise<{ job: AuditJobView; created: boolean }>;
  start(kind: 'archive', params?: Record<string, never>): Promise<{ job: AuditJobView; created: boolean }>;
  get(id: string): Promise<AuditJobView>;
  /** Resolves when the job (if it runs here) is finished, with its final view. */
  wait(id: string): Promise<AuditJobView>;
  /**
   * The newest finished verify job of any replica (its stored result signature checked, as
   * `get` does), or null when none finished yet: `at` RFC 3339, `ok` false for a failed job or a
   * result that does not verify, `checked` the events read.
   */
  lastVerify(): Promise<{ at: string; ok: boolean; checked: number; job: string } | null>;
  /** Stops the running job (between pages) and waits for it. */
  close(): Promise<void>;
}

/** Jobs kept in `audit_jobs`; older ones are deleted when a new one starts. */
export const JOBS_KEPT = 100;
/** Finished jobs this replica answers from memory (not from the store under verification). */
const RECENT_KEPT = 20;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

interface Running {
  readonly id: string;
  readonly kind: AuditJobKind;
  readonly params: Record<string, unknown>;
  readonly startedAt: number;
  readonly abort: AbortController;
  progress: Record<string, number>;
  updatedAt: number;
  /** Resolves when the job has finished and its result is recorded. */
  readonly done: Promise<void>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

interface JobRow {
  id: string;
  kind: string;
  replica: string;
  state: string;
  params: string;
  progress: string;
  result: string | null;
  started_at: number;
  updated_at: number;
  finished_at: number | null;
  [k: string]: unknown;
}

export function createAuditJobs(deps: AuditJobsDeps): AuditJobs {
  const { store, clock, logger } = deps;
  const staleMs = deps.staleMs ?? 5 * 60_000;
  let current: Running | null = null;
  const recent = new Map<string, AuditJobView>();
  let writes: Promise<unknown> = Promise.resolve();
  let dirty = false;

  function persistProgress(job: Running): void {
    job.updatedAt = clock.now();
    if (dirty) return; // one write in flight carries the latest progress when it runs
    dirty = true;
    writes = writes
      .then(() => {
        dirty = false;
        return store.run('UPDATE audit_jobs SET progress = ?, updated_at = ? WHERE id = ?', [JSON.stringify(job.progress), job.updatedAt, job.id]);
      })
      .catch((e: unknown) => logger.warn({ err: (e as Error).message, job: job.id }, 'audit job progress not recorded'));
  }

  async function runVerify(job: Running, full: boolean, archives: boolean): Promise<StoreVerifyResult> {
    const r = await deps.audit.verify({
      incremental: !full,
      ...(archives && deps.retention ? { archiveDir: deps.retention.archiveDir } : {}),
      ...(deps.pageSize ? { pageSize: deps.pageSize } : {}),
      signal: job.abort.signal,
      onProgress: (checked) => {
        job.progress = { checked };
        persistProgress(job);
      },
    });
    if (r.ok && !r.aborted && r.to_seq > 0) {
      // Where the next incremental run resumes; signed, so a database edit cannot skip events.
      const payload = { seq: r.to_seq, hash: r.to_hash, ts: clock.now(), key_id: deps.audit.keyId };
      const value = JSON.stringify({ payload, signature: deps.audit.signStatement('verified', payload) });
      await store.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [META_VERIFIED, value]);
    }
    return r;
  }

  async function runArchive(job: Running): Promise<ArchiveResult | { skipped: string }> {
    const retention = deps.retention!;
    const r = await store.withLeaderLock('tessera-audit-archive', () =>
      archiveAudit({
        store,
        publicKey: deps.publicKey,
        keyId: deps.audit.keyId,
        sign: (type, payload) => deps.audit.signStatement(type, payload),
        clock,
        policy: retention,
        logger,
        ...(deps.pageSize ? { pageSize: deps.pageSize } : {}),
        signal: job.abort.signal,
        onProgress: (p) => {
          job.progress = { ...p };
          persistProgress(job);
        },
      }),
    );
    return r.leader ? r.value : { skipped: 'another replica is archiving' };
  }

  function view(job: Running): AuditJobView {
    return { id: job.id, kind: job.kind, state: 'running', replica: deps.replicaId, params: job.params, progress: job.progress, started_at: iso(job.startedAt), updated_at: iso(job.updatedAt) };
  }

  async function start(kind: AuditJobKind, params: Record<string, unknown> = {}): Promise<{ job: AuditJobView; created: boolean }> {
    if (current) {
      if (current.kind === kind) return { job: view(current), created: false };
      throw new TesseraError('TESSERA_AUDIT_JOB_BUSY', `an audit ${current.kind} job (${current.id}) is running on this replica; wait for it and retry`, { job: current.id });
    }
    if ((kind === 'archive' || params.archives === true) && !deps.retention) throw new TesseraError('TESSERA_AUDIT_ARCHIVE_NOT_CONFIGURED', `${kind === 'archive' ? 'archiving' : 'verifying the archives'} needs audit.retention.archive_dir in tessera.yaml`);
    const now = clock.now();
    let finished!: () => void;
    const job: Running = { id: `ajob_${randomBytes(12).toString('base64url')}`, kind, params, startedAt: now, updatedAt: now, abort: new AbortController(), progress: kind === 'verify' ? { checked: 0 } : { archived: 0, pruned: 0 }, done: new Promise<void>((resolve) => (finished = resolve)) };
    current = job; // before any await: a concurrent start joins this job
    try {
      await store.run('DELETE FROM audit_jobs WHERE started_at < (SELECT started_at FROM audit_jobs ORDER BY started_at DESC LIMIT 1 OFFSET ?)', [JOBS_KEPT - 1]);
      await store.run('INSERT INTO audit_jobs (id, kind, replica, state, params, progress, result, started_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL)', [job.id, kind, deps.replicaId, 'running', JSON.stringify(params), JSON.stringify(job.progress), now, now]);
    } catch (e) {
      current = null;
      finished();
      throw e;
    }
    void (async () => {
      let state: AuditJobState = 'done';
      let result: unknown;
      try {
        // Yield first: the request that started the job is answered before any page is read.
        await new Promise<void>((resolve) => setImmediate(resolve));
        result = kind === 'verify' ? await runVerify(job, params.full === true, params.archives === true) : await runArchive(job);
      } catch (e) {
        state = 'failed';
        const code = e instanceof TesseraError ? e.code : 'TESSERA_INTERNAL';
        const message = e instanceof TesseraError ? e.message : 'the audit job failed unexpectedly; see the server log';
        result = { error: { code, message, ...(e instanceof TesseraError && e.details ? { details: e.details } : {}) } };
        logger.error({ job: job.id, kind, err: (e as Error).message }, 'audit job failed');
      }
      await writes;
      const end = clock.now();
      // Signed, so another replica reading it from the store (the store under verification)
      // can tell an edited result from the real one.
      const outcome = { id: job.id, kind, replica: deps.replicaId, state, result: result ?? null, finished_at: end };
      const stored = JSON.stringify({ result: outcome.result, signature: deps.audit.signStatement('job', outcome) });
      recent.set(job.id, viewOf(outcome, job));
      if (recent.size > RECENT_KEPT) recent.delete(recent.keys().next().value as string);
      await store
        .run('UPDATE audit_jobs SET state = ?, progress = ?, result = ?, updated_at = ?, finished_at = ? WHERE id = ?', [state, JSON.stringify(job.progress), stored, end, end, job.id])
        .catch((e: unknown) => logger.error({ job: job.id, err: (e as Error).message }, 'audit job result not recorded'));
      current = null;
      finished();
    })();
    return { job: view(job), created: true };
  }

  function viewOf(o: { id: string; kind: AuditJobKind; replica: string; state: AuditJobState; result: unknown; finished_at: number }, job: { params: Record<string, unknown>; progress: Record<string, number>; startedAt: number }): AuditJobView {
    const r = o.result as Record<string, unknown> | null;
    const error = r && typeof r === 'object' && 'error' in r ? (r.error as { code: string; message: string }) : undefined;
    return {
      id: o.id,
      kind: o.kind,
      state: o.state,
      replica: o.replica,
      params: job.params,
      progress: job.progress,
      ...(r && !error ? { result: r } : {}),
      ...(error ? { error } : {}),
      started_at: iso(job.startedAt),
      updated_at: iso(o.finished_at),
      finished_at: iso(o.finished_at),
    };
  }

  async function get(id: string): Promise<AuditJobView> {
    if (current?.id === id) return view(current);
    const mine = recent.get(id);
    if (mine) return mine; // finished here: the answer does not depend on the store
    const row = await store.get<JobRow>('SELECT id, kind, replica, state, params, progress, result, started_at, updated_at, finished_at FROM audit_jobs WHERE id = ?', [id]);
    if (!row) throw new TesseraError('TESSERA_AUDIT_JOB_NOT_FOUND', `no audit job ${id}; only the ${JOBS_KEPT} most recent are kept`);
    const job = { params: parseJson(row.params) as Record<string, unknown>, progress: parseJson(row.progress) as Record<string, number>, startedAt: Number(row.started_at) };
    if (row.state === 'running') {
      // Running according to the store but not here: this replica restarted, or the other one stopped updating it.
      const state: AuditJobState = row.replica === deps.replicaId || clock.now() - Number(row.updated_at) > staleMs ? 'abandoned' : 'running';
      return { id: row.id, kind: row.kind as AuditJobKind, state, replica: row.replica, params: job.params, progress: job.progress, started_at: iso(job.startedAt), updated_at: iso(Number(row.updated_at)) };
    }
    const stored = parseJson(row.result ?? '') as { result?: unknown; signature?: unknown } | undefined;
    const outcome = { id: row.id, kind: row.kind as AuditJobKind, replica: row.replica, state: row.state as AuditJobState, result: stored?.result ?? null, finished_at: Number(row.finished_at) };
    if (typeof stored?.signature !== 'string' || !verifyStatement(deps.publicKey, 'job', outcome, stored.signature)) {
      return viewOf({ ...outcome, state: 'failed', result: { error: { code: 'TESSERA_AUDIT_JOB_RESULT_INVALID', message: `the stored result of audit job ${row.id} does not carry a valid signature: the database was edited; run the verification again and treat the store as suspect` } } }, job);
    }
    return viewOf(outcome, job);
  }

  return {
    start: start as AuditJobs['start'],
    get,
    async wait(id) {
      if (current?.id === id) await current.done;
      return get(id);
    },
    async lastVerify() {
      const row = await store.get<{ id: string }>(`SELECT id FROM audit_jobs WHERE kind = 'verify' AND state <> 'running' AND finished_at IS NOT NULL ORDER BY finished_at DESC, id LIMIT 1`);
      if (!row) return null;
      const v = await get(row.id);
      if (v.state === 'running' || v.state === 'abandoned' || !v.finished_at) return null;
      const r = v.result as { ok?: unknown; checked?: unknown } | undefined;
      return { at: v.finished_at, ok: v.state === 'done' && r?.ok === true, checked: typeof r?.checked === 'number' ? r.checked : 0, job: v.id };
    },
    async close() {
      const job = current;
      if (!job) return;
      job.abort.abort();
      await job.done;
    },
  };
}
