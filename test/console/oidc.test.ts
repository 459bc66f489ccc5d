/**
 * Console sign-in with a REAL OpenID Provider (oidc-provider, test/users/op.ts) through the whole
 * of Tessera: authorization code + PKCE S256 + state + nonce; roles from claims; wrong state,
 * replayed callback, wrong nonce, another browser's callback, a tampered code, the provider's
 * error, a person with no role, a provider that is down.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../e2e/harness.js';
import { Browser, freePort, startOp, TESSERA_CLIENT, type TestOp } from '../users/op.js';
import { call } from './client.js';

let h: Harness;
let op: TestOp;
let callbackPrefix: string;

function consoleConfig(issuer: string, secretFile: string): Record<string, unknown> {
  return {
    oidc: {
      issuer, client_id: TESSERA_CLIENT.client_id, client_secret_file: secretFile, scopes: ['openid', 'email', 'groups'],
      roles: { admin: [{ claim: 'groups', equals: 'finance' }], auditor: [{ claim: 'email', equals: 'bob@example.org' }] },
    },
  };
}

before(async () => {
  const port = await freePort();
  callbackPrefix = `http://127.0.0.1:${port}/v1/console/oidc/callback`;
  op = await startOp({ tesseraCallback: callbackPrefix });
  const dir = mkdtempSync(join(tmpdir(), 'tessera-console-oidc-'));
  const secretFile = join(dir, 'client-secret');
  writeFileSync(secretFile, `${TESSERA_CLIENT.client_secret}\n`, { mode: 0o600 });
  h = await startHarness({ config: { server: { listen: `127.0.0.1:${port}` }, console: consoleConfig(op.issuer, secretFile) } });
});
after(async () => {
  await h?.close();
  await op?.close();
});

/** Starts a sign-in at Tessera: the provider URL and the browser-binding cookie. */
async function begin(): Promise<{ authUrl: URL; binding: string }> {
  const r = await call(h.url, 'GET', '/v1/console/oidc/login');
  assert.equal(r.status, 302, JSON.stringify(r.body));
  const setCookie = r.headers.getSetCookie()[0]!;
  assert.match(setCookie, /^tessera_oidc=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax$/);
  const authUrl = new URL(r.headers.get('location')!);
  return { authUrl, binding: setCookie.split(';')[0]! };
}

/** The person signs in at the provider; returns the callback URL the provider sends the browser to (not yet fetched). */
async function atProvider(authUrl: URL, user: string): Promise<URL> {
  op.nextUser = user;
  const r = await new Browser().follow(authUrl, (u) => u.href.startsWith(callbackPrefix));
  assert.ok(r.url, `the provider did not redirect back: ${r.status} ${r.body?.slice(0, 200)}`);
  return r.url;
}

async function callback(url: URL, binding?: string) {
  return call(h.url, 'GET', url.pathname + url.search, binding ? { cookie: binding } : {});
}

test('the authorization request: code flow, PKCE S256, state, nonce, the configured scopes', async () => {
  const { authUrl } = await begin();
  const q = authUrl.searchParams;
  assert.equal(authUrl.origin, op.issuer);
  assert.equal(q.get('response_type'), 'code');
  assert.equal(q.get('client_id'), TESSERA_CLIENT.client_id);
  assert.equal(q.get('redirect_uri'), callbackPrefix);
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.match(q.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
  assert.match(q.get('state')!, /^[A-Za-z0-9_-]{43}$/);
  assert.match(q.get('nonce')!, /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(q.get('scope')!.split(' ').sort(), ['email', 'groups', 'openid']);
  // Nothing about the sign-in is stored in clear.
  const rows = JSON.stringify(await h.tessera.store.all('SELECT * FROM console_oidc_logins'));
  assert.ok(!rows.includes(q.get('state')!) && !rows.includes(q.get('nonce')!));
  assert.deepEqual((await call(h.url, 'GET', '/v1/console/config')).body.oidc, true);
});

test('a person in an admin group signs in: session cookie, 302 /ui/, role admin; replaying the callback is refused', async () => {
  const { authUrl, binding } = await begin();
  const cb = await atProvider(authUrl, 'alice');
  const r = await callback(cb, binding);
  assert.equal(r.status, 302, JSON.stringify(r.body));
  assert.equal(r.headers.get('location'), '/ui/');
  const cookies = r.headers.getSetCookie();
  assert.ok(cookies.some((c) => /^tessera_oidc=; Path=\/; Max-Age=0/.test(c)), 'the binding cookie is cleared');
  const session = cookies.find((c) => c.startsWith('tessera_session='))!;
  assert.match(session, /^tessera_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/);
  const cookie = session.split(';')[0]!;
  const me = await call(h.url, 'GET', '/v1/console/session', { cookie });
  assert.equal(me.status, 200);
  assert.deepEqual(me.body.operator, { id: `oidc:${new URL(op.issuer).host}:alice`, name: 'alice@example.org', role: 'admin' });
  assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie })).status, 200);
  // The same callback again (a replay, or a back button): the state worked once.
  const replay = await callback(cb, binding);
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error.code, 'TESSERA_CONSOLE_OIDC_FAILED');
  assert.equal(replay.body.error.details.cause, 'state_unknown');
  await h.tessera.audit.flush();
  const started = (await h.admin('GET', '/v1/admin/audit?limit=1000')).body.events.map((e: any) => e.event).filter((e: any) => e.kind === 'console.session_started' && e.details.via === 'oidc');
  assert.equal(started.length, 1);
  assert.equal(started[0].actor.id, `admin:oidc:${new URL(op.issuer).host}:alice`);
});

test('a person matching an auditor rule gets the auditor role', async () => {
  const { authUrl, binding } = await begin();
  const r = await callback(await atProvider(authUrl, 'bob'), binding);
  assert.equal(r.status, 302, JSON.stringify(r.body));
  const cookie = r.headers.getSetCookie().find((c) => c.startsWith('tessera_session='))!.split(';')[0]!;
  assert.equal((await call(h.url, 'GET', '/v1/console/session', { cookie })).body.operator.role, 'auditor');
});

test('a person no rule matches: 403 TESSERA_CONSOLE_NO_ROLE, no session', async () => {
  const { authUrl, binding } = await begin();
  const r = await callback(await atProvider(authUrl, 'mallory'), binding);
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, 'TESSERA_CONSOLE_NO_ROLE');
  assert.ok(!r.headers.getSetCookie().some((c) => c.startsWith('tessera_session=')));
});

test('wrong or missing state, another browser\'s callback, a tampered code, a wrong nonce, the provider\'s error: 400 with the cause', async () => {
  // Wrong state: a well-formed one Tessera never issued, a malformed one, none.
  {
    const { authUrl, binding } = await begin();
    const cb = await atProvider(authUrl, 'alice');
    for (const [state, cause] of [['A'.repeat(43), 'state_unknown'], ['short', 'state_invalid'], [null, 'state_invalid']] as const) {
      const u = new URL(cb);
      if (state === null) u.searchParams.delete('state');
      else u.searchParams.set('state', state);
      const r = await callback(u, binding);
      assert.equal(r.status, 400, String(state));
      assert.equal(r.body.error.code, 'TESSERA_CONSOLE_OIDC_FAILED');
      assert.equal(r.body.error.details.cause, cause);
    }
  }
  // Another browser's callback (login CSRF): no binding cookie, or another sign-in's. The state is spent either way.
  for (const other of [undefined, 'tessera_oidc=' + 'B'.repeat(43)]) {
    const { authUrl } = await begin();
    const cb = await atProvider(authUrl, 'alice');
    const r = await callback(cb, other);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.details.cause, 'browser_mismatch');
  }
  // A tampered code: the provider refuses the exchange.
  {
    const { authUrl, binding } = await begin();
    const cb = await atProvider(authUrl, 'alice');
    cb.searchParams.set('code', `${cb.searchParams.get('code')}x`);
    const r = await callback(cb, binding);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'TESSERA_CONSOLE_OIDC_FAILED');
    assert.equal(r.body.error.details.cause, 'invalid_grant');
  }
  // A wrong nonce: the ID token answers another authorization request than the one Tessera made.
  {
    const { authUrl, binding } = await begin();
    authUrl.searchParams.set('nonce', 'C'.repeat(43));
    const r = await callback(await atProvider(authUrl, 'alice'), binding);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'TESSERA_CONSOLE_OIDC_FAILED');
    assert.match(r.body.error.message, /nonce/);
  }
  // A code made for another PKCE challenge (an attacker's authorization request with Tessera's state).
  {
    const { authUrl, binding } = await begin();
    authUrl.searchParams.set('code_challenge', 'D'.repeat(43));
    const r = await callback(await atProvider(authUrl, 'alice'), binding);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.details.cause, 'invalid_grant');
  }
  // The provider says no (access_denied) on the callback.
  {
    const { authUrl, binding } = await begin();
    const u = new URL(callbackPrefix);
    u.searchParams.set('error', 'access_denied');
    u.searchParams.set('state', authUrl.searchParams.get('state')!);
    u.searchParams.set('iss', op.issuer);
    const r = await callback(u, binding);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'TESSERA_CONSOLE_OIDC_FAILED');
    assert.equal(r.body.error.details.cause, 'access_denied');
  }
  // None of these left a session behind.
  const live = await h.tessera.store.get<{ n: number }>("SELECT COUNT(*) AS n FROM console_sessions WHERE via = 'oidc'");
  assert.equal(Number(live!.n), 2, 'alice and bob only');
});

test('the provider goes down between login and callback: 503 TESSERA_CONSOLE_OIDC_UNAVAILABLE, never a 500', async () => {
  const { authUrl, binding } = await begin();
  const cb = await atProvider(authUrl, 'alice');
  await op.close();
  const r = await callback(cb, binding);
  assert.equal(r.status, 503, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'TESSERA_CONSOLE_OIDC_UNAVAILABLE');
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
});

test('a provider that is down from the start: the login answers 503 TESSERA_CONSOLE_OIDC_UNAVAILABLE; token sign-in still works', async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const dir = mkdtempSync(join(tmpdir(), 'tessera-console-oidc-'));
  writeFileSync(join(dir, 's'), 'x');
  const d = await startHarness({ config: { console: consoleConfig(dead, join(dir, 's')) } });
  try {
    for (let i = 0; i < 2; i++) {
      const r = await call(d.url, 'GET', '/v1/console/oidc/login');
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'TESSERA_CONSOLE_OIDC_UNAVAILABLE');
      assert.match(r.body.error.message, /operator token/);
      assert.deepEqual(r.headers.getSetCookie(), []);
    }
    const cb = await call(d.url, 'GET', `/v1/console/oidc/callback?state=${'A'.repeat(43)}&code=x`);
    assert.equal(cb.status, 400);
    assert.equal(cb.body.error.details.cause, 'state_unknown');
    assert.equal((await call(d.url, 'POST', '/v1/console/session', { body: { token: d.adminToken } })).status, 201);
  } finally {
    await d.close();
  }
});
