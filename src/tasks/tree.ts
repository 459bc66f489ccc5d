/**
 * The operator's view of tasks (`GET /v1/admin/tasks`, `GET /v1/admin/tasks/<txn>`,
 * `tessera task list|tree`): each node with its actor, scope, purpose, the token issued for it
 * (as the HMAC of its `jti`), the leases issued under it, and what it did and was refused (its
 * audit events: tool calls, secret reads, decisions, delegations). Never a token or a secret.
 * A node's state is computed, not stored: `revoked` when a revocation in force matches it (the
 * task or an ancestor, an agent of its chain, its user), else `expired` or `active`.
 */
import type { Clock } from '../shared/clock.js';
import type { RevocationChecker } from '../shared/revocation.js';
import type { AuditEntry, AuditTailQuery, AuditTailResult } from '../audit/query.js';
import type { Lease } from '../leases/service.js';
import type { TaskListFilter, TaskNode, TaskStore } from './store.js';

import type { TaskState } from './states.js';

export { TASK_STATES, type TaskState } from './states.js';

export interface TaskViewDeps {
  readonly tasks: TaskStore;
  readonly revocations: Pick<RevocationChecker, 'isRevoked'>;
  readonly leases: { list(filter: { task: string; limit: number }): Promise<Lease[]> };
  readonly audit: { tail(q: AuditTailQuery): Promise<AuditTailResult> };
  readonly leaseView: (l: Lease) => Record<string, unknown>;
  readonly clock: Clock;
}

/** Bounds of one tree view: nodes, events and leases (each reported as truncated when reached). */
export const TREE_LIMITS = { nodes: 10_000, events: 5_000, leases: 10_000 } as const;

const iso = (ms: number): string => new Date(ms).toISOString();

export function nodeState(n: TaskNode, ancestors: readonly string[], deps: Pick<TaskViewDeps, 'revocations' | 'clock'>): TaskState {
  // jti '' never names a token revocation: the tree is judged by task, agents and user only.
  const revoked = deps.revocations.isRevoked({ spiffeId: n.actor, task: n.txn, ancestors, chain: n.actors.slice(0, -1).map((a) => a.sub), ...(n.user ? { user: n.user } : {}) });
  if (revoked) return 'revoked';
  return n.expiresAt <= deps.clock.now() ? 'expired' : 'active';
}

/** One node as JSON (no children, events or leases). */
export function nodeView(n: TaskNode, state: TaskState): Record<string, unknown> {
  return {
    txn: n.txn,
    parent: n.parent,
    root: n.root,
    depth: n.depth,
    max_depth: n.maxDepth,
    state,
    sub: n.sub,
    actor: n.actor,
    label: n.label,
    actors: n.actors,
    user: n.user,
    scope: n.scope,
    purpose: n.purpose,
    tctx: n.tctx,
    audience: n.audience,
    bound: n.jkt !== null,
    created_at: iso(n.createdAt),
    expires_at: iso(n.expiresAt),
    tokens: [{ jti_hmac: n.jtiHmac, issued_at: iso(n.createdAt), expires_at: iso(n.expiresAt) }],
  };
}

/** A page of tasks, newest first, with their computed state; `state` filters after computing it. */
export async function listTasks(deps: TaskViewDeps, f: Omit<TaskListFilter, 'liveAt' | 'expiredAt'> & { state?: TaskState }): Promise<{ tasks: Record<string, unknown>[]; next?: string }> {
  const now = deps.clock.now();
  const out: Record<string, unknown>[] = [];
  let before = f.before;
  let last: TaskNode | undefined;
  // The state is computed in memory: read pages until `limit` rows match (bounded).
  for (let page = 0; page < 20 && out.length < f.limit; page++) {
    const rows = await deps.tasks.list({
      ...f,
      ...(before ? { before } : {}),
      ...(f.state === 'active' || f.state === 'revoked' ? { liveAt: now } : {}),
      ...(f.state === 'expired' ? { expiredAt: now } : {}),
      limit: f.limit,
    });
    if (rows.length === 0) break;
    const anc = await deps.tasks.ancestorsOf(rows);
    for (const n of rows) {
      last = n;
      const state = nodeState(n, anc.get(n.txn) ?? [], deps);
      if (f.state !== undefined && state !== f.state) continue;
      out.push(nodeView(n, state));
      if (out.length >= f.limit) break;
    }
    if (rows.length < f.limit) {
      last = undefined;
      break;
    }
    before = { createdAt: last!.createdAt, txn: last!.txn };
  }
  return { tasks: out, ...(last && out.length >= f.limit ? { next: `${last.createdAt}.${last.txn}` } : {}) };
}

export interface TaskTree {
  readonly tree: Record<string, unknown>;
  readonly nodes: number;
  readonly truncated: { nodes: boolean; events: boolean; leases: boolean };
}

/** The subtree rooted at `txn` (undefined: no such task), nested, with each node's leases and events. */
export async function taskTree(deps: TaskViewDeps, txn: string, opts: { events: boolean }): Promise<TaskTree | undefined> {
  const nodes = await deps.tasks.subtree(txn, TREE_LIMITS.nodes + 1);
  const top = nodes.find((n) => n.txn === txn);
  if (!top) return undefined;
  const truncatedNodes = nodes.length > TREE_LIMITS.nodes;
  const kept = nodes.slice(0, TREE_LIMITS.nodes);
  // Ancestors from the parent links inside the subtree, above it from the store.
  const above = (await deps.tasks.ancestorsOf([top])).get(top.txn) ?? [];
  const byTxn = new Map(kept.map((n) => [n.txn, n]));
  const ancestors = new Map<string, string[]>([[top.txn, above]]);
  for (const n of kept) {
    if (n.txn === top.txn) continue;
    const parentAnc = n.parent !== null ? ancestors.get(n.parent) : undefined;
    ancestors.set(n.txn, parentAnc && n.parent !== null ? [...parentAnc, n.parent] : []);
  }

  const leases = await deps.leases.list({ task: txn, limit: TREE_LIMITS.leases + 1 });
  const leasesOf = new Map<string, Record<string, unknown>[]>();
  for (const l of leases.slice(0, TREE_LIMITS.leases)) {
    if (l.taskId === null) continue;
    let list = leasesOf.get(l.taskId);
    if (!list) leasesOf.set(l.taskId, (list = []));
    list.push(deps.leaseView(l));
  }

  const eventsOf = new Map<string, AuditEntry[]>();
  let events = 0;
  let truncatedEvents = false;
  if (opts.events) {
    let after = 0;
    for (let page = 0; page < 100; page++) {
      const r = await deps.audit.tail({ txn, afterSeq: after, limit: 1000 });
      for (const e of r.events) {
        if (events >= TREE_LIMITS.events) {
          truncatedEvents = true;
          break;
        }
        const t = e.event?.txn; // a malformed stored row (event null) belongs to no task
        if (t === undefined || !byTxn.has(t)) continue;
        let list = eventsOf.get(t);
        if (!list) eventsOf.set(t, (list = []));
        list.push(e);
        events++;
      }
      if (truncatedEvents || r.events.length < 1000 || r.nextSeq <= after) break;
      after = r.nextSeq;
    }
  }

  const views = new Map<string, Record<string, unknown> & { children: Record<string, unknown>[] }>();
  for (const n of kept) {
    views.set(n.txn, {
      ...nodeView(n, nodeState(n, ancestors.get(n.txn) ?? [], deps)),
      leases: leasesOf.get(n.txn) ?? [],
      ...(opts.events ? { events: (eventsOf.get(n.txn) ?? []).map((e) => ({ seq: e.seq, ts: new Date(e.ts).toISOString(), ...e.event })) } : {}),
      children: [],
    });
  }
  // Nodes come by depth: every parent is placed before its children.
  for (const n of kept) if (n.txn !== top.txn && n.parent !== null) views.get(n.parent)?.children.push(views.get(n.txn)!);
  return { tree: views.get(top.txn)!, nodes: kept.length, truncated: { nodes: truncatedNodes, events: truncatedEvents, leases: leases.length > TREE_LIMITS.leases } };
}
