/**
 * The console's session security in a real browser (issue 11 "Tests": CSRF and auth refusals, no
 * secret in any page or network response; docs/console.md "Sessions and CSRF"):
 * - a cookie request without the session's X-CSRF-Token is refused (403 TESSERA_CONSOLE_CSRF);
 * - a page on another origin (same site: another loopback port; cross site: `localhost`), even one
 *   in server.allowed_origins, cannot
 *   use the session: its form posts and fetches change nothing and read nothing, and it cannot
 *   frame the console;
 * - a refused sign-in shows the API's code and human message in the page;
 * - an auditor sees no enabled kill switch, and the API refuses it the revocation.
 * One Chromium for the file (test/console/browser.ts); one Tessera per test.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { cookieHeader, findLeaks, launchConsoleBrowser, signIn, skipWithoutChromium, chromiumMissing, PAGES_TODO, type ConsoleBrowser, type ConsolePage } from './browser.js';
import { LATE_AGENT, ORCHESTRATOR, READ_SECRET, startWorld, type World } from './world.js';

let browser: ConsoleBrowser | undefined;
before(async () => {
  if (!chromiumMissing()) browser = await launchConsoleBrowser();
});
after(() => browser?.close());

/** A call with the page's session cookie (and optionally a CSRF header), as a same-origin script would make it. */
async function cookieCall(w: World, cookie: string, method: string, path: string, opts: { csrf?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(w.h.url + path, {
    method,
    headers: { cookie, ...(opts.csrf !== undefined ? { 'x-csrf-token': opts.csrf } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

/** Scans every response the page received, and its HTML now, for every sensitive value of the world. */
async function assertNoLeak(p: ConsolePage, w: World, extra: string[] = []): Promise<void> {
  await p.settle();
  const texts = p.responses.map((r) => ({ where: `${r.status} ${r.url}`, text: r.body }));
  texts.push({ where: `page ${p.page.url()}`, text: await p.page.content() });
  assert.deepEqual(findLeaks(texts, [...w.h.sensitive, ...extra]), [], 'a secret or token reached the browser');
}

/** The kill switch for LATE_AGENT: the body the legitimate call (test 1) and the attacks send alike. */
const REVOKE = { kind: 'agent', target: LATE_AGENT, reason: 'console test' };

/** An agent that logged in and holds a live token: what the attacks below try to revoke. */
async function victim(w: World): Promise<string> {
  return w.h.login(await w.h.joinToken(LATE_AGENT));
}

async function tokenStillWorks(w: World, token: string): Promise<boolean> {
  // Any agent-authenticated call that needs a live token: a policy-denied secret read is 403, a revoked token 401.
  const r = await w.h.agent(token, 'GET', `/v1/secrets/${READ_SECRET}`);
  return r.status !== 401;
}

test('a cookie request without the session CSRF token is refused with TESSERA_CONSOLE_CSRF; with it, it works', async (t) => {
  if (skipWithoutChromium(t)) return;
  const w = await startWorld();
  t.after(() => w.h.close());
  const p = await browser!.newPage();
  await signIn(p.page, w.h.url, w.h.adminToken);
  const cookie = await cookieHeader(p.context, w.h.url);
  assert.match(cookie, /tessera_session=/);
  const cookies = await p.context.cookies(w.h.url);
  const session = cookies.find((c) => c.name.endsWith('tessera_session'))!;
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.equal(session.path, '/');
  assert.equal(await p.page.evaluate(() => document.cookie), '', 'the page script cannot read the session cookie');

  const view = await cookieCall(w, cookie, 'GET', '/v1/console/session');
  assert.equal(view.status, 200);
  const csrf = view.body.csrf_token as string;
  assert.ok(typeof csrf === 'string' && csrf.length >= 16);
  w.h.sensitive.add(session.value);

  const token = await victim(w);
  for (const [what, header] of [['no header', undefined], ['empty header', ''], ['a wrong token', randomBytes(32).toString('base64url')], ['the token with one character changed', csrf.slice(0, -1) + (csrf.endsWith('A') ? 'B' : 'A')]] as const) {
    const r = await cookieCall(w, cookie, 'POST', '/v1/admin/revocations', { body: REVOKE, ...(header !== undefined ? { csrf: header } : {}) });
    assert.equal(r.status, 403, what);
    assert.equal(r.body.error.code, 'TESSERA_CONSOLE_CSRF', what);
  }
  assert.equal(await tokenStillWorks(w, token), true, 'nothing was revoked');
  // Sign-out is a change too.
  const out = await cookieCall(w, cookie, 'DELETE', '/v1/console/session');
  assert.equal(out.status, 403);
  assert.equal(out.body.error.code, 'TESSERA_CONSOLE_CSRF');
  assert.equal((await cookieCall(w, cookie, 'GET', '/v1/admin/agents')).status, 200, 'the session still works');
  // With the session's token the same call works (the refusals above were the header, not the call).
  const ok = await cookieCall(w, cookie, 'POST', '/v1/admin/revocations', { body: REVOKE, csrf });
  assert.ok(ok.status === 200 || ok.status === 201, JSON.stringify(ok.body));
  assert.equal(await tokenStillWorks(w, token), false);
  // A cookie session never reads a secret value, even an admin's.
  const value = await cookieCall(w, cookie, 'GET', `/v1/admin/secrets/${READ_SECRET}`);
  assert.equal(value.status, 403);
  assert.equal(value.body.error.code, 'TESSERA_CONSOLE_SECRET_HIDDEN');
  await assertNoLeak(p, w); // the CSRF token is meant for the page; the cookie value is not
});

/** The attacker's page: credentialed fetches and a form post to Tessera, then a frame of the console. */
function attackerPage(tessera: string): string {
  const body = JSON.stringify(REVOKE);
  const name = body.slice(0, -2);
  return `<!doctype html><html lang="en"><head><title>attacker</title></head><body>
<iframe id="frame" src="${tessera}/ui/" title="console"></iframe>
<form id="f" method="POST" action="${tessera}/v1/admin/revocations" enctype="text/plain"><input name='${name}' value='"}'></form>
<pre id="out"></pre>
<script>
const out = [];
const T = ${JSON.stringify(tessera)};
const tries = [
  ['read agents', () => fetch(T + '/v1/admin/agents', { credentials: 'include' }).then((r) => r.text())],
  ['read session', () => fetch(T + '/v1/console/session', { credentials: 'include' }).then((r) => r.text())],
  ['json revoke', () => fetch(T + '/v1/admin/revocations', { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(body)} }).then((r) => r.text())],
  ['plain revoke (no-cors)', () => fetch(T + '/v1/admin/revocations', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: ${JSON.stringify(body)} }).then((r) => r.type + ':' + r.status)],
];
(async () => {
  for (const [what, f] of tries) {
    try { out.push(what + ' => read ' + (await f())); } catch (e) { out.push(what + ' => blocked'); }
  }
  document.getElementById('out').textContent = out.join('\\n');
  document.title = 'done';
})();
</script></body></html>`;
}

test('a page on another origin cannot use the session, even an origin in server.allowed_origins: no read, no change, no frame', async (t) => {
  if (skipWithoutChromium(t)) return;
  let tessera = '';
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(attackerPage(tessera));
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => evil.close(() => r())));
  const port = (evil.address() as { port: number }).port;
  // The attacker's origins are even allowed (CORS, Origin check): the session must still be unusable.
  const w = await startWorld({ server: { listen: '127.0.0.1:0', allowed_origins: [`http://127.0.0.1:${port}`, `http://localhost:${port}`] } });
  t.after(() => w.h.close());
  tessera = w.h.url;
  const token = await victim(w);

  // Same site: the cookie is sent, and Sec-Fetch-Site / the missing CSRF token refuse it; cross site: no cookie is sent at all.
  for (const [origin, refusal] of [[`http://127.0.0.1:${port}`, 'TESSERA_CONSOLE_CSRF'], [`http://localhost:${port}`, 'TESSERA_ADMIN_TOKEN_MISSING']] as const) {
    const p = await browser!.newPage();
    await signIn(p.page, tessera, w.h.adminToken);
    const fromTessera: { status: number; url: string; method: string }[] = [];
    p.page.on('response', (r) => {
      if (r.url().startsWith(`${tessera}/v1/`)) fromTessera.push({ status: r.status(), url: r.url(), method: r.request().method() });
    });
    await p.page.goto(`${origin}/`);
    await p.page.waitForFunction(() => document.title === 'done');
    const results = (await p.page.locator('#out').textContent())!.split('\n');
    assert.deepEqual(results.filter((r) => r.includes('=> read') && !r.includes('=> read opaque:0')), [], `${origin}: the attacker read an answer`);
    // The console refuses to be framed (frame-ancestors 'none', X-Frame-Options: DENY).
    const frame = p.page.frames().find((f) => f !== p.page.mainFrame());
    assert.ok(frame);
    assert.equal(await frame.locator('#token, [data-testid=signout]').count().catch(() => 0), 0, `${origin}: the console rendered in a frame`);
    // The form post, last: it navigates to Tessera's answer.
    const answered = p.page.waitForResponse((r) => r.url() === `${tessera}/v1/admin/revocations` && r.request().method() === 'POST' && r.request().resourceType() === 'document');
    await p.page.locator('#f').evaluate((f) => (f as HTMLFormElement).submit());
    const formAnswer = await answered;
    assert.ok(formAnswer.status() >= 400, `${origin}: the form post was accepted (${formAnswer.status()})`);
    const code = (JSON.parse(await formAnswer.text()) as { error: { code: string } }).error.code;
    assert.equal(code, refusal, origin);
    const accepted = fromTessera.filter((r) => r.method !== 'GET' && r.status < 400);
    assert.deepEqual(accepted, [], `${origin}: a change was accepted`);
    assert.equal(await tokenStillWorks(w, token), true, `${origin}: the agent was revoked by the attacker page`);
    await p.close();
  }
});

test('a refused sign-in shows the API code and its human message; a revoked operator token cannot sign in', async (t) => {
  if (skipWithoutChromium(t)) return;
  const w = await startWorld();
  t.after(() => w.h.close());
  const created = await w.h.admin('POST', '/v1/admin/operator-tokens', { name: 'soon-gone', role: 'admin', ttl: '1h' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  w.h.sensitive.add(created.body.token);
  assert.equal((await w.h.admin('DELETE', `/v1/admin/operator-tokens/${created.body.id}`)).status, 200);
  const cases: [string, string][] = [
    ['an unknown operator token', `tsr_admin_${randomBytes(32).toString('base64url')}`],
    ['a revoked operator token', created.body.token],
    ["an agent's token", w.orchestratorToken],
    ['not a token at all', 'hello world'],
  ];
  const p = await browser!.newPage();
  await p.page.goto(`${w.h.url}/ui/`);
  for (const [what, value] of cases) {
    // What the API says for this input is what the page must show.
    const api = await fetch(`${w.h.url}/v1/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: value }) });
    const expected = ((await api.json()) as { error: { code: string; message: string } }).error;
    assert.ok(api.status === 401 || api.status === 400, `${what}: ${api.status}`);
    assert.match(expected.code, /^TESSERA_[A-Z_]+$/);
    await p.page.getByLabel('Operator token').fill(value);
    await p.page.getByRole('button', { name: 'Sign in' }).click();
    await p.page.getByTestId('error-code').filter({ hasText: expected.code }).waitFor();
    assert.equal(await p.page.getByTestId('error').getByText(expected.message, { exact: false }).count() > 0, true, `${what}: message shown`);
    assert.equal(await p.page.getByTestId('signout').count(), 0, `${what}: signed in`);
  }
  await assertNoLeak(p, w);
});

test("an auditor's session may read but the API refuses it every change, even with the CSRF token", async (t) => {
  if (skipWithoutChromium(t)) return;
  const w = await startWorld();
  t.after(() => w.h.close());
  const auditor = await auditorToken(w);
  const p = await browser!.newPage();
  await signIn(p.page, w.h.url, auditor);
  await p.page.getByTestId('operator').filter({ hasText: 'auditor' }).waitFor();
  const cookie = await cookieHeader(p.context, w.h.url);
  const csrf = (await cookieCall(w, cookie, 'GET', '/v1/console/session')).body.csrf_token as string;
  assert.equal((await cookieCall(w, cookie, 'GET', '/v1/admin/agents')).status, 200);
  for (const [method, path, body] of [
    ['POST', '/v1/admin/revocations', { kind: 'agent', target: ORCHESTRATOR, reason: 'auditor tries' }],
    ['DELETE', `/v1/admin/leases/${w.leaseId}`, undefined],
    ['POST', '/v1/admin/operator-tokens', { name: 'sneaky', role: 'admin', ttl: '1h' }],
    ['PUT', `/v1/admin/secrets/${READ_SECRET}`, { value: 'overwritten-by-auditor', mode: 'read' }],
  ] as const) {
    const r = await cookieCall(w, cookie, method, path, { csrf, ...(body ? { body } : {}) });
    assert.equal(r.status, 403, `${method} ${path}`);
    assert.equal(r.body.error.code, 'TESSERA_ADMIN_ROLE_FORBIDDEN', `${method} ${path}`);
  }
  assert.equal(await tokenStillWorks(w, w.orchestratorToken), true);
  assert.equal((await w.h.agent(w.orchestratorToken, 'GET', `/v1/secrets/${READ_SECRET}`)).body.value !== 'overwritten-by-auditor', true);
  await assertNoLeak(p, w);
});

async function auditorToken(w: World): Promise<string> {
  const created = await w.h.admin('POST', '/v1/admin/operator-tokens', { name: 'ann.auditor', role: 'auditor', ttl: '1h' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  w.h.sensitive.add(created.body.token);
  return created.body.token as string;
}

test('an auditor sees no enabled kill switch on an agent page', { skip: PAGES_TODO }, async (t) => {
  if (skipWithoutChromium(t)) return;
  const w = await startWorld();
  t.after(() => w.h.close());
  const p = await browser!.newPage();
  await signIn(p.page, w.h.url, await auditorToken(w));
  await p.page.getByTestId('operator').filter({ hasText: 'auditor' }).waitFor();
  await p.page.goto(`${w.h.url}/ui/agents/detail?id=${encodeURIComponent(ORCHESTRATOR)}`);
  await p.page.getByTestId('agent-credentials').waitFor();
  const kill = p.page.getByTestId('kill-switch');
  assert.ok((await kill.count()) === 0 || (await kill.isDisabled()), 'the auditor has an enabled kill switch');
  await assertNoLeak(p, w);
});
