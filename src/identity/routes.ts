import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Store } from '../store/port.js';
import { parseInput } from '../server/validate.js';
import { parseDuration } from '../config/duration.js';
import { fail } from '../shared/errors.js';
import type { JoinTokenService } from './join-tokens.js';

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
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

/** Operator routes for identity: join tokens and the agents seen by attestors. */
export function registerIdentityRoutes(app: FastifyInstance, deps: { joinTokens: JoinTokenService; store: Store }): void {
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
    const rows = await deps.store.all<{ spiffe_id: string; attestor: string; attributes: string; first_seen: number; last_seen: number; logins: number }>(
      'SELECT spiffe_id, attestor, attributes, first_seen, last_seen, logins FROM agents ORDER BY last_seen DESC, spiffe_id LIMIT ?',
      [q.limit],
    );
    return {
      agents: rows.map((r) => ({
        spiffe_id: r.spiffe_id,
        attestor: r.attestor,
        attributes: JSON.parse(r.attributes) as Record<string, string>,
        first_seen: iso(Number(r.first_seen)),
        last_seen: iso(Number(r.last_seen)),
        logins: Number(r.logins),
      })),
    };
  });
}
