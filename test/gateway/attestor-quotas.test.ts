/**
 * Session quotas per attestor (issue 7 finding F4, ADR 0143). Per-agent quotas are keyed by
 * SPIFFE ID, but a CI attestor's template mints a new SPIFFE ID per pipeline or project, so one
 * CI project could fill the gateway's max_sessions for everyone. The identities one attestor
 * proved now also share a quota below max_sessions. Real HTTP against the whole server, real
 * JWT attestation (a CI-like `jwt` attestor with a JWKS file), the official MCP SDK client for
 * the agent that must not be locked out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGatewayHarness, rawMcp, INIT, type GatewayHarness } from './harness.js';
import { makeKey, sign, type TestKey } from '../identity/keys.js';
import { parseConfig } from '../../src/config/index.js';

const POLICIES = `
@id("none") forbid (principal, action == Tessera::Action::"tool.call", resource) when { principal.path == "/nobody" };
`;
const CI_ISSUER = 'https://ci.example.com';

async function ciHarness(t: { after(fn: () => unknown): void }, gateway: Record<string, unknown>): Promise<{ h: GatewayHarness; key: TestKey }> {
  const key = await makeKey('ES256', 'ci-1');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ci-jwks-'));
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const h = await startGatewayHarness({
    policies: POLICIES,
    gateway,
    config: {
      attestors: [
        { kind: 'join_token', name: 'join_token', max_ttl: '1h' },
        { kind: 'jwt', name: 'gitlab-ci', issuer: CI_ISSUER, audience: 'tessera', jwks_file: jwksFile, template: 'spiffe://{trust_domain}/ci/{claims.project}/{claims.pipeline}', algorithms: ['ES256'] },
      ],
      // The attacker logs in fast; that is not what this test is about.
      tokens: { login_rate_limit: { per_identity: { per_second: 1000, burst: 1000 }, per_source: { per_second: 1000, burst: 1000 } } },
    },
  });
  t.after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { h, key };
}

/** A CI job's login: a new SPIFFE ID per pipeline, as the documented GitLab template yields. */
async function ciLogin(h: GatewayHarness, key: TestKey, project: string, pipeline: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = await sign(key, { iss: CI_ISSUER, aud: 'tessera', sub: `${project}:${pipeline}`, project, pipeline: String(pipeline), iat: now, exp: now + 600 });
  const res = await fetch(`${h.url}/v1/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: jwt, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', resource: `${h.url}/mcp` }),
  });
  const body = (await res.json()) as { access_token: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

function assertSessionLimit(r: { status: number; headers: Headers; body: any }, attestorWords: RegExp): void {
  assert.equal(r.status, 429, JSON.stringify(r.body));
  assert.equal(r.body.error.code, -32006);
  assert.equal(r.body.error.data.code, 'TESSERA_GATEWAY_SESSION_LIMIT');
  assert.match(r.body.error.message, attestorWords);
  const retry = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1);
  assert.equal(r.body.error.data.retry_after_s, retry);
}

test('identities minted per pipeline by one attestor share its quota (max_sessions_by_attestor); another agent still connects', async (t) => {
  const { h, key } = await ciHarness(t, { max_sessions: 10, max_sessions_per_agent: 2, max_sessions_by_attestor: { 'gitlab-ci': 4 } });
  // The attacker: one CI project, a new pipeline (so a new SPIFFE ID) per session.
  const opened: { token: string; sid: string }[] = [];
  const refused: Awaited<ReturnType<typeof rawMcp>>[] = [];
  for (let pipeline = 1; pipeline <= 16; pipeline++) {
    const token = await ciLogin(h, key, 'evilgroup', pipeline);
    const r = await rawMcp(h.mcpUrl, token, INIT());
    if (r.status === 200) opened.push({ token, sid: r.headers.get('mcp-session-id')! });
    else refused.push(r);
  }
  assert.equal(opened.length, 4, 'the attestor got exactly its quota, across 16 SPIFFE IDs');
  assert.equal(refused.length, 12);
  for (const r of refused) assertSessionLimit(r, /attestor gitlab-ci .*max_sessions_per_attestor/);

  // Another project of the same attestor is bounded by the same quota (the attestor is the key).
  assertSessionLimit(await rawMcp(h.mcpUrl, await ciLogin(h, key, 'othergroup', 1), INIT()), /attestor gitlab-ci/);

  // An agent of another attestor is not locked out: it connects with the SDK client, and can use
  // its own per-agent quota; so can a second one.
  const a = await h.connect(await h.login('spiffe://example.org/team/a'));
  assert.deepEqual((await a.listTools()).tools, []);
  const aToken = await h.login('spiffe://example.org/team/a');
  assert.equal((await rawMcp(h.mcpUrl, aToken, INIT())).status, 200);
  assert.equal((await rawMcp(h.mcpUrl, await h.login('spiffe://example.org/team/b'), INIT())).status, 200);

  // Closing a CI session gives the attestor's place back.
  const first = opened[0]!;
  const del = await fetch(h.mcpUrl, { method: 'DELETE', headers: { authorization: `Bearer ${first.token}`, 'mcp-session-id': first.sid, 'mcp-protocol-version': '2025-11-25' } });
  assert.equal(del.status, 200);
  assert.equal((await rawMcp(h.mcpUrl, await ciLogin(h, key, 'evilgroup', 99), INIT())).status, 200);

  // Audited once per attestor and window, not once per minted identity.
  await h.tessera.audit.flush();
  const events = (await h.admin('GET', '/v1/admin/audit?kind=limit.exceeded&limit=500')).body.events.filter((e: { event: { resource: string } }) => e.event.resource === 'gateway.sessions_per_attestor');
  assert.equal(events.length, 1);
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(metrics, /tessera_limit_refusals_total\{limit="gateway\.sessions_per_attestor"\} 13/);
});

test('by default an attestor takes at most max_sessions less a tenth: the others keep their reserve', async (t) => {
  const { h, key } = await ciHarness(t, { max_sessions: 10 });
  let opened = 0;
  let last: Awaited<ReturnType<typeof rawMcp>> | undefined;
  for (let pipeline = 1; pipeline <= 14; pipeline++) {
    const r = await rawMcp(h.mcpUrl, await ciLogin(h, key, 'evilgroup', pipeline), INIT());
    if (r.status === 200) opened++;
    else last = r;
  }
  assert.equal(opened, 9, 'the CI attestor stops at 9 of 10, each of its identities within its own quota of 1');
  assertSessionLimit(last!, /attestor gitlab-ci already hold 9/);
  // The reserved place is there for an agent of another attestor, with the SDK client.
  const c = await h.connect(await h.login('spiffe://example.org/team/a'));
  assert.deepEqual((await c.listTools()).tools, []);
  // Only then is the gateway full for everyone (503, the shared cap).
  const late = await rawMcp(h.mcpUrl, await h.login('spiffe://example.org/team/late'), INIT());
  assert.equal(late.status, 503);
  assert.equal(late.body.error.data.code, 'TESSERA_GATEWAY_BUSY');
});

test('the configuration refuses an attestor quota that is not below max_sessions, or that names no attestor', () => {
  const base = { data_dir: '/tmp/x', attestors: [{ kind: 'join_token', name: 'join_token' }] };
  for (const [gateway, message] of [
    [{ max_sessions: 10, max_sessions_per_attestor: 10 }, /max_sessions_per_attestor.*less than max_sessions/s],
    [{ max_sessions: 10, max_sessions_by_attestor: { join_token: 12 } }, /max_sessions_by_attestor.*less than max_sessions/s],
    [{ max_sessions: 10, max_sessions_by_attestor: { 'gitlab-cj': 3 } }, /no attestor is named "gitlab-cj"/],
  ] as const) {
    assert.throws(() => parseConfig({ ...base, gateway }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TESSERA_CONFIG_INVALID');
      assert.match(e.message, message);
      return true;
    });
  }
  assert.equal(parseConfig({ ...base, gateway: { max_sessions: 10, max_sessions_by_attestor: { join_token: 9 } } }).gateway.max_sessions_by_attestor.join_token, 9);
});
