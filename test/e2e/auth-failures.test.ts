/**
 * Refused credentials per source (issue 7 finding F5, ADR 0142), through real HTTP against the
 * whole server. Every request with a forged bearer token used to write one `auth.token_refused`
 * event (an unauthenticated audit flood) and cost a verification. Now: refusal events are
 * aggregated per source (and actor) per window, with a count, and a source whose credentials
 * keep being refused gets 429 TESSERA_AUTH_RATE_LIMITED with Retry-After before any check — on
 * the API (agent and admin routes), /mcp and the token endpoint. Sources are told apart with
 * X-Forwarded-For (server.trust_proxy), as behind a load balancer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from './harness.js';

const FORGED_JWT = 'eyJhbGciOiJFUzI1NiIsImtpZCI6ImZvcmdlZCIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzcGlmZmU6Ly90ZXNzZXJhLmxvY2FsL25zL3gvc2EvdmljdGltIiwiYXVkIjoiaHR0cDovL3gifQ.c2lnbmF0dXJl';
const BURST = 5;

async function start(): Promise<Harness> {
  // A rate so low that nothing refills during the test: the burst is the allowance.
  return startHarness({ config: { server: { listen: '127.0.0.1:0', trust_proxy: true, auth_failure_rate_limit: { per_second: 0.001, burst: BURST } } } });
}

async function req(h: Harness, source: string, method: string, path: string, init: { token?: string; scheme?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${h.url}${path}`, {
    method,
    headers: { 'x-forwarded-for': source, ...(init.token ? { authorization: `${init.scheme ?? 'Bearer'} ${init.token}` } : {}), ...(init.headers ?? {}) },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, body };
}

async function eventsOf(h: Harness, kind: string, source: string): Promise<{ actor: { id: string; verified?: boolean }; reason?: { code?: string }; details: Record<string, unknown> }[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events WHERE kind = ? ORDER BY seq', [kind]);
  return rows.map((r) => JSON.parse(r.body)).filter((e: { where?: { source?: string } }) => e.where?.source === source);
}

function assertLimited(r: { status: number; headers: Headers; body: any }): number {
  assert.equal(r.status, 429, JSON.stringify(r.body));
  const retry = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${r.headers.get('retry-after')}`);
  return retry;
}

const MCP_INIT = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** One forged-credential request per enforcement point, and how its refusal and its 429 look. */
const POINTS: { name: string; send: (h: Harness, source: string, i: number) => ReturnType<typeof req>; refusedCode: RegExp; limited: (r: Awaited<ReturnType<typeof req>>) => void; event: string }[] = [
  {
    name: 'API agent route (requireAgent), forged JWT',
    send: (h, s) => req(h, s, 'GET', '/v1/secrets/healthcare/prod/db', { token: FORGED_JWT }),
    refusedCode: /^TESSERA_TOKEN_/,
    limited: (r) => assert.equal(r.body.error.code, 'TESSERA_AUTH_RATE_LIMITED'),
    event: 'auth.token_refused',
  },
  {
    name: 'API agent route, random garbage as DPoP',
    send: (h, s, i) => req(h, s, 'GET', '/v1/secrets/x', { token: `garbage${i}`, scheme: 'DPoP', headers: { dpop: 'x.y.z' } }),
    refusedCode: /^TESSERA_(TOKEN|DPOP)_/,
    limited: (r) => assert.equal(r.body.error.code, 'TESSERA_AUTH_RATE_LIMITED'),
    event: 'auth.token_refused',
  },
  {
    name: 'operator route (requireAdmin), forged admin token',
    send: (h, s, i) => req(h, s, 'GET', '/v1/admin/agents', { token: `tsr_admin_forged${i}` }),
    refusedCode: /^TESSERA_ADMIN_TOKEN_INVALID$/,
    limited: (r) => assert.equal(r.body.error.code, 'TESSERA_AUTH_RATE_LIMITED'),
    event: 'auth.admin_refused',
  },
  {
    name: 'MCP gateway, forged JWT',
    send: (h, s) => req(h, s, 'POST', '/mcp', { token: FORGED_JWT, body: MCP_INIT, headers: MCP_HEADERS }),
    refusedCode: /^TESSERA_TOKEN_/,
    limited: (r) => {
      assert.equal(r.body.jsonrpc, '2.0');
      assert.equal(r.body.error.code, -32006);
      assert.equal(r.body.error.data.code, 'TESSERA_AUTH_RATE_LIMITED');
      assert.equal(r.body.error.data.retry_after_s, Number(r.headers.get('retry-after')));
    },
    event: 'auth.token_refused',
  },
  {
    name: 'token endpoint, forged join token',
    send: (h, s, i) => req(h, s, 'POST', '/v1/oauth/token', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: `tsr_join_forged${i}`, subject_token_type: 'urn:tessera:token-type:join-token' }).toString() }),
    refusedCode: /^TESSERA_/,
    limited: (r) => {
      assert.equal(r.body.error, 'temporarily_unavailable');
      assert.equal(r.body.code, 'TESSERA_AUTH_RATE_LIMITED');
    },
    event: 'auth.login',
  },
  {
    name: 'token endpoint, a forged agent token as a task subject',
    send: (h, s) => req(h, s, 'POST', '/v1/oauth/token', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: forgedTesseraToken(h), subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'secret:x' }).toString() }),
    refusedCode: /^TESSERA_OAUTH_INVALID_GRANT$/,
    limited: (r) => assert.equal(r.body.code, 'TESSERA_AUTH_RATE_LIMITED'),
    event: 'auth.token_refused',
  },
];

/** A JWT that claims to be this Tessera's (its `iss`), with a bad signature. */
function forgedTesseraToken(h: Harness): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'ES256', typ: 'JWT', kid: 'forged' })}.${b64({ iss: h.url, sub: 'spiffe://tessera.local/ns/x/sa/victim', aud: h.url, exp: 4_000_000_000 })}.c2lnbmF0dXJl`;
}

for (const [n, point] of POINTS.entries()) {
  test(`${point.name}: refused ${BURST} times, then 429 TESSERA_AUTH_RATE_LIMITED before any check; one aggregated audit event; other sources unaffected`, async (t) => {
    const h = await start();
    t.after(() => h.close());
    const attacker = `203.0.113.${10 + n}`;
    for (let i = 0; i < BURST; i++) {
      const r = await point.send(h, attacker, i);
      assert.ok(r.status === 401 || r.status === 400, `${r.status} ${JSON.stringify(r.body)}`);
      const code = r.body.error?.data?.code ?? r.body.code ?? r.body.error?.code;
      assert.match(String(code), point.refusedCode);
    }
    for (let i = 0; i < 20; i++) point.limited(((r) => (assertLimited(r), r))(await point.send(h, attacker, BURST + i)));
    // The audit log holds one event for the whole storm from this source, not 25.
    const events = await eventsOf(h, point.event, attacker);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0]!.details.suppressed, 0);
    assert.equal(events[0]!.details.window_s, 60);
    // The 429s are one limit.exceeded event per window, with the code.
    const limits = (await eventsOf(h, 'limit.exceeded', attacker)).filter((e) => (e as unknown as { resource: string }).resource === 'auth.failures_per_source');
    assert.equal(limits.length, 1);
    assert.equal(limits[0]!.reason?.code, 'TESSERA_AUTH_RATE_LIMITED');
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    assert.match(metrics, /tessera_limit_refusals_total\{limit="auth\.failures_per_source"\} 20/);
    // Another source is not limited: a valid login and request still work from there.
    const other = '198.51.100.7';
    const token = await h.login(await h.joinToken('spiffe://tessera.local/ns/healthcare/sa/patient-reader'));
    const ok = await req(h, other, 'GET', '/v1/secrets/healthcare/prod/db', { token });
    assert.notEqual(ok.status, 429);
    assert.notEqual(ok.status, 401);
    assert.equal((await req(h, other, 'GET', '/v1/admin/agents', { token: h.adminToken })).status, 200);
  });
}

test('a source that authenticates is never slowed down, however many requests it sends; only refusals are charged', async (t) => {
  const h = await start();
  t.after(() => h.close());
  const token = await h.login(await h.joinToken('spiffe://tessera.local/ns/healthcare/sa/patient-reader'));
  const busy = '192.0.2.50';
  for (let i = 0; i < 4 * BURST; i++) {
    const r = await req(h, busy, 'GET', '/v1/secrets/healthcare/prod/db', { token });
    assert.notEqual(r.status, 429, `request ${i}`);
    assert.equal((await req(h, busy, 'GET', '/v1/admin/agents', { token: h.adminToken })).status, 200);
  }
  // Its refusals, interleaved with successes, still add up to the bound.
  for (let i = 0; i < BURST; i++) assert.equal((await req(h, busy, 'GET', '/v1/secrets/x', { token: FORGED_JWT })).status, 401);
  assertLimited(await req(h, busy, 'GET', '/v1/secrets/x', { token: FORGED_JWT }));
  // Now every credential from it is refused unchecked, a valid one too (it cannot be told apart
  // without the work the limit saves); the answer says so, and when to retry.
  const valid = await req(h, busy, 'GET', '/v1/secrets/healthcare/prod/db', { token });
  assertLimited(valid);
  assert.equal(valid.body.error.code, 'TESSERA_AUTH_RATE_LIMITED');
  assert.match(valid.body.error.message, /server\.auth_failure_rate_limit/);
});

test('a refused authentic token (revoked agent) keeps its claimed identity in the aggregated event', async (t) => {
  const h = await start();
  t.after(() => h.close());
  const id = 'spiffe://tessera.local/ns/healthcare/sa/revoked-one';
  const token = await h.login(await h.joinToken(id));
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: id, reason: 'test' })).status, 201);
  const src = '192.0.2.99';
  for (let i = 0; i < 3; i++) assert.equal((await req(h, src, 'GET', '/v1/secrets/x', { token })).status, 401);
  for (let i = 0; i < 2; i++) assert.equal((await req(h, src, 'GET', '/v1/secrets/x', { token: FORGED_JWT })).status, 401);
  const events = await eventsOf(h, 'auth.token_refused', src);
  // One per actor: the revoked agent (unverified) and the forger (unauthenticated).
  assert.deepEqual(events.map((e) => e.actor).sort((a, b) => a.id.localeCompare(b.id)), [{ id: 'spiffe://tessera.local/ns/healthcare/sa/revoked-one', verified: false }, { id: 'unauthenticated' }].sort((a, b) => a.id.localeCompare(b.id)));
});
