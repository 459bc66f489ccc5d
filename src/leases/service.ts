import type { Store, SqlValue } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { MetricsRegistry, Counter } from '../shared/metrics.js';
import { TesseraError, fail, isTesseraError } from '../shared/errors.js';
import { randomId } from '../shared/crypto.js';
import { redactCredentialLike } from '../shared/credential-like.js';
import { validateEvent } from '../audit/validate.js';
import type { DynamicEngine, EngineData, LeaseContext, ReconcileLease, RoleSpec } from './engine.js';
import type { LeaseState } from './states.js';
import { NEXT_STEPS } from '../shared/next-steps.js';
import { describeDuration } from '../shared/duration.js';

export { LEASE_STATES, type LeaseState } from './states.js';

/**
 * TESSERA_LEASE_NOT_FOUND, worded for who asked: an agent may act only on its own leases (and
 * learns nothing about others'); an operator sees every lease and is told where to look.
 */
function leaseNotFound(id: string, byAgent: boolean): TesseraError {
  if (byAgent) return fail('TESSERA_LEASE_NOT_FOUND', `this agent holds no lease ${id} (an agent renews or revokes only its own leases; request a new credential)`);
  const step = NEXT_STEPS.listLeases();
  return fail('TESSERA_LEASE_NOT_FOUND', `no lease ${id}; list leases with ${step.route}`, { next_step: step });
}

export interface Lease {
  readonly id: string;
  readonly engine: string;
  readonly role: string;
  /** `<engine>/<role>/<lease id>`: what `revokeByPrefix` matches. */
  readonly path: string;
  readonly ownerAgent: string | null;
  readonly taskId: string | null;
  readonly userId: string | null;
  readonly state: LeaseState;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly maxExpiresAt: number;
  readonly revokedAt: number | null;
  readonly revokeAttempts: number;
  readonly nextAttemptAt: number | null;
  readonly lastError: string | null;
  readonly revokeCause: string | null;
}

export interface IssuedLease {
  readonly lease_id: string;
  /** Epoch milliseconds. */
  readonly expires_at: number;
  readonly renewable: boolean;
  /** The credential, returned once; never stored. */
  readonly data: Readonly<Record<string, unknown>>;
}

export interface RenewedLease {
  readonly lease_id: string;
  readonly expires_at: number;
  /** The TTL granted from now, in ms: the increment, or less when capped at the max TTL. */
  readonly ttl_ms: number;
  /** False once the lease reached its max TTL. */
  readonly renewable: boolean;
}

/** Outcome of a bulk revocation. */
export interface RevokeCounts {
  readonly matched: number;
  readonly revoked: number;
  /** The engine could not disable the credential yet (refused or unreachable): queued for retry with backoff. */
  readonly retrying: number;
  /** Credential disabled (no login, sessions ended) but its cleanup failed: retried by the reaper. */
  readonly disabled: number;
  /** Disabling failed on every attempt: the credential may still be usable; a person must act. */
  readonly irrevocable: number;
}

export interface ReapResult extends RevokeCounts {
  readonly expired: number;
  readonly retried: number;
  readonly abandoned: number;
}

export interface RecoverResult extends ReapResult {
  readonly reconciled: { readonly orphansDropped: number; readonly missing: number };
}

/** Who asked and from where, for the audit event. */
export interface CallContext {
  readonly actor?: AuditActor;
  readonly where?: AuditWhere;
}

export interface LeaseService {
  issue(req: { engine: string; role: string; principal: AgentPrincipal; ttlMs?: number; where?: AuditWhere }): Promise<IssuedLease>;
  /**
   * `expires_at = min(now + increment, max_expires_at)`, increment defaulting to the role's TTL
   * (a smaller increment shortens the lease; a larger one is capped). TESSERA_LEASE_NOT_RENEWABLE
   * only when the lease already sits at its cap. With `principal`, only the owner may renew
   * (others get TESSERA_LEASE_NOT_FOUND); with a task token, only leases of its task subtree.
   */
  renew(id: string, principal?: AgentPrincipal, incrementMs?: number, ctx?: CallContext): Promise<RenewedLease>;
  /** With `principal`, only the owner may revoke. Idempotent: a revoked lease stays revoked. */
  revoke(id: string, cause: string, ctx?: CallContext & { principal?: AgentPrincipal }): Promise<{ lease_id: string; state: LeaseState }>;
  revokeByOwner(spiffeId: string, ctx?: CallContext): Promise<RevokeCounts>;
  /** Leases issued under the task or any task below it (its subtree). */
  revokeByTask(taskId: string, ctx?: CallContext): Promise<RevokeCounts>;
  revokeByUser(userId: string, ctx?: CallContext): Promise<RevokeCounts>;
  /** Leases a Kubernetes pod's agents took, and those under the tasks they opened (docs/k8s-pods.md). */
  revokeByPod(podUid: string, ctx?: CallContext): Promise<RevokeCounts>;
  /** Prefix of the lease path `<engine>/<role>/<lease id>`, e.g. `postgres/` or `postgres/readonly/`. */
  revokeByPrefix(pathPrefix: string, ctx?: CallContext): Promise<RevokeCounts>;
  get(id: string): Promise<Lease | undefined>;
  /**
   * `task`: leases issued under this task or any task below it. Newest first (`created_at`, then
   * `id`); `after` is the last lease of the previous page (keyset pagination).
   */
  list(filter?: { state?: LeaseState; irrevocable?: boolean; owner?: string; task?: string; limit?: number; after?: { createdAt: number; id: string } }): Promise<Lease[]>;
  /**
   * How many leases `revokeByOwner` / `revokeByTask` / `revokeByUser` would act on now (the
   * kill switch's preview): the same match, counted instead of revoked.
   */
  countRevocable(by: BulkMatch, target: string): Promise<number>;
  /** One reaper pass: expired → revoke, due retries, abandoned intents. */
  reapOnce(): Promise<ReapResult>;
  startReaper(intervalMs: number): void;
  /** Stops the reaper, waits for its current pass and for `idle()`. */
  stopReaper(): Promise<void>;
  /** Resolves once the clean-ups that failed issuances left running in the background have finished. */
  idle(): Promise<void>;
  /** At start: drop abandoned intents, revoke leases that expired while down, retry queued revocations, reconcile engines. */
  recover(): Promise<RecoverResult>;
  /** Both-way comparison with every engine that implements `reconcile`. */
  reconcile(): Promise<{ orphansDropped: number; missing: number }>;
  /** For /readyz details: leases whose revocation is not finished, by state. */
  health(): Promise<{ revoking: number; disabled: number; irrevocable: number }>;
}

export interface LeaseServiceDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  readonly engines: readonly DynamicEngine[];
  /** Revocation attempts before a lease is declared irrevocable. Default 8. */
  readonly maxRevokeAttempts?: number;
  readonly metrics?: MetricsRegistry;
  /** Retry delay after attempt n is min(baseMs · 2^(n-1), maxMs). Defaults 1 s and 5 min. */
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** Bound on each engine call (create, renew, disable, cleanup, reconcile). Default 10 s. */
  readonly engineTimeoutMs?: number;
  /** A pending intent older than this, not in flight here, is abandoned and revoked by the reaper. Default 2 min. */
  readonly pendingGraceMs?: number;
  /** Rows handled per category per reaper pass. Default 500. */
  readonly batchSize?: number;
  /**
   * Leases per `revokeMany` call (and per batched store statement) for bulk revocations and
   * expired leases, on engines that implement it. Default 500; at most 5,000 (bind-parameter
   * limits: SQLite 32,766, PostgreSQL 65,535).
   */
  readonly revokeBatchSize?: number;
  /** Called when a background reaper pass throws (e.g. the store or audit is down). */
  readonly onReaperError?: (err: unknown) => void;
  /** Exposure windows (src/exposure, ADR 0150): told of every lease moved to `revoked` (its backend credential dropped). */
  readonly exposure?: { leaseClosed(createdAt: number, revokedAt: number): void };
}

interface LeaseRow {
  id: string;
  engine: string;
  role: string;
  path: string;
  owner_agent: string | null;
  task_id: string | null;
  user_id: string | null;
  state: string;
  engine_data: string;
  created_at: number;
  expires_at: number;
  max_expires_at: number;
  revoked_at: number | null;
  revoke_attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
  revoke_cause: string | null;
}

const COLUMNS = 'id, engine, role, path, owner_agent, task_id, user_id, state, engine_data, created_at, expires_at, max_expires_at, revoked_at, revoke_attempts, next_attempt_at, last_error, revoke_cause';
const SYSTEM: AuditActor = { id: 'system' };
/** Leases whose credential may still exist in the backend. */
const OPEN_STATES = `('pending', 'active', 'revoking', 'disabled')`;

/** Which leases a bulk revocation acts on. */
export type BulkMatch = 'owner' | 'task' | 'user' | 'pod';

/**
 * The one definition of what each bulk revocation matches (among open leases): used to revoke
 * (revokeByOwner/Task/User) and to count for the kill switch's preview (countRevocable), so the
 * preview can never disagree with what is revoked.
 */
const BULK_MATCHES: Record<BulkMatch, (target: string) => [string, SqlValue[]]> = {
  owner: (spiffeId) => ['owner_agent = ?', [spiffeId]],
  // The task and its whole subtree: task_ancestors holds (ancestor, txn) for every node and
  // itself (src/tasks/store.ts), so descendants issued anywhere below are matched too.
  task: (taskId) => ['(task_id = ? OR task_id IN (SELECT txn FROM task_ancestors WHERE ancestor = ?))', [taskId, taskId]],
  user: (userId) => ['user_id = ?', [userId]],
  // A deleted pod (docs/k8s-pods.md): leases its agents took, and those of the subtrees of the
  // tasks its agents opened (migration 340 records the pod uid on both).
  pod: (podUid) => ['(pod_uid = ? OR task_id IN (SELECT a.txn FROM task_ancestors a JOIN tasks t ON t.txn = a.ancestor WHERE t.pod_uid = ?))', [podUid, podUid]],
};

/** Whether a lease revoked for this cause had been handed out (a failed or abandoned issuance never was). */
const handedOut = (cause: string): boolean => cause !== 'create_failed' && cause !== 'abandoned_intent';

function toLease(r: LeaseRow): Lease {
  return {
    id: r.id,
    engine: r.engine,
    role: r.role,
    path: r.path,
    ownerAgent: r.owner_agent,
    taskId: r.task_id,
    userId: r.user_id,
    state: r.state as LeaseState,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    maxExpiresAt: Number(r.max_expires_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    revokeAttempts: Number(r.revoke_attempts),
    nextAttemptAt: r.next_attempt_at === null ? null : Number(r.next_attempt_at),
    lastError: r.last_error,
    revokeCause: r.revoke_cause,
  };
}

function parseEngineData(raw: string): EngineData {
  const v: unknown = JSON.parse(raw);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TesseraError('TESSERA_INTERNAL', 'lease engine_data is not a JSON object');
  return v as EngineData;
}

function actorOf(p: AgentPrincipal): AuditActor {
  return { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) };
}

/**
 * Never lets an engine message grow without bound into the store or audit log, nor carry a
 * credential shape (the audit log would refuse the event, ADR 0041).
 */
function errorText(e: unknown): { code: string; message: string } {
  const code = isTesseraError(e) ? e.code : 'TESSERA_ENGINE_FAILED';
  const message = redactCredentialLike((e instanceof Error ? e.message : String(e)).slice(0, 300));
  return { code, message };
}

function toEngineError(e: unknown, what: string): TesseraError {
  // An engine's own code says what happened (unreachable 503, refused 502, the user's own lock
  // 409, …): kept, so a refusal an agent caused is never turned into a 502.
  if (isTesseraError(e) && e.code.startsWith('TESSERA_ENGINE_')) return e;
  const { message } = errorText(e);
  return new TesseraError('TESSERA_ENGINE_FAILED', `${what} failed: ${message}`, undefined, { cause: e });
}

export function createLeaseService(deps: LeaseServiceDeps): LeaseService {
  const { store, clock, audit } = deps;
  const maxAttempts = deps.maxRevokeAttempts ?? 8;
  const backoff = deps.backoff ?? { baseMs: 1000, maxMs: 5 * 60_000 };
  const engineTimeoutMs = deps.engineTimeoutMs ?? 10_000;
  const pendingGraceMs = deps.pendingGraceMs ?? 2 * 60_000;
  const batchSize = deps.batchSize ?? 500;
  const revokeBatchSize = deps.revokeBatchSize ?? 500;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw fail('TESSERA_CONFIG_INVALID', 'maxRevokeAttempts must be a positive integer');
  if (!Number.isInteger(revokeBatchSize) || revokeBatchSize < 1 || revokeBatchSize > 5000) throw fail('TESSERA_CONFIG_INVALID', 'revokeBatchSize must be an integer from 1 to 5000');

  const engines = new Map<string, DynamicEngine>();
  for (const e of deps.engines) {
    if (engines.has(e.name)) throw fail('TESSERA_CONFIG_INVALID', `two dynamic engines are named "${e.name}"; engine names must be unique`);
    engines.set(e.name, e);
  }

  /** Creates in flight in this process: never treated as abandoned intents. */
  const creating = new Set<string>();
  /** Revocations in flight, so concurrent callers share one engine call per lease. */
  const revoking = new Map<string, Promise<LeaseState>>();
  /** Clean-ups a failed issuance left running after it answered (awaited by `idle()`). */
  const background = new Set<Promise<void>>();
  function inBackground(p: Promise<void>): void {
    background.add(p);
    void p.finally(() => background.delete(p));
  }

  let failures: Counter | undefined;
  if (deps.metrics) {
    const count = (state: LeaseState) => async () => Number((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM leases WHERE state = ?', [state]))?.n ?? 0);
    deps.metrics.gauge('tessera_leases_active', 'Leases whose credential is live').collect(count('active'));
    deps.metrics.gauge('tessera_leases_irrevocable', 'Leases whose credential could not even be disabled after every retry (it may still be usable); see `tessera lease list --irrevocable`').collect(count('irrevocable'));
    deps.metrics.gauge('tessera_leases_revoking', 'Leases whose credential is not disabled yet, queued for revocation retry').collect(count('revoking'));
    deps.metrics.gauge('tessera_leases_disabled', 'Leases whose credential is disabled (no login, sessions ended) but whose cleanup in the backend is pending').collect(count('disabled'));
    failures = deps.metrics.counter('tessera_lease_revoke_failures_total', 'Failed engine revocation attempts, by step (disable, cleanup)');
  }

  function backoffAfter(attempts: number): number {
    return Math.min(backoff.baseMs * 2 ** Math.min(attempts - 1, 30), backoff.maxMs);
  }

  /** Bounds an engine call; the engine gets the signal, and a call that ignores it is abandoned anyway. */
  async function bounded<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new TesseraError('TESSERA_ENGINE_UNAVAILABLE', `${what} did not finish within ${describeDuration(engineTimeoutMs)}`)), engineTimeoutMs);
    try {
      const aborted = new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true }));
      aborted.catch(() => undefined);
      return await Promise.race([fn(ac.signal), aborted]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function getRow(id: string): Promise<LeaseRow | undefined> {
    return store.get<LeaseRow & Record<string, unknown>>(`SELECT ${COLUMNS} FROM leases WHERE id = ?`, [id]);
  }

  /**
   * Whether `principal` may renew or revoke this lease: its owner agent, and with a task token
   * only a lease of that task or of a task below it (a sub-agent never touches its parent's
   * or a sibling's leases, though it may act as the same agent).
   */
  async function belongsTo(row: LeaseRow, principal: AgentPrincipal): Promise<boolean> {
    if (row.owner_agent !== principal.spiffeId) return false;
    if (principal.task === undefined) return true;
    if (row.task_id === null) return false;
    if (row.task_id === principal.task) return true;
    return (await store.get<{ x: number }>('SELECT 1 AS x FROM task_ancestors WHERE ancestor = ? AND txn = ?', [principal.task, row.task_id])) !== undefined;
  }

  function revokeNow(id: string, cause: string, ctx: CallContext): Promise<LeaseState> {
    const running = revoking.get(id);
    if (running) return running;
    const p = attemptRevoke(id, cause, ctx).finally(() => revoking.delete(id));
    revoking.set(id, p);
    return p;
  }

  /** One engine step, bounded: resolves to its error, or undefined when it succeeded. */
  async function engineStep(what: string, fn: (signal: AbortSignal) => Promise<void>): Promise<{ code: string; message: string } | undefined> {
    try {
      await bounded(what, fn);
      return undefined;
    } catch (e) {
      return errorText(e);
    }
  }

  /**
   * One revocation attempt: mark `revoking` (persisted first); step 1 `engine.disable`, then the
   * lease is recorded `disabled` BEFORE step 2 `engine.revoke` (cleanup) runs; record the outcome.
   * A failed disable leaves `revoking` (`irrevocable` once attempts are exhausted: still retried,
   * at the longest backoff, forever); a failed cleanup leaves `disabled`, retried with backoff
   * until the attempts are exhausted (`next_attempt_at` NULL: an operator retries with
   * DELETE /v1/admin/leases/<id>).
   */
  async function attemptRevoke(id: string, cause: string, ctx: CallContext): Promise<LeaseState> {
    await store.run(`UPDATE leases SET state = 'revoking', revoke_cause = COALESCE(revoke_cause, ?) WHERE id = ? AND state IN ('pending', 'active')`, [cause, id]);
    const row = await getRow(id);
    if (!row) throw fail('TESSERA_LEASE_NOT_FOUND', `no lease ${id}`);
    if (row.state === 'revoked') return 'revoked';
    const actor = ctx.actor ?? SYSTEM;
    const engine = engines.get(row.engine);
    let disabled = row.state === 'disabled';
    let stage: 'disable' | 'cleanup' = 'disable';
    let data: EngineData | undefined;
    let err: { code: string; message: string } | undefined;
    try {
      if (!engine) throw fail('TESSERA_ENGINE_NOT_FOUND', `engine "${row.engine}" is not configured; configure it again so its credentials can be revoked`);
      data = parseEngineData(row.engine_data);
    } catch (e) {
      err = errorText(e);
    }
    if (!err) err = await engineStep(`disable on engine ${row.engine}`, (signal) => engine!.disable(data!, signal));
    if (!err) {
      if (!disabled) {
        // Persisted before the cleanup runs: whatever happens next, the lease says the credential is
        // unusable. next_attempt_at = now: should this process die here, the reaper retries at once.
        await store.run(`UPDATE leases SET state = 'disabled', next_attempt_at = ? WHERE id = ? AND state IN ('revoking', 'irrevocable')`, [clock.now(), id]);
        disabled = true;
      }
      stage = 'cleanup';
      err = await engineStep(`cleanup on engine ${row.engine}`, (signal) => engine!.revoke(data!, signal));
    }
    if (!err) {
      // `revoked` is recorded with its event or not at all (ADR 0041): if the audit is down the
      // lease stays `disabled` (true: the credential is unusable, and gone) with its next attempt
      // due, and the reaper disables and drops it again (idempotent) and records it then.
      const at = clock.now();
      const moved = await audit.commit(
        store,
        async (tx) => (await tx.run(`UPDATE leases SET state = 'revoked', revoked_at = ?, next_attempt_at = NULL, last_error = NULL WHERE id = ? AND state IN ('revoking', 'disabled', 'irrevocable')`, [at, id])).changes > 0,
        (m) => (m ? revokedEvent(row, cause, ctx) : null),
      );
      if (moved && handedOut(row.revoke_cause ?? cause)) deps.exposure?.leaseClosed(Number(row.created_at), at);
      return 'revoked';
    }
    failures?.inc({ engine: row.engine, stage });
    const attempts = Number(row.revoke_attempts) + 1;
    const exhausted = attempts >= maxAttempts;
    const irrevocable = !disabled && (row.state === 'irrevocable' || exhausted);
    const state: LeaseState = disabled ? 'disabled' : irrevocable ? 'irrevocable' : 'revoking';
    // A credential that may still be usable is never left without a next attempt: `irrevocable`
    // (not even disabled) is retried forever at the longest backoff. A `disabled` one is
    // unusable; once its cleanup retries are exhausted an operator retries it.
    const retry = disabled ? !exhausted : true;
    const failed = `${err.code}: ${err.message}`;
    await audit.commit(store, (tx) => tx.run(`UPDATE leases SET state = ?, revoke_attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ? AND state IN ('revoking', 'disabled', 'irrevocable')`, [
      state,
      attempts,
      retry ? clock.now() + backoffAfter(attempts) : null,
      failed,
      id,
    ]), {
      kind: 'lease.revoke_failed',
      actor,
      action: 'lease.revoke',
      resource: `${row.engine}/${row.role}`,
      result: 'error',
      reason: { code: err.code },
      ...(row.task_id ? { txn: row.task_id } : {}),
      ...(ctx.where ? { where: ctx.where } : {}),
      details: { lease_hmac: audit.hmac(id), attempts, irrevocable, disabled, stage, error: failed },
    });
    return state;
  }

  function revokedEvent(row: LeaseRow, cause: string, ctx: CallContext) {
    return {
      kind: 'lease.revoked',
      actor: ctx.actor ?? SYSTEM,
      action: 'lease.revoke',
      resource: `${row.engine}/${row.role}`,
      result: 'success',
      ...(row.task_id ? { txn: row.task_id } : {}),
      ...(ctx.where ? { where: ctx.where } : {}),
      details: { lease_hmac: audit.hmac(row.id), cause: row.revoke_cause ?? cause },
    } as const;
  }

  /**
   * Batched revocation of leases of one engine that implements `disableMany` and `revokeMany`
   * (kill switch, revoke by owner/prefix, expiry): ONE store statement marks the chunk `revoking`
   * (persisted before the backend is touched, as in `attemptRevoke`), ONE bounded `disableMany`,
   * ONE statement marks the disabled ones `disabled`, ONE bounded `revokeMany` (cleanup), ONE
   * statement marks the dropped ones `revoked`, and their audit events are appended
   * concurrently (the audit log group-commits). Every lease registers in `revoking`, so a
   * concurrent `revokeNow` (or `issue` finding its lease revoked while creating) shares this
   * outcome. Leases the batch could not settle (item failed, `revokeMany` threw or timed out,
   * store error, unreadable engine data) go through the per-lease path one by one (disable and
   * cleanup again, both idempotent), with its
   * attempts, backoff and irrevocable semantics. Returns one promise per id, in order.
   */
  function revokeChunk(engine: DynamicEngine, ids: readonly string[], cause: string, ctx: CallContext): Promise<LeaseState>[] {
    const out: Promise<LeaseState>[] = [];
    const own = new Map<string, { resolve: (s: LeaseState) => void; reject: (e: unknown) => void }>();
    for (const id of ids) {
      const running = revoking.get(id);
      if (running) {
        out.push(running);
        continue;
      }
      let settle!: { resolve: (s: LeaseState) => void; reject: (e: unknown) => void };
      const p = new Promise<LeaseState>((resolve, reject) => (settle = { resolve, reject }));
      p.catch(() => undefined); // the caller observes the rejection; never an unhandled one
      revoking.set(id, p);
      own.set(id, settle);
      out.push(p);
    }
    if (own.size > 0) void runChunk(engine, own, cause, ctx);
    return out;
  }

  async function runChunk(
    engine: DynamicEngine,
    own: Map<string, { resolve: (s: LeaseState) => void; reject: (e: unknown) => void }>,
    cause: string,
    ctx: CallContext,
  ): Promise<void> {
    const pending = new Map(own);
    const settled = (id: string, s: LeaseState | { error: unknown }) => {
      const d = pending.get(id);
      if (!d) return;
      pending.delete(id);
      revoking.delete(id);
      if (typeof s === 'string') d.resolve(s);
      else d.reject(s.error);
    };
    try {
      const ids = [...own.keys()];
      const marks = ids.map(() => '?').join(', ');
      await store.run(`UPDATE leases SET state = 'revoking', revoke_cause = COALESCE(revoke_cause, ?) WHERE id IN (${marks}) AND state IN ('pending', 'active')`, [cause, ...ids]);
      const rows = await store.all<LeaseRow & Record<string, unknown>>(`SELECT ${COLUMNS} FROM leases WHERE id IN (${marks})`, ids);
      const live: { row: LeaseRow; data: EngineData }[] = [];
      for (const row of rows) {
        if (row.state === 'revoked') settled(row.id, 'revoked');
        else if (row.engine === engine.name && (row.state === 'revoking' || row.state === 'disabled' || row.state === 'irrevocable')) {
          try {
            live.push({ row, data: parseEngineData(row.engine_data) });
          } catch {
            // left to the per-lease path, which records the error on the lease
          }
        }
      }
      if (live.length === 0) return;
      // Step 1: disable. What could not be disabled is left to the per-lease path.
      let notDisabled: Set<number>;
      try {
        const r = await bounded(`disableMany on engine ${engine.name}`, (signal) => engine.disableMany!(live.map((l) => l.data), signal));
        notDisabled = new Set(r.failed.map((f) => f.index));
      } catch {
        notDisabled = new Set(live.keys());
      }
      const off = live.filter((_, k) => !notDisabled.has(k));
      if (off.length === 0) return;
      const mark = off.filter((l) => l.row.state !== 'disabled').map((l) => l.row.id);
      if (mark.length > 0) {
        await store.run(`UPDATE leases SET state = 'disabled', next_attempt_at = ? WHERE id IN (${mark.map(() => '?').join(', ')}) AND state IN ('revoking', 'irrevocable')`, [clock.now(), ...mark]);
      }
      // Step 2: cleanup of the disabled ones.
      let failed: Set<number>;
      try {
        const r = await bounded(`revokeMany on engine ${engine.name}`, (signal) => engine.revokeMany!(off.map((l) => l.data), signal));
        failed = new Set(r.failed.map((f) => f.index));
      } catch {
        failed = new Set(off.keys());
      }
      const dropped = off.filter((_, k) => !failed.has(k)).map((l) => l.row);
      if (dropped.length === 0) return;
      // The dropped leases move to `revoked` with their events in one commit (ADR 0041): one
      // statement for the chunk, one `lease.revoked` per row it moved (RETURNING: exactly one
      // event per lease even when another replica revokes it at the same time). If the audit is
      // down the leases stay `disabled` (their credentials are gone), the caller sees the error,
      // and the reaper records them later.
      const dmarks = dropped.map(() => '?').join(', ');
      const byId = new Map(dropped.map((r) => [r.id, r]));
      try {
        const at = clock.now();
        const moved = await audit.commit(
          store,
          (tx) => tx.all<{ id: string }>(`UPDATE leases SET state = 'revoked', revoked_at = ?, next_attempt_at = NULL, last_error = NULL WHERE id IN (${dmarks}) AND state IN ('revoking', 'disabled', 'irrevocable') RETURNING id`, [at, ...dropped.map((r) => r.id)]),
          (m) => (m.length ? m.map((x) => revokedEvent(byId.get(x.id)!, cause, ctx)) : null),
        );
        for (const m of moved) if (handedOut(byId.get(m.id)!.revoke_cause ?? cause)) deps.exposure?.leaseClosed(Number(byId.get(m.id)!.created_at), at);
        for (const row of dropped) settled(row.id, 'revoked');
      } catch (error) {
        for (const row of dropped) settled(row.id, { error });
      }
    } catch {
      // A store error mid-chunk: whatever is not settled goes through the per-lease path below.
    } finally {
      for (const id of [...pending.keys()]) {
        try {
          settled(id, await attemptRevoke(id, cause, ctx));
        } catch (error) {
          settled(id, { error });
        }
      }
    }
  }

  /**
   * Revokes `rows` in order: leases of engines with `disableMany` and `revokeMany` in chunks
   * through the batched path, the others one by one. Never throws; one outcome per row.
   */
  async function revokeAll(rows: readonly { id: string; engine: string }[], cause: string, ctx: CallContext): Promise<({ state: LeaseState } | { error: unknown })[]> {
    const out: ({ state: LeaseState } | { error: unknown })[] = new Array(rows.length);
    const record = async (k: number, p: Promise<LeaseState>) => {
      try {
        out[k] = { state: await p };
      } catch (error) {
        out[k] = { error };
      }
    };
    const batched = new Map<DynamicEngine, number[]>();
    const single: number[] = [];
    rows.forEach((r, k) => {
      const engine = engines.get(r.engine);
      if (engine?.revokeMany && engine.disableMany) batched.set(engine, [...(batched.get(engine) ?? []), k]);
      else single.push(k);
    });
    for (const [engine, ks] of batched) {
      for (let i = 0; i < ks.length; i += revokeBatchSize) {
        const chunk = ks.slice(i, i + revokeBatchSize);
        const ps = revokeChunk(engine, chunk.map((k) => rows[k]!.id), cause, ctx);
        await Promise.all(chunk.map((k, j) => record(k, ps[j]!)));
      }
    }
    for (const k of single) await record(k, revokeNow(rows[k]!.id, cause, ctx));
    return out;
  }

  /** Best effort after a failed issuance: the lease is queued for revocation whatever happens here. */
  async function cleanup(id: string, cause: string): Promise<void> {
    try {
      await revokeNow(id, cause, {});
    } catch {
      // The row is `revoking` (or still `pending`): the reaper retries it.
    }
  }

  async function bulk(where: string, params: SqlValue[], cause: string, ctx: CallContext): Promise<RevokeCounts> {
    const rows = await store.all<{ id: string; engine: string }>(`SELECT id, engine FROM leases WHERE state IN ${OPEN_STATES} AND ${where} ORDER BY created_at LIMIT 100000`, params);
    let revoked = 0;
    let retrying = 0;
    let disabled = 0;
    let irrevocable = 0;
    let firstError: unknown;
    const outcomes = await revokeAll(rows, cause, ctx);
    for (const [k, o] of outcomes.entries()) {
      let s: LeaseState | undefined;
      if ('state' in o) s = o.state;
      else {
        // Every lease got its attempt (the store or audit may be failing for one row); report after.
        firstError ??= o.error;
        s = (await getRow(rows[k]!.id).catch(() => undefined))?.state as LeaseState | undefined;
      }
      if (s === 'revoked') revoked++;
      else if (s === 'irrevocable') irrevocable++;
      else if (s === 'disabled') disabled++;
      else retrying++;
    }
    const counts = { matched: rows.length, revoked, retrying, disabled, irrevocable };
    if (firstError !== undefined) {
      const e = isTesseraError(firstError) ? firstError : new TesseraError('TESSERA_INTERNAL', 'revoking leases failed', undefined, { cause: firstError });
      throw new TesseraError(e.code, `${e.message} (leases: ${revoked} revoked, ${retrying} queued for retry, ${disabled} disabled (unusable; cleanup or its audit record pending), ${irrevocable} irrevocable)`, { ...counts }, { cause: firstError });
    }
    return counts;
  }

  function tally(states: LeaseState[]): RevokeCounts {
    return {
      matched: states.length,
      revoked: states.filter((s) => s === 'revoked').length,
      retrying: states.filter((s) => s === 'revoking' || s === 'pending' || s === 'active').length,
      disabled: states.filter((s) => s === 'disabled').length,
      irrevocable: states.filter((s) => s === 'irrevocable').length,
    };
  }

  async function reap(recovering: boolean): Promise<ReapResult> {
    const now = clock.now();
    const states: LeaseState[] = [];
    const expired = await store.all<{ id: string; engine: string }>(`SELECT id, engine FROM leases WHERE state = 'active' AND expires_at <= ? ORDER BY expires_at LIMIT ?`, [now, batchSize]);
    for (const o of await revokeAll(expired, 'expired', {})) {
      // As before, a store or audit failure fails the pass (onReaperError), after every expired lease got its attempt.
      if ('error' in o) throw o.error;
      states.push(o.state);
    }
    // Retries: `revoking` and `irrevocable` leases (not disabled yet: the credential may be
    // usable, so they are always retried — at start at once, then with backoff; an irrevocable
    // lease written by an older version has no next attempt and is due at once) and `disabled`
    // ones whose cleanup is due; a `disabled` lease with no next attempt has exhausted its
    // retries and waits for an operator.
    const due = recovering
      ? await store.all<{ id: string }>(`SELECT id FROM leases WHERE state IN ('revoking', 'irrevocable') OR (state = 'disabled' AND next_attempt_at IS NOT NULL) ORDER BY created_at LIMIT ?`, [batchSize])
      : await store.all<{ id: string }>(
          `SELECT id FROM leases WHERE (state IN ('revoking', 'irrevocable') AND (next_attempt_at IS NULL OR next_attempt_at <= ?)) OR (state = 'disabled' AND next_attempt_at <= ?) ORDER BY next_attempt_at LIMIT ?`,
          [now, now, batchSize],
        );
    const dueIds = due.map((r) => r.id).filter((id) => !creating.has(id));
    for (const id of dueIds) states.push(await revokeNow(id, 'retry', {}));
    // An intent is abandoned when no create for it is in flight here: after a crash all of
    // them are; in a running process only those older than the grace period (another
    // replica may still be creating a younger one).
    const pending = await store.all<{ id: string }>(`SELECT id FROM leases WHERE state = 'pending' AND created_at <= ? ORDER BY created_at LIMIT ?`, [
      recovering ? now : now - pendingGraceMs,
      batchSize,
    ]);
    const abandoned = pending.map((r) => r.id).filter((id) => !creating.has(id));
    for (const id of abandoned) states.push(await revokeNow(id, 'abandoned_intent', {}));
    return { ...tally(states), expired: expired.length, retried: dueIds.length, abandoned: abandoned.length };
  }

  let timer: NodeJS.Timeout | undefined;
  let currentPass: Promise<unknown> | undefined;

  const service: LeaseService = {
    async issue({ engine: engineName, role: roleName, principal, ttlMs, where }) {
      const engine = engines.get(engineName);
      if (!engine) throw fail('TESSERA_ENGINE_NOT_FOUND', `no dynamic engine "${engineName}"; configured engines: ${[...engines.keys()].join(', ') || 'none'}`);
      const spec: RoleSpec | undefined = engine.role(roleName);
      if (!spec) throw fail('TESSERA_ENGINE_NOT_FOUND', `engine "${engineName}" has no role "${roleName}"`);
      const ttl = ttlMs ?? spec.defaultTtlMs;
      if (!Number.isInteger(ttl) || ttl <= 0 || ttl > spec.maxTtlMs) {
        throw fail('TESSERA_LEASE_TTL_INVALID', `ttl must be a positive duration of at most ${describeDuration(spec.maxTtlMs)} (the max_ttl of role ${engineName}/${roleName})`, { max_ttl_ms: spec.maxTtlMs });
      }
      const now = clock.now();
      const id = randomId('lease_');
      const created = {
        kind: 'lease.created',
        actor: actorOf(principal),
        action: 'cred.issue',
        resource: `${engineName}/${roleName}`,
        result: 'success',
        ...(principal.task ? { txn: principal.task } : {}),
        ...(principal.purpose ? { purpose: principal.purpose } : {}),
        ...(where ? { where } : {}),
        details: { lease_hmac: audit.hmac(id), engine: engineName, role: roleName, expires_at: now + ttl },
      } as const;
      // Everything that can fail about the event is checked before the backend is touched.
      validateEvent(created);
      const ctx: LeaseContext = {
        id,
        engine: engineName,
        role: roleName,
        ownerAgent: principal.spiffeId,
        ...(principal.task ? { taskId: principal.task } : {}),
        ...(principal.user ? { userId: principal.user } : {}),
        createdAt: now,
        expiresAt: now + ttl,
        maxExpiresAt: now + spec.maxTtlMs,
      };
      const engineData = engine.prepare(ctx);
      creating.add(id);
      try {
        // The intent is durable before the backend is touched: after a crash, recover() knows what to drop.
        await store.run(
          `INSERT INTO leases (id, engine, role, path, owner_agent, task_id, user_id, state, engine_data, created_at, expires_at, max_expires_at, pod_uid) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)`,
          [id, engineName, roleName, `${engineName}/${roleName}/${id}`, principal.spiffeId, principal.task ?? null, principal.user ?? null, JSON.stringify(engineData), now, ctx.expiresAt, ctx.maxExpiresAt, principal.attributes.pod_uid ?? null],
        );
        let credential;
        try {
          credential = await bounded(`create on engine ${engineName}`, (signal) => engine.create(ctx, engineData, signal));
        } catch (e) {
          // Fail fast: answer now, within the engine's own timeout. The clean-up revocation runs in
          // the background (the backend is likely slow or down, it would take as long again); the
          // intent row stays until it succeeds, and the reaper or recover() retries it otherwise.
          inBackground(cleanup(id, 'create_failed'));
          throw toEngineError(e, `creating a ${engineName}/${roleName} credential`);
        }
        // Activation and `lease.created` commit together (ADR 0041). Audit fails closed: a
        // credential nobody can account for must not stay alive.
        let activated: boolean;
        try {
          activated = await audit.commit(store, async (tx) => (await tx.run(`UPDATE leases SET state = 'active' WHERE id = ? AND state = 'pending'`, [id])).changes > 0, (ok) => (ok ? created : null));
        } catch (e) {
          await cleanup(id, 'audit_failed');
          throw e;
        }
        if (!activated) {
          // Revoked (kill switch, revoke by owner) while the engine was creating: that revocation
          // may have reached the engine before the credential existed, so drop it again.
          await revoking.get(id)?.catch(() => undefined);
          await store.run(`UPDATE leases SET state = 'revoking', revoked_at = NULL WHERE id = ? AND state = 'revoked'`, [id]);
          await cleanup(id, 'revoked_during_issue');
          throw fail('TESSERA_LEASE_EXPIRED', 'the lease was revoked while it was being issued (agent, task or lease revocation); the credential was dropped');
        }
        return { lease_id: id, expires_at: ctx.expiresAt, renewable: spec.renewable && ctx.expiresAt < ctx.maxExpiresAt, data: credential.data };
      } finally {
        creating.delete(id);
      }
    },

    async renew(id, principal, incrementMs, ctx = {}) {
      const row = await getRow(id);
      if (!row || (principal && !(await belongsTo(row, principal)))) throw leaseNotFound(id, principal !== undefined);
      const now = clock.now();
      if (row.state !== 'active' || Number(row.expires_at) <= now) throw fail('TESSERA_LEASE_EXPIRED', `the lease is ${row.state === 'active' ? 'expired' : row.state}; request a new credential`);
      const engine = engines.get(row.engine);
      const spec = engine?.role(row.role);
      if (!engine || !spec || !spec.renewable) throw fail('TESSERA_LEASE_NOT_RENEWABLE', `leases of ${row.engine}/${row.role} are not renewable; request a new credential`);
      const increment = incrementMs ?? spec.defaultTtlMs;
      if (!Number.isInteger(increment) || increment <= 0) throw fail('TESSERA_LEASE_TTL_INVALID', 'increment must be a positive duration (seconds, or e.g. "5m")', { field: 'increment' });
      // docs/leases.md: expires_at = min(now + increment, max_expires_at). An increment beyond
      // the cap is capped (the answer's ttl says what was granted); only a lease already AT its
      // cap cannot be renewed.
      const maxExpiresAt = Number(row.max_expires_at);
      if (Number(row.expires_at) >= maxExpiresAt) {
        throw fail('TESSERA_LEASE_NOT_RENEWABLE', `the lease already reaches its max TTL (${new Date(maxExpiresAt).toISOString()}); request a new credential`, { max_expires_at: maxExpiresAt });
      }
      const newExpiresAt = Math.min(now + increment, maxExpiresAt);
      const renewed = {
        kind: 'lease.renewed',
        actor: ctx.actor ?? (principal ? actorOf(principal) : SYSTEM),
        action: 'lease.renew',
        resource: `${row.engine}/${row.role}`,
        result: 'success',
        ...(row.task_id ? { txn: row.task_id } : {}),
        ...(ctx.where ? { where: ctx.where } : {}),
        details: { lease_hmac: audit.hmac(id), expires_at: newExpiresAt },
      } as const;
      // Checked before the backend is touched (ADR 0041).
      validateEvent(renewed);
      if (engine.renew) {
        const data = parseEngineData(row.engine_data);
        try {
          await bounded(`renew on engine ${row.engine}`, (signal) => engine.renew!(data, newExpiresAt, signal));
        } catch (e) {
          throw toEngineError(e, `renewing a ${row.engine}/${row.role} credential`);
        }
      }
      // The new expiry is recorded with its event or not at all. If not, the backend may already
      // allow the later expiry (engine.renew ran), but the lease manager still drops the
      // credential at the recorded expiry, so the lease never outlives what the audit log shows.
      await audit.commit(store, async (tx) => {
        const updated = await tx.run(`UPDATE leases SET expires_at = ? WHERE id = ? AND state = 'active'`, [newExpiresAt, id]);
        if (updated.changes === 0) throw fail('TESSERA_LEASE_EXPIRED', 'the lease was revoked while being renewed');
      }, renewed);
      return { lease_id: id, expires_at: newExpiresAt, ttl_ms: newExpiresAt - now, renewable: newExpiresAt < maxExpiresAt };
    },

    async revoke(id, cause, ctx = {}) {
      const row = await getRow(id);
      if (!row || (ctx.principal && !(await belongsTo(row, ctx.principal)))) throw leaseNotFound(id, ctx.principal !== undefined);
      const actor = ctx.actor ?? (ctx.principal ? actorOf(ctx.principal) : SYSTEM);
      if (row.state === 'revoked') return { lease_id: id, state: 'revoked' };
      return { lease_id: id, state: await revokeNow(id, cause, { actor, ...(ctx.where ? { where: ctx.where } : {}) }) };
    },

    revokeByOwner: (spiffeId, ctx = {}) => bulk(...BULK_MATCHES.owner(spiffeId), 'owner_revoked', ctx),
    revokeByTask: (taskId, ctx = {}) => bulk(...BULK_MATCHES.task(taskId), 'task_revoked', ctx),
    revokeByUser: (userId, ctx = {}) => bulk(...BULK_MATCHES.user(userId), 'user_revoked', ctx),
    revokeByPod: (podUid, ctx = {}) => bulk(...BULK_MATCHES.pod(podUid), 'pod_revoked', ctx),
    async countRevocable(by, target) {
      const [where, params] = BULK_MATCHES[by](target);
      const row = await store.get<{ n: number }>(`SELECT COUNT(*) AS n FROM leases WHERE state IN ${OPEN_STATES} AND ${where}`, params);
      return Number(row?.n ?? 0);
    },
    revokeByPrefix(pathPrefix, ctx = {}) {
      if (typeof pathPrefix !== 'string' || pathPrefix.length === 0 || pathPrefix.length > 512) {
        throw fail('TESSERA_REQUEST_INVALID', 'a lease path prefix must be 1–512 characters, e.g. `postgres/` or `postgres/readonly/`');
      }
      // substr() instead of LIKE: case-sensitive and free of wildcard escaping on both dialects.
      return bulk('substr(path, 1, ?) = ?', [pathPrefix.length, pathPrefix], 'prefix_revoked', ctx);
    },

    async get(id) {
      const row = await getRow(id);
      return row ? toLease(row) : undefined;
    },

    async list(filter = {}) {
      const where: string[] = [];
      const params: SqlValue[] = [];
      if (filter.irrevocable) where.push(`state = 'irrevocable'`);
      if (filter.state) {
        where.push('state = ?');
        params.push(filter.state);
      }
      if (filter.owner) {
        where.push('owner_agent = ?');
        params.push(filter.owner);
      }
      if (filter.task) {
        where.push('(task_id = ? OR task_id IN (SELECT txn FROM task_ancestors WHERE ancestor = ?))');
        params.push(filter.task, filter.task);
      }
      if (filter.after) {
        where.push('(created_at < ? OR (created_at = ? AND id > ?))');
        params.push(filter.after.createdAt, filter.after.createdAt, filter.after.id);
      }
      const limit = Math.min(Math.max(filter.limit ?? 1000, 1), 10_001); // 10,000 a page, plus one to tell whether another page follows
      params.push(limit);
      const rows = await store.all<LeaseRow & Record<string, unknown>>(
        `SELECT ${COLUMNS} FROM leases ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT ?`,
        params,
      );
      return rows.map(toLease);
    },

    reapOnce: () => reap(false),

    startReaper(intervalMs) {
      if (timer) return;
      if (!Number.isInteger(intervalMs) || intervalMs < 10) throw fail('TESSERA_CONFIG_INVALID', 'the reaper interval must be at least 10 ms');
      timer = setInterval(() => {
        if (currentPass) return; // never overlap passes
        currentPass = reap(false)
          .catch((e: unknown) => deps.onReaperError?.(e))
          .finally(() => (currentPass = undefined));
      }, intervalMs);
      timer.unref();
    },

    async stopReaper() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await currentPass;
      await service.idle();
    },

    async idle() {
      // Clean-ups of failed issuances still running (they never reject).
      while (background.size > 0) await Promise.all([...background]);
    },

    async health() {
      const rows = await store.all<{ state: string; n: number }>(`SELECT state, COUNT(*) AS n FROM leases WHERE state IN ('revoking', 'disabled', 'irrevocable') GROUP BY state`);
      const n = (state: string) => Number(rows.find((r) => r.state === state)?.n ?? 0);
      return { revoking: n('revoking'), disabled: n('disabled'), irrevocable: n('irrevocable') };
    },

    async recover() {
      const reaped = await reap(true);
      const reconciled = await service.reconcile();
      return { ...reaped, reconciled };
    },

    async reconcile() {
      let orphansDropped = 0;
      let missing = 0;
      for (const engine of engines.values()) {
        if (!engine.reconcile) continue;
        const rows = await store.all<LeaseRow & Record<string, unknown>>(`SELECT ${COLUMNS} FROM leases WHERE engine = ? AND state IN ${OPEN_STATES}`, [engine.name]);
        const known: ReconcileLease[] = rows.map((r) => ({ id: r.id, role: r.role, state: r.state as ReconcileLease['state'], engineData: parseEngineData(r.engine_data) }));
        const result = await bounded(`reconcile on engine ${engine.name}`, (signal) => engine.reconcile!(known, signal));
        orphansDropped += result.orphansDropped;
        const byId = new Map(rows.map((r) => [r.id, r]));
        for (const id of result.missing) {
          const row = byId.get(id);
          if (!row || creating.has(id)) continue;
          // The credential is gone from the backend: nothing left to drop, the lease is over —
          // recorded with its event or not at all (ADR 0041).
          const at = clock.now();
          const moved = await audit.commit(
            store,
            async (tx) =>
              (await tx.run(
                `UPDATE leases SET state = 'revoked', revoked_at = ?, next_attempt_at = NULL, revoke_cause = COALESCE(revoke_cause, 'reconcile_missing') WHERE id = ? AND state IN ${OPEN_STATES}`,
                [at, id],
              )).changes > 0,
            (m) => (m ? { kind: 'lease.revoked', actor: SYSTEM, action: 'lease.reconcile', resource: `${row.engine}/${row.role}`, result: 'success', details: { lease_hmac: audit.hmac(id), cause: 'reconcile_missing' } } : null),
          );
          if (moved) {
            missing++;
            deps.exposure?.leaseClosed(Number(row.created_at), at);
          }
        }
      }
      return { orphansDropped, missing };
    },
  };
  return service;
}
