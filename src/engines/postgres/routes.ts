import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditActor, AuditWhere } from '../../audit/events.js';
import type { PostgresEngine } from './engine.js';

function ctxOf(app: FastifyInstance, req: FastifyRequest): { actor: AuditActor; where: AuditWhere } {
  const m = app.requestMeta(req);
  return { actor: { id: `admin:${req.admin?.tokenId ?? 'unknown'}` }, where: { source: m.source, replica: m.replica, requestId: m.requestId } };
}

function params(req: FastifyRequest): { name: string; role: string } {
  const p = req.params as { name?: unknown; role?: unknown };
  return { name: String(p.name ?? ''), role: String(p.role ?? '') };
}

/**
 * Operator routes of the postgres engine (admin token). Issuance itself goes through the lease
 * manager's `POST /v1/creds/postgres/:role`. Names are validated by the engine (strict charset,
 * TESSERA_ENGINE_NAME_INVALID); bodies by zod (TESSERA_REQUEST_INVALID) and the engine.
 * The connection URL is accepted on PUT and never returned.
 */
export function registerPostgresEngineRoutes(app: FastifyInstance, deps: { postgres: PostgresEngine }): void {
  const pg = deps.postgres;
  const admin = { preHandler: app.requireAdmin };

  app.get('/v1/admin/engines/postgres', admin, async () => ({ configs: pg.listConfigs() }));
  app.put('/v1/admin/engines/postgres/:name', admin, async (req) => pg.configure(params(req).name, req.body ?? {}, ctxOf(app, req)));
  app.get('/v1/admin/engines/postgres/:name', admin, async (req) => pg.getConfig(params(req).name));
  app.delete('/v1/admin/engines/postgres/:name', admin, async (req) => {
    const { name } = params(req);
    await pg.deleteConfig(name, ctxOf(app, req));
    return { deleted: name };
  });

  app.get('/v1/admin/engines/postgres/:name/roles', admin, async (req) => ({ roles: pg.listRoles(params(req).name) }));
  app.put('/v1/admin/engines/postgres/:name/roles/:role', admin, async (req) => {
    const { name, role } = params(req);
    return pg.putRole(name, role, req.body ?? {}, ctxOf(app, req));
  });
  app.get('/v1/admin/engines/postgres/:name/roles/:role', admin, async (req) => {
    const { name, role } = params(req);
    return pg.getRole(name, role);
  });
  app.delete('/v1/admin/engines/postgres/:name/roles/:role', admin, async (req) => {
    const { name, role } = params(req);
    await pg.deleteRole(name, role, ctxOf(app, req));
    return { deleted: role };
  });
}
