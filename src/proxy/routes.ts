/**
 * The proxy's operator API (admin token; docs/proxy.md "Operator API", docs/api.md):
 *   GET  /v1/admin/proxy/routes — the configured routes, never a secret value;
 *   POST /v1/admin/proxy/test   — a what-if for one request: which route would serve it, the
 *        policy decision for an agent, the credential reference that would be injected, and the
 *        SSRF guard's verdict on the upstream. Nothing is sent upstream; no credential is read.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { checkRequestSchema, toPolicyRequest } from '../policy/check.js';
import { refusalOf, type RequestAuthorizer } from '../pipeline/authorize.js';
import type { HttpRequestContext } from '../policy/entities.js';
import type { PolicyRequest } from '../policy/types.js';
import { isTesseraError } from '../shared/errors.js';
import { sourceOf, formatOf } from './config.js';
import { checkPath, queryKeys } from './request.js';
import type { CompiledRoute, RouteTable } from './route-table.js';

export interface ProxyWhatIf {
  readonly routes: RouteTable;
  /** The proxy listener's URL (`http://127.0.0.1:8201`): a URL there is a reverse request. */
  readonly url: string | undefined;
  /** The SSRF part's guard.vet (src/proxy/ssrf.ts); absent: the verdict says it was not checked. */
  vet?(host: string, port: number, rules: { allow: readonly string[] }): Promise<{ address: string }>;
}

/** A route as operators see it: where it goes and which credential it injects, never the value. */
export function describeRoute(r: CompiledRoute) {
  const c = r.config.credential;
  const source = sourceOf(c);
  return {
    name: r.name,
    ...(r.config.preset ? { preset: r.config.preset } : {}),
    upstream: r.origin + r.basePath,
    hosts: r.hosts,
    credential: {
      source,
      reference: source === 'secret' ? `kv/${c.secret}` : source === 'lease' ? `lease:${c.lease!.engine}/${c.lease!.role}` : `oauth:${r.name}`,
      ...(c.query !== undefined ? { query: c.query } : { header: (c.header ?? 'authorization').toLowerCase(), format: formatOf(c) }),
    },
    strip_headers: r.strip,
    body_fields: r.bodyFields,
    allow_private: r.config.allow_private,
    ...(r.config.upstream_ca_file ? { upstream_ca_file: r.config.upstream_ca_file } : {}),
    ...(r.config.limits ? { limits: { window_ms: r.config.limits.window, ...(r.config.limits.requests ? { requests: r.config.limits.requests } : {}), ...(r.config.limits.tokens ? { tokens: r.config.limits.tokens } : {}) } } : {}),
  };
}

export function describeRoutes(routes: RouteTable) {
  return routes.routes.map(describeRoute);
}

const testSchema = z.object({
  url: z.string().min(1).max(4096),
  method: z.string().regex(/^[A-Za-z]{1,16}$/, 'expected an HTTP method such as GET or POST').default('GET'),
  /** The agent (SPIFFE ID); or `principal` with the attributes, scope and task a token would carry (as POST /v1/admin/policy/check). */
  agent: z.string().max(2048).optional(),
  principal: checkRequestSchema.shape.principal.optional(),
  /** The route's body_fields as the JSON body would carry them. */
  body: z.record(z.string().max(64), z.union([z.string().max(4096), z.number(), z.boolean()])).optional(),
}).strict().refine((b) => (b.agent === undefined) !== (b.principal === undefined), { message: 'give agent (a SPIFFE ID) or principal, not both' });

export function registerProxyRoutes(app: FastifyInstance, deps: { proxy: ProxyWhatIf | undefined; authorizer: RequestAuthorizer }): void {
  app.get('/v1/admin/proxy/routes', { preHandler: app.requireAdmin }, async () => ({
    enabled: deps.proxy !== undefined,
    ...(deps.proxy?.url ? { listen: deps.proxy.url } : {}),
    routes: deps.proxy ? describeRoutes(deps.proxy.routes) : [],
  }));

  app.post('/v1/admin/proxy/test', { config: { readOnly: true }, preHandler: app.requireAdmin }, async (req) => {
    const body = parseInput(testSchema, req.body);
    const method = body.method.toUpperCase();
    let url: URL;
    try {
      url = new URL(body.url);
    } catch {
      return { url: body.url, route: null, served: false, reason: { code: 'TESSERA_PROXY_PATH_INVALID', message: 'url is not an absolute http:// or https:// URL' } };
    }
    const proxy = deps.proxy;
    const base = toPolicyRequest({ principal: body.principal ?? { spiffe_id: body.agent! }, action: 'http.request', resource: 'Route::what-if' });
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    const rawPath = body.url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '').replace(/[?#].*$/, '') || '/';
    const search = url.search;
    let route: CompiledRoute | undefined;
    let mode: 'reverse' | 'forward' | 'intercepted' | 'tunnel';
    let path = rawPath;
    if (proxy?.url && url.origin === new URL(proxy.url).origin) {
      mode = 'reverse';
      const seg = rawPath.split('/')[1] ?? '';
      route = proxy.routes.byName(seg);
      if (!route) return { url: body.url, mode, route: null, served: false, reason: { code: 'TESSERA_PROXY_ROUTE_NOT_FOUND', message: `no proxy route is named "${seg}"` } };
      path = route.basePath + rawPath.slice(seg.length + 1) || '/';
    } else {
      route = proxy?.routes.byHost(host);
      mode = route ? (url.protocol === 'https:' ? 'intercepted' : 'forward') : url.protocol === 'https:' ? 'tunnel' : 'forward';
      if (!route && mode === 'forward') return { url: body.url, mode, route: null, served: false, reason: { code: 'TESSERA_PROXY_NO_ROUTE', message: `no proxy route serves host "${host}"` } };
    }
    try {
      checkPath(path);
    } catch (e) {
      if (isTesseraError(e)) return { url: body.url, mode, route: route?.name ?? null, served: false, reason: { code: e.code, message: e.message } };
      throw e;
    }
    const http: HttpRequestContext = route
      ? { route: route.name, method, host: route.host, port: route.port, path, query_keys: queryKeys(search), body: pickFields(body.body, route.bodyFields), tunnel: false }
      : { route: host, method: 'CONNECT', host, port, path: '', query_keys: [], body: {}, tunnel: true };
    const request: PolicyRequest = { ...base, resource: { type: 'Route', route: http.route }, context: { http } };
    const d = deps.authorizer.authorize(request);
    const refusal = d.allowed ? undefined : refusalOf(d, request, route ? { denied: 'TESSERA_PROXY_DENIED', userDenied: 'TESSERA_PROXY_USER_DENIED' } : { denied: 'TESSERA_PROXY_TUNNEL_DENIED' });
    // The credential's own permit, decided as the request would (src/proxy/credential.ts): a kv
    // secret needs secret.inject, a lease cred.issue; an OAuth token is Tessera's own client's.
    const credential = route ? credentialDecision(deps.authorizer, base.principal, route) : undefined;
    const targetHost = route ? route.host : host;
    const targetPort = route ? route.port : port;
    let ssrf: Record<string, unknown>;
    if (!proxy?.vet) ssrf = { checked: false, note: 'the SSRF guard is not part of this build' };
    else {
      try {
        const v = await proxy.vet(targetHost, targetPort, { allow: route?.config.allow_private ?? [] });
        ssrf = { checked: true, allowed: true, address: v.address };
      } catch (e) {
        ssrf = { checked: true, allowed: false, ...(isTesseraError(e) ? { code: e.code, message: e.message } : { message: 'the target could not be vetted' }) };
      }
    }
    return {
      url: body.url, mode, route: route?.name ?? null, served: d.allowed && (credential?.allowed ?? true) && (ssrf['allowed'] !== false),
      upstream: route ? `${route.origin}${path}` : `${host}:${port} (tunnelled untouched)`,
      decision: { allowed: d.allowed, policies: d.policies, ...(refusal ? { code: refusal.code, message: refusal.message } : {}), ...(d.errors.length ? { errors: d.errors } : {}) },
      ...(route ? { credential: { ...describeRoute(route).credential, ...(credential ? { decision: credential } : {}) } } : {}),
      context: { http },
      ssrf,
    };
  });
}

/**
 * The credential step's decision for a what-if: `secret.inject` on the kv secret, `cred.issue` on
 * the lease's role (policy ∩ token scope, as the request would decide); undefined for an OAuth
 * credential (Tessera's own client: http.request on the route is the whole decision).
 */
function credentialDecision(authorizer: RequestAuthorizer, principal: PolicyRequest['principal'], route: CompiledRoute): { action: string; allowed: boolean; code?: string; message?: string } | undefined {
  const c = route.config.credential;
  let request: PolicyRequest;
  if (c.secret !== undefined) request = { principal, action: 'secret.inject', resource: { type: 'Secret', path: c.secret } };
  else if (c.lease !== undefined) request = { principal, action: 'cred.issue', resource: { type: 'Role', engine: c.lease.engine, role: c.lease.role } };
  else return undefined;
  const d = authorizer.authorize(request);
  if (d.allowed) return { action: request.action, allowed: true };
  const e = refusalOf(d, request);
  return { action: request.action, allowed: false, code: e.code, message: e.message };
}

function pickFields(body: Readonly<Record<string, string | number | boolean>> | undefined, fields: readonly string[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const f of fields) if (body && body[f] !== undefined) out[f] = body[f]!;
  return out;
}
