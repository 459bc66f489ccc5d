/**
 * HTTP surface of rotation (docs/api.md, docs/rotation.md):
 *  GET  /v1/admin/rotation          every secret with a rotator: due, last, next, failures, last error code
 *  POST /v1/admin/rotation/<path>   rotate now; body `{ "expected_version"?: n }` (optimistic check)
 * The path is taken from the raw URL as for /v1/admin/secrets (no percent-decoding).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { rawWildcardPath } from '../secrets/routes.js';
import type { RotationService } from './service.js';

const rotateBody = z.object({ expected_version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional() }).strict();

export function registerRotationRoutes(app: FastifyInstance, deps: { rotation: RotationService }): void {
  const { rotation } = deps;
  const ctxOf = (req: FastifyRequest) => {
    const m = app.requestMeta(req);
    return { actor: { id: `admin:${req.admin?.tokenId ?? 'unknown'}` }, where: { requestId: m.requestId, source: m.source, replica: m.replica } };
  };

  app.get('/v1/admin/rotation', { preHandler: app.requireAdmin }, async () => {
    const [secrets, health] = await Promise.all([rotation.status(), rotation.healthNow()]);
    return { secrets, overdue: health.overdue, in_progress: health.in_progress, failing: health.failing.length };
  });

  app.post('/v1/admin/rotation/*', { preHandler: app.requireAdmin }, async (req) => {
    const path = rawWildcardPath(req);
    const body = parseInput(rotateBody, req.body ?? {}, 'request body');
    const ctx = ctxOf(req);
    return rotation.rotate(path, { ...(body.expected_version !== undefined ? { expectedVersion: body.expected_version } : {}), ...ctx });
  });
}
