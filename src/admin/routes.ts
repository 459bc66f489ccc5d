import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { parseDuration } from '../config/duration.js';
import { TesseraError } from '../shared/errors.js';
import type { Clock } from '../shared/clock.js';
import { OPERATOR_ROLES } from './roles.js';
import { OPERATOR_TOKEN_NAME, type AdminTokenService, type OperatorToken } from './tokens.js';

/** Lifetime of an operator token created without `ttl`: 90 days. */
export const OPERATOR_TOKEN_TTL_DEFAULT_MS = 90 * 86_400_000;
/** Longest `ttl` of an operator token: 365 days. */
export const OPERATOR_TOKEN_TTL_MAX_MS = 365 * 86_400_000;

const createBody = z
  .object({
    name: z.string().regex(OPERATOR_TOKEN_NAME, 'must be 1–64 characters of letters, digits and . _ @ -'),
    role: z.enum(OPERATOR_ROLES).default('admin'),
    /** A duration such as "30d" or "12h" (src/config/duration.ts); seconds when a number. */
    ttl: z.union([z.string().max(32), z.number()]).optional(),
  })
  .strict();

const idParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'is not an operator token id (adm_…)') }).strict();

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * `ttl` in ms: a duration such as `30d`/`12h` (or seconds), more than zero and at most 365 days;
 * TESSERA_ADMIN_TOKEN_TTL_INVALID otherwise. The value itself is echoed only as JSON (bounded to 32 characters by the schema).
 */
export function parseOperatorTokenTtl(ttl: string | number | undefined): number {
  if (ttl === undefined) return OPERATOR_TOKEN_TTL_DEFAULT_MS;
  const ms = parseDuration(ttl);
  if (ms === null || ms <= 0 || ms > OPERATOR_TOKEN_TTL_MAX_MS) {
    throw new TesseraError('TESSERA_ADMIN_TOKEN_TTL_INVALID', `ttl must be a duration such as "30d" or "12h", more than zero and at most 365d, got ${JSON.stringify(ttl)}`, { field: 'ttl' });
  }
  return ms;
}

function view(t: OperatorToken, req: FastifyRequest): Record<string, unknown> {
  return {
    id: t.id, name: t.name, role: t.role, created_at: iso(t.createdAt), expires_at: iso(t.expiresAt), created_by: t.createdBy,
    revoked_at: iso(t.revokedAt), current: req.admin?.tokenId === t.id,
  };
}

/** The calling operator as an audit actor id (`admin:<operator id>`), as every operator route records it. */
const actorOf = (req: FastifyRequest): string => `admin:${req.admin?.tokenId ?? 'unknown'}`;

/**
 * Operator tokens over HTTP (docs/operators.md): list (metadata only, never values or digests),
 * create (the value answered once), revoke. Admin role only for create and revoke
 * (app.requireAdmin); audited with the calling operator as actor.
 */
export function registerOperatorTokenRoutes(app: FastifyInstance, deps: { tokens: AdminTokenService; clock: Clock }): void {
  const { tokens, clock } = deps;

  app.get('/v1/admin/operator-tokens', { preHandler: app.requireAdmin }, async (req) => ({
    tokens: (await tokens.list()).map((t) => view(t, req)),
  }));

  app.post('/v1/admin/operator-tokens', { preHandler: app.requireAdmin }, async (req, reply) => {
    const body = parseInput(createBody, req.body ?? {});
    const ttlMs = parseOperatorTokenTtl(body.ttl);
    const created = await tokens.create({ name: body.name, role: body.role, expiresAt: clock.now() + ttlMs, actor: actorOf(req), createdBy: req.admin?.tokenId ?? 'unknown' });
    return reply.status(201).send({ id: created.id, name: created.name, role: created.role, expires_at: iso(created.expiresAt), token: created.token });
  });

  app.delete('/v1/admin/operator-tokens/:id', { preHandler: app.requireAdmin }, async (req) => {
    const { id } = parseInput(idParams, req.params, 'path');
    await tokens.revoke(id, { actor: actorOf(req) });
    return { id, revoked: true };
  });
}
