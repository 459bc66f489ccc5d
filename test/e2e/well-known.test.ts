/**
 * Every URL the discovery documents publish (RFC 8414 authorization server metadata, RFC 9728
 * protected resource metadata) is one this Tessera serves, under its own issuer: no invented
 * project site or repository (the project has no public URL), no other host. Fetched from the
 * real server, resolved against the routes it publishes itself (/v1/openapi.json).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.js';

/** Every string value in `doc` that is an absolute URL, with its key. */
function urlsOf(doc: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(doc)) {
    for (const s of Array.isArray(v) ? v : [v]) if (typeof s === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(s)) out.push([k, s]);
  }
  return out;
}

test('every URL in the well-known metadata is served by this Tessera, under its issuer', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const issuer = h.tessera.url;
  const openapi = (await (await fetch(`${h.url}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const routes = new Set(Object.keys(openapi.paths));
  let checked = 0;
  for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/oauth-protected-resource/mcp']) {
    const res = await fetch(`${h.url}${path}`);
    assert.equal(res.status, 200, path);
    const doc = (await res.json()) as Record<string, unknown>;
    const urls = urlsOf(doc);
    assert.ok(urls.length >= 2, `${path}: ${JSON.stringify(doc)}`);
    for (const [key, url] of urls) {
      assert.ok(url === issuer || url.startsWith(`${issuer}/`), `${path} ${key}: ${url} is not under the issuer ${issuer}`);
      assert.doesNotMatch(url, /github\.com/, `${path} ${key}`);
      const local = url.slice(issuer.length) || '/';
      if (local === '/') continue; // the issuer itself (authorization_servers, issuer)
      assert.ok(routes.has(local), `${path} ${key}: ${url} names no route this server publishes`);
      checked++;
    }
    for (const key of Object.keys(doc).filter((k) => k.endsWith('_documentation'))) {
      const d = await fetch(`${h.url}${String(doc[key]).slice(issuer.length)}`);
      assert.equal(d.status, 200, `${path} ${key}: GET ${String(doc[key])} answered ${d.status}`);
    }
  }
  assert.ok(checked >= 6, `only ${checked} URLs checked`);
});
