import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { fail } from '../shared/errors.js';
import { parseDuration } from '../config/duration.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import { issueAuthorized } from './authorized.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import { LEASE_STATES, type Lease, type LeaseService } from './service.js';
import { cursorParam, decodeCursor, encodeCursor, pageLimit } from '../server/pagination.js';
import { systemClock, type Clock } from '../shared/clock.js';

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
  /** Up to 10,000 (default 1,000) as before the console: `tessera lease list` relies on it. */
  limit: pageLimit(10_000, 1000),
  cursor: cursorParam.optional(),
});
const LEASES_LIST = 'GET /v1/admin/leases';

/** `ttl`/`increment` are seconds (number) or a duration string (`"90s"`, `"15m"`, `"1h"`). */
function durationMs(value: number | string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === null || ms <= 0) throw fail('TESSERA_LEASE_TTL_INVALID', `${field} must be a positive number of seconds or a duration such as "15m"`, { field });
  return ms;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * The operator view of a lease; the credential itself is never stored, so never shown. With
 * `now`: `ttl_s`, whole seconds until `expires_at` for an active lease (0 once past it), null
 * for a lease in any other state.
 */
export function leaseView(l: Lease, now?: number): Record<string, unknown> {
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
    ...(now !== undefined ? { ttl_s: l.state === 'active' ? Math.max(0, Math.floor((l.expiresAt - now) / 1000)) : null } : {}),
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
 * Operator routes: `GET /v1/admin/leases` (keyset-paged: `cursor` / `next_cursor`),
 * `POST /v1/admin/leases/:id/renew`, `DELETE /v1/admin/leases/:id`.
 */
export function registerLeaseRoutes(app: FastifyInstance, deps: { leases: LeaseService; authorizer: RequestAuthorizer; clock?: Clock }): void {
  const { leases, authorizer } = deps;
  const clock = deps.clock ?? systemClock;

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
    const after = q.cursor !== undefined ? decodeCursor(q.cursor, ['n', 's'] as const, LEASES_LIST) : undefined;
    // One row more than asked: whether a next page exists, without a COUNT.
    const list = await leases.list({
      ...(q.state ? { state: q.state } : {}),
      ...(q.irrevocable === 'true' ? { irrevocable: true } : {}),
      ...(q.owner ? { owner: q.owner } : {}),
      ...(q.task ? { task: q.task } : {}),
      ...(after ? { after: { createdAt: after[0], id: after[1] } } : {}),
      limit: q.limit + 1,
    });
    const page = list.slice(0, q.limit);
    const last = page[page.length - 1];
    const now = clock.now();
    return { leases: page.map((l) => leaseView(l, now)), next_cursor: list.length > q.limit && last ? encodeCursor([last.createdAt, last.id]) : null };
  });

  // The operator's renew (the console's lease page): the agent renew's rules (LeaseService.renew
  // without a principal: any lease), audited as `lease.renewed` with the operator as actor.
  app.post('/v1/admin/leases/:id/renew', { preHandler: app.requireAdmin }, async (req) => {
    const { id } = parseInput(idParams, req.params, 'path');
    const body = parseInput(renewBody, req.body ?? {});
    const renewed = await leases.renew(id, undefined, durationMs(body.increment, 'increment'), { actor: adminActor(req), where: whereOf(app, req) });
    return { lease_id: renewed.lease_id, expires_at: iso(renewed.expires_at), ttl: renewed.ttl_ms / 1000, renewable: renewed.renewable };
  });

  app.delete('/v1/admin/leases/:id', { preHandler: app.requireAdmin }, async (req) => {
    const { id } = parseInput(idParams, req.params, 'path');
    return leases.revoke(id, 'operator_request', { actor: adminActor(req), where: whereOf(app, req) });
  });
}
