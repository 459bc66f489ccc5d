/**
 * Console sessions through the whole of Tessera (real HTTP, real store, src/main.ts wiring):
 * sign-in, the cookie, CSRF, Sec-Fetch-Site, secret values hidden, idle and absolute expiry
 * (ManualClock), sign-out, operator token revocation, hostile Cookie headers, audit events.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createAdminTokenService } from '../../src/admin/index.js';
import { call, signIn } from './client.js';

const clock = new ManualClock(Date.now());
let h: Harness;
let other: ReturnType<typeof createAdminTokenService>;

before(async () => {
  h = await startHarness({ clock, config: { server: { listen: '127.0.0.1:0', auth_failure_rate_limit: { per_second: 0.001, burst: 1000 } } } });
  // The operator token service on the same store (another "replica"): a second token to revoke.
  other = createAdminTokenService({ store: h.tessera.store, clock, audit: h.tessera.audit });
  await h.admin('PUT', '/v1/admin/secrets/team/app/db-password', { value: 'hunter2-not-for-the-console', mode: 'read' });
});
after(async () => {
  await h?.close();
});

async function events(kind: string): Promise<any[]> {
  await h.tessera.audit.flush();
  const r = await h.admin('GET', '/v1/admin/audit?limit=1000');
  assert.equal(r.status, 200);
  return (r.body.events as { event: { kind: string } }[]).map((e) => e.event).filter((e) => e.kind === kind);
}

test('sign in with an admin token: 201, the session view, the cookie (no TLS: no Secure, no __Host-)', async () => {
  const s = await signIn(h.url, h.adminToken);
  assert.deepEqual(Object.keys(s.body).sort(), ['csrf_token', 'expires_at', 'idle_timeout_s', 'operator']);
  assert.equal(s.body.operator.role, 'admin');
  assert.equal(typeof s.body.operator.id, 'string');
  assert.equal(typeof s.body.operator.name, 'string');
  assert.equal(s.body.idle_timeout_s, 1800);
  assert.equal(Date.parse(s.body.expires_at), clock.now() + 8 * 3_600_000);
  assert.match(s.csrf, /^[A-Za-z0-9_-]{43}$/);
  assert.match(s.setCookie, /^tessera_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/);
  // GET gives the same view, CSRF token included (another tab of the same session).
  const g = await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie });
  assert.equal(g.status, 200);
  assert.deepEqual(g.body, s.body);
  // The cookie authenticates operator reads.
  const agents = await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie });
  assert.equal(agents.status, 200, JSON.stringify(agents.body));
  // Only digests are stored: neither the cookie value nor the CSRF token is in the table.
  const rows = JSON.stringify(await h.tessera.store.all('SELECT * FROM console_sessions'));
  assert.ok(!rows.includes(s.cookie.split('=')[1]!) && !rows.includes(s.csrf));
  const started = await events('console.session_started');
  assert.ok(started.some((e) => e.details.via === 'token' && e.details.role === 'admin' && e.actor.id === `admin:${s.body.operator.id}`));
});

test('refused sign-ins: bad, malformed, an agent token, a revoked token; exact codes, no cookie, audited aggregated', async () => {
  const cases: [unknown, number, string][] = [
    [{ token: 'tsr_admin_not-a-real-token-0123456789abcdefghij' }, 401, 'TESSERA_ADMIN_TOKEN_INVALID'],
    [{ token: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' }, 401, 'TESSERA_ADMIN_TOKEN_INVALID'],
    [{ token: '' }, 400, 'TESSERA_REQUEST_INVALID'],
    [{ token: 'x'.repeat(513) }, 400, 'TESSERA_REQUEST_INVALID'],
    [{ token: 42 }, 400, 'TESSERA_REQUEST_INVALID'],
    [{ token: 'tsr_admin_x', extra: 1 }, 400, 'TESSERA_REQUEST_INVALID'],
    [{}, 400, 'TESSERA_REQUEST_INVALID'],
    [[], 400, 'TESSERA_REQUEST_INVALID'],
  ];
  for (const [body, status, code] of cases) {
    const r = await call(h.url, 'POST', '/v1/console/session', { body });
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(r.body.error.code, code, JSON.stringify(body));
    assert.deepEqual(r.headers.getSetCookie(), []);
  }
  const { id, token } = await other.create({ actor: 'test', name: `t-${Math.random().toString(36).slice(2, 8)}`, expiresAt: null });
  await other.revoke(id, { actor: 'test' });
  const revoked = await call(h.url, 'POST', '/v1/console/session', { body: { token } });
  assert.equal(revoked.status, 401);
  assert.equal(revoked.body.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  const refused = (await events('auth.admin_refused')).filter((e) => e.resource === 'console-session');
  assert.ok(refused.length >= 1 && refused.length < 4, `aggregated per source and window: ${refused.length}`);
  assert.ok(!JSON.stringify(refused).includes('tsr_admin_not-a-real'));
});

test('CSRF: a cookie request that changes something needs the session\'s X-CSRF-Token', async () => {
  const s = await signIn(h.url, h.adminToken);
  const body = { spiffe_id: 'spiffe://tessera.local/ns/console/sa/csrf-test', ttl: '5m' };
  const missing = await call(h.url, 'POST', '/v1/admin/join-tokens', { cookie: s.cookie, body });
  assert.equal(missing.status, 403);
  assert.equal(missing.body.error.code, 'TESSERA_CONSOLE_CSRF');
  const other2 = await signIn(h.url, h.adminToken);
  for (const wrong of ['x', other2.csrf, s.csrf.slice(0, 42), `${s.csrf}A`, s.csrf.toLowerCase() === s.csrf ? s.csrf.toUpperCase() : s.csrf.toLowerCase(), 'y'.repeat(5000)]) {
    const r = await call(h.url, 'POST', '/v1/admin/join-tokens', { cookie: s.cookie, csrf: wrong, body });
    assert.equal(r.status, 403, wrong.slice(0, 50));
    assert.equal(r.body.error.code, 'TESSERA_CONSOLE_CSRF');
  }
  const del = await call(h.url, 'DELETE', '/v1/admin/secrets/team/app/db-password', { cookie: s.cookie });
  assert.equal(del.body.error.code, 'TESSERA_CONSOLE_CSRF', 'DELETE too');
  const right = await call(h.url, 'POST', '/v1/admin/join-tokens', { cookie: s.cookie, csrf: s.csrf, body });
  assert.equal(right.status, 201, JSON.stringify(right.body));
  h.sensitive.add(right.body.token);
  // The join token was created by this operator, through the session.
  const created = await events('join_token.created');
  assert.ok(created.some((e) => e.actor.id === `admin:${s.body.operator.id}`));
  // A Bearer request needs no CSRF header (no ambient credential), as before.
  const bearer = await h.admin('POST', '/v1/admin/join-tokens', body);
  assert.equal(bearer.status, 201);
  h.sensitive.add(bearer.body.token);
});

test('Sec-Fetch-Site: only same-origin (or none) may use the session, even for reads and with the CSRF token', async () => {
  const s = await signIn(h.url, h.adminToken);
  for (const site of ['cross-site', 'same-site', 'CROSS-SITE', 'bogus']) {
    for (const [method, path] of [['GET', '/v1/admin/agents'], ['GET', '/v1/console/session'], ['POST', '/v1/admin/policy/check']] as const) {
      const r = await call(h.url, method, path, { cookie: s.cookie, csrf: s.csrf, headers: { 'sec-fetch-site': site }, ...(method === 'POST' ? { body: {} } : {}) });
      assert.equal(r.status, 403, `${site} ${method} ${path}`);
      assert.equal(r.body.error.code, 'TESSERA_CONSOLE_CSRF');
    }
  }
  const signin = await call(h.url, 'POST', '/v1/console/session', { body: { token: h.adminToken }, headers: { 'sec-fetch-site': 'cross-site' } });
  assert.equal(signin.status, 403, 'sign-in from another site (login CSRF)');
  assert.equal(signin.body.error.code, 'TESSERA_CONSOLE_CSRF');
  for (const site of ['same-origin', 'none']) {
    const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie, headers: { 'sec-fetch-site': site } });
    assert.equal(r.status, 200, site);
  }
});

test('a session never reads a secret value (403 TESSERA_CONSOLE_SECRET_HIDDEN), metadata only; the same token as Bearer still can', async () => {
  const s = await signIn(h.url, h.adminToken);
  for (const path of ['/v1/admin/secrets/team/app/db-password', '/v1/admin/secrets/team/app/db-password?version=1', '/v1/admin/secrets/nope/nothing']) {
    const r = await call(h.url, 'GET', path, { cookie: s.cookie });
    assert.equal(r.status, 403, path);
    assert.equal(r.body.error.code, 'TESSERA_CONSOLE_SECRET_HIDDEN');
    assert.ok(!JSON.stringify(r.body).includes('hunter2'));
    const head = await call(h.url, 'HEAD', path, { cookie: s.cookie });
    assert.equal(head.status, 403, `HEAD ${path}`);
  }
  const list = await call(h.url, 'GET', '/v1/admin/secrets?prefix=team', { cookie: s.cookie });
  assert.equal(list.status, 200);
  assert.ok(!JSON.stringify(list.body).includes('hunter2'));
  const bearer = await h.admin('GET', '/v1/admin/secrets/team/app/db-password');
  assert.equal(bearer.status, 200);
  assert.equal(bearer.body.value, 'hunter2-not-for-the-console');
});

test('an Authorization header always wins: a bad bearer token with a good cookie is refused', async () => {
  const s = await signIn(h.url, h.adminToken);
  const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie, headers: { authorization: 'Bearer tsr_admin_wrong-wrong-wrong-wrong' } });
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  const odd = await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie, headers: { authorization: '' } });
  assert.equal(odd.status, 401, 'an empty Authorization header is still one');
  const none = await call(h.url, 'GET', '/v1/admin/agents');
  assert.equal(none.body.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
});

test('idle timeout and absolute expiry (console.session_ttl), with the clock; ended sessions are audited once', async () => {
  const a = await signIn(h.url, h.adminToken);
  const b = await signIn(h.url, h.adminToken);
  // a is used every 20 minutes: alive past the 30-minute idle timeout; b is not used.
  for (let i = 0; i < 3; i++) {
    clock.advance(20 * 60_000);
    assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: a.cookie })).status, 200, `after ${(i + 1) * 20} min`);
  }
  const idle = await call(h.url, 'GET', '/v1/console/session', { cookie: b.cookie });
  assert.equal(idle.status, 401);
  assert.equal(idle.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  assert.match(idle.body.error.message, /idle/);
  assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: b.cookie })).body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED', 'stays ended');
  // Just under the idle timeout is still alive.
  const c = await signIn(h.url, h.adminToken);
  clock.advance(30 * 60_000 - 1);
  assert.equal((await call(h.url, 'GET', '/v1/console/session', { cookie: c.cookie })).status, 200);
  assert.equal((await call(h.url, 'GET', '/v1/console/session', { cookie: a.cookie })).status, 200);
  // Session a, kept busy, ends at 8 h all the same.
  for (let t = 0; t < 8 * 60; t += 20) {
    clock.advance(20 * 60_000);
    const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie: a.cookie });
    if (r.status !== 200) {
      assert.equal(r.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
      assert.match(r.body.error.message, /session_ttl/);
      assert.ok(clock.now() >= Date.parse(a.body.expires_at));
      break;
    }
    assert.ok(clock.now() < Date.parse(a.body.expires_at));
  }
  assert.equal((await call(h.url, 'GET', '/v1/console/session', { cookie: a.cookie })).status, 401);
  const ended = await events('console.session_ended');
  const causes = ended.map((e) => e.details.cause);
  assert.ok(causes.includes('idle') && causes.includes('expired'), causes.join());
  assert.equal(ended.filter((e) => e.resource === ended.find((x) => x.details.cause === 'idle').resource).length, 1, 'one event per end');
});

test('sign-out: 204 with the CSRF token, the cookie cleared, the session over; without the token 403', async () => {
  const s = await signIn(h.url, h.adminToken);
  const noCsrf = await call(h.url, 'DELETE', '/v1/console/session', { cookie: s.cookie });
  assert.equal(noCsrf.status, 403);
  assert.equal(noCsrf.body.error.code, 'TESSERA_CONSOLE_CSRF');
  const out = await call(h.url, 'DELETE', '/v1/console/session', { cookie: s.cookie, csrf: s.csrf });
  assert.equal(out.status, 204);
  assert.match(out.headers.getSetCookie()[0]!, /^tessera_session=; Path=\/; Max-Age=0; .*HttpOnly; SameSite=Strict/);
  const after = await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie });
  assert.equal(after.status, 401);
  assert.equal(after.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  const again = await call(h.url, 'DELETE', '/v1/console/session', { cookie: s.cookie, csrf: s.csrf });
  assert.equal(again.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  const missing = await call(h.url, 'GET', '/v1/console/session');
  assert.equal(missing.status, 401);
  assert.equal(missing.body.error.code, 'TESSERA_CONSOLE_SESSION_MISSING');
  assert.equal((await call(h.url, 'DELETE', '/v1/console/session')).body.error.code, 'TESSERA_CONSOLE_SESSION_MISSING');
  assert.ok((await events('console.session_ended')).some((e) => e.details.cause === 'signed_out'));
});

test('revoking the operator token ends its sessions at once (read through, no cache), on this and other replicas', async () => {
  const { id, token } = await other.create({ actor: 'test', name: `t-${Math.random().toString(36).slice(2, 8)}`, expiresAt: null });
  h.sensitive.add(token);
  clock.advance(6_000); // the server's digest cache (5 s) learns the new token
  const s = await signIn(h.url, token);
  assert.equal(s.body.operator.id, id);
  assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie })).status, 200);
  // Revoked through another service instance (another replica): the server's token cache is not told.
  await other.revoke(id, { actor: 'test' });
  const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie });
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  assert.match(r.body.error.message, /revoked/);
  assert.ok((await events('console.session_ended')).some((e) => e.details.cause === 'token_revoked'));
  // The admin token's own sessions live on.
  const mine = await signIn(h.url, h.adminToken);
  assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: mine.cookie })).status, 200);
});

test('an auditor token gives an auditor session: reads yes, changes no (403 TESSERA_ADMIN_ROLE_FORBIDDEN), secret values never', async () => {
  const created = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'console-auditor', role: 'auditor', ttl: '1d' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  h.sensitive.add(created.body.token);
  clock.advance(6_000);
  const s = await signIn(h.url, created.body.token);
  assert.deepEqual(s.body.operator, { id: created.body.id, name: 'console-auditor', role: 'auditor' });
  assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie })).status, 200);
  const check = await call(h.url, 'POST', '/v1/admin/policy/check', { cookie: s.cookie, csrf: s.csrf, body: {} });
  assert.notEqual(check.body?.error?.code, 'TESSERA_ADMIN_ROLE_FORBIDDEN', 'a readOnly POST is open to auditors');
  const change = await call(h.url, 'POST', '/v1/admin/join-tokens', { cookie: s.cookie, csrf: s.csrf, body: { spiffe_id: 'spiffe://tessera.local/ns/console/sa/aud', ttl: '5m' } });
  assert.equal(change.status, 403);
  assert.equal(change.body.error.code, 'TESSERA_ADMIN_ROLE_FORBIDDEN');
  // CSRF is judged before the role: a forged request learns nothing about the role.
  const forged = await call(h.url, 'POST', '/v1/admin/join-tokens', { cookie: s.cookie, body: {} });
  assert.equal(forged.body.error.code, 'TESSERA_CONSOLE_CSRF');
  const secret = await call(h.url, 'GET', '/v1/admin/secrets/team/app/db-password', { cookie: s.cookie });
  assert.equal(secret.status, 403);
  assert.equal(secret.body.error.code, 'TESSERA_CONSOLE_SECRET_HIDDEN');
  // The operator-token list marks the session's token as the current one.
  const list = await call(h.url, 'GET', '/v1/admin/operator-tokens', { cookie: s.cookie });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.tokens.filter((t: { current: boolean }) => t.current).map((t: { id: string }) => t.id), [created.body.id]);
});

test('a session never outlives its operator token: capped at the token\'s expiry, ended when it passes; an expired token cannot sign in', async () => {
  const t = await other.create({ name: 'short-lived', role: 'admin', expiresAt: clock.now() + 6_000 + 10 * 60_000, actor: 'test' });
  h.sensitive.add(t.token);
  clock.advance(6_000);
  const s = await signIn(h.url, t.token);
  assert.equal(Date.parse(s.body.expires_at), t.expiresAt);
  assert.match(s.setCookie, /Max-Age=600;/);
  clock.advance(5 * 60_000);
  assert.equal((await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie })).status, 200);
  clock.advance(5 * 60_000);
  const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie });
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  const again = await call(h.url, 'POST', '/v1/console/session', { body: { token: t.token } });
  assert.equal(again.status, 401);
  assert.equal(again.body.error.code, 'TESSERA_ADMIN_TOKEN_EXPIRED');
});

test('revoking a token through the API ends its sessions at once, audited with cause token_revoked', async () => {
  const created = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'console-revoke-me', role: 'admin', ttl: '1d' });
  h.sensitive.add(created.body.token);
  clock.advance(6_000);
  const s = await signIn(h.url, created.body.token);
  const before = (await events('console.session_ended')).length;
  const del = await h.admin('DELETE', `/v1/admin/operator-tokens/${created.body.id}`);
  assert.equal(del.status, 200, JSON.stringify(del.body));
  // Ended eagerly by the revocation (onRevoked), not only when next used.
  await waitFor(async () => (await events('console.session_ended')).length > before);
  const ended = (await events('console.session_ended')).slice(before);
  assert.equal(ended.length, 1);
  assert.equal(ended[0].details.cause, 'token_revoked');
  const r = await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie });
  assert.equal(r.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  assert.equal((await events('console.session_ended')).length, before + 1, 'not audited twice');
  // A session may revoke its own token (with CSRF): the answer arrives, the session is over.
  const mine = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'console-self', role: 'admin', ttl: '1d' });
  h.sensitive.add(mine.body.token);
  clock.advance(6_000);
  const m = await signIn(h.url, mine.body.token);
  const self = await call(h.url, 'DELETE', `/v1/admin/operator-tokens/${mine.body.id}`, { cookie: m.cookie, csrf: m.csrf });
  assert.equal(self.status, 200, JSON.stringify(self.body));
  assert.equal((await call(h.url, 'GET', '/v1/console/session', { cookie: m.cookie })).status, 401);
});

/** Bounded polling for a condition (no timing assertion). */
async function waitFor(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail('condition not met');
}

test('hostile Cookie headers: a tossed second session cookie, malformed values, repeated headers, huge headers', async () => {
  const s = await signIn(h.url, h.adminToken);
  const t = await signIn(h.url, h.adminToken);
  const value = s.cookie.split('=')[1]!;
  const bad: [string, string][] = [
    [`${t.cookie}; ${s.cookie}`, 'tossed: two valid sessions'],
    [`${s.cookie}; tessera_session=${'A'.repeat(43)}`, 'tossed: a planted unknown one after'],
    [`tessera_session=${'A'.repeat(43)}; ${s.cookie}`, 'tossed: before'],
    [`${s.cookie}; ${s.cookie}`, 'the same one twice'],
    [`tessera_session="${value}"`, 'quoted'],
    [`tessera_session=${value}x`, 'too long'],
    [`tessera_session=${value.slice(1)}`, 'too short'],
    ['tessera_session=', 'empty'],
    [`tessera_session=${value.slice(0, 42)}%`, 'percent'],
  ];
  for (const [cookie, what] of bad) {
    const r = await call(h.url, 'GET', '/v1/admin/agents', { cookie });
    assert.equal(r.status, 401, what);
    assert.equal(r.body.error.code, 'TESSERA_CONSOLE_COOKIE_INVALID', what);
  }
  const unknown = await call(h.url, 'GET', '/v1/admin/agents', { cookie: `tessera_session=${'Q'.repeat(43)}` });
  assert.equal(unknown.status, 401);
  assert.equal(unknown.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  // Junk around the session cookie is not Tessera's business; names are exact.
  const junk = await call(h.url, 'GET', '/v1/admin/agents', { cookie: `a; =b; __Host-tessera_session=${'Q'.repeat(43)}; TESSERA_SESSION=x; ${s.cookie}; z="q` });
  assert.equal(junk.status, 200);
  // Big, but within Node's header limit: read in full.
  const big = await call(h.url, 'GET', '/v1/admin/agents', { cookie: `${'k=v; '.repeat(2000)}${s.cookie}` });
  assert.equal(big.status, 200);
  // Over Node's header limit (16 KiB): refused by the HTTP parser with 431, never a 5xx.
  const huge = await call(h.url, 'GET', '/v1/admin/agents', { cookie: `${'k=v; '.repeat(4000)}${s.cookie}` });
  assert.equal(huge.status, 431);
  // Two Cookie header lines (HTTP/1.1 allows it; Node joins them): a tossed cookie in the second is still seen.
  const raw = await rawGet(h.url, '/v1/admin/agents', [`cookie: ${s.cookie}`, `cookie: ${t.cookie}`]);
  assert.match(raw, /^HTTP\/1\.1 401/);
  assert.match(raw, /TESSERA_CONSOLE_COOKIE_INVALID/);
  const rawOk = await rawGet(h.url, '/v1/admin/agents', ['cookie: a=b', `cookie: ${s.cookie}`]);
  assert.match(rawOk, /^HTTP\/1\.1 200/);
});

test('GET /v1/console/config needs no sign-in', async () => {
  const r = await call(h.url, 'GET', '/v1/console/config');
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.body).sort(), ['oidc', 'version']);
  assert.equal(r.body.oidc, false);
  assert.match(r.body.version, /^\d+\.\d+\.\d+/);
});

test('session cookies and sign-in leave no token or session value in the audit log', async () => {
  const s = await signIn(h.url, h.adminToken);
  h.sensitive.add(s.cookie.split('=')[1]!);
  h.sensitive.add(s.csrf);
  await h.tessera.audit.flush();
  const all = JSON.stringify(await h.tessera.store.all('SELECT body FROM audit_events'));
  assert.ok(!all.includes(s.cookie.split('=')[1]!) && !all.includes(s.csrf) && !all.includes(h.adminToken));
});

/** A GET written by hand, to send headers fetch would merge. */
async function rawGet(base: string, path: string, headers: string[]): Promise<string> {
  const { connect } = await import('node:net');
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      sock.write(`GET ${path} HTTP/1.1\r\nhost: ${u.host}\r\n${headers.map((x) => `${x}\r\n`).join('')}connection: close\r\n\r\n`);
    });
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
  });
}

test('an auditor\'s session reads but changes nothing: the role rule applies to cookie sessions as to bearer tokens', async () => {
  const made = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'auditor-session', role: 'auditor', ttl: '1h' });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  h.sensitive.add(made.body.token);
  clock.advance(6_000); // the digest cache (5 s) learns the new token
  const s = await signIn(h.url, made.body.token);
  assert.equal(s.body.operator.role, 'auditor');
  assert.equal((await call(h.url, 'GET', '/v1/admin/agents', { cookie: s.cookie })).status, 200);
  for (const [method, path, body] of [
    ['POST', '/v1/admin/revocations', { kind: 'agent', id: 'spiffe://example.org/x' }],
    ['POST', '/v1/admin/join-tokens', { spiffe_id: 'spiffe://example.org/x', ttl: '5m' }],
    ['POST', '/v1/admin/operator-tokens', { name: 'escalate', role: 'admin' }],
    ['PUT', '/v1/admin/secrets/x/y', { value: 'v' }],
  ] as const) {
    const r = await call(h.url, method, path, { cookie: s.cookie, csrf: s.csrf, body });
    assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'TESSERA_ADMIN_ROLE_FORBIDDEN', `${method} ${path}`);
  }
  // A read-only POST (what-if) is allowed.
  const check = await call(h.url, 'POST', '/v1/admin/policy/check', { cookie: s.cookie, csrf: s.csrf, body: { principal: { spiffe_id: 'spiffe://example.org/x' }, action: 'secret.read', resource: { type: 'Secret', path: 'a/b' } } });
  assert.notEqual(check.body?.error?.code, 'TESSERA_ADMIN_ROLE_FORBIDDEN', JSON.stringify(check.body));
});
