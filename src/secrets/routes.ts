import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { duration } from '../config/schema.js';
import { TesseraError } from '../shared/errors.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import type { AuditWhere } from '../audit/events.js';
import { SECRET_MODES, type AuditContext, type KvService, type SecretMetadata } from './kv.js';
import { parseSecretPath } from './path.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { parseRotator, rotatorToJson } from '../rotation/options.js';

/**
 * HTTP surface of the kv engine.
 *  Operator: PUT/GET/DELETE /v1/admin/secrets/<path>, GET /v1/admin/secrets?prefix=
 *  Agent:    GET /v1/secrets/<path> (read-mode secrets only, if policy permits `secret.read`)
 *
 * The path is taken from the raw request URL, not from the router's decoded parameter: a `%`
 * anywhere in it is refused, because no allowed path character needs percent-encoding
 * (RFC 3986 §2.3) and decoding is exactly how `%2e%2e` and `%2F` would smuggle traversal or an
 * extra segment past validation.
 */
export interface SecretRouteDeps {
  readonly kv: KvService;
  /** The request pipeline's authorizer (token scope ∩ Cedar). */
  readonly authorizer: RequestAuthorizer;
  /** For `rotation_overdue` (default: the system clock). */
  readonly clock?: Clock;
  /**
   * Validates a `rotator` from the body and returns the JSON to store (src/rotation: the kind,
   * its options, configured http endpoints). Default: the options schema alone.
   */
  readonly checkRotator?: (input: unknown) => string;
}

const putBody = z.object({
  value: z.unknown().optional(),
  mode: z.enum(SECRET_MODES).optional(),
  description: z.string().max(1024).nullable().optional(),
  owner: z.string().max(256).nullable().optional(),
  /** A duration: seconds as a number, or "30d", "12h"...; null clears it. */
  rotation_period: duration.nullable().optional(),
  /** The rotator (docs/rotation.md): `{ "kind": "...", ...options }`; null clears it. */
  rotator: z.unknown().optional(),
}).strict();

const getQuery = z.object({ version: z.string().regex(/^[1-9][0-9]{0,14}$/, 'expected a positive integer').transform(Number).optional() }).strict();
const listQuery = z.object({
  prefix: z.string().optional(),
  limit: z.string().regex(/^[1-9][0-9]{0,3}$/, 'expected an integer 1–1000').transform(Number).refine((n) => n <= 1000, 'at most 1000').optional(),
}).strict();

/** The secret path: what follows the wildcard route's fixed prefix in the raw URL. */
export function rawWildcardPath(req: FastifyRequest): string {
  const pattern = req.routeOptions.url ?? '';
  const prefix = pattern.endsWith('*') ? pattern.slice(0, -1) : pattern;
  const raw = req.raw.url ?? req.url;
  const q = raw.indexOf('?');
  const pathPart = q === -1 ? raw : raw.slice(0, q);
  if (!pathPart.startsWith(prefix)) {
    throw new TesseraError('TESSERA_SECRET_PATH_INVALID', 'the request path does not name a secret', { problem: 'route mismatch' });
  }
  const rest = pathPart.slice(prefix.length);
  if (rest.includes('%')) {
    // A client that percent-encoded a character outside the set (`kv put 'bad path/x'` sends
    // `bad%20path`): name that character, as for an unencoded path. Valid paths never need `%`.
    let decoded: string | undefined;
    try {
      decoded = decodeURIComponent(rest);
    } catch {
      decoded = undefined;
    }
    if (decoded !== undefined) parseSecretPath(decoded);
    throw new TesseraError(
      'TESSERA_SECRET_PATH_INVALID',
      'percent-encoded characters are not allowed in a secret path; allowed characters are A-Z a-z 0-9 . _ - and "/" between segments',
      { problem: 'percent-encoding' },
    );
  }
  return rest;
}

/**
 * A secret's metadata as JSON (never its value). Times are epoch ms. With `now`:
 * `rotation_overdue`, true when a rotation period is set and `rotation_due_at` has passed.
 */
export function metadataJson(m: SecretMetadata, now?: number): Record<string, unknown> {
  return {
    path: m.path,
    current_version: m.currentVersion,
    mode: m.mode,
    description: m.description,
    owner: m.owner,
    rotation_period_s: m.rotationPeriodMs === null ? null : m.rotationPeriodMs / 1000,
    rotation_due_at: m.rotationDueAt,
    rotator: m.rotator,
    ...(now !== undefined ? { rotation_overdue: m.rotationDueAt !== null && m.rotationDueAt <= now } : {}),
    created_at: m.createdAt,
    updated_at: m.updatedAt,
    ...(m.versions ? { versions: m.versions.map((v) => ({ version: v.version, created_at: v.createdAt, destroyed: v.destroyed })) } : {}),
  };
}

export function registerSecretRoutes(app: FastifyInstance, deps: SecretRouteDeps): void {
  const { kv, authorizer } = deps;
  const clock = deps.clock ?? systemClock;
  const checkRotator = deps.checkRotator ?? ((input: unknown) => rotatorToJson(parseRotator(input)));

  const where = (req: FastifyRequest): AuditWhere => {
    const m = app.requestMeta(req);
    return { requestId: m.requestId, source: m.source, replica: m.replica };
  };
  const adminCtx = (req: FastifyRequest): AuditContext => ({ actor: { id: `admin:${req.admin?.tokenId ?? 'unknown'}` }, where: where(req) });

  app.put('/v1/admin/secrets/*', { preHandler: app.requireAdmin }, async (req) => {
    const path = rawWildcardPath(req);
    const body = parseInput(putBody, req.body ?? {}, 'request body');
    if (body.value === undefined) throw new TesseraError('TESSERA_SECRET_VALUE_INVALID', 'the body needs "value": the secret as a string');
    const meta = {
      ...(body.mode !== undefined ? { mode: body.mode } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.owner !== undefined ? { owner: body.owner } : {}),
      ...(body.rotation_period !== undefined ? { rotationPeriodMs: body.rotation_period } : {}),
      ...(body.rotator !== undefined ? { rotator: body.rotator === null ? null : checkRotator(body.rotator) } : {}),
    };
    const r = await kv.put(path, body.value as string, meta, adminCtx(req));
    return { path: r.path, version: r.version };
  });

  app.get('/v1/admin/secrets/*', { config: { revealsSecret: true }, preHandler: app.requireAdmin }, async (req) => {
    const path = rawWildcardPath(req);
    const query = parseInput(getQuery, req.query ?? {}, 'query');
    const r = await kv.get(path, { ...(query.version !== undefined ? { version: query.version } : {}), ctx: adminCtx(req) });
    return { path: r.path, version: r.version, value: r.value, metadata: metadataJson(r.metadata, clock.now()) };
  });

  app.get('/v1/admin/secrets', { preHandler: app.requireAdmin }, async (req) => {
    const query = parseInput(listQuery, req.query ?? {}, 'query');
    const r = await kv.list(query.prefix ?? '', query.limit !== undefined ? { limit: query.limit } : {});
    const now = clock.now();
    return { secrets: r.secrets.map((m) => metadataJson(m, now)), truncated: r.truncated };
  });

  app.delete('/v1/admin/secrets/*', { preHandler: app.requireAdmin }, async (req) => {
    const path = rawWildcardPath(req);
    const r = await kv.delete(path, adminCtx(req));
    return { path: r.path, deleted: true, versions_destroyed: r.versionsDestroyed };
  });

  app.get('/v1/secrets/*', { preHandler: app.requireAgent }, async (req) => {
    const path = rawWildcardPath(req);
    const agent = req.agent;
    if (!agent) throw new TesseraError('TESSERA_TOKEN_MISSING', 'this endpoint needs an agent token');
    const r = await kv.readForAgent(agent, path, authorizer, where(req));
    return { path: r.path, version: r.version, value: r.value };
  });
}
