import { TesseraError } from '../shared/errors.js';
import type { SqlExecutor } from './port.js';

/**
 * Savepoints inside a `Store.transaction` (SQL:2003; SQLite ≥ 3.6.8 "SAVEPOINT", PostgreSQL
 * "SAVEPOINT"/"ROLLBACK TO SAVEPOINT"/"RELEASE SAVEPOINT"): a part of the transaction that can
 * fail and be undone on its own while the rest commits. Portable SQL, so it needs nothing from
 * the adapters.
 */
const NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export type SavepointOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** SQLSTATEs on which PostgreSQL re-runs the whole transaction (ADR 0003): never swallowed by a savepoint. */
const RETRYABLE = new Set(['40001', '40P01']);

/** True when `e` is a serialization failure or deadlock that the adapter retries by re-running the transaction. */
export function isRetryableConflict(e: unknown): boolean {
  let cur: unknown = e;
  for (let i = 0; i < 4 && typeof cur === 'object' && cur !== null; i++) {
    const c = cur as { code?: unknown; details?: { sqlstate?: unknown }; cause?: unknown };
    if (typeof c.details?.sqlstate === 'string' && RETRYABLE.has(c.details.sqlstate)) return true;
    if (typeof c.code === 'string' && RETRYABLE.has(c.code)) return true;
    cur = c.cause;
  }
  return false;
}

/**
 * Runs `fn` inside `SAVEPOINT name` on `tx` (which must be a transaction executor). On success the
 * savepoint is released and `{ ok: true, value }` returned; when `fn` throws, its writes are rolled
 * back to the savepoint and `{ ok: false, error }` returned — the enclosing transaction goes on.
 *
 * Throws (so the whole transaction fails) when the failure must not be contained: a PostgreSQL
 * serialization failure/deadlock (the adapter re-runs the transaction), or a savepoint that can no
 * longer be rolled back to (the engine already aborted the whole transaction).
 */
export async function withSavepoint<T>(tx: SqlExecutor, name: string, fn: () => Promise<T>): Promise<SavepointOutcome<T>> {
  if (!NAME.test(name)) throw new TesseraError('TESSERA_STORE_INVALID_ARGUMENT', `savepoint name ${JSON.stringify(name)} is invalid: use [a-z_][a-z0-9_]*, at most 63 characters`);
  await tx.run(`SAVEPOINT ${name}`);
  let value: T;
  try {
    value = await fn();
  } catch (error) {
    if (isRetryableConflict(error)) throw error;
    try {
      await tx.run(`ROLLBACK TO SAVEPOINT ${name}`);
      await tx.run(`RELEASE SAVEPOINT ${name}`);
    } catch (rollbackError) {
      throw new TesseraError('TESSERA_STORE_UNAVAILABLE', `could not roll back to savepoint ${name} after a failed step: ${(rollbackError as Error).message}`, undefined, { cause: error });
    }
    return { ok: false, error };
  }
  await tx.run(`RELEASE SAVEPOINT ${name}`);
  return { ok: true, value };
}
