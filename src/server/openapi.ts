import type { FastifyInstance } from 'fastify';
import { roleAllows } from '../admin/roles.js';

/** Summaries for the OpenAPI document; a test checks every registered route has one. */
export const ROUTE_SUMMARIES: Record<string, string> = {
  'GET /healthz': 'Liveness: the process is up.',
  'GET /readyz': 'Readiness: store, policy set, audit and signing keys are usable; failing checks are named.',
  'GET /metrics': 'Prometheus metrics.',
  'GET /v1/openapi.json': 'This document.',
  'POST /v1/oauth/token': 'RFC 8693 token exchange: attestation (join token, Kubernetes/OIDC JWT, JWT-SVID) → agent token; agent token → root task token; task token (+ actor_token or label) → delegated child task token.',
  'POST /v1/oauth/introspect': 'RFC 7662 introspection (admin token): is this Tessera token active, and its claims.',
  'POST /v1/oauth/revoke': 'RFC 7009 revocation: the holder revokes its own token; 200 (also for an invalid token), a DPoP-bound token only with a proof by its key (400 invalid_dpop_proof).',
  'POST /v1/admin/keys/rotate': 'Operator: rotate the token signing key now; `revoke_previous` refuses every token signed by older keys.',
  'GET /v1/whoami': 'Agent: the verified identity behind the bearer token (SPIFFE ID, attributes, expiry).',
  'GET /.well-known/jwks.json': 'Public keys that verify Tessera tokens (RFC 7517).',
  'GET /ui': 'The operator console (redirects to /ui/; docs/console.md).',
  'GET /ui/*': 'The operator console\'s files: index.html for every console page, hashed assets (public files; the data behind them needs a console session; docs/console.md).',
  'GET /v1/proxy/ca.pem': 'The injection proxy\'s TLS-interception CA certificate (PEM, `application/x-pem-file`, public): what agents trust to reach routed HTTPS hosts through the proxy (docs/proxy-tls.md).',
  'GET /v1/bundle': 'SPIFFE trust bundle for JWT-SVIDs issued by Tessera.',
  'GET /.well-known/oauth-authorization-server': 'RFC 8414 authorization server metadata.',
  'GET /v1/secrets/*': 'Agent: read a `read`-mode secret, if policy allows `secret.read`.',
  'POST /v1/creds/:engine/:role': 'Agent: issue a dynamic credential (lease) if policy allows `cred.issue`.',
  'POST /v1/leases/:id/renew': 'Agent: renew an own lease, up to the role max TTL.',
  'DELETE /v1/leases/:id': 'Agent: revoke an own lease.',
  'PUT /v1/admin/secrets/*': 'Operator: write a new version of a secret.',
  'GET /v1/admin/secrets/*': 'Operator: read a secret (current or `?version=`). Never with a console session (403 TESSERA_CONSOLE_SECRET_HIDDEN).',
  'POST /v1/console/session': 'Console: sign in with an operator token `{ token }` → 201 `{ operator, csrf_token, expires_at, idle_timeout_s }` and the HttpOnly session cookie (docs/console.md).',
  'GET /v1/console/session': 'Console: the session of the cookie (operator, `csrf_token`, expiry), or 401 TESSERA_CONSOLE_SESSION_MISSING / _EXPIRED.',
  'DELETE /v1/console/session': 'Console: sign out (needs `X-CSRF-Token`); 204 and the cookie cleared.',
  'GET /v1/console/config': 'Console: what the sign-in page offers (`{ oidc, version }`); no authentication.',
  'GET /v1/console/oidc/login': 'Console: start an OpenID Connect sign-in (302 to the provider; authorization code + PKCE S256, state, nonce).',
  'GET /v1/console/oidc/callback': 'Console: the provider\'s redirect back: a session and 302 `/ui/`, or 400 TESSERA_CONSOLE_OIDC_FAILED / 403 TESSERA_CONSOLE_NO_ROLE / 503 TESSERA_CONSOLE_OIDC_UNAVAILABLE.',
  'DELETE /v1/admin/secrets/*': 'Operator: delete a secret and destroy all versions.',
  'GET /v1/admin/secrets': 'Operator: list secrets under `?prefix=` (metadata only, with `rotation_due_at` and `rotation_overdue`).',
  'GET /v1/admin/rotation': 'Operator: every secret with a rotator — due time, overdue, last rotation, next event, failures, last error code, pending retirement, in progress (docs/rotation.md).',
  'POST /v1/admin/rotation/*': 'Operator (admin role): rotate a secret now through its rotator; `{ "expected_version"?: n }` refuses with 409 TESSERA_ROTATION_CONFLICT when the secret moved on.',
  'GET /v1/admin/operator-tokens': 'Operator: list operator tokens (id, name, role `admin`|`auditor`, created/expiry/revocation times, creator, `current` for the caller\'s own); never values or digests.',
  'POST /v1/admin/operator-tokens': 'Operator (admin role): create an operator token `{ name, role, ttl }` (`ttl` default 90d, at most 365d); 201 with the value, shown once.',
  'DELETE /v1/admin/operator-tokens/:id': 'Operator (admin role): revoke an operator token (and its console sessions); the last active admin token cannot be revoked (409 TESSERA_ADMIN_LAST_TOKEN).',
  'POST /v1/admin/join-tokens': 'Operator: create a one-time join token bound to a SPIFFE ID.',
  'GET /v1/admin/join-tokens': 'Operator: list join tokens (never their values).',
  'GET /v1/admin/agents': 'Operator: agents that have logged in, newest sighting first, each with `live_credentials` and `revoked` (`?q=` case-insensitive part of the SPIFFE ID, `?limit=` 1–1000 (100), `?cursor=` the `next_cursor` of the previous page).',
  'GET /v1/admin/agents/detail': 'Operator (console): one agent (`?id=<SPIFFE ID>`): live credentials with remaining seconds, tasks, recent allow/deny decisions, revocations, and `kill_preview` — what `POST /v1/admin/revocations {kind:"agent"}` would revoke now.',
  'GET /v1/admin/overview': 'Operator (console): agents seen, live tokens/leases/sessions, allow/deny per hour over 24 h, exposure now by kind, audit head and last verification, policy set status, engine health, version.',
  'GET /v1/admin/events': 'Operator (console): live audit events as `text/event-stream` (`event: audit`, `id: <seq>`, data as GET /v1/admin/audit); filters `actor`, `task` (and its subtree), `kind` (prefix), `result`; `Last-Event-ID` resumes; heartbeat every 15 s; at most `console.max_streams` per replica (503 beyond).',
  'POST /v1/admin/leases/:id/renew': 'Operator: renew a lease by the agent renew\'s rules (`increment`; capped at the role max TTL), audited with the operator as actor.',
  'GET /v1/admin/leases': 'Operator: list leases, newest first, each with `ttl_s` (`?state=`, `?irrevocable=true`, `?owner=`, `?task=` for a task subtree, `?limit=` 1–10000 (1000), `?cursor=` the `next_cursor` of the previous page).',
  'GET /v1/admin/tasks': 'Operator: list tasks, newest first (`?root=`, `?agent=`, `?sub=`, `?user=`, `?roots=true`, `?state=active|expired|revoked`, `?since=`, `?before=`, `?limit=`).',
  'GET /v1/admin/tasks/:txn': 'Operator: a task and its subtree, each node with its actor, scope, purpose, token HMAC, leases and audit events (`?events=false` to leave them out).',
  'DELETE /v1/admin/leases/:id': 'Operator: revoke a lease.',
  'GET /v1/admin/proxy/usage': 'Operator: the injection proxy\'s request and model-token counts per route and per agent, task and user (filters route, agent, task, user; this replica\'s counters).',
  'GET /v1/admin/proxy/routes': 'Operator: the injection proxy\'s routes — upstream, forward-proxy hosts, the credential reference and where it goes (never a value), stripped headers, body fields, private-address exceptions.',
  'POST /v1/admin/proxy/test': 'Operator: what-if for one request through the injection proxy (`url`, `method`, `agent` or `principal`, `body`): the route and mode, the policy decision, the credential reference, the SSRF verdict; nothing is sent.',
  'GET /v1/admin/drift': 'Operator (admin or auditor): run a drift check — upstream tool definitions against their approvals, PostgreSQL engine group roles, the loaded policy set (digest, Git source, expected digest), secret hygiene — and return the findings with severities (docs/drift.md).',
  'GET /v1/admin/drift/tools': 'Operator: pinned and pending upstream tools (`?status=pending|all`): name, status (`approved`, `changed`, `unapproved`), digests, changed fields, times (docs/drift.md).',
  'POST /v1/admin/drift/tools/approve': 'Operator (admin role): accept the current definition of an upstream tool `{ tool: "<server>/<tool>", digest? }`; served again at once (docs/drift.md).',
  'POST /v1/admin/drift/engine/approve': 'Operator (admin role): accept a PostgreSQL group role as the database holds it now `{ name: "<config>/<group>" }` (docs/drift.md).',
  'GET /v1/admin/exposure': 'Operator: exposure windows of every credential Tessera issued (`?by=agent|task|user|kind`, `?since=` RFC 3339 or a duration such as 24h, `?kind=agent_token|task_token|lease|secret_use`): count, live, p50/p95/max seconds and credential-seconds per group, and the credentials live now with their remaining seconds.',
  'GET /v1/admin/engines/postgres': 'Operator: list postgres engine configurations (never their connection URL).',
  'PUT /v1/admin/engines/postgres/:name': 'Operator: configure a postgres engine (management URL stored sealed; checked for CREATEROLE).',
  'GET /v1/admin/engines/postgres/:name': 'Operator: a postgres engine configuration (host, port, database, user; never the URL).',
  'DELETE /v1/admin/engines/postgres/:name': 'Operator: delete a postgres engine configuration that has no roles.',
  'GET /v1/admin/engines/postgres/:name/roles': 'Operator: list the roles of a postgres engine configuration.',
  'PUT /v1/admin/engines/postgres/:name/roles/:role': 'Operator: create or replace a postgres role (group roles, TTLs, optional statements).',
  'GET /v1/admin/engines/postgres/:name/roles/:role': 'Operator: a postgres role.',
  'DELETE /v1/admin/engines/postgres/:name/roles/:role': 'Operator: delete a postgres role without open leases.',
  'POST /v1/admin/revocations': 'Operator: kill switch — revoke an agent, task, user, token or lease; `dry_run: true` records nothing and answers what it would revoke now (`would_revoke`).',
  'GET /v1/admin/revocations': 'Operator: list revocations.',
  'DELETE /v1/admin/revocations/:id': 'Operator: lift a revocation.',
  'GET /v1/admin/audit': 'Operator: audit events, oldest first from `?after_seq=`, or newest first before `?before_seq=` (`next_before_seq`); filters `actor`, `txn` or `task` (and its subtree), `kind`, `result`; `limit` 1–1000 (100).',
  'POST /v1/admin/audit/verify': 'Operator: start a background verification of the audit log (202 + job; `full`, `archives`, `wait`).',
  'POST /v1/admin/audit/archive': 'Operator: start archiving sealed audit segments and pruning them from the store (202 + job).',
  'GET /v1/admin/audit/jobs/:id': 'Operator: progress and result of an audit verify/archive job.',
  'POST /v1/admin/audit/witness': 'Operator: check up to 128 signed heads from a witness (sink output) against the store.',
  'POST /v1/admin/audit/hmac': 'Operator: HMAC of an identifier, to search audit events for it.',
  'GET /v1/admin/policy/status': 'Operator: the loaded policy set, last reload and its errors.',
  'POST /v1/admin/policy/check': 'Operator: what-if policy decision with the deciding policies.',
  'POST /mcp': 'MCP gateway (Streamable HTTP, JSON-RPC): tools of upstream MCP servers and declarative tools, authorized per call; bearer agent token with audience `<issuer>/mcp`.',
  'GET /mcp': 'MCP gateway: server-to-client SSE stream of an open session (Mcp-Session-Id).',
  'DELETE /mcp': 'MCP gateway: end an MCP session (Mcp-Session-Id).',
  'GET /.well-known/oauth-protected-resource/mcp': 'RFC 9728 protected resource metadata of the MCP gateway.',
};

/** Collects every route as it is registered and serves an OpenAPI 3.1 document describing them. */
export function registerOpenApi(app: FastifyInstance, info: { version: string; publicUrl: string }): { routes: () => string[] } {
  const routes: { method: string; url: string; operator: boolean; auditor: boolean }[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    // An operator route is one guarded by app.requireAdmin (whatever its path, e.g. /v1/oauth/introspect).
    const pre = route.preHandler;
    const operator = pre === app.requireAdmin || (Array.isArray(pre) && pre.includes(app.requireAdmin));
    for (const m of methods) {
      if (m !== 'HEAD' && m !== 'OPTIONS') routes.push({ method: m, url: route.url, operator, auditor: operator && roleAllows('auditor', m, route.config) });
    }
  });

  app.get('/v1/openapi.json', async () => {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const r of routes) {
      const key = `${r.method} ${r.url}`;
      const oaPath = r.url.replace(/:([A-Za-z_]+)/g, '{$1}').replace(/\*$/, '{path}');
      const params = [...r.url.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!);
      if (r.url.endsWith('*')) params.push('path');
      const isAdmin = r.operator || r.url.startsWith('/v1/admin/');
      const isAgent = /^\/v1\/(secrets|creds|leases)\//.test(r.url);
      paths[oaPath] ??= {};
      paths[oaPath]![r.method.toLowerCase()] = {
        summary: ROUTE_SUMMARIES[key] ?? key,
        parameters: params.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
        ...(isAdmin ? { security: [{ adminToken: [] }] } : isAgent ? { security: [{ agentToken: [] }] } : {}),
        // The operator roles that may call it (docs/operators.md).
        ...(r.operator ? { 'x-tessera-operator-roles': r.auditor ? ['admin', 'auditor'] : ['admin'] } : {}),
        responses: {
          default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        },
      };
    }
    return {
      openapi: '3.1.0',
      info: { title: 'Tessera API', version: info.version, description: 'Credential broker for AI agents. Every error carries a stable `code` (see docs/errors.md).' },
      servers: [{ url: info.publicUrl }],
      paths,
      components: {
        securitySchemes: {
          adminToken: { type: 'http', scheme: 'bearer', description: 'Operator token (`tsr_admin_…`) from `tessera init`, `tessera dev` or `tessera operator-token create`; its role (`admin` or `auditor`) decides which routes it may call (`x-tessera-operator-roles`).' },
          agentToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Agent token (JWT-SVID) or task token (tessera-task+jwt) from POST /v1/oauth/token.' },
        },
        schemas: {
          Error: {
            type: 'object',
            properties: {
              error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, request_id: { type: 'string' } }, required: ['code', 'message'] },
            },
          },
        },
      },
    };
  });
  return { routes: () => routes.map((r) => `${r.method} ${r.url}`) };
}
