/**
 * The task tree in the store (migration 100): one `tasks` row per node, and `task_ancestors`
 * rows (ancestor, txn) for every ancestor of a node and the node itself, so that "the subtree
 * of X" is one indexed lookup (`ancestor = X`). Rows are written inside the `task.created`
 * commit (ADR 0041): a task exists in the store exactly when its creation is audited.
 */
import type { SqlExecutor, SqlValue, Store } from '../store/port.js';
import { TesseraError } from '../shared/errors.js';

export interface TaskNode {
  readonly txn: string;
  readonly parent: string | null;
  readonly root: string;
  readonly depth: number;
  readonly maxDepth: number;
  /** The token's `sub`: the original principal. */
  readonly sub: string;
  /** The acting agent (SPIFFE ID). */
  readonly actor: string;
  /** The RFC 8693 actor chain, oldest first. */
  readonly actors: readonly { readonly sub: string; readonly label?: string }[];
  readonly label: string | null;
  readonly user: string | null;
  readonly scope: readonly string[];
  readonly purpose: string;
  readonly tctx: Readonly<Record<string, string>>;
  readonly audience: readonly string[];
  /** Thumbprint of the key the token is bound to (RFC 9449 `cnf.jkt`): a public-key digest, not a secret. */
  readonly jkt: string | null;
  /** HMAC of the token's `jti` (the token itself is never stored). */
  readonly jtiHmac: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** The Kubernetes pod uid of the acting agent (a proven attribute), written only (docs/k8s-pods.md). */
  readonly podUid?: string | null;
}

interface Row {
  txn: string;
  parent: string | null;
  root: string;
  depth: number;
  max_depth: number;
  sub: string;
  actor: string;
  actors: string;
  label: string | null;
  user_id: string | null;
  scope: string;
  purpose: string;
  tctx: string;
  audience: string;
  jkt: string | null;
  jti_hmac: string;
  created_at: number;
  expires_at: number;
  [k: string]: unknown;
}

const COLUMNS = 'txn, parent, root, depth, max_depth, sub, actor, actors, label, user_id, scope, purpose, tctx, audience, jkt, jti_hmac, created_at, expires_at';
const T_COLUMNS = COLUMNS.split(', ').map((c) => `t.${c}`).join(', ');

function json<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new TesseraError('TESSERA_INTERNAL', `the stored task ${what} is not valid JSON`);
  }
}

function toNode(r: Row): TaskNode {
  return {
    txn: r.txn,
    parent: r.parent,
    root: r.root,
    depth: Number(r.depth),
    maxDepth: Number(r.max_depth),
    sub: r.sub,
    actor: r.actor,
    actors: json(r.actors, 'actor chain'),
    label: r.label,
    user: r.user_id,
    scope: r.scope.split(' ').filter(Boolean),
    purpose: r.purpose,
    tctx: json(r.tctx, 'facts'),
    audience: json(r.audience, 'audience'),
    jkt: r.jkt,
    jtiHmac: r.jti_hmac,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
  };
}

/** Inserts a node and its ancestor rows; run inside the `task.created` commit. `ancestors`: root first, the node excluded. */
export async function insertTask(tx: SqlExecutor, n: TaskNode, ancestors: readonly string[]): Promise<void> {
  await tx.run(
    `INSERT INTO tasks (${COLUMNS}, pod_uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [n.txn, n.parent, n.root, n.depth, n.maxDepth, n.sub, n.actor, JSON.stringify(n.actors), n.label, n.user, n.scope.join(' '), n.purpose, JSON.stringify(n.tctx), JSON.stringify(n.audience), n.jkt, n.jtiHmac, n.createdAt, n.expiresAt, n.podUid ?? null],
  );
  const all = [...ancestors, n.txn];
  await tx.run(`INSERT INTO task_ancestors (ancestor, txn) VALUES ${all.map(() => '(?, ?)').join(', ')}`, all.flatMap((a) => [a, n.txn]));
}

export interface TaskListFilter {
  /** Only the tree of this root task. */
  readonly root?: string;
  /** Only nodes whose acting agent is this SPIFFE ID. */
  readonly actor?: string;
  /** Only nodes whose `sub` (original principal) is this. */
  readonly sub?: string;
  readonly user?: string;
  /** Only root tasks. */
  readonly rootsOnly?: boolean;
  /** Created at or after (epoch ms). */
  readonly since?: number;
  /** Not expired at this time (epoch ms) / expired by it. */
  readonly liveAt?: number;
  readonly expiredAt?: number;
  /** Created strictly before this (epoch ms) and, on equal times, txn before this: keyset paging, newest first. */
  readonly before?: { readonly createdAt: number; readonly txn: string };
  readonly limit: number;
}

export interface TaskStore {
  get(txn: string): Promise<TaskNode | undefined>;
  /** Newest first. */
  list(filter: TaskListFilter): Promise<TaskNode[]>;
  /** The node and its descendants, by depth then creation; at most `limit`. */
  subtree(txn: string, limit: number): Promise<TaskNode[]>;
  /** The ancestors of each task, root first (from `task_ancestors`; nodes unknown to the store map to []). */
  ancestorsOf(nodes: readonly TaskNode[]): Promise<Map<string, string[]>>;
}

export function createTaskStore(store: Store): TaskStore {
  return {
    async get(txn) {
      const r = await store.get<Row>(`SELECT ${COLUMNS} FROM tasks WHERE txn = ?`, [txn]);
      return r ? toNode(r) : undefined;
    },

    async list(f) {
      const where: string[] = [];
      const params: SqlValue[] = [];
      const add = (sql: string, ...v: SqlValue[]): void => {
        where.push(sql);
        params.push(...v);
      };
      if (f.root !== undefined) add('root = ?', f.root);
      if (f.actor !== undefined) add('actor = ?', f.actor);
      if (f.sub !== undefined) add('sub = ?', f.sub);
      if (f.user !== undefined) add('user_id = ?', f.user);
      if (f.rootsOnly) where.push('parent IS NULL');
      if (f.since !== undefined) add('created_at >= ?', f.since);
      if (f.liveAt !== undefined) add('expires_at > ?', f.liveAt);
      if (f.expiredAt !== undefined) add('expires_at <= ?', f.expiredAt);
      if (f.before !== undefined) add('(created_at < ? OR (created_at = ? AND txn < ?))', f.before.createdAt, f.before.createdAt, f.before.txn);
      params.push(Math.max(1, Math.min(10_000, Math.floor(f.limit))));
      const rows = await store.all<Row>(`SELECT ${COLUMNS} FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, txn DESC LIMIT ?`, params);
      return rows.map(toNode);
    },

    async ancestorsOf(nodes) {
      const out = new Map<string, string[]>(nodes.map((n) => [n.txn, []]));
      // Chunks bound the bind parameters (SQLite 32,766, PostgreSQL 65,535).
      for (let i = 0; i < nodes.length; i += 500) {
        const chunk = nodes.slice(i, i + 500).map((n) => n.txn);
        const rows = await store.all<{ txn: string; ancestor: string; d: number }>(
          `SELECT a.txn, a.ancestor, t.depth AS d FROM task_ancestors a JOIN tasks t ON t.txn = a.ancestor WHERE a.txn IN (${chunk.map(() => '?').join(', ')}) AND a.ancestor <> a.txn ORDER BY t.depth`,
          chunk,
        );
        for (const r of rows) out.get(r.txn)?.push(r.ancestor);
      }
      return out;
    },

    async subtree(txn, limit) {
      const rows = await store.all<Row>(
        `SELECT ${T_COLUMNS} FROM task_ancestors a JOIN tasks t ON t.txn = a.txn WHERE a.ancestor = ? ORDER BY t.depth, t.created_at, t.txn LIMIT ?`,
        [txn, Math.max(1, Math.min(100_000, Math.floor(limit)))],
      );
      return rows.map(toNode);
    },
  };
}
