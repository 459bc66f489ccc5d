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

export interface Store extends SqlExecutor {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Runs `fn` in one serializable transaction: committed when it resolves, rolled back when it
   * throws. Other statements on this store wait until it ends (never interleave into it).
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Applies pending migrations; idempotent. */
  migrate(): Promise<void>;
  /** True when a trivial query succeeds (used by /readyz). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
