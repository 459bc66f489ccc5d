import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { fail } from '../shared/errors.js';
import { TXN_PATTERN } from './claims.js';
import { NEXT_STEPS } from '../shared/next-steps.js';
import { TASK_STATES, listTasks, taskTree, type TaskViewDeps } from './tree.js';

const TXN = z.string().regex(TXN_PATTERN, 'a task id such as task_3q2Jd… (the txn of a task token, or from GET /v1/admin/tasks)');

const listQuery = z.strictObject({
  /** Only the tree of this root task. */
  root: TXN.optional(),
  /** Only tasks whose acting agent is this SPIFFE ID. */
  agent: z.string().min(1).max(2048).optional(),
  /** Only tasks whose original principal (`sub`) is this. */
  sub: z.string().min(1).max(2048).optional(),
  user: z.string().min(1).max(256).optional(),
  roots: z.enum(['true', 'false']).optional(),
  state: z.enum(TASK_STATES).optional(),
  /** Created at or after: ISO-8601 or epoch milliseconds. */
  since: z.string().min(1).max(64).optional(),
  /** The `next` of the previous page. */
  before: z.string().regex(/^[0-9]{1,16}\.task_[A-Za-z0-9_-]{22}$/, 'the "next" value of the previous page').optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const treeQuery = z.strictObject({
  /** Include each node's audit events (default true). */
  events: z.enum(['true', 'false']).default('true'),
});

function parseSince(v: string): number {
  const ms = /^[0-9]{1,16}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms)) throw fail('TESSERA_REQUEST_INVALID', 'since: expected an ISO-8601 time or epoch milliseconds', { field: 'since' });
  return ms;
}

/**
 * Operator routes: `GET /v1/admin/tasks` (filters, newest first, paged with `before`) and
 * `GET /v1/admin/tasks/:txn` (the subtree with each node's leases and audit events).
 */
export function registerTaskRoutes(app: FastifyInstance, deps: TaskViewDeps): void {
  app.get('/v1/admin/tasks', { preHandler: app.requireAdmin }, async (req) => {
    const q = parseInput(listQuery, req.query, 'query');
    const before = q.before ? { createdAt: Number(q.before.slice(0, q.before.indexOf('.'))), txn: q.before.slice(q.before.indexOf('.') + 1) } : undefined;
    return listTasks(deps, {
      ...(q.root ? { root: q.root } : {}),
      ...(q.agent ? { actor: q.agent } : {}),
      ...(q.sub ? { sub: q.sub } : {}),
      ...(q.user ? { user: q.user } : {}),
      ...(q.roots === 'true' ? { rootsOnly: true } : {}),
      ...(q.state ? { state: q.state } : {}),
      ...(q.since ? { since: parseSince(q.since) } : {}),
      ...(before ? { before } : {}),
      limit: q.limit,
    });
  });

  app.get('/v1/admin/tasks/:txn', { preHandler: app.requireAdmin }, async (req) => {
    const { txn } = parseInput(z.object({ txn: TXN }), req.params, 'path', 'TESSERA_TASK_NOT_FOUND');
    const q = parseInput(treeQuery, req.query, 'query');
    const t = await taskTree(deps, txn, { events: q.events === 'true' });
    if (!t) {
      const step = NEXT_STEPS.listTasks();
      throw fail('TESSERA_TASK_NOT_FOUND', `no task ${txn}; list tasks with ${step.route}`, { next_step: step });
    }
    return { task: t.tree, nodes: t.nodes, truncated: t.truncated };
  });
}
