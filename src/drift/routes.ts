/**
 * Operator API of drift (docs/api.md "Drift", docs/drift.md):
 *  - `GET /v1/admin/drift` — the report (admin or auditor); runs a check (concurrent callers share it);
 *  - `GET /v1/admin/drift/tools[?status=pending]` — pinned and pending upstream tools;
 *  - `POST /v1/admin/drift/tools/approve` `{ "tool": "<server>/<tool>", "digest"?: "sha256:…" }` (admin);
 *  - `POST /v1/admin/drift/engine/approve` `{ "name": "<config>/<group>" }` (admin).
 * Every bad input has its code: TESSERA_DRIFT_REQUEST_INVALID (shape), _TOOL_NAME_INVALID,
 * _TOOL_UNKNOWN, _NOTHING_PENDING, _DIGEST_MISMATCH, _UNKNOWN_SUBJECT.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import { parseInput } from '../server/validate.js';
import { fail } from '../shared/errors.js';
import { DIGEST_RE } from './config.js';
import type { EngineDrift } from './engine-drift.js';
import type { DriftService } from './service.js';
import type { ToolPinning } from './tool-gate.js';

const noQuery = z.strictObject({});
const toolsQuery = z.strictObject({ status: z.enum(['pending', 'all']).optional() });
const approveTool = z.strictObject({ tool: z.string().max(300), digest: z.string().regex(DIGEST_RE, 'expected "sha256:" and 64 lower-case hex digits').optional() });
const approveEngine = z.strictObject({ name: z.string().max(200) });

export interface DriftRouteDeps {
  readonly drift: DriftService;
  readonly tools?: ToolPinning;
  readonly engine?: EngineDrift;
}

export function registerDriftRoutes(app: FastifyInstance, deps: DriftRouteDeps): void {
  const where = (req: FastifyRequest): AuditWhere => {
    const m = app.requestMeta(req);
    return { source: m.source, replica: m.replica, requestId: m.requestId };
  };
  const actor = (req: FastifyRequest): AuditActor => ({ id: `admin:${req.admin?.tokenId ?? 'unknown'}` });
  const noPinning = (): never => {
    throw fail('TESSERA_DRIFT_TOOL_UNKNOWN', 'this Tessera has no upstream MCP servers (gateway.servers): no tool is pinned');
  };

  app.get('/v1/admin/drift', { preHandler: app.requireAdmin }, async (req) => {
    parseInput(noQuery, req.query, 'query', 'TESSERA_DRIFT_REQUEST_INVALID');
    return deps.drift.check();
  });

  app.get('/v1/admin/drift/tools', { preHandler: app.requireAdmin }, async (req) => {
    const q = parseInput(toolsQuery, req.query, 'query', 'TESSERA_DRIFT_REQUEST_INVALID');
    const all = deps.tools ? await deps.tools.list() : [];
    return { tools: q.status === 'pending' ? all.filter((t) => t.status !== 'approved') : all };
  });

  app.post('/v1/admin/drift/tools/approve', { preHandler: app.requireAdmin }, async (req) => {
    const body = parseInput(approveTool, req.body ?? {}, 'request body', 'TESSERA_DRIFT_REQUEST_INVALID');
    if (!deps.tools) return noPinning();
    const tool = await deps.tools.approve(body.tool, { ...(body.digest ? { digest: body.digest } : {}), actor: actor(req), where: where(req) });
    return { tool };
  });

  app.post('/v1/admin/drift/engine/approve', { preHandler: app.requireAdmin }, async (req) => {
    const body = parseInput(approveEngine, req.body ?? {}, 'request body', 'TESSERA_DRIFT_REQUEST_INVALID');
    if (!deps.engine) throw fail('TESSERA_DRIFT_UNKNOWN_SUBJECT', 'no engine is checked by drift');
    await deps.engine.approve(body.name, { actor: actor(req), where: where(req) });
    return { approved: body.name };
  });
}
