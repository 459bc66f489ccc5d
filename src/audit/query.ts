import type { SqlValue, Store } from '../store/port.js';
import type { AuditEvent } from './events.js';
import type { Checkpoint } from './chain.js';
import { AUDIT_EVENT_COLUMNS, CHECKPOINT_COLUMNS, toCheckpoint, type AuditEventRow, type CheckpointRow } from './rows.js';

export interface AuditTailQuery {
  /** Only events with seq > afterSeq (the CLI's `tail -f` polls with the last next_seq). */
  readonly afterSeq?: number;
  readonly actor?: string;
  /** Events of this task and of every task delegated below it. */
  readonly txn?: string;
  readonly kind?: string;
  readonly limit: number;
}

export interface AuditEntry {
  readonly seq: number;
  readonly ts: number;
  readonly prev_hash: string;
  readonly hash: string;
  readonly event: AuditEvent;
}

export interface AuditTailResult {
  readonly events: AuditEntry[];
  /** Pass as afterSeq to get what comes next (unchanged when nothing matched). */
  readonly nextSeq: number;
}


export async function tailAudit(store: Store, q: AuditTailQuery): Promise<AuditTailResult> {
  const where: string[] = ['seq > ?'];
  const params: SqlValue[] = [q.afterSeq ?? 0];
  if (q.actor !== undefined) {
    where.push('actor = ?');
    params.push(q.actor);
  }
  if (q.txn !== undefined) {
    // The task and its whole subtree (src/tasks/store.ts: task_ancestors holds every node under
    // an ancestor, and the node itself): `--txn <root>` shows the whole tree's events.
    where.push('(txn = ? OR txn IN (SELECT txn FROM task_ancestors WHERE ancestor = ?))');
    params.push(q.txn, q.txn);
  }
  if (q.kind !== undefined) {
    where.push('kind = ?');
    params.push(q.kind);
  }
  const limit = Math.max(1, Math.min(10_000, Math.floor(q.limit)));
  params.push(limit);
  const rows = await store.all<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`, params);
  const events = rows.map((r) => ({ seq: Number(r.seq), ts: Number(r.ts), prev_hash: r.prev_hash, hash: r.hash, event: JSON.parse(r.body) as AuditEvent }));
  return { events, nextSeq: events.length ? events[events.length - 1]!.seq : (q.afterSeq ?? 0) };
}

export async function loadCheckpoints(store: Store): Promise<Checkpoint[]> {
  const rows = await store.all<CheckpointRow>(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq`);
  return rows.map(toCheckpoint);
}

export async function loadHead(store: Store): Promise<Checkpoint | null> {
  const row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', ['audit.head']);
  if (!row) return null;
  try {
    const h = JSON.parse(row.value) as Checkpoint;
    return { seq: Number(h.seq), ts: Number(h.ts), hash: String(h.hash), keyId: String(h.keyId), signature: String(h.signature) };
  } catch {
    // An unparseable head is treated like a forged one.
    return { seq: 0, ts: 0, hash: '', keyId: '', signature: '' };
  }
}
