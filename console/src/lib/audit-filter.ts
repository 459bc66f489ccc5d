/**
 * Audit page filters (issue 11 item 6/7): ONE definition of "this event matches the filter",
 * used both for the live events of the shared stream and, as a check, for the rows
 * `GET /v1/admin/audit` returns — so the same filter gives the same rows live and on reload.
 *
 * Semantics (those of the server: src/audit/query.ts, `GET /v1/admin/events`):
 *  - `actor`: equals `event.actor.id` exactly (the `actor` column);
 *  - `kind`: equals `event.kind` exactly (`token.issued`), or, written with a trailing `.`
 *    (`lease.`), every kind starting with it — sent to the server only in the exact form;
 *  - `result`: equals `event.result` (`success` | `failure` | `allow` | `deny` | `error`);
 *  - `task`: the event's `txn` is the task or any task delegated below it (the server reads
 *    `task_ancestors`; live, the console keeps the subtree's txns: those the list returned,
 *    those of the tree it loaded, and every `task.created` whose parent is already in it).
 * Pure: no DOM, no fetch (test/console/audit-filter.test.ts).
 */

export const AUDIT_RESULTS = ['success', 'failure', 'allow', 'deny', 'error'] as const;

export interface AuditFilter {
  readonly actor?: string;
  readonly task?: string;
  readonly kind?: string;
  readonly result?: string;
}

/** An audit event in the flat form the console uses (`seq` + the event's fields). */
export interface FlatAuditEvent {
  readonly seq: number;
  /** Epoch ms (the stored row's `ts`) when known. */
  readonly ts?: number;
  readonly kind: string;
  readonly actor?: { readonly id?: string; readonly [k: string]: unknown };
  readonly action?: string;
  readonly resource?: string;
  readonly result?: string;
  readonly txn?: string;
  readonly reason?: { readonly policies?: readonly string[]; readonly code?: string; readonly message?: string };
  readonly details?: Readonly<Record<string, unknown>>;
  /** Set by the server when the stored row cannot be trusted as it is (src/audit/query.ts). */
  readonly problem?: string;
  readonly [k: string]: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Accepts both shapes the API may send — a stored entry `{ seq, ts, hash, event: {…} }`
 * (`GET /v1/admin/audit`) and an already flat event `{ seq, kind, … }` — and returns the flat
 * form; `undefined` for anything without a numeric `seq`.
 */
export function flattenAuditEntry(raw: unknown): FlatAuditEvent | undefined {
  if (!isObject(raw) || typeof raw.seq !== 'number' || !Number.isFinite(raw.seq)) return undefined;
  const ts = typeof raw.ts === 'number' ? raw.ts : typeof raw.ts === 'string' ? Date.parse(raw.ts) : undefined;
  const base = { seq: raw.seq, ...(ts !== undefined && Number.isFinite(ts) ? { ts } : {}), ...(typeof raw.problem === 'string' ? { problem: raw.problem } : {}) };
  if ('event' in raw) {
    const ev = isObject(raw.event) ? raw.event : {};
    return { ...ev, ...base, kind: typeof ev.kind === 'string' ? ev.kind : '(unreadable)' } as FlatAuditEvent;
  }
  return { ...raw, ...base, kind: typeof raw.kind === 'string' ? raw.kind : '(unreadable)' } as FlatAuditEvent;
}

/** Trims every field; empty ones are dropped (an empty field filters nothing). */
export function normaliseFilter(f: AuditFilter): AuditFilter {
  const out: Record<string, string> = {};
  for (const k of ['actor', 'task', 'kind', 'result'] as const) {
    const v = f[k]?.trim();
    if (v) out[k] = v;
  }
  return out;
}

/** True when the kind filter is a prefix (`lease.`) rather than one exact kind. */
export function isKindPrefix(kind: string | undefined): boolean {
  return kind !== undefined && kind.endsWith('.');
}

/**
 * The query parameters of `GET /v1/admin/audit` for a filter. A kind prefix is not sent (the
 * list filters kinds exactly); the console narrows those rows itself with `matchesAuditFilter`.
 */
export function auditListParams(f: AuditFilter): Record<string, string> {
  const n = normaliseFilter(f);
  const p: Record<string, string> = {};
  if (n.actor) p.actor = n.actor;
  if (n.task) p.task = n.task;
  if (n.kind && !isKindPrefix(n.kind)) p.kind = n.kind;
  if (n.result) p.result = n.result;
  return p;
}

/** The txns known to belong to the filtered task's subtree (grows as events arrive). */
export class TaskSubtree {
  private readonly txns = new Set<string>();
  constructor(readonly root: string | undefined) {
    if (root) this.txns.add(root);
  }
  has(txn: string | undefined): boolean {
    return txn !== undefined && this.txns.has(txn);
  }
  add(txn: string | undefined): void {
    if (this.root && txn) this.txns.add(txn);
  }
  get size(): number {
    return this.txns.size;
  }
  /**
   * Learns from one event: a `task.created` whose parent (or root) is in the subtree adds the
   * new task. Call for every event, matched or not, in seq order.
   */
  learn(e: FlatAuditEvent): void {
    if (!this.root || e.kind !== 'task.created' || !e.txn) return;
    const d = e.details ?? {};
    const parent = typeof d.parent === 'string' ? d.parent : undefined;
    const root = typeof d.root === 'string' ? d.root : undefined;
    if (this.has(parent) || root === this.root) this.txns.add(e.txn);
  }
}

/** Does `e` match `f`? (`subtree` is required when `f.task` is set.) */
export function matchesAuditFilter(e: FlatAuditEvent, f: AuditFilter, subtree?: TaskSubtree): boolean {
  const n = normaliseFilter(f);
  if (n.actor !== undefined && e.actor?.id !== n.actor) return false;
  if (n.result !== undefined && e.result !== n.result) return false;
  if (n.kind !== undefined && (isKindPrefix(n.kind) ? !e.kind.startsWith(n.kind) : e.kind !== n.kind)) return false;
  if (n.task !== undefined && !(subtree ? subtree.has(e.txn) : e.txn === n.task)) return false;
  return true;
}

/**
 * Merges live events into the shown list: newest first, no duplicate seq, at most `max` rows
 * (the oldest fall off; bounded memory). `rows` is newest first; `incoming` in any order.
 */
export function mergeNewestFirst(rows: readonly FlatAuditEvent[], incoming: readonly FlatAuditEvent[], max: number): FlatAuditEvent[] {
  if (incoming.length === 0) return rows.length > max ? rows.slice(0, max) : [...rows];
  const seen = new Set(rows.map((r) => r.seq));
  const fresh = incoming.filter((e) => !seen.has(e.seq) && (seen.add(e.seq), true)).sort((a, b) => b.seq - a.seq);
  const out: FlatAuditEvent[] = [];
  let i = 0;
  let j = 0;
  while (out.length < max && (i < fresh.length || j < rows.length)) {
    if (j >= rows.length || (i < fresh.length && fresh[i]!.seq > rows[j]!.seq)) out.push(fresh[i++]!);
    else out.push(rows[j++]!);
  }
  return out;
}
