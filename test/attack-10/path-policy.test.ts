/**
 * Attack on issue 10 (finding A10-3, ADR 0220): a path that Cedar sees as one resource and the
 * upstream serves as another. Through the real proxy (src/main.ts, a real upstream on loopback),
 * a forbid on `context.http.path like "/base/admin*"` must hold for every spelling an upstream
 * normalises to /base/admin: percent-encoded unreserved characters, empty segments, dot-segments
 * with path parameters (Tomcat/Jetty `..;`). Each is refused with 400
 * TESSERA_PROXY_REQUEST_MALFORMED before authentication, reverse and forward, and never reaches
 * the upstream; the legitimate spellings still pass.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startHarness, type Harness } from '../e2e/harness.js';
import { call, policyDir, startUpstream, type Upstream } from '../proxy/helpers.js';

const AGENT = 'spiffe://tessera.local/agents/allowed-a';
const KEY = `sk-atk-${randomBytes(18).toString('hex')}`;
const POLICIES = `
@id("routes") permit (principal, action == Tessera::Action::"http.request", resource) when { principal.path like "/agents/allowed-*" };
@id("inject") permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"proxy") when { principal.path like "/agents/allowed-*" };
@id("no-admin") forbid (principal, action == Tessera::Action::"http.request", resource) when { context.http.path like "/base/admin*" || context.http.path like "/admin*" };
`;

let h: Harness;
let up: Upstream;
let proxy: string;
let token: string;

before(async () => {
  up = await startUpstream();
  h = await startHarness({
    policyDir: policyDir({ 'p.cedar': POLICIES }),
    config: { proxy: { listen: '127.0.0.1:0', routes: [{ name: 'echo', upstream: `${up.url}/base`, hosts: ['echo.test'], credential: { secret: 'proxy/k', header: 'x-api-key', format: '{value}' }, allow_private: ['127.0.0.1/32'] }] } },
  });
  h.sensitive.add(KEY);
  proxy = h.tessera.proxyUrl!;
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/proxy/k', { value: KEY, mode: 'inject' })).status, 200);
  token = await h.login(await h.joinToken(AGENT), `${h.tessera.url}/proxy`);
});

after(async () => {
  await h?.close();
  await up?.close();
});

/** Spellings an upstream reads as /admin…, and why the proxy refuses them. */
const BYPASSES: ReadonlyArray<readonly [string, RegExp]> = [
  ['/%61dmin', /percent-encodes a letter/],
  ['/%41DMIN', /percent-encodes a letter/],
  ['/adm%69n/x', /percent-encodes a letter/],
  ['/x/%2d', /percent-encodes/],
  ['/x/%7e', /percent-encodes/],
  ['/x/%5F', /percent-encodes/],
  ['/x/%30', /percent-encodes/],
  ['//admin', /empty path segment|"\/\/"/],
  ['/x//admin', /empty path segment/],
  ['/x/..;/admin', /dot-segment/],
  ['/x/..;jsessionid=1/admin', /dot-segment/],
  ['/x/.;/admin', /dot-segment/],
  ['/x/%2e%2e;/admin', /dot-segment/],
  ['/x/%2e%2e%3b/admin', /dot-segment/],
  ['/x/..%3bx/admin', /dot-segment/],
];

test('A10-3 reverse: every spelling that an upstream normalises past the policy is refused 400 TESSERA_PROXY_REQUEST_MALFORMED and never sent', async () => {
  for (const [path, why] of BYPASSES) {
    const before = up.seen.length;
    const r = await call(proxy, 'GET', `/echo${path}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(r.json?.error?.code, 'TESSERA_PROXY_REQUEST_MALFORMED', path);
    assert.match(r.json.error.message, why, path);
    assert.equal(up.seen.length, before, `${path} reached the upstream`);
  }
});

test('A10-3 forward (absolute-form): the same spellings are refused the same way', async () => {
  const pa = { 'proxy-authorization': `Bearer ${token}`, host: 'echo.test' };
  for (const [path, why] of BYPASSES) {
    if (path.startsWith('//')) continue; // `http://echo.test//admin`: checked below with a prefix
    const before = up.seen.length;
    const r = await call(proxy, 'GET', `http://echo.test${path}`, { headers: pa });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(r.json?.error?.code, 'TESSERA_PROXY_REQUEST_MALFORMED', path);
    assert.match(r.json.error.message, why, path);
    assert.equal(up.seen.length, before, `${path} reached the upstream`);
  }
  const r = await call(proxy, 'GET', 'http://echo.test//admin', { headers: pa });
  assert.equal(r.json?.error?.code, 'TESSERA_PROXY_REQUEST_MALFORMED');
});

test('A10-3 the plain spelling is denied by the policy, and legitimate paths still pass', async () => {
  const auth = { authorization: `Bearer ${token}` };
  const denied = await call(proxy, 'GET', '/echo/admin', { headers: auth });
  assert.equal(denied.status, 403);
  assert.equal(denied.json.error.code, 'TESSERA_PROXY_DENIED');
  for (const path of ['/echo/v1/items/', '/echo/v1/a%2Fb', '/echo/v1/%20x', '/echo/v1/caf%C3%A9', '/echo/v1/a;b=1', '/echo/v1/...', '/echo/v1/.well-known', '/echo/v1/x?q=%61']) {
    const r = await call(proxy, 'GET', path, { headers: auth });
    assert.equal(r.status, 200, `${path}: ${r.text}`);
  }
});
