/**
 * Console settings through the whole of Tessera: Secure `__Host-` cookies when the public URL is
 * https, `console.enabled: false`, `console.session_ttl` / `idle_timeout`, refused sign-ins
 * counted by the auth-failure guard (429), and the config keys' bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from '../e2e/harness.js';
import { parseConfig } from '../../src/config/index.js';
import { call, signIn } from './client.js';

test('https public URL: the cookie is Secure with the __Host- prefix, and only that name is read', async () => {
  const h = await startHarness({ config: { server: { listen: '127.0.0.1:0', public_url: 'https://tessera.example.org' } } });
  try {
    const s = await signIn(h.url, h.adminToken);
    assert.match(s.setCookie, /^__Host-tessera_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict; Secure$/);
    assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie })).status, 200);
    // A cookie without the prefix (which any subdomain or plain-http page could have set) is not a session.
    const plain = s.cookie.replace('__Host-', '');
    const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie: plain });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
    const both = await call(h.url, 'GET', '/v1/admin/agents', { cookie: `${plain.replace(/=.*/, `=${'A'.repeat(43)}`)}; ${s.cookie}` });
    assert.equal(both.status, 200, 'the unprefixed one is ignored, not ambiguous');
    const out = await call(h.url, 'DELETE', '/v1/console/session', { cookie: s.cookie, csrf: s.csrf });
    assert.equal(out.status, 204);
    assert.match(out.headers.getSetCookie()[0]!, /^__Host-tessera_session=; Path=\/; Max-Age=0; .*; Secure$/);
  } finally {
    await h.close();
  }
});

test('console.enabled: false — no session routes, and a session cookie authenticates nothing', async () => {
  const on = await startHarness();
  const s = await signIn(on.url, on.adminToken);
  const dataDir = on.dataDir;
  await on.close();
  const h = await startHarness({ dataDir, config: { console: { enabled: false } } });
  try {
    for (const [m, p] of [['POST', '/v1/console/session'], ['GET', '/v1/console/session'], ['GET', '/v1/console/config'], ['GET', '/v1/console/oidc/login']] as const) {
      const r = await call(h.url, m, p, m === 'POST' ? { body: { token: h.adminToken } } : {});
      assert.equal(r.status, 404, `${m} ${p}`);
      assert.equal(r.body.error.code, 'TESSERA_NOT_FOUND');
    }
    const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  } finally {
    await h.close();
  }
});

test('console.session_ttl and idle_timeout shape the session; refused sign-ins count against the source (429)', async () => {
  const h = await startHarness({ config: { server: { listen: '127.0.0.1:0', auth_failure_rate_limit: { per_second: 0.001, burst: 3 } }, console: { session_ttl: '1h', idle_timeout: '10m' } } });
  try {
    const s = await signIn(h.url, h.adminToken);
    assert.equal(s.body.idle_timeout_s, 600);
    assert.match(s.setCookie, /Max-Age=3600;/);
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) codes.push((await call(h.url, 'POST', '/v1/console/session', { body: { token: `tsr_admin_guess-${i}-0123456789abcdef` } })).body.error.code);
    assert.deepEqual(codes, ['TESSERA_ADMIN_TOKEN_INVALID', 'TESSERA_ADMIN_TOKEN_INVALID', 'TESSERA_ADMIN_TOKEN_INVALID', 'TESSERA_AUTH_RATE_LIMITED', 'TESSERA_AUTH_RATE_LIMITED']);
    // Refused unchecked, even with the right token, until the window passes (the guard's rule).
    const right = await call(h.url, 'POST', '/v1/console/session', { body: { token: h.adminToken } });
    assert.equal(right.status, 429);
    assert.ok(Number(right.headers.get('retry-after')) >= 1);
    // Guessed session cookies are charged too.
    const guess = await call(h.url, 'GET', '/v1/admin/agents', { cookie: `tessera_session=${'G'.repeat(43)}` });
    assert.equal(guess.body.error.code, 'TESSERA_AUTH_RATE_LIMITED');
  } finally {
    await h.close();
  }
});

test('console config keys: defaults and bounds', () => {
  const c = parseConfig({}).console;
  assert.deepEqual({ ...c }, { enabled: true, session_ttl: 8 * 3_600_000, idle_timeout: 30 * 60_000, max_streams: 64, max_streams_per_operator: 8 });
  const bad: Record<string, unknown>[] = [
    { session_ttl: '1m' }, { session_ttl: '8d' }, { idle_timeout: '10s' }, { idle_timeout: '2h', session_ttl: '1h' }, { max_streams: 0 }, { max_streams: 1.5 }, { unknown: 1 },
    { oidc: { issuer: 'http://idp.example.org', client_id: 'x' } },
    { oidc: { issuer: 'https://idp.example.org', client_id: 'x', client_secret: 'inline' } },
    { oidc: { issuer: 'https://idp.example.org', client_id: 'x', client_secret_env: 'A', client_secret_file: '/f' } },
    { oidc: { issuer: 'https://idp.example.org', client_id: 'x', roles: { admin: [{ claim: 'groups' }] } } },
    { oidc: { issuer: 'https://idp.example.org', client_id: 'x', roles: { owner: [] } } },
  ];
  for (const b of bad) assert.throws(() => parseConfig({ console: b }), (e: Error) => /console/.test(e.message), JSON.stringify(b));
  const o = parseConfig({ console: { oidc: { issuer: 'https://idp.example.org', client_id: 'tessera-console', roles: { admin: [{ claim: 'groups', equals: 'ops' }] } } } }).console.oidc!;
  assert.deepEqual(o.scopes, ['openid', 'profile', 'email']);
  assert.deepEqual(o.roles.auditor, []);
});
