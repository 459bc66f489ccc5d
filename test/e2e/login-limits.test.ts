/**
 * Logins per second per identity and per source at the token endpoint (issue 7 item 7), through
 * real HTTP against the whole server: 429 TESSERA_LOGIN_RATE_LIMITED with Retry-After in the
 * RFC 6749 error shape; a refused join-token login does not use up the one-time token; only a
 * VERIFIED identity is charged, so forged tokens naming another agent cannot lock it out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from './harness.js';
import { makeKey, sign } from '../identity/keys.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

async function login(h: Harness, subjectToken: string, type = 'urn:tessera:token-type:join-token'): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: FORM, body: new URLSearchParams({ grant_type: EXCHANGE, subject_token: subjectToken, subject_token_type: type }) });
  const body = (await res.json()) as any;
  if (res.status === 200) h.sensitive.add(body.access_token);
  return { status: res.status, headers: res.headers, body };
}

function assertRateLimited(r: { status: number; headers: Headers; body: any }, limit: string): number {
  assert.equal(r.status, 429, JSON.stringify(r.body));
  assert.equal(r.body.error, 'temporarily_unavailable');
  assert.equal(r.body.code, 'TESSERA_LOGIN_RATE_LIMITED');
  const retry = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${r.headers.get('retry-after')}`);
  assert.match(r.body.error_description, limit === 'login.per_source' ? /from this address/ : /for this identity/);
  return retry;
}

async function events(h: Harness, kind: string): Promise<{ event: any }[]> {
  await h.tessera.audit.flush();
  return (await h.admin('GET', `/v1/admin/audit?kind=${kind}&limit=500`)).body.events;
}

test('per identity: the identity over its rate is refused before its join token is used up; others log in', async (t) => {
  // A rate so low that nothing refills during the test: the burst is the allowance.
  const h = await startHarness({ config: { tokens: { login_rate_limit: { per_identity: { per_second: 0.01, burst: 2 }, per_source: { per_second: 1000, burst: 1000 } } } } });
  t.after(() => h.close());
  const A = 'spiffe://tessera.local/ns/loop/sa/agent';
  assert.equal((await login(h, await h.joinToken(A))).status, 200);
  assert.equal((await login(h, await h.joinToken(A))).status, 200);
  const kept = await h.joinToken(A);
  const refused = await login(h, kept);
  const retry = assertRateLimited(refused, 'login.per_identity');
  assert.ok(retry >= 90 && retry <= 100, `Retry-After ${retry}`);
  // The refused login did not consume the one-time token: it is still active.
  const listed = await h.admin('GET', '/v1/admin/join-tokens');
  const states = listed.body.join_tokens as { spiffe_id: string; state: string }[];
  assert.ok(Array.isArray(states), JSON.stringify(listed.body));
  assert.equal(states.filter((x) => x.spiffe_id === A && x.state === 'active').length, 1, 'the refused join token is still usable');
  for (let i = 0; i < 3; i++) assertRateLimited(await login(h, kept), 'login.per_identity');
  // Another identity is not affected.
  assert.equal((await login(h, await h.joinToken('spiffe://tessera.local/ns/loop/sa/other'))).status, 200);
  // One audit event for the storm, no auth.login failure per attempt.
  const limited = (await events(h, 'limit.exceeded')).filter((e) => e.event.resource === 'login.per_identity');
  assert.equal(limited.length, 1);
  assert.equal(limited[0]!.event.actor.id, A);
  const failures = (await events(h, 'auth.login')).filter((e) => e.event.result === 'failure');
  assert.equal(failures.length, 0, 'rate-limit refusals are not audited one by one');
});

test('per source: a flood from one address is refused before its body is read', async (t) => {
  const h = await startHarness({ config: { tokens: { login_rate_limit: { per_identity: { per_second: 1000, burst: 1000 }, per_source: { per_second: 0.01, burst: 3 } } } } });
  t.after(() => h.close());
  const garbage = () => fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: FORM, body: 'grant_type=nonsense' }).then(async (r) => ({ status: r.status, headers: r.headers, body: (await r.json()) as any }));
  const first = await garbage();
  assert.equal(first.status, 400, 'an invalid request still costs a token');
  assert.equal((await login(h, await h.joinToken('spiffe://tessera.local/ns/a/sa/one'))).status, 200);
  assert.equal((await garbage()).status, 400);
  assertRateLimited(await garbage(), 'login.per_source');
  assertRateLimited(await login(h, await h.joinToken('spiffe://tessera.local/ns/a/sa/two')), 'login.per_source');
  // Refused before the body is read: a wrong content type or a body over the limit gets 429, not 415/413.
  const wrongType = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(wrongType.status, 429);
  assert.equal(((await wrongType.json()) as any).code, 'TESSERA_LOGIN_RATE_LIMITED');
  const huge = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: FORM, body: `subject_token=${'x'.repeat(200_000)}` });
  assert.equal(huge.status, 429);
  await huge.arrayBuffer();
  // The API routes are not behind the login limit.
  assert.equal((await h.admin('GET', '/v1/admin/revocations')).status, 200);
  const limited = (await events(h, 'limit.exceeded')).filter((e) => e.event.resource === 'login.per_source');
  assert.equal(limited.length, 1);
  assert.equal(limited[0]!.event.actor.id, 'unauthenticated');
  assert.equal(limited[0]!.event.where.source, '127.0.0.1');
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(metrics, /tessera_limit_refusals_total\{limit="login\.per_source"\} ([2-9]|\d\d)/);
});

test('forged attestation tokens naming another identity do not use up its allowance (only verified identities are charged)', async (t) => {
  const key = await makeKey('ES256', 'ci-1');
  const attacker = await makeKey('ES256', 'ci-1'); // same kid, another key
  const dir = mkdtempSync(join(tmpdir(), 'tessera-login-jwks-'));
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const h = await startHarness({
    config: {
      tokens: { login_rate_limit: { per_identity: { per_second: 0.01, burst: 2 }, per_source: { per_second: 1000, burst: 1000 } } },
      attestors: [{ kind: 'jwt', name: 'ci', issuer: 'https://ci.example.com', audience: 'tessera', jwks_file: jwksFile, template: 'spiffe://{trust_domain}/ci/{claims.project}', algorithms: ['ES256'] }],
    },
  });
  t.after(() => h.close());
  const now = Math.floor(Date.now() / 1000);
  const claims = (project: string) => ({ iss: 'https://ci.example.com', aud: 'tessera', sub: project, project, iat: now, exp: now + 600 });
  for (let i = 0; i < 10; i++) {
    const forged = await sign(attacker, { ...claims('victim'), jti: `forged-${i}` });
    h.sensitive.add(forged);
    const r = await login(h, forged, 'urn:ietf:params:oauth:token-type:jwt');
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'TESSERA_ATTEST_FAILED');
  }
  const genuine = await sign(key, claims('victim'));
  h.sensitive.add(genuine);
  assert.equal((await login(h, genuine, 'urn:ietf:params:oauth:token-type:jwt')).status, 200, 'the victim still logs in');
  // A verified identity IS charged, also when re-presenting a cached attestation.
  assert.equal((await login(h, genuine, 'urn:ietf:params:oauth:token-type:jwt')).status, 200);
  assertRateLimited(await login(h, genuine, 'urn:ietf:params:oauth:token-type:jwt'), 'login.per_identity');
});
