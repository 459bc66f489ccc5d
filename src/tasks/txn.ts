/**
 * Task ids (`txn`, DESIGN.md "Tasks and delegation"): `task_` + 22 base64url characters, as
 * TXN_PATTERN says, made of the creation time and randomness (docs/adr/0302-time-ordered-task-ids.md).
 *
 * The first 8 characters are the creation time in milliseconds (48 bits) written in the 64
 * base64url characters sorted by ASCII code, so a later task has a larger id prefix; the other 14
 * are 84 random bits. Every index keyed by a task id (the tasks primary key and `tasks_root`,
 * `task_ancestors`, `audit_events_txn`) then receives the tasks of one group commit next to each
 * other instead of on a random page each: fewer B-tree pages dirtied, written to the WAL and
 * checkpointed per exchange. A task id names a task; it grants nothing (tokens are signed, every
 * admin route needs an operator token), and its time is the task's `iat`, which its token and
 * the task tree show anyway.
 */
import { randomIdBytes } from '../shared/crypto.js';

/** The 64 base64url characters in ASCII order: a larger number encodes to a larger string. */
const SORTED = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';
const TIME_CHARS = 8; // 48 bits of milliseconds: until the year 10889
const TIME_RANGE = 2 ** (6 * TIME_CHARS);

let lastMs = Number.NaN;
let lastPrefix = '';

/** The time part of a task id for `ms` (epoch milliseconds; clamped to the 48-bit range). */
export function txnTimePrefix(ms: number): string {
  let v = Math.min(Math.max(0, Math.floor(ms)), TIME_RANGE - 1);
  let s = '';
  for (let i = 0; i < TIME_CHARS; i++) {
    s = SORTED[v % 64]! + s;
    v = Math.floor(v / 64);
  }
  return s;
}

/** A new task id created at `nowMs` (the exchange's clock reading). */
export function newTxn(nowMs: number): string {
  if (nowMs !== lastMs) {
    lastPrefix = txnTimePrefix(nowMs);
    lastMs = nowMs;
  }
  // 11 random bytes are 15 base64url characters; the first 14 carry 84 random bits.
  return `task_${lastPrefix}${randomIdBytes(11).slice(0, 22 - TIME_CHARS)}`;
}
