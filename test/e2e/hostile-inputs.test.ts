/**
 * No input an agent or operator controls may produce a 5xx (ADR 0041). Every route the server
 * publishes in /v1/openapi.json (so a new route is swept too) is called, with valid credentials,
 * with hostile path parameters, query parameters and bodies: credential-shaped names (the audit
 * log refuses those, which used to surface as 500 TESSERA_AUDIT_EVENT_INVALID after the write),
 * 30,000-deep arrays and objects (which used to overflow the stack: 500 TESSERA_INTERNAL), huge
 * strings, wrong types, prototype keys, bad percent-encoding. Afterwards the server is healthy
 * and its audit chain verifies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from './harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';

const AGENT = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';
const TSR = `tsr_admin_${'A'.repeat(30)}`;
const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.c2lnbmF0dXJl';
const DEPTH = 30_000;
const DEEP_ARRAY = '['.repeat(DEPTH) + ']'.repeat(DEPTH);
const DEEP_OBJECT = '{"a":'.repeat(DEPTH) + '1' + '}'.repeat(DEPTH);

/** Raw path-segment values (already URL-encoded where needed). */
const HOSTILE_SEGMENTS = [TSR, JWT, `a/${TSR}/b`, 'x'.repeat(3000), '%00', '..%2F..%2Fetc', '%ff%fe', '%C3%BC', '%22%3E%3Cscript%3E', '%zz', '%', ' ', '.', '..'];
/** String values for body and query fields. */
const HOSTILE_STRINGS = [TSR, JWT, `spiffe://tessera.local/ns/${TSR}`, `healthcare/prod/${TSR}`, 'x'.repeat(20_000), '\u0000', '\ud800', '', ' ', '../../etc/passwd', '{{name}}', "'; DROP TABLE secrets; --", '99999999999999999999999d', '1e400'];
/** JSON texts substituted for a field's value. */
const HOSTILE_JSON = [DEEP_ARRAY, DEEP_OBJECT, '{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}', '1e308', '-0', '123456789012345678901234567890', 'true', 'null', '[]', '{}'];

/** A valid body per route, so mutations reach past the schema into the services. */
const BASE: Record<string, Record<string, unknown>> = {
  'POST /v1/admin/join-tokens': { spiffe_id: AGENT, ttl: '10m', labels: { team: 'x' } },
  'PUT /v1/admin/secrets/{path}': { value: 'v-123456', mode: 'read', description: 'd', owner: 'o', rotation_period: '30d' },
  'POST /v1/admin/revocations': { kind: 'task', target: 'task-sweep', reason: 'r', ttl: '1h' },
  'PUT /v1/admin/engines/postgres/{name}': { connection_url: 'postgres://u:p@127.0.0.1:1/db', username_prefix: 'tx_', pool_size: 2, connect_timeout: '1s' },
  'PUT /v1/admin/engines/postgres/{name}/roles/{role}': { groups: ['g'], default_ttl: '5m', max_ttl: '1h' },
  'POST /v1/admin/policy/check': { principal: { spiffe_id: AGENT, task: 't', purpose: 'p', user: 'u', attributes: { a: 'b' }, scope: ['secret:x'], chain: [AGENT] }, action: 'secret.read', resource: 'Secret::"healthcare/prod/db"', context: { args: { a: 1 } } },
  'POST /v1/admin/audit/hmac': { value: 'lease_x' },
  'POST /v1/admin/audit/verify': {},
  'POST /v1/admin/audit/witness': { heads: [{ seq: 1, ts: 1_767_225_600_000, hash: 'a'.repeat(64), key_id: 'ack_x', signature: 'c2ln' }] },
  'POST /v1/admin/keys/rotate': { revoke_previous: false },
  'POST /v1/creds/{engine}/{role}': { ttl: '1m' },
  'POST /v1/leases/{id}/renew': { increment: '1m' },
};
/** Valid path parameters, so body mutations reach existing objects. */
const PARAMS: Record<string, string> = { path: 'healthcare/prod/db', name: 'main', role: 'reader', engine: 'mem', id: 'lease_none' };
const QUERY_KEYS = ['prefix', 'limit', 'version', 'after_seq', 'actor', 'txn', 'kind', 'owner', 'state', 'active', 'irrevocable'];
const FORM_ROUTES = new Set(['POST /v1/oauth/token', 'POST /v1/oauth/introspect', 'POST /v1/oauth/revoke']);
const FORM_FIELDS = ['grant_type', 'subject_token', 'subject_token_type', 'audience', 'resource', 'scope', 'token', 'requested_token_type', 'actor_token'];

/** Every string-valued leaf of `v` (top-level fields, nested objects and arrays), as paths. */
function stringPaths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (typeof v === 'string') return [at];
  if (Array.isArray(v)) return v.flatMap((x, i) => stringPaths(x, [...at, i]));
  if (v && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => stringPaths(x, [...at, k]));
  return [];
}
const MARK = '"__HOSTILE__"';
function withAt(base: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let cur = copy;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  cur[path[path.length - 1]!] = value;
  return copy;
}

interface Probe { readonly method: string; readonly url: string; readonly body?: string; readonly contentType?: string; readonly what: string }

test('every route answers hostile input with a stable 4xx (or a named dependency failure), never a 5xx; the server stays healthy and its audit verifies', async (t) => {
  const h: Harness = await startHarness({ engines: [new MemoryEngine()], config: { server: { listen: '127.0.0.1:0', body_limit_bytes: 1024 * 1024 } } });
  t.after(() => h.close());
  const agentToken = await h.login(await h.joinToken(AGENT));
  const mcpToken = await h.login(await h.joinToken(AGENT), `${h.tessera.url}/mcp`);
  await h.admin('PUT', '/v1/admin/secrets/healthcare/prod/db', { value: 'db-password-123456', mode: 'read' });

  const doc = (await (await fetch(`${h.url}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const probes: Probe[] = [];
  for (const [oaPath, ops] of Object.entries(doc.paths)) {
    for (const m of Object.keys(ops)) {
      const method = m.toUpperCase();
      const key = `${method} ${oaPath}`;
      const hasBody = !['GET', 'DELETE'].includes(method);
      const fill = (v: (name: string) => string) => oaPath.replace(/\{([^}]+)\}/g, (_s, name: string) => v(name));
      const valid = fill((n) => PARAMS[n] ?? 'x');
      // Path parameters.
      if (oaPath.includes('{')) for (const seg of HOSTILE_SEGMENTS) probes.push({ method, url: fill(() => seg), ...(hasBody ? { body: JSON.stringify(BASE[key] ?? {}) } : {}), what: `path=${seg.slice(0, 30)}` });
      // Query parameters.
      for (const q of QUERY_KEYS) for (const s of [TSR, JWT, 'x'.repeat(5000), '-1', '1e400', '%ff']) probes.push({ method, url: `${valid}?${q}=${s.startsWith('%') ? s : encodeURIComponent(s)}`, ...(hasBody ? { body: JSON.stringify(BASE[key] ?? {}) } : {}), what: `query ${q}=${s.slice(0, 20)}` });
      if (!hasBody) continue;
      if (FORM_ROUTES.has(key)) {
        for (const f of FORM_FIELDS) for (const s of HOSTILE_STRINGS) probes.push({ method, url: valid, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:tessera:token-type:join-token', subject_token: 'tsr_join_x', token: 'x', [f]: s }).toString(), contentType: 'application/x-www-form-urlencoded', what: `form ${f}=${s.slice(0, 20)}` });
        continue;
      }
      // Whole bodies.
      for (const j of HOSTILE_JSON) probes.push({ method, url: valid, body: j, what: `body ${j.slice(0, 20)}` });
      // Each string field of a valid body, and each field as a hostile JSON value.
      const base = BASE[key] ?? {};
      for (const p of stringPaths(base)) {
        for (const s of HOSTILE_STRINGS) probes.push({ method, url: valid, body: JSON.stringify(withAt(base, p, s)), what: `${p.join('.')}=${s.slice(0, 20)}` });
        for (const j of HOSTILE_JSON) probes.push({ method, url: valid, body: JSON.stringify(withAt(base, p, '__HOSTILE__')).replace(MARK, j), what: `${p.join('.')}=${j.slice(0, 20)}` });
      }
      for (const k of Object.keys(base)) probes.push({ method, url: valid, body: JSON.stringify(withAt(base, [k], '__HOSTILE__')).replace(MARK, DEEP_ARRAY), what: `${k}=deep` });
      // Unknown keys: credential-shaped, and an unpaired surrogate as a key.
      probes.push({ method, url: valid, body: JSON.stringify({ ...base, [TSR]: 1 }), what: 'unknown credential-shaped key' });
      probes.push({ method, url: valid, body: JSON.stringify({ ...base, '\ud800': 1 }), what: 'surrogate key' });
    }
  }

  const failures: string[] = [];
  let sent = 0;
  for (const p of probes) {
    const path = p.url.split('?')[0]!;
    const token = path.startsWith('/v1/admin/') || path.startsWith('/v1/oauth/introspect') ? h.adminToken : path === '/mcp' ? mcpToken : agentToken;
    const res = await fetch(h.url + p.url, {
      method: p.method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json, text/event-stream', ...(p.body !== undefined ? { 'content-type': p.contentType ?? 'application/json' } : {}) },
      ...(p.body !== undefined ? { body: p.body } : {}),
    });
    sent++;
    // The live event stream (GET /v1/admin/events) accepted the query: it never ends by itself.
    if (res.status === 200 && res.headers.get('content-type')?.startsWith('text/event-stream') && path === '/v1/admin/events') {
      await res.body?.cancel();
      continue;
    }
    const text = await res.text();
    let code: string | undefined;
    try {
      const j = JSON.parse(text) as { error?: { code?: string; data?: { code?: string } } | string; code?: string };
      code = typeof j.error === 'object' ? (j.error.code && typeof j.error.code === 'string' ? j.error.code : j.error.data?.code) : j.code;
    } catch {
      code = undefined;
    }
    // A named dependency failure (the engine URL in BASE points at a closed port) is not a fault.
    // So is a stream bound reached while the sweep's cancelled streams are still being closed.
    const dependency = res.status === 503 && (code === 'TESSERA_ENGINE_UNAVAILABLE' || code === 'TESSERA_CONSOLE_STREAMS_BUSY');
    if (res.status >= 500 && !dependency) failures.push(`${p.method} ${p.url.slice(0, 100)} [${p.what}] → ${res.status} ${code ?? text.slice(0, 120)}`);
    if (res.status >= 400 && !code?.startsWith('TESSERA_')) failures.push(`${p.method} ${p.url.slice(0, 100)} [${p.what}] → ${res.status} without a stable TESSERA_ code: ${text.slice(0, 120)}`);
  }
  assert.deepEqual(failures, [], `${failures.length} of ${sent} hostile requests failed`);
  assert.ok(sent > 2000, `only ${sent} probes`);

  // Healthy, still serving, and every event the sweep caused verifies.
  assert.equal((await fetch(`${h.url}/readyz`)).status, 200);
  // (The sweep's own DELETE probes removed the secret: write it again, then read it as the agent.)
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/healthcare/prod/db', { value: 'db-password-654321', mode: 'read' })).status, 200);
  assert.equal((await h.agent(agentToken, 'GET', '/v1/secrets/healthcare/prod/db')).status, 200);
  // Verification is a background job; `wait` answers once it has finished (docs/audit.md).
  const verify = await h.admin('POST', '/v1/admin/audit/verify', { full: true, wait: true });
  assert.equal(verify.status, 200, JSON.stringify(verify.body));
  assert.equal(verify.body.job.state, 'done', JSON.stringify(verify.body));
  assert.equal(verify.body.job.result.ok, true, JSON.stringify(verify.body.job.result));
});
