import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Store } from '../store/port.js';
import { parseInput } from '../server/validate.js';
import { parseDuration } from '../config/duration.js';
import { fail } from '../shared/errors.js';
import type { JoinTokenService } from './join-tokens.js';
import { cursorParam, decodeCursor, encodeCursor, pageLimit } from '../server/pagination.js';
import type { RevocationChecker } from '../shared/revocation.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { agentPage, agentView, listAgentRows } from './agents-view.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

const createBody = z
  .object({
    spiffe_id: z.string().min(1).max(2048),
    /** Seconds, or a duration string such as "10m". */
    ttl: z.union([z.string().max(32), z.number()]).optional(),
    labels: z.record(z.string(), z.string().max(256)).optional(),
  })
  .strict();

const agentsQuery = z
  .object({
    /** Case-insensitive substring of the SPIFFE ID. */
    q: z.string().min(1, 'send at least one character of the SPIFFE ID, or omit q').max(2048).optional(),
    limit: pageLimit(1000, 100),
    cursor: cursorParam.optional(),
  })
  .strict();
const AGENTS_LIST = 'GET /v1/admin/agents';

/**
 * Operator routes for identity: join tokens and the agents seen by attestors. `revocations` and
 * `clock` add each agent's `revoked` and `live_credentials` to the list (the console's agents page).
 */
export function registerIdentityRoutes(app: FastifyInstance, deps: { joinTokens: JoinTokenService; store: Store; revocations?: Pick<RevocationChecker, 'isAgentRevoked'>; clock?: Clock }): void {
  app.post('/v1/admin/join-tokens', { preHandler: app.requireAdmin }, async (req, reply) => {
    const body = parseInput(createBody, req.body);
    let ttlMs: number | undefined;
    if (body.ttl !== undefined) {
      const parsed = parseDuration(body.ttl);
      if (parsed === null) throw fail('TESSERA_JOIN_TOKEN_TTL_INVALID', `ttl must be seconds or a duration such as "10m" (at most 1h), got ${JSON.stringify(body.ttl)}`);
      ttlMs = parsed;
    }
    const created = await deps.joinTokens.create({
      spiffeId: body.spiffe_id,
      ...(ttlMs !== undefined ? { ttlMs } : {}),
      ...(body.labels ? { labels: body.labels } : {}),
      actor: { id: `admin:${req.admin?.tokenId ?? 'unknown'}` },
      meta: app.requestMeta(req),
    });
    return reply.status(201).send({ token: created.token, id: created.id, spiffe_id: created.spiffeId, expires_at: iso(created.expiresAt) });
  });

  // Lists metadata only: token values are never stored, so they can never be listed.
  app.get('/v1/admin/join-tokens', { preHandler: app.requireAdmin }, async () => {
    const tokens = await deps.joinTokens.list();
    return {
      join_tokens: tokens.map((t) => ({
        id: t.id,
        spiffe_id: t.spiffeId,
        labels: t.labels,
        state: t.state,
        created_at: iso(t.createdAt),
        expires_at: iso(t.expiresAt),
        used_at: iso(t.usedAt),
      })),
    };
  });

  app.get('/v1/admin/agents', { preHandler: app.requireAdmin }, async (req) => {
    const q = parseInput(agentsQuery, req.query, 'query string');
    const after = q.cursor !== undefined ? decodeCursor(q.cursor, ['n', 's'] as const, AGENTS_LIST) : undefined;
    const rows = await listAgentRows(deps.store, { ...(q.q !== undefined ? { q: q.q } : {}), limit: q.limit, ...(after ? { after: { lastSeen: after[0], spiffeId: after[1] } } : {}) });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const agents = deps.revocations ? await agentPage(deps.store, page, (deps.clock ?? systemClock).now(), deps.revocations) : page.map((r) => agentView(r));
    return { agents, next_cursor: rows.length > q.limit && last ? encodeCursor([Number(last.last_seen), last.spiffe_id]) : null };
  });
}
