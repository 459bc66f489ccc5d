/**
 * Attack 11 (A11-1): a console session must never outlive the operator token it was signed in
 * with. Before the fix a token created with `ttl: 1h` gave an 8 h session (console.session_ttl):
 * the token's expiry was not looked at after sign-in, so the browser kept admin rights for hours
 * after the token itself stopped working. Real HTTP through the real server; ManualClock.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ManualClock } from '../../src/shared/clock.js';
import { call, signIn } from '../console/client.js';

const clock = new ManualClock(Date.now());
let h: Harness;

before(async () => {
  h = await startHarness({ clock });
});
after(async () => {
  await h?.close();
});

async function token(name: string, role: 'admin' | 'auditor', ttl: string): Promise<{ id: string; token: string; expires_at: string }> {
  const r = await h.admin('POST', '/v1/admin/operator-tokens', { name, role, ttl });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  h.sensitive.add(r.body.token);
  return r.body;
}

async function endedCauses(): Promise<Record<string, string>> {
  await h.tessera.audit.flush();
  const r = await h.admin('GET', '/v1/admin/audit?limit=1000');
  const out: Record<string, string> = {};
  for (const { event } of r.body.events as { event: { kind: string; details: { session: string; cause: string } } }[]) {
    if (event.kind === 'console.session_ended') out[event.details.session] = event.details.cause;
  }
  return out;
}

test('a session from a 1 h token ends with the token: expires_at and the cookie Max-Age are capped, then 401', async () => {
  for (const role of ['admin', 'auditor'] as const) {
    const t = await token(`short-${role}`, role, '1h');
    const s = await signIn(h.url, t.token);
    // The session view and the cookie say when it really ends: at the token's expiry, not 8 h on.
    assert.equal(s.body.expires_at, t.expires_at);
    assert.match(s.setCookie, /; Max-Age=3600; /);
    const view = await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie });
    assert.equal(view.body.expires_at, t.expires_at);
    clock.advance(20 * 60_000);
    assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie })).status, 200);
    clock.advance(40 * 60_000); // the token's expiry: the bearer token and its session both stop
    const bearer = await call(h.url, 'GET', '/v1/admin/agents', { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(bearer.body.error.code, 'TESSERA_ADMIN_TOKEN_EXPIRED');
    for (const [method, path] of [['GET', '/v1/admin/agents'], ['GET', '/v1/admin/operator-tokens'], ['GET', '/v1/console/session']] as const) {
      const r = await call(h.url, method, path, { cookie: s.cookie });
      assert.equal(r.status, 401, `${role} ${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
    }
    const write = await call(h.url, 'POST', '/v1/admin/join-tokens', { cookie: s.cookie, csrf: s.csrf, body: { spiffe_id: 'spiffe://tessera.local/ns/a/sa/b', ttl: '5m' } });
    assert.equal(write.status, 401);
    assert.equal(write.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  }
});

test('a session whose token expires before session_ttl is ended once, audited with cause token_expired', async () => {
  const t = await token('short-audited', 'admin', '2h');
  const s = await signIn(h.url, t.token);
  const sessionId = (await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie })).status === 200 ? undefined : 'x';
  assert.equal(sessionId, undefined);
  // Keep it from idling out: a request every 20 minutes until the token's expiry.
  for (let i = 0; i < 6; i++) {
    clock.advance(20 * 60_000);
    const r = await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie });
    if (i < 5) assert.equal(r.status, 200, `at ${(i + 1) * 20} min`);
    else {
      assert.equal(r.status, 401);
      assert.match(r.body.error.message, /operator token expired/);
    }
  }
  const again = await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie });
  assert.equal(again.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  assert.match(again.body.error.message, /operator token expired/);
  const causes = Object.values(await endedCauses());
  assert.equal(causes.filter((c) => c === 'token_expired').length, 3, 'one event per ended session (two from the first test, one here)');
});

test('a token that never expires and a long one: the session keeps console.session_ttl', async () => {
  const t = await token('long-admin', 'admin', '30d');
  const s = await signIn(h.url, t.token);
  assert.equal(Date.parse(s.body.expires_at), clock.now() + 8 * 3_600_000);
  assert.match(s.setCookie, /; Max-Age=28800; /);
  const root = await signIn(h.url, h.adminToken);
  assert.equal(Date.parse(root.body.expires_at), clock.now() + 8 * 3_600_000);
});
