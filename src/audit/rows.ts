import type { Checkpoint, StoredRecord } from './chain.js';

/**
 * Rows of the audit tables as the store returns them (`audit_events`, `audit_checkpoints`;
 * src/store/migrations), and their in-memory forms. One definition for every reader: the tail
 * query, verification and archiving. Numbers are converted with `Number()` because PostgreSQL
 * returns BIGINT columns as strings.
 */
export interface AuditEventRow {
  seq: number;
  ts: number;
  kind: string;
  actor: string | null;
  txn: string | null;
  /** The event's `result`, kept as a column for the result filter and the decisions chart (migration 339). */
  result: string | null;
  /** The canonical JSON of the event. */
  body: string;
  prev_hash: string;
  hash: string;
  [k: string]: unknown;
}

/** The columns of `AuditEventRow`, for `SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events …`. */
export const AUDIT_EVENT_COLUMNS = 'seq, ts, kind, actor, txn, result, body, prev_hash, hash';

export function toStoredRecord(r: AuditEventRow): StoredRecord {
  return { seq: Number(r.seq), ts: Number(r.ts), kind: r.kind, actor: r.actor, txn: r.txn, result: r.result, body: r.body, prevHash: r.prev_hash, hash: r.hash };
}

export interface CheckpointRow {
  seq: number;
  ts: number;
  hash: string;
  key_id: string;
  signature: string;
  [k: string]: unknown;
}

/** The columns of `CheckpointRow`, for `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints …`. */
export const CHECKPOINT_COLUMNS = 'seq, ts, hash, key_id, signature';

export function toCheckpoint(r: CheckpointRow): Checkpoint {
  return { seq: Number(r.seq), ts: Number(r.ts), hash: r.hash, keyId: r.key_id, signature: r.signature };
}
