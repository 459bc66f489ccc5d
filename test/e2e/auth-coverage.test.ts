/**
 * Fail closed: every operator route refuses a request without the admin token, and every
 * agent route refuses a request without an agent token — checked over the route list the server
 * itself publishes (/v1/openapi.json), so a new route cannot forget its guard.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.js';

const PUBLIC = new Set([
  'GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /v1/openapi.json',
  'POST /v1/oauth/token', 'POST /v1/oauth/revoke',
  'GET /.well-known/jwks.json', 'GET /v1/bundle', 'GET /.well-known/oauth-authorization-server',
  'GET /.well-known/oauth-protected-resource/mcp',
  'GET /v1/proxy/ca.pem',
  // The console's files (index.html and its assets; the data behind them needs a session).
  'GET /ui', 'GET /ui/{path}',
  // Console sign-in: the operator token is the body (a wrong one is 401, tested in test/console); the config and OIDC redirects are public.
  'POST /v1/console/session', 'GET /v1/console/config', 'GET /v1/console/oidc/login', 'GET /v1/console/oidc/callback',
]);

test('every non-public route refuses requests without credentials, and with a wrong one', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const doc = (await (await fetch(`${h.url}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  let checked = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      const key = `${method.toUpperCase()} ${path}`;
      if (PUBLIC.has(key)) continue;
      const url = h.url + path.replace(/\{[^}]+\}/g, 'x');
      const hasBody = !['GET', 'DELETE'].includes(method.toUpperCase());
      const init = (auth?: string): RequestInit => ({
        method: method.toUpperCase(),
        headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...(auth ? { authorization: auth } : {}) },
        body: hasBody ? '{}' : undefined,
      });
      const none = await fetch(url, init());
      assert.equal(none.status, 401, `${key} without credentials answered ${none.status}`);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/, `${key}: no WWW-Authenticate`);
      const wrong = await fetch(url, init('Bearer tsr_admin_wrong-wrong-wrong-wrong-wrong'));
      assert.equal(wrong.status, 401, `${key} with a wrong token answered ${wrong.status}`);
      checked++;
    }
  }
  assert.ok(checked >= 20, `only ${checked} guarded routes found`);
});
