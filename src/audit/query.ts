import type { SqlExecutor, SqlValue, Store } from '../store/port.js';
import type { AuditEvent } from './events.js';
import type { Checkpoint } from './chain.js';
import { AUDIT_EVENT_COLUMNS, CHECKPOINT_COLUMNS, toCheckpoint, type AuditEventRow, type CheckpointRow } from './rows.js';

export interface AuditTailQuery {
  /** Only events with seq > afterSeq (the CLI's `tail -f` polls with the last next_seq). */
  readonly afterSeq?: number;
  /**
   * Only events with seq < beforeSeq, newest first (the console's audit page pages backwards);
   * exclusive with afterSeq.
   */
  readonly beforeSeq?: number;
  readonly actor?: string;
  /** Events of this task and of every task delegated below it. */
  readonly txn?: string;
  readonly kind?: string;
  /** Only events with this result (`allow`, `deny`, `success`, `failure`, `error`), or one of these. */
  readonly result?: string | readonly string[];
  readonly limit: number;
}

export interface AuditEntry {
  readonly seq: number;
  readonly ts: number;
  readonly prev_hash: string;
  readonly hash: string;
  /** The stored event; `null` when its stored body is not valid JSON (see `problem`). */
  readonly event: AuditEvent | null;
  /**
   * Set when the stored row cannot be trusted as it is: its body is not valid JSON, or it lies at
   * or below the pruned boundary (docs/adr/0031-audit-witness-and-retention.md: nothing in the
   * store vouches for it). The row is shown, never hidden or fatal: `tessera audit verify` says more.
   */
  readonly problem?: 'body_malformed' | 'below_pruned_boundary';
}

export interface AuditTailResult {
  readonly events: AuditEntry[];
  /** Pass as afterSeq to get what comes next (unchanged when nothing matched). */
  readonly nextSeq: number;
  /** Paging backwards (beforeSeq): pass as beforeSeq for the next (older) page; absent when no older event matched. */
  readonly nextBeforeSeq?: number;
}

/** The highest seq archived and pruned from the store (0: none); rows at or below it are flagged. */
export async function prunedBoundary(db: SqlExecutor): Promise<number> {
  return Number((await db.get<{ m: number | null }>('SELECT MAX(to_seq) AS m FROM audit_prunes'))?.m ?? 0);
}

/**
 * The public view of a stored audit row: what `GET /v1/admin/audit` returns and what the
 * console's event stream (`GET /v1/admin/events`) sends, one mapping for both.
 */
export function toAuditEntry(r: AuditEventRow, boundary: number): AuditEntry {
  const base = { seq: Number(r.seq), ts: Number(r.ts), prev_hash: r.prev_hash, hash: r.hash };
  let event: AuditEvent | null;
  try {
    const v: unknown = JSON.parse(r.body);
    event = v && typeof v === 'object' && !Array.isArray(v) ? (v as AuditEvent) : null;
  } catch {
    event = null; // a row edited in the store: shown flagged, not a 500 for the whole page
  }
  if (event === null) return { ...base, event, problem: 'body_malformed' };
  return base.seq <= boundary ? { ...base, event, problem: 'below_pruned_boundary' } : { ...base, event };
}

export async function tailAudit(store: Store, q: AuditTailQuery): Promise<AuditTailResult> {
  const backwards = q.beforeSeq !== undefined;
  const where: string[] = [backwards ? 'seq < ?' : 'seq > ?'];
  const params: SqlValue[] = [backwards ? q.beforeSeq! : (q.afterSeq ?? 0)];
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
  if (typeof q.result === 'string') {
    where.push('result = ?');
    params.push(q.result);
  } else if (q.result !== undefined && q.result.length > 0) {
    where.push(`result IN (${q.result.map(() => '?').join(', ')})`);
    params.push(...q.result);
  }
  const limit = Math.max(1, Math.min(10_000, Math.floor(q.limit)));
  params.push(limit);
  const rows = await store.all<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq ${backwards ? 'DESC' : ''} LIMIT ?`, params);
  const boundary = rows.length ? await prunedBoundary(store) : 0;
  const events = rows.map((r) => toAuditEntry(r, boundary));
  if (backwards) {
    const last = events[events.length - 1];
    return { events, nextSeq: events.length ? events[0]!.seq : 0, ...(events.length === limit && last ? { nextBeforeSeq: last.seq } : {}) };
  }
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
