import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { RevocationChecker, RevocationSubject } from '../shared/revocation.js';
import { TesseraError, fail, isTesseraError } from '../shared/errors.js';
import { randomId } from '../shared/crypto.js';
import { refuseCredentialLike } from '../shared/credential-like.js';
import { spiffeIdProblem, describeSpiffeIdProblem } from '../identity/spiffe-id.js';
import { requireServedSpiffeId, type TrustDomains } from '../identity/trust-domains.js';
import type { LeaseService, RevokeCounts } from '../leases/service.js';
import { REVOCATION_KINDS, type RevocationKind } from './kinds.js';
import { NEXT_STEPS } from '../shared/next-steps.js';
import { POD_UID } from '../shared/principal.js';
import { closeForRevocation, countForRevocation, reopenClosedBy, type ClosedWindow, type ClosingRevocation } from '../exposure/store.js';

/**
 * The kill switch. Revocations live in the store (the record) and in in-memory indexes (the
 * enforcement): every token verification asks `isRevoked`, which costs a few Map lookups and
 * never touches the store. `revoke()` updates the indexes before it resolves, so the request
 * after the call returns is already refused. Other replicas pick revocations up with
 * `refresh()` (PostgreSQL LISTEN/NOTIFY triggers it once that adapter exists).
 */
export { REVOCATION_KINDS, type RevocationKind } from './kinds.js';

export interface Revocation {
  readonly id: string;
  readonly kind: RevocationKind;
  readonly target: string;
  readonly reason: string | null;
  readonly createdAt: number;
  /** Epoch ms; null = until lifted. */
  readonly expiresAt: number | null;
  readonly liftedAt: number | null;
}

export interface RevocationCreated extends Revocation {
  /** Leases revoked as a consequence (agent → its leases, task → the task's, user → the user's, lease → that one, pod → the pod's and its tasks'). */
  readonly leases: RevokeCounts;
  /**
   * Agent revocations only: whether the agent ever logged in (the agents inventory). `false` is
   * worth a warning — often a typo in the SPIFFE ID — but the revocation is recorded anyway (it
   * also stops a first login).
   */
  readonly agentKnown?: boolean;
  /** Task revocations only: whether the task exists in the task tree (false: often a typo; recorded anyway). */
  readonly taskKnown?: boolean;
}

export interface RevocationService extends RevocationChecker {
  revoke(req: { kind: RevocationKind; target: string; reason?: string; ttlMs?: number; expiresAt?: number; actor?: AuditActor; where?: AuditWhere }): Promise<RevocationCreated>;
  /** For the token service (RFC 7009): refuse this jti until the token's own expiry. */
  revokeToken(jti: string, tokenExpiresAt: number, ctx?: { actor?: AuditActor; where?: AuditWhere; reason?: string }): Promise<Revocation>;
  lift(id: string, ctx?: { actor?: AuditActor; where?: AuditWhere }): Promise<Revocation>;
  list(filter?: { active?: boolean; kind?: RevocationKind; target?: string; limit?: number }): Promise<Revocation[]>;
  /** Reloads the indexes from the store (at start, and to pick up other replicas' revocations). */
  refresh(): Promise<void>;
  /** The same as isRevoked (kept for callers that hold a principal): token, agent, task or an ancestor, user, chain. */
  isPrincipalRevoked(p: RevocationSubject): boolean;
  /** True when a task revocation matches `txn` or one of its `ancestors` (the admin tree's state). */
  isTaskRevoked(txn: string, ancestors: readonly string[]): boolean;
  /**
   * What `revoke({ kind, target })` would act on now, recording nothing (the kill switch's
   * confirmation, the console's agent detail): the same matches the revocation closes token
   * windows and revokes leases with (closeForRevocation, LeaseService.countRevocable). Throws
   * TESSERA_REVOCATION_INVALID for a target revoke() would refuse.
   */
  preview(kind: RevocationKind, target: string): Promise<KillPreview>;
}

/** What a revocation would refuse or drop now (see RevocationService.preview). */
export interface KillPreview {
  /** Open, unexpired agent-token windows it would close. */
  readonly agent_tokens: number;
  readonly task_tokens: number;
  /** Open leases (pending, active, revoking, disabled) it would revoke. */
  readonly leases: number;
  /** Tasks whose live task tokens it would refuse. */
  readonly tasks: number;
}

export interface RevocationServiceDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  readonly leases: Pick<LeaseService, 'revoke' | 'revokeByOwner' | 'revokeByTask' | 'revokeByUser' | 'get' | 'countRevocable'> & Partial<Pick<LeaseService, 'revokeByPod'>>;
  /**
   * Called synchronously after every revoke/lift (`local`) and every reload from the store
   * (`refresh`): policy cache invalidation, closing gateway sessions, and — for `local` changes
   * only — telling other replicas to refresh.
   */
  readonly onRevoke?: (source: 'local' | 'refresh', changed: boolean) => void;
  /** Lifetime of a `token` revocation whose token expiry is unknown (admin API by jti). Default 24 h: longer than any Tessera token. */
  readonly maxTokenTtlMs?: number;
  /**
   * The trust domains this Tessera serves: an agent revocation naming another domain is refused
   * (TESSERA_TRUST_DOMAIN_UNKNOWN) — it could never match a token, so it is almost surely a typo
   * that would leave the real agent running.
   */
  readonly trustDomains: Pick<TrustDomains, 'accepts' | 'list' | 'own'>;
  /** Whether an agent has ever logged in (src/identity/agent-registry.ts); default: a lookup in the `agents` table. */
  readonly agents?: { isKnown(spiffeId: string): Promise<boolean> };
  /**
   * Exposure windows (src/exposure, ADR 0150): a revocation closes the windows of the tokens it
   * refuses in its own commit; a lift reopens them. `observe` gets the windows closed (histogram).
   * Absent: windows are still closed, nothing is observed.
   */
  readonly exposure?: { observe(closed: readonly ClosedWindow[]): void };
}

interface Row {
  id: string;
  kind: string;
  target: string;
  reason: string | null;
  created_at: number;
  expires_at: number | null;
  lifted_at: number | null;
}

const TARGET_MAX = 2048;
/** Longer than anything sensible, short enough that every expiry is a valid date. */
const MAX_TTL_MS = 100 * 366 * 86_400_000;

function toRevocation(r: Row): Revocation {
  return {
    id: r.id,
    kind: r.kind as RevocationKind,
    target: r.target,
    reason: r.reason,
    createdAt: Number(r.created_at),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    liftedAt: r.lifted_at === null ? null : Number(r.lifted_at),
  };
}

/** Validates a target for its kind; throws TESSERA_REVOCATION_INVALID naming the problem, or TESSERA_REQUEST_CREDENTIAL_LIKE. */
export function validateTarget(kind: string, target: unknown): asserts target is string {
  if (!(REVOCATION_KINDS as readonly string[]).includes(kind)) {
    throw fail('TESSERA_REVOCATION_INVALID', `kind must be one of ${REVOCATION_KINDS.join(', ')}`, { field: 'kind' });
  }
  if (typeof target !== 'string' || target.length === 0 || target.length > TARGET_MAX) {
    throw fail('TESSERA_REVOCATION_INVALID', `target must be a non-empty string of at most ${TARGET_MAX} characters`, { field: 'target' });
  }
  // Targets are stored and listed in clear, and agent and task targets are audited in clear: a
  // credential never becomes one (revoke a token by its jti, or with POST /v1/oauth/revoke).
  refuseCredentialLike(target, `the ${kind} target`);
  if (kind === 'agent') {
    const problem = spiffeIdProblem(target);
    if (problem) throw fail('TESSERA_REVOCATION_INVALID', `an agent target must be a SPIFFE ID such as spiffe://example.org/ns/prod/sa/agent: ${describeSpiffeIdProblem(problem)}`, { field: 'target', reason: problem });
  } else if (kind === 'pod') {
    // A Kubernetes pod uid (metadata.uid, a UUID on every real API server): ADR 0266.
    if (!POD_UID.test(target)) throw fail('TESSERA_REVOCATION_INVALID', 'a pod target must be the pod\'s metadata.uid (letters, digits and "-", at most 64), e.g. 0b6a3c1e-5f7d-4b39-9a51-3c1f2d4e5a6b', { field: 'target' });
  } else if (!/^[\x21-\x7e]+$/.test(target)) {
    // Task ids, user ids, jtis and lease ids are printable ASCII without spaces.
    throw fail('TESSERA_REVOCATION_INVALID', `a ${kind} target must be printable ASCII without spaces`, { field: 'target' });
  }
}

export function createRevocationService(deps: RevocationServiceDeps): RevocationService {
  const { store, clock, audit, leases } = deps;
  const maxTokenTtlMs = deps.maxTokenTtlMs ?? 24 * 3_600_000;

  /** Active (not lifted) revocations by id, and kind → target → ids. */
  let byId = new Map<string, Revocation>();
  let byTarget = new TargetIndex();

  /** Whether the first load from the store is done (later loads may bring revocations other replicas recorded). */
  let loaded = false;

  /** Ids recorded locally while a refresh is reading the store, so the swap cannot drop them. */
  let recordedDuringRefresh: Set<string> | undefined;

  /** Changes on every addition to the set checks consult (see RevocationChecker.generation). */
  let generation = 0;

  function add(r: Revocation, intoId = byId, intoTarget = byTarget): void {
    intoId.set(r.id, r);
    intoTarget.add(r.kind, r.target, r.id);
    // An index being built by a refresh is not consulted yet: its swap moves the generation (when it changed).
    if (intoId === byId) generation++;
  }

  function remove(id: string): void {
    const r = byId.get(id);
    if (!r) return;
    byId.delete(id);
    byTarget.delete(r.kind, r.target, id);
  }

  /** O(1) in practice (one revocation per target); expired entries are dropped as they are met. */
  function active(kind: RevocationKind, target: string | undefined, now: number): boolean {
    if (target === undefined) return false;
    const ids = byTarget.get(kind, target);
    if (!ids) return false;
    for (const id of ids) {
      const r = byId.get(id);
      if (r && (r.expiresAt === null || r.expiresAt > now)) return true;
      remove(id);
    }
    return false;
  }

  /** `changed`: the set of revocations in force differs from before (always true for local changes). */
  function notify(source: 'local' | 'refresh', changed = true): void {
    try {
      deps.onRevoke?.(source, changed);
    } catch {
      // A failing listener must not undo or hide the revocation.
    }
  }

  function auditFields(kind: RevocationKind, target: string): { resource?: string; txn?: string; target_hmac?: string; pod_uid?: string } {
    // SPIFFE IDs, task ids and pod uids are identifiers the audit log records in clear elsewhere;
    // user ids (personal data), jtis and lease ids (bearer handles) are HMAC'd.
    if (kind === 'agent') return { resource: target };
    if (kind === 'task') return { txn: target };
    if (kind === 'pod') return { pod_uid: target };
    return { target_hmac: audit.hmac(target) };
  }

  async function isKnownAgent(spiffeId: string): Promise<boolean> {
    if (deps.agents) return deps.agents.isKnown(spiffeId);
    return (await store.get<{ x: number }>('SELECT 1 AS x FROM agents WHERE spiffe_id = ?', [spiffeId])) !== undefined;
  }

  /**
   * Records a revocation: enforced in memory at once (a refusal never waits for the store), then
   * the row and its `revocation.created` event commit together (ADR 0041). If they cannot — the
   * audit log or the store is down — the in-memory entry is withdrawn and the call fails: a
   * revocation is audited or does not happen. (While audit is down every audited request is
   * refused anyway, so nothing is obtained through the revocation that did not happen.)
   */
  async function record(kind: RevocationKind, target: string, reason: string | null, expiresAt: number | null, actor: AuditActor, where: AuditWhere | undefined, agentKnown?: boolean): Promise<Revocation> {
    const r: Revocation = { id: randomId('rev_'), kind, target, reason, createdAt: clock.now(), expiresAt, liftedAt: null };
    const { resource, txn, target_hmac, pod_uid } = auditFields(kind, target);
    const event = {
      kind: 'revocation.created',
      actor,
      action: `revoke.${kind}`,
      ...(resource ? { resource } : {}),
      ...(txn ? { txn } : {}),
      result: 'success',
      ...(where ? { where } : {}),
      details: { revocation_id: r.id, kind, ...(target_hmac ? { target_hmac } : {}), ...(pod_uid ? { pod_uid } : {}), expires_at: expiresAt, ...(agentKnown !== undefined ? { agent_known: agentKnown } : {}) },
    } as const;
    add(r);
    recordedDuringRefresh?.add(r.id);
    let closed: ClosedWindow[];
    try {
      // The windows of what it refuses close with the revocation's own row and event.
      closed = await audit.commit(store, async (tx) => {
        await tx.run('INSERT INTO revocations (id, kind, target, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [r.id, kind, target, reason, r.createdAt, expiresAt]);
        return closeForRevocation(tx, closing(r), r.createdAt);
      }, event);
    } catch (e) {
      remove(r.id);
      throw e;
    }
    deps.exposure?.observe(closed);
    notify('local');
    return r;
  }

  function closing(r: Revocation): ClosingRevocation {
    return { id: r.id, kind: r.kind, target: r.target, at: r.createdAt, ...(r.kind === 'token' ? { jtiHmac: audit.hmac(r.target) } : {}) };
  }

  /**
   * Revocations this replica learnt from the store (recorded by another replica): their windows
   * were closed by the recording replica, but a token this replica issued before it heard of
   * them was not yet in the store then. Closing again is idempotent (open rows only).
   */
  async function closeLearnt(learnt: readonly Revocation[]): Promise<void> {
    const now = clock.now();
    for (const r of learnt) {
      try {
        deps.exposure?.observe(await closeForRevocation(store, closing(r), now));
      } catch {
        // Bookkeeping only: the refusal is in force; the next refresh tries again.
        return;
      }
    }
  }

  function inEffectError(r: Revocation, e: TesseraError, counts?: RevokeCounts): TesseraError {
    return new TesseraError(e.code, `the revocation ${r.id} IS in effect, but: ${e.message}`, { revocation_id: r.id, ...(counts ? { leases: counts } : {}) }, { cause: e });
  }

  const service: RevocationService = {
    generation() {
      return generation;
    },

    isRevoked(subject) {
      return service.isPrincipalRevoked(subject);
    },

    isPrincipalRevoked(s) {
      if (byId.size === 0) return false;
      const now = clock.now();
      if (active('agent', s.spiffeId, now) || active('token', s.jti, now) || active('task', s.task, now) || active('user', s.user, now)) return true;
      // The acting agent's pod was deleted (docs/k8s-pods.md): `pod_uid` is only ever a proven attribute.
      if (s.attributes !== undefined && active('pod', s.attributes.pod_uid, now)) return true;
      // A revoked task anywhere above this one revokes its whole subtree: the token names its
      // ancestors (claim `anc`), so this is a few map lookups, never a store query.
      if (s.ancestors) for (const t of s.ancestors) if (active('task', t, now)) return true;
      // A revoked agent anywhere in the delegation chain taints everything delegated through it.
      if (s.chain) for (const a of s.chain) if (active('agent', a, now)) return true;
      return false;
    },

    isTaskRevoked(txn, ancestors) {
      if (byId.size === 0) return false;
      const now = clock.now();
      return active('task', txn, now) || ancestors.some((t) => active('task', t, now));
    },

    isAgentRevoked(spiffeId) {
      return byId.size > 0 && active('agent', spiffeId, clock.now());
    },

    agentRevocation(spiffeId) {
      if (byId.size === 0 || !active('agent', spiffeId, clock.now())) return undefined;
      // The one that lasts longest (until lifted first): lifting it is what lets the agent back in.
      const rs = [...(byTarget.get('agent', spiffeId) ?? [])].map((id) => byId.get(id)).filter((r): r is Revocation => r !== undefined);
      const last = rs.sort((a, b) => (b.expiresAt ?? Infinity) - (a.expiresAt ?? Infinity))[0];
      return last ? { id: last.id, expiresAt: last.expiresAt } : undefined;
    },

    async revoke(req) {
      validateTarget(req.kind, req.target);
      if (req.reason !== undefined && (typeof req.reason !== 'string' || req.reason.length > 1000)) {
        throw fail('TESSERA_REVOCATION_INVALID', 'reason must be a string of at most 1000 characters', { field: 'reason' });
      }
      if (req.ttlMs !== undefined && (!Number.isInteger(req.ttlMs) || req.ttlMs <= 0 || req.ttlMs > MAX_TTL_MS)) {
        throw fail('TESSERA_REVOCATION_INVALID', 'ttl must be a positive duration of at most 100 years (omit it for a revocation that lasts until lifted)', { field: 'ttl' });
      }
      const now = clock.now();
      let expiresAt = req.expiresAt ?? (req.ttlMs !== undefined ? now + req.ttlMs : null);
      // A jti is only worth remembering while the token could still be presented.
      if (req.kind === 'token') expiresAt = Math.min(expiresAt ?? Infinity, now + maxTokenTtlMs);
      if (expiresAt !== null && expiresAt <= now) throw fail('TESSERA_REVOCATION_INVALID', 'expires_at is in the past', { field: 'ttl' });
      if (req.kind === 'lease' && !(await leases.get(req.target))) {
        const step = NEXT_STEPS.listLeases();
        throw fail('TESSERA_LEASE_NOT_FOUND', `no lease ${req.target}; list leases with ${step.route}`, { next_step: step });
      }
      let agentKnown: boolean | undefined;
      let taskKnown: boolean | undefined;
      if (req.kind === 'agent') {
        requireServedSpiffeId(deps.trustDomains, req.target, 'the agent to revoke');
        agentKnown = await isKnownAgent(req.target);
      }
      if (req.kind === 'task') taskKnown = (await store.get<{ x: number }>('SELECT 1 AS x FROM tasks WHERE txn = ?', [req.target])) !== undefined;

      const actor = req.actor ?? { id: 'system' };
      const r = await record(req.kind, req.target, req.reason ?? null, expiresAt, actor, req.where, agentKnown);

      // Token refusal is in effect (and audited); dropping credentials may take engine round trips.
      const ctx = { actor, ...(req.where ? { where: req.where } : {}) };
      let counts: RevokeCounts = { matched: 0, revoked: 0, retrying: 0, disabled: 0, irrevocable: 0 };
      let leaseError: TesseraError | undefined;
      try {
        if (req.kind === 'agent') counts = await leases.revokeByOwner(req.target, ctx);
        else if (req.kind === 'task') counts = await leases.revokeByTask(req.target, ctx);
        else if (req.kind === 'user') counts = await leases.revokeByUser(req.target, ctx);
        else if (req.kind === 'pod' && leases.revokeByPod) counts = await leases.revokeByPod(req.target, ctx);
        else if (req.kind === 'lease') {
          const { state } = await leases.revoke(req.target, 'revocation', ctx);
          counts = { matched: 1, revoked: state === 'revoked' ? 1 : 0, retrying: state === 'revoking' ? 1 : 0, disabled: state === 'disabled' ? 1 : 0, irrevocable: state === 'irrevocable' ? 1 : 0 };
        }
      } catch (e) {
        leaseError = isTesseraError(e) ? e : new TesseraError('TESSERA_INTERNAL', 'revoking leases failed', undefined, { cause: e });
        const d = leaseError.details as Partial<RevokeCounts> | undefined;
        if (d && typeof d.matched === 'number') counts = d as RevokeCounts;
      }
      if (leaseError) throw inEffectError(r, leaseError, counts);
      return { ...r, leases: counts, ...(agentKnown !== undefined ? { agentKnown } : {}), ...(taskKnown !== undefined ? { taskKnown } : {}) };
    },

    async preview(kind, target) {
      validateTarget(kind, target);
      if (kind === 'agent') requireServedSpiffeId(deps.trustDomains, target, 'the agent to revoke');
      const now = clock.now();
      const counted = await countForRevocation(store, { kind, target, ...(kind === 'token' ? { jtiHmac: audit.hmac(target) } : {}) }, now);
      let leaseCount = 0;
      if (kind === 'agent') leaseCount = await leases.countRevocable('owner', target);
      else if (kind === 'task') leaseCount = await leases.countRevocable('task', target);
      else if (kind === 'user') leaseCount = await leases.countRevocable('user', target);
      else if (kind === 'pod') leaseCount = await leases.countRevocable('pod', target);
      else if (kind === 'lease') {
        const l = await leases.get(target);
        // revoke() acts on every lease not yet revoked (an irrevocable one is tried again).
        leaseCount = l && l.state !== 'revoked' ? 1 : 0;
      }
      return { agent_tokens: counted.agent_tokens, task_tokens: counted.task_tokens, leases: leaseCount, tasks: counted.tasks };
    },

    async revokeToken(jti, tokenExpiresAt, ctx = {}) {
      validateTarget('token', jti);
      const now = clock.now();
      if (tokenExpiresAt <= now) {
        // Already expired: nothing to refuse, nothing to remember (RFC 7009 §2.2 still answers 200).
        return { id: '', kind: 'token', target: jti, reason: ctx.reason ?? null, createdAt: now, expiresAt: tokenExpiresAt, liftedAt: null };
      }
      return record('token', jti, ctx.reason ?? null, Math.min(tokenExpiresAt, now + maxTokenTtlMs), ctx.actor ?? { id: 'system' }, ctx.where);
    },

    async lift(id, ctx = {}) {
      const row = await store.get<Row & Record<string, unknown>>('SELECT id, kind, target, reason, created_at, expires_at, lifted_at FROM revocations WHERE id = ?', [id]);
      const listStep = NEXT_STEPS.listRevocations();
      const notFound = (): never => {
        throw fail('TESSERA_REVOCATION_NOT_FOUND', `no active revocation ${id}; list them with ${listStep.route}`, { next_step: listStep });
      };
      if (!row || row.lifted_at !== null) return notFound();
      const now = clock.now();
      // Lifted in the store together with its event, and only then in memory: until the lift is
      // recorded, the revocation stays enforced. The token windows it closed reopen (ADR 0150).
      const reopened = await audit.commit(store, async (tx) => {
        const { changes } = await tx.run('UPDATE revocations SET lifted_at = ? WHERE id = ? AND lifted_at IS NULL', [now, id]);
        if (changes === 0) notFound();
        return reopenClosedBy(tx, id, now);
      }, {
        kind: 'revocation.lifted',
        actor: ctx.actor ?? { id: 'system' },
        action: `lift.${row.kind}`,
        result: 'success',
        ...(ctx.where ? { where: ctx.where } : {}),
        details: { revocation_id: id },
      });
      remove(id);
      notify('local');
      // Windows another revocation in force still refuses close again, from now.
      if (reopened > 0) await closeLearnt([...byId.values()].filter((x) => x.kind !== 'lease'));
      return { ...toRevocation(row), liftedAt: now };
    },

    async list(filter = {}) {
      const where: string[] = [];
      const params: (string | number)[] = [];
      if (filter.active) {
        where.push('lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?)');
        params.push(clock.now());
      }
      if (filter.kind) {
        where.push('kind = ?');
        params.push(filter.kind);
      }
      if (filter.target !== undefined) {
        where.push('target = ?');
        params.push(filter.target);
      }
      params.push(Math.min(Math.max(filter.limit ?? 1000, 1), 10_000));
      const rows = await store.all<Row & Record<string, unknown>>(
        `SELECT id, kind, target, reason, created_at, expires_at, lifted_at FROM revocations ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT ?`,
        params,
      );
      return rows.map(toRevocation);
    },

    async refresh() {
      recordedDuringRefresh = new Set();
      let rows: Row[];
      try {
        rows = await store.all<Row & Record<string, unknown>>(
          'SELECT id, kind, target, reason, created_at, expires_at, lifted_at FROM revocations WHERE lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?)',
          [clock.now()],
        );
      } catch (e) {
        recordedDuringRefresh = undefined;
        throw e;
      }
      const local = recordedDuringRefresh;
      recordedDuringRefresh = undefined;
      const nextId = new Map<string, Revocation>();
      const nextTarget = new TargetIndex();
      for (const row of rows) if ((REVOCATION_KINDS as readonly string[]).includes(row.kind)) add(toRevocation(row), nextId, nextTarget);
      for (const id of local) {
        const r = byId.get(id);
        if (r && !nextId.has(id)) add(r, nextId, nextTarget);
      }
      // Swapped in one step: a check never sees a half-loaded index.
      const changed = nextId.size !== byId.size || [...nextId.keys()].some((id) => !byId.has(id));
      const learnt = loaded ? [...nextId.values()].filter((r) => !byId.has(r.id) && r.kind !== 'lease') : [];
      byId = nextId;
      byTarget = nextTarget;
      // The same set in force: every check answers as before, so cached answers stay valid.
      if (changed) generation++;
      loaded = true;
      notify('refresh', changed);
      if (learnt.length) await closeLearnt(learnt);
    },
  };
  return service;
}

/**
 * Revocation ids by kind, then target: the verification hot path asks up to a dozen (kind,
 * target) pairs per task token, and nested maps answer without building a `kind + target`
 * string per question.
 */
class TargetIndex {
  private readonly kinds = new Map<RevocationKind, Map<string, Set<string>>>();

  get(kind: RevocationKind, target: string): Set<string> | undefined {
    return this.kinds.get(kind)?.get(target);
  }

  add(kind: RevocationKind, target: string, id: string): void {
    let targets = this.kinds.get(kind);
    if (!targets) this.kinds.set(kind, (targets = new Map()));
    let ids = targets.get(target);
    if (!ids) targets.set(target, (ids = new Set()));
    ids.add(id);
  }

  delete(kind: RevocationKind, target: string, id: string): void {
    const targets = this.kinds.get(kind);
    const ids = targets?.get(target);
    if (!ids) return;
    ids.delete(id);
    if (ids.size === 0) targets!.delete(target);
  }
}
