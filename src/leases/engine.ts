/**
 * The contract between the lease manager and a dynamic secrets engine (postgres, ...).
 *
 * The lease manager owns time (TTL, renewal cap, expiry), persistence and retries; an engine
 * only knows how to create, extend and drop one credential in its backend. The split makes
 * issuance crash-safe: `prepare()` is pure and deterministic, its result (`engineData`, e.g.
 * the database user name) is persisted as the lease *intent* BEFORE `create()` touches the
 * backend, so after a crash the manager still knows what to drop. See docs/leases.md.
 *
 * Revocation is two steps, always in this order (docs/adr/0071-revocation-disable-first.md):
 * `disable` makes the credential unusable at once without deleting anything (it cannot fail
 * because of what the credential owns), the manager records the lease `disabled`, and only then
 * `revoke` cleans up (deletes the credential and what it owns). A cleanup that fails leaves a
 * disabled credential, never a usable one.
 */

/** A role an engine serves, e.g. `postgres/readonly`. */
export interface RoleSpec {
  /** TTL when the caller asks for none. */
  readonly defaultTtlMs: number;
  /** Hard cap on the lifetime of a lease, counted from its creation, renewals included. */
  readonly maxTtlMs: number;
  /** Whether `renew` may extend a lease of this role (up to `maxTtlMs`). */
  readonly renewable: boolean;
}

/** What an engine learns about the lease it serves (never the credential itself). */
export interface LeaseContext {
  readonly id: string;
  readonly engine: string;
  readonly role: string;
  /** SPIFFE ID of the agent that owns the lease. */
  readonly ownerAgent: string;
  readonly taskId?: string;
  readonly userId?: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly maxExpiresAt: number;
}

/** Non-secret, JSON-serialisable facts that identify the credential in the backend. */
export type EngineData = Readonly<Record<string, string | number | boolean | null>>;

export interface CreatedCredential {
  /** Returned ONCE to the caller (username, password, DSN...). Never persisted, logged or audited. */
  readonly data: Readonly<Record<string, unknown>>;
}

/** One lease as `reconcile` sees it. */
export interface ReconcileLease {
  readonly id: string;
  readonly role: string;
  readonly state: 'pending' | 'active' | 'revoking' | 'disabled';
  readonly engineData: EngineData;
}

export interface ReconcileResult {
  /** Credentials found in the backend that no known lease accounts for, and that the engine dropped. */
  readonly orphansDropped: number;
  /** Ids of leases whose credential no longer exists in the backend (marked revoked by the manager). */
  readonly missing: readonly string[];
}

export interface DynamicEngine {
  /** Engine name, the first segment of `/v1/creds/<engine>/<role>` and of the lease path. */
  readonly name: string;
  /** The role spec, or undefined when the engine has no such role. */
  role(name: string): RoleSpec | undefined;
  /**
   * Deterministic and free of I/O: the data that names the credential in the backend
   * (e.g. `{ username: "tsr_<lease id>" }`). Persisted as the intent before `create`.
   * Must not contain a secret: it is stored in clear.
   */
  prepare(lease: LeaseContext): EngineData;
  /**
   * Creates the credential named by `engineData`, valid until `lease.expiresAt` where the
   * backend supports it. Throws `TESSERA_ENGINE_UNAVAILABLE` when the backend is unreachable
   * (fail fast: no retry here), `TESSERA_ENGINE_FAILED` when it refuses. Must honour `signal`.
   */
  create(lease: LeaseContext, engineData: EngineData, signal: AbortSignal): Promise<CreatedCredential>;
  /** Optional: tells the backend about the new expiry (e.g. PostgreSQL `VALID UNTIL`). */
  renew?(engineData: EngineData, newExpiresAt: number, signal: AbortSignal): Promise<void>;
  /**
   * Revocation step 1: makes the credential unusable NOW — no new authentication (login,
   * token, key), every open session or connection ended, nothing it can pass on (memberships,
   * delegations) — without deleting anything, so that nothing the credential owns can make it
   * fail. Resolves only once that holds. MUST be idempotent and resolve when the credential does
   * not exist. Throws when the backend could not be reached or refused; the manager retries
   * (the lease stays `revoking`, then `irrevocable`).
   */
  disable(engineData: EngineData, signal: AbortSignal): Promise<void>;
  /**
   * Optional batch form of `disable` (same idempotency). Resolves with the indexes of the items
   * that could not be disabled; every other item is disabled. Bulk revocations use the batched
   * path only when the engine implements both `disableMany` and `revokeMany`.
   */
  disableMany?(items: readonly EngineData[], signal: AbortSignal): Promise<{ failed: readonly { index: number; error: unknown }[] }>;
  /**
   * Revocation step 2, cleanup, called only after `disable` succeeded: deletes the credential
   * and handles what it owns per the engine's documented rule. MUST be idempotent: a credential
   * that does not exist (never created, or already dropped) resolves. Throws when the backend
   * could not be reached or refused; the lease stays `disabled` and the manager retries with
   * exponential backoff.
   */
  revoke(engineData: EngineData, signal: AbortSignal): Promise<void>;
  /**
   * Optional batch form of `revoke` for bulk revocations (kill switch, revoke by prefix): same
   * idempotency, one backend round trip per batch instead of per credential. Resolves with the
   * indexes of the items that could not be dropped (with their errors); every other item is gone.
   */
  revokeMany?(items: readonly EngineData[], signal: AbortSignal): Promise<{ failed: readonly { index: number; error: unknown }[] }>;
  /**
   * Optional, run at start and periodically: compare the backend with the leases Tessera knows
   * (pending, active and revoking ones of this engine), drop backend credentials no lease
   * accounts for, and report leases whose credential has disappeared.
   */
  reconcile?(leases: readonly ReconcileLease[], signal: AbortSignal): Promise<ReconcileResult>;
}
