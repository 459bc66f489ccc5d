/**
 * `GET /v1/admin/proxy/usage` (operator, admin token): the proxy's request and token counts per
 * route and per agent, task and user (docs/proxy-providers.md "Usage API"). The counters live in
 * the process (src/proxy/limits.ts): each replica answers for the requests it proxied.
 *
 * Query (all optional, each at most once): `route`, `agent` (SPIFFE ID), `task` (`txn`), `user`.
 * `agent`, `task` and `user` select the counters of those ids (any of them); `route` keeps one
 * route's. Answer: `{ "rows": UsageRow[] }` (see limits.ts for the fields). Bad query → 400
 * TESSERA_REQUEST_INVALID naming the parameter.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput, refuseRepeatedParameters } from '../server/validate.js';
import type { ProxyLimits } from './limits.js';

const ROUTE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Printable ASCII without spaces: ids are SPIFFE IDs, task ids and user ids. */
const ID = z.string().min(1).max(2048).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

const usageQuery = z.strictObject({
  route: z.string().regex(ROUTE_NAME, 'a route name such as openai (proxy.routes[].name)').optional(),
  agent: ID.optional(),
  task: ID.max(256).optional(),
  user: ID.max(256).optional(),
});

export function registerProxyUsageRoutes(app: FastifyInstance, deps: { limits: ProxyLimits }): void {
  app.get('/v1/admin/proxy/usage', { preHandler: app.requireAdmin }, async (req) => {
    refuseRepeatedParameters(req.query);
    const q = parseInput(usageQuery, req.query, 'query');
    return {
      rows: deps.limits.usage({
        ...(q.route !== undefined ? { route: q.route } : {}),
        ...(q.agent !== undefined ? { agent: q.agent } : {}),
        ...(q.task !== undefined ? { task: q.task } : {}),
        ...(q.user !== undefined ? { user: q.user } : {}),
      }),
    };
  });
}
