/**
 * The Store port. Features speak portable SQL (the common subset of SQLite ≥ 3.35 and
 * PostgreSQL ≥ 13: `?` placeholders, `ON CONFLICT ... DO UPDATE`, `RETURNING`), and an adapter
 * runs it. No driver type crosses this boundary. See docs/adr/0002-sql-store-port.md.
 *
 * Value mapping, identical for every adapter:
 *  - integers (epoch milliseconds, counters) ↔ JS number;
 *  - BLOB/BYTEA ↔ Buffer;
 *  - TEXT ↔ string; NULL ↔ null.
 */
export type SqlValue = string | number | bigint | Buffer | Uint8Array | null;
export type Row = Record<string, unknown>;

export interface SqlExecutor {
  all<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }>;
}

export interface LeaderLock {
  readonly name: string;
  /** False once released or once the session holding it was lost (then stop leader-only work). */
  held(): boolean;
  /** Resolves when the lock is released or lost. */
  readonly lost: Promise<void>;
  release(): Promise<void>;
}

/**
 * How a transaction's commit is made durable (ADR 0185).
 *  - `flush` (default): the commit resolves once it survives a power loss (SQLite: the WAL is
 *    fdatasync-ed; PostgreSQL: the server's commit, per its `synchronous_commit`).
 *  - `deferred`: the commit resolves once it is written to the store's log and survives a crash
 *    of this process (SQLite: the WAL frames are written to the kernel with write()); it survives
 *    a power loss only after the next `sync()` or the next `flush` commit (either syncs every
 *    commit before it: the WAL is one file and recovery keeps a prefix of it). PostgreSQL treats
 *    `deferred` as `flush`.
 */
export type CommitDurability = 'flush' | 'deferred';

export interface TransactionOptions {
  readonly durability?: CommitDurability;
}

export interface Store extends SqlExecutor {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Runs `fn` in one serializable transaction: committed when it resolves, rolled back when it
   * throws. Other statements never interleave into it. On PostgreSQL a serialization failure
   * re-runs `fn` (bounded), so `fn` must have no side effects outside `tx` (ADR 0003).
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Makes every commit that resolved before this call durable against a power loss (the
   * `deferred` ones); resolves at once when there is none. Never blocks other requests of the
   * store. Rejects with TESSERA_STORE_UNAVAILABLE when the sync fails.
   */
  sync(): Promise<void>;
  /**
   * Cross-replica fan-out (PostgreSQL LISTEN/NOTIFY; SQLite: in-process). `channel` matches
   * /^[a-z][a-z0-9_]{0,62}$/; `payload` is at most 7900 bytes of UTF-8. Delivery is at most once:
   * every subscriber (this replica included) gets messages published after its subscribe resolved.
   */
  publish(channel: string, payload: string): Promise<void>;
  /**
   * Resolves once listening; returns the unsubscribe function. `onResync` is called after the
   * listener reconnected (messages may have been lost meanwhile: reload state from the store).
   */
  subscribe(channel: string, onMessage: (payload: string) => void, options?: { onResync?: () => void }): Promise<() => Promise<void>>;
  /**
   * Takes the named leader lock if nobody holds it (PostgreSQL: session advisory lock on a
   * dedicated connection; SQLite: exclusive within this process). Null when another holder has it.
   */
  tryLeaderLock(name: string): Promise<LeaderLock | null>;
  /** Runs `fn` only if this replica gets the named lock, then releases it. */
  withLeaderLock<T>(name: string, fn: (lock: LeaderLock) => Promise<T>): Promise<{ leader: true; value: T } | { leader: false }>;
  /** Applies pending migrations; idempotent. */
  migrate(): Promise<void>;
  /** True when a trivial query succeeds (used by /readyz). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
