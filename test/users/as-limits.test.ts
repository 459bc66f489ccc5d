/**
 * Bounds of the authorization server, with Tessera on a clock the test moves (the OpenID
 * Provider keeps real time; the login happens before the clock moves):
 * - revoking a refresh family (reuse, RFC 9700 §4.14.2) revokes only the tasks whose access
 *   tokens can still be live (opened within access_token_ttl + margin), however old the family;
 *   the live one is refused at once;
 * - the per-source login limit (tokens.login_rate_limit.per_source) covers /v1/oauth/authorize
 *   and /v1/oauth/callback before any work (no metadata document fetch, no login row).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ManualClock } from '../../src/shared/clock.js';
import { Browser } from './op.js';
import { startAsHarness, type AsHarness } from './harness.js';

const REDIRECT = 'http://127.0.0.1:53683/callback';
const BURST = 8;
const clock = new ManualClock(Date.now());
let h: AsHarness;
let clientId: string;

before(async () => {
  h = await startAsHarness({ clock, config: { tokens: { login_rate_limit: { per_source: { per_second: 1, burst: BURST } } } } });
  clientId = h.publish('limits.json', { client_id: `${h.docsUrl}/limits.json`, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
});
after(async () => {
  await h?.close();
});

async function token(params: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params) });
  const body = await res.json() as any;
  for (const k of ['access_token', 'refresh_token']) if (typeof body[k] === 'string') h.sensitive.add(body[k]);
  return { status: res.status, body };
}

const authorizeUrl = (challenge: string): URL => {
  const u = new URL(`${h.url}/v1/oauth/authorize`);
  const q = { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 's1', resource: h.url, scope: 'tool:docs/*' };
  for (const [k, v] of Object.entries(q)) u.searchParams.set(k, v);
  return u;
};

const whoami = async (accessToken: string): Promise<number> => (await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${accessToken}` } })).status;

test('a reused refresh token revokes the family and only the tasks that can still be live; the live one is refused at once', async () => {
  const verifier = randomBytes(32).toString('base64url');
  h.op.nextUser = 'alice';
  const r = await new Browser().follow(authorizeUrl(createHash('sha256').update(verifier).digest('base64url')), (u) => u.href.startsWith(REDIRECT));
  assert.ok(r.url, `${r.status} ${r.body?.slice(0, 200)}`);
  const code = r.url.searchParams.get('code')!;
  h.sensitive.add(code);
  const first = await token({ grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: REDIRECT, code_verifier: verifier, resource: h.url });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(await whoami(first.body.access_token), 200);

  // Long after the first access token expired (10 min + the 10 min margin), the client refreshes.
  clock.advance(21 * 60_000);
  assert.equal(await whoami(first.body.access_token), 401, 'expired by itself');
  const second = await token({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token, client_id: clientId });
  assert.equal(second.status, 200, JSON.stringify(second.body));
  assert.equal(await whoami(second.body.access_token), 200);

  const replay = await token({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token, client_id: clientId });
  assert.equal(replay.body.code, 'TESSERA_OAUTH_REFRESH_REUSED');
  assert.equal(await whoami(second.body.access_token), 401, 'the live task of the family is revoked');
  const next = await token({ grant_type: 'refresh_token', refresh_token: second.body.refresh_token, client_id: clientId });
  assert.equal(next.body.code, 'TESSERA_OAUTH_REFRESH_INVALID', 'the whole family is revoked');
  await h.tessera.audit.flush();
  const ev = (await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'oauth.refresh_revoked'")).map((e) => JSON.parse(e.body));
  const reuse = ev.find((e) => e.details.cause === 'reuse');
  assert.equal(reuse?.details.tasks, 1, 'only the task opened within the access token lifetime needs revoking');
  const revokedTasks = await h.tessera.store.all<{ target: string }>("SELECT target FROM revocations WHERE kind = 'task'");
  assert.deepEqual(revokedTasks.map((t) => t.target), [second.body.txn]);
});

test('the per-source login limit covers /v1/oauth/authorize and /v1/oauth/callback, before any work', async () => {
  clock.advance(60 * 60_000); // a full bucket
  const challenge = createHash('sha256').update('x'.repeat(43)).digest('base64url');
  for (let i = 0; i < BURST; i++) {
    const res = await fetch(authorizeUrl(challenge), { redirect: 'manual' });
    await res.arrayBuffer();
    assert.equal(res.status, 302, `request ${i + 1} is within the burst`);
  }
  const logins = await h.tessera.store.all<{ n: number }>('SELECT COUNT(*) AS n FROM oauth_logins');
  for (const path of ['/v1/oauth/authorize', '/v1/oauth/callback?state=abc&code=def']) {
    const res = await fetch(path.startsWith('/v1/oauth/authorize') ? authorizeUrl(challenge) : `${h.url}${path}`, { redirect: 'manual' });
    assert.equal(res.status, 429, path);
    const body = await res.json() as any;
    assert.equal(body.code, 'TESSERA_LOGIN_RATE_LIMITED', path);
    assert.ok(Number(res.headers.get('retry-after')) >= 1, 'Retry-After (RFC 9110 §10.2.3)');
  }
  const after = await h.tessera.store.all<{ n: number }>('SELECT COUNT(*) AS n FROM oauth_logins');
  assert.equal(Number(after[0]!.n), Number(logins[0]!.n), 'no login started when refused');
});
