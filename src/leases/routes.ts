import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { fail } from '../shared/errors.js';
import { parseDuration } from '../config/duration.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import { issueAuthorized } from './authorized.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import { LEASE_STATES, type Lease, type LeaseService } from './service.js';

const NAME = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, "_" and "-", 1–63 characters');
const LEASE_ID = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'a lease id as returned by POST /v1/creds/<engine>/<role>');
const DURATION = z.union([z.number().positive().max(10 * 365 * 86400), z.string().min(1).max(32)]);

const credParams = z.object({ engine: NAME, role: NAME });
const idParams = z.object({ id: LEASE_ID });
const issueBody = z.strictObject({ ttl: DURATION.optional() });
const renewBody = z.strictObject({ increment: DURATION.optional() });
const adminQuery = z.strictObject({
  state: z.enum(LEASE_STATES).optional(),
  irrevocable: z.enum(['true', 'false']).optional(),
  owner: z.string().min(1).max(2048).optional(),
  /** Leases issued under this task or any task below it. */
  task: z.string().min(1).max(256).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

/** `ttl`/`increment` are seconds (number) or a duration string (`"90s"`, `"15m"`, `"1h"`). */
function durationMs(value: number | string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === null || ms <= 0) throw fail('TESSERA_LEASE_TTL_INVALID', `${field} must be a positive number of seconds or a duration such as "15m"`, { field });
  return ms;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The operator view of a lease; the credential itself is never stored, so never shown. */
export function leaseView(l: Lease): Record<string, unknown> {
  return {
    lease_id: l.id,
    engine: l.engine,
    role: l.role,
    path: l.path,
    owner: l.ownerAgent,
    task: l.taskId,
    user: l.userId,
    state: l.state,
    created_at: iso(l.createdAt),
    expires_at: iso(l.expiresAt),
    max_expires_at: iso(l.maxExpiresAt),
    revoked_at: iso(l.revokedAt),
    revoke_cause: l.revokeCause,
    revoke_attempts: l.revokeAttempts,
    next_attempt_at: iso(l.nextAttemptAt),
    last_error: l.lastError,
  };
}

function whereOf(app: FastifyInstance, req: FastifyRequest): AuditWhere {
  const m = app.requestMeta(req);
  return { source: m.source, replica: m.replica, requestId: m.requestId };
}

function adminActor(req: FastifyRequest): AuditActor {
  return { id: `admin:${req.admin?.tokenId ?? 'unknown'}` };
}

/**
 * Agent routes: `POST /v1/creds/:engine/:role`, `POST /v1/leases/:id/renew`, `DELETE /v1/leases/:id`.
 * Operator routes: `GET /v1/admin/leases`, `DELETE /v1/admin/leases/:id`.
 */
export function registerLeaseRoutes(app: FastifyInstance, deps: { leases: LeaseService; authorizer: RequestAuthorizer }): void {
  const { leases, authorizer } = deps;

  app.post('/v1/creds/:engine/:role', { preHandler: app.requireAgent }, async (req, reply) => {
    const principal = req.agent!;
    const { engine, role } = parseInput(credParams, req.params, 'path');
    const body = parseInput(issueBody, req.body ?? {});
    const ttlMs = durationMs(body.ttl, 'ttl');
    const issued = await issueAuthorized({ leases, authorizer }, { principal, engine, role, ...(ttlMs !== undefined ? { ttlMs } : {}), where: whereOf(app, req) });
    return reply.status(201).send({ lease_id: issued.lease_id, expires_at: iso(issued.expires_at), renewable: issued.renewable, data: issued.data });
  });

  app.post('/v1/leases/:id/renew', { preHandler: app.requireAgent }, async (req) => {
    const { id } = parseInput(idParams, req.params, 'path');
    const body = parseInput(renewBody, req.body ?? {});
    const renewed = await leases.renew(id, req.agent!, durationMs(body.increment, 'increment'), { where: whereOf(app, req) });
    // `ttl`: the seconds granted from now (the increment, or less when capped at the max TTL).
    return { lease_id: renewed.lease_id, expires_at: iso(renewed.expires_at), ttl: renewed.ttl_ms / 1000, renewable: renewed.renewable };
  });

  app.delete('/v1/leases/:id', { preHandler: app.requireAgent }, async (req) => {
    const { id } = parseInput(idParams, req.params, 'path');
    return leases.revoke(id, 'owner_request', { principal: req.agent!, where: whereOf(app, req) });
  });

  app.get('/v1/admin/leases', { preHandler: app.requireAdmin }, async (req) => {
    const q = parseInput(adminQuery, req.query, 'query');
    const list = await leases.list({
      ...(q.state ? { state: q.state } : {}),
      ...(q.irrevocable === 'true' ? { irrevocable: true } : {}),
      ...(q.owner ? { owner: q.owner } : {}),
      ...(q.task ? { task: q.task } : {}),
      ...(q.limit ? { limit: q.limit } : {}),
    });
    return { leases: list.map(leaseView) };
  });

  app.delete('/v1/admin/leases/:id', { preHandler: app.requireAdmin }, async (req) => {
    const { id } = parseInput(idParams, req.params, 'path');
    return leases.revoke(id, 'operator_request', { actor: adminActor(req), where: whereOf(app, req) });
  });
}
