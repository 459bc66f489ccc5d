import { TesseraError } from '../shared/errors.js';
import type { LeaderLock } from './port.js';

/**
 * Argument checks shared by every adapter, so a name that works on SQLite also works on
 * PostgreSQL. Channels become quoted identifiers in LISTEN (PostgreSQL §LISTEN), so the
 * portable set is a lowercase identifier of at most 63 bytes (NAMEDATALEN - 1).
 */
const CHANNEL = /^[a-z][a-z0-9_]{0,62}$/;
const LOCK_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
/** PostgreSQL rejects NOTIFY payloads of 8000 bytes or more; keep a margin. */
export const MAX_PAYLOAD_BYTES = 7900;

export function checkChannel(channel: string): void {
  if (typeof channel !== 'string' || !CHANNEL.test(channel)) {
    throw new TesseraError('TESSERA_STORE_INVALID_ARGUMENT', `channel name ${JSON.stringify(channel)} is invalid: use lowercase letters, digits and _ (start with a letter, at most 63 characters)`);
  }
}

export function checkPayload(payload: string): void {
  if (typeof payload !== 'string') throw new TesseraError('TESSERA_STORE_INVALID_ARGUMENT', 'notification payload must be a string');
  const bytes = Buffer.byteLength(payload, 'utf8');
  if (bytes > MAX_PAYLOAD_BYTES) {
    throw new TesseraError('TESSERA_STORE_INVALID_ARGUMENT', `notification payload is ${bytes} bytes; the limit is ${MAX_PAYLOAD_BYTES}: publish an id and let subscribers read the rest from the store`);
  }
}

export function checkLockName(name: string): void {
  if (typeof name !== 'string' || !LOCK_NAME.test(name)) {
    throw new TesseraError('TESSERA_STORE_INVALID_ARGUMENT', `leader lock name ${JSON.stringify(name)} is invalid: use 1-128 characters from A-Z a-z 0-9 _ . : -`);
  }
}

/** `withLeaderLock` for every adapter: run `fn` only if the lock is free, release it after. */
export async function runAsLeader<T>(lock: LeaderLock | null, fn: (lock: LeaderLock) => Promise<T>): Promise<{ leader: true; value: T } | { leader: false }> {
  if (!lock) return { leader: false };
  try {
    return { leader: true, value: await fn(lock) };
  } finally {
    await lock.release();
  }
}
