import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { fail } from '../shared/errors.js';
import { parseDuration } from '../config/duration.js';
import type { AuditWhere } from '../audit/events.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { REVOCATION_KINDS, type Revocation, type RevocationService } from './service.js';
import { NEXT_STEPS } from '../shared/next-steps.js';

const createBody = z.strictObject({
  kind: z.enum(REVOCATION_KINDS),
  target: z.string().min(1).max(2048),
  reason: z.string().max(1000).optional(),
  /** Seconds or a duration string; omitted = until lifted. */
  ttl: z.union([z.number().positive(), z.string().min(1).max(32)]).optional(),
  /** Record nothing: answer 200 with what the revocation would act on now (RevocationService.preview). */
  dry_run: z.boolean().optional(),
});
const listQuery = z.strictObject({
  active: z.enum(['true', 'false']).optional(),
  kind: z.enum(REVOCATION_KINDS).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});
const idParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'a revocation id such as rev_...') });

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function view(r: Revocation, now: number): Record<string, unknown> {
  return {
    id: r.id,
    kind: r.kind,
    target: r.target,
    reason: r.reason,
    created_at: iso(r.createdAt),
    expires_at: iso(r.expiresAt),
    lifted_at: iso(r.liftedAt),
    active: r.liftedAt === null && (r.expiresAt === null || r.expiresAt > now),
  };
}

function whereOf(app: FastifyInstance, req: FastifyRequest): AuditWhere {
  const m = app.requestMeta(req);
  return { source: m.source, replica: m.replica, requestId: m.requestId };
}

/** The kill switch API: `POST|GET /v1/admin/revocations`, `DELETE /v1/admin/revocations/:id` (lift). */
export function registerRevocationRoutes(app: FastifyInstance, deps: { revocations: RevocationService; clock?: Clock }): void {
  const { revocations } = deps;
  // Only used to label list entries `active`; enforcement uses the service's clock.
  const clock = deps.clock ?? systemClock;

  app.post('/v1/admin/revocations', { preHandler: app.requireAdmin }, async (req, reply) => {
    const body = parseInput(createBody, req.body, 'request body', 'TESSERA_REVOCATION_INVALID');
    let ttlMs: number | undefined;
    if (body.ttl !== undefined) {
      const ms = parseDuration(body.ttl);
      if (ms === null || ms <= 0) throw fail('TESSERA_REVOCATION_INVALID', 'ttl must be a positive number of seconds or a duration such as "1h"', { field: 'ttl' });
      ttlMs = ms;
    }
    if (body.dry_run === true) {
      // The kill switch's confirmation: the same counts as the console's agent detail `kill_preview`.
      return reply.status(200).send({ kind: body.kind, target: body.target, dry_run: true, would_revoke: await revocations.preview(body.kind, body.target) });
    }
    const r = await revocations.revoke({
      kind: body.kind,
      target: body.target,
      ...(body.reason !== undefined ? { reason: body.reason } : {}),
      ...(ttlMs !== undefined ? { ttlMs } : {}),
      actor: { id: `admin:${req.admin?.tokenId ?? 'unknown'}` },
      where: whereOf(app, req),
    });
    return reply.status(201).send({
      ...view(r, clock.now()),
      leases_revoked: r.leases.revoked,
      leases_retrying: r.leases.retrying,
      leases_disabled: r.leases.disabled,
      leases_irrevocable: r.leases.irrevocable,
      // Agent revocations: did this agent ever log in? Recorded either way (it also stops a first login).
      ...(r.agentKnown !== undefined ? { known: r.agentKnown } : {}),
      ...(r.agentKnown === false
        ? { warning: `agent ${r.target} has never logged in here (it is not in ${NEXT_STEPS.listAgents().route}); the revocation is recorded and will refuse it, but check the SPIFFE ID for a typo`, warning_next_step: NEXT_STEPS.listAgents() }
        : {}),
      // Task revocations: is the task in the task tree? Recorded either way.
      ...(r.taskKnown !== undefined ? { known: r.taskKnown } : {}),
      ...(r.taskKnown === false
        ? { warning: `task ${r.target} is not in the task tree (GET /v1/admin/tasks); the revocation is recorded and will refuse it, but check the task id for a typo` }
        : {}),
    });
  });

  app.get('/v1/admin/revocations', { preHandler: app.requireAdmin }, async (req) => {
    const q = parseInput(listQuery, req.query, 'query');
    const list = await revocations.list({ ...(q.active === 'true' ? { active: true } : {}), ...(q.kind ? { kind: q.kind } : {}), ...(q.limit ? { limit: q.limit } : {}) });
    const now = clock.now();
    return { revocations: list.map((r) => view(r, now)) };
  });

  app.delete('/v1/admin/revocations/:id', { preHandler: app.requireAdmin }, async (req) => {
    const { id } = parseInput(idParams, req.params, 'path', 'TESSERA_REVOCATION_NOT_FOUND');
    const r = await revocations.lift(id, { actor: { id: `admin:${req.admin?.tokenId ?? 'unknown'}` }, where: whereOf(app, req) });
    return view(r, clock.now());
  });
}
