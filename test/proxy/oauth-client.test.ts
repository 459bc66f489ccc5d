/**
 * OAuth client credentials for proxy routes (src/proxy/oauth-client.ts) against a REAL
 * authorization server (`oidc-provider` with the client_credentials grant, on 127.0.0.1):
 * client_secret_basic and client_secret_post, caching until expiry minus skew on a manual clock
 * (token requests counted at the AS), single flight, a wrong secret / wrong method / bad scope
 * (TESSERA_PROXY_OAUTH_FAILED naming the AS's error, never the secret), an unreachable endpoint,
 * non-token answers, the custom undici dispatcher, caller aborts, token URL validation.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { createClientCredentialsSource, validateTokenUrl } from '../../src/proxy/oauth-client.js';
import { createSsrfGuard } from '../../src/proxy/ssrf.js';
import { ManualClock } from '../../src/shared/clock.js';
import { isTesseraError, type TesseraError } from '../../src/shared/errors.js';
import { freePort } from '../users/op.js';
import { BASIC, POST, startAs } from './fixtures/oidc-as.js';

const as = await startAs();
after(() => as.close());

async function refusal(p: Promise<unknown>): Promise<TesseraError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isTesseraError(e), `a TesseraError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a refusal');
}

test('client_secret_basic (default): a token, cached until expires_in minus 10 %, then refreshed', async () => {
  as.requests.length = 0;
  as.ttl.s = 600;
  const clock = new ManualClock();
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret, scope: 'api:read' }, { clock });
  const t1 = await src.token();
  assert.ok(t1.accessToken.length > 20);
  assert.equal(t1.expiresAt, clock.now() + 600_000);
  assert.equal(as.requests.length, 1);
  // RFC 6749 §2.3.1: id and secret form-urlencoded, joined by ":", base64.
  const basic = /^Basic (.+)$/.exec(as.requests[0]!.authorization ?? '');
  assert.deepEqual(Buffer.from(basic![1]!, 'base64').toString().split(':').map(decodeURIComponent), [BASIC.id, BASIC.secret]);
  assert.doesNotMatch(as.requests[0]!.body, /client_secret/);
  assert.match(as.requests[0]!.body, /grant_type=client_credentials/);
  assert.match(as.requests[0]!.body, /scope=api%3Aread/);
  for (let i = 0; i < 5; i++) assert.equal((await src.token()).accessToken, t1.accessToken);
  clock.advance(539_999); // skew 60 s: refresh at 540 s
  assert.equal((await src.token()).accessToken, t1.accessToken);
  assert.equal(as.requests.length, 1);
  clock.advance(1);
  const t2 = await src.token();
  assert.notEqual(t2.accessToken, t1.accessToken);
  assert.equal(t2.expiresAt, clock.now() + 600_000);
  assert.equal(as.requests.length, 2);
});

test('a short lifetime refreshes at least 5 s early', async () => {
  as.requests.length = 0;
  as.ttl.s = 20;
  const clock = new ManualClock();
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret }, { clock });
  const t1 = await src.token();
  assert.equal(t1.expiresAt, clock.now() + 20_000);
  clock.advance(14_999);
  assert.equal((await src.token()).accessToken, t1.accessToken);
  clock.advance(1);
  assert.notEqual((await src.token()).accessToken, t1.accessToken);
  assert.equal(as.requests.length, 2);
  as.ttl.s = 600;
});

test('single flight: concurrent callers share one token request', async () => {
  as.requests.length = 0;
  const clock = new ManualClock();
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret }, { clock });
  const all = await Promise.all(Array.from({ length: 20 }, () => src.token()));
  assert.equal(new Set(all.map((t) => t.accessToken)).size, 1);
  assert.equal(as.requests.length, 1);
  clock.advance(600_000);
  const again = await Promise.all(Array.from({ length: 20 }, () => src.token()));
  assert.equal(new Set(again.map((t) => t.accessToken)).size, 1);
  assert.equal(as.requests.length, 2);
});

test('client_secret_post: the secret in the body, no Authorization header', async () => {
  as.requests.length = 0;
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: POST.id, clientSecret: async () => POST.secret, authMethod: 'client_secret_post' }, { clock: new ManualClock() });
  assert.ok((await src.token()).accessToken.length > 20);
  assert.equal(as.requests[0]!.authorization, undefined);
  assert.match(as.requests[0]!.body, new RegExp(`client_id=${POST.id}`));
  assert.match(as.requests[0]!.body, /client_secret=post-client-secret/);
});

test('a wrong secret, an unknown client, a scope not allowed: TESSERA_PROXY_OAUTH_FAILED with the AS\'s error, never the secret', async () => {
  const wrong = 'wrong-secret-value-do-not-echo-0123456789';
  const clock = new ManualClock();
  const e1 = await refusal(createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => wrong }, { clock }).token());
  assert.equal(e1.code, 'TESSERA_PROXY_OAUTH_FAILED');
  assert.equal(e1.status, 502);
  assert.deepEqual(e1.details, { error: 'invalid_client', status: 401 });
  assert.equal(e1.message, `the authorization server ${as.url} refused the client-credentials request: invalid_client (check the client id and secret)`);
  assert.ok(!JSON.stringify({ m: e1.message, d: e1.details, s: e1.stack }).includes(wrong));
  // A client id the AS does not know.
  const e2 = await refusal(createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: 'no-such-client', clientSecret: async () => POST.secret }, { clock }).token());
  assert.deepEqual([e2.code, e2.details?.error], ['TESSERA_PROXY_OAUTH_FAILED', 'invalid_client']);
  const e3 = await refusal(createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: POST.id, clientSecret: async () => POST.secret, authMethod: 'client_secret_post', scope: 'api:write' }, { clock }).token());
  assert.deepEqual([e3.code, e3.details?.error], ['TESSERA_PROXY_OAUTH_FAILED', 'invalid_scope']);
  // Failures are not cached: a fixed secret works on the next call.
  let secret = wrong;
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => secret }, { clock });
  await refusal(src.token());
  secret = BASIC.secret;
  assert.ok((await src.token()).accessToken.length > 20);
});

test('an unreachable token endpoint: TESSERA_PROXY_OAUTH_UNREACHABLE', async () => {
  const port = await freePort();
  const e = await refusal(createClientCredentialsSource({ tokenUrl: `http://127.0.0.1:${port}/token`, clientId: 'x', clientSecret: async () => 'secret-value-123456' }, { clock: new ManualClock() }).token());
  assert.equal(e.code, 'TESSERA_PROXY_OAUTH_UNREACHABLE');
  assert.deepEqual(e.details, { reason: 'network' });
  // A TesseraError from the secret source passes through.
  const { fail } = await import('../../src/shared/errors.js');
  const e2 = await refusal(createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: 'x', clientSecret: async () => { throw fail('TESSERA_SECRET_NOT_FOUND', 'no secret at kv/as/secret'); } }, { clock: new ManualClock() }).token());
  assert.equal(e2.code, 'TESSERA_SECRET_NOT_FOUND');
});

test('answers that are not a Bearer token response: invalid_response; an odd error code is not echoed', async () => {
  const answers: [number, string, string][] = [
    [200, 'application/json', '{"access_token":"abc","token_type":"mac"}'],
    [200, 'application/json', '{"token_type":"bearer"}'],
    [200, 'text/html', '<html>hi</html>'],
    [500, 'text/html', '<html>oops</html>'],
    [400, 'application/json', '{"error":"bad\\"code\\nx"}'],
  ];
  let i = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const [status, type, body] = answers[i++]!;
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  try {
    for (let k = 0; k < answers.length; k++) {
      const e = await refusal(createClientCredentialsSource({ tokenUrl: url, clientId: 'x', clientSecret: async () => 'secret-value-123456' }, { clock: new ManualClock() }).token());
      assert.deepEqual([e.code, e.details?.error], ['TESSERA_PROXY_OAUTH_FAILED', 'invalid_response'], `answer ${k}`);
    }
  } finally {
    server.close();
  }
});

test('the token request goes through the given undici dispatcher (the SSRF guard\'s)', async () => {
  as.requests.length = 0;
  let dispatched = 0;
  const agent = new Agent();
  const dispatcher: Dispatcher = agent.compose((dispatch) => (opts, handler) => {
    dispatched++;
    return dispatch(opts, handler);
  });
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret }, { clock: new ManualClock(), dispatcher });
  assert.ok((await src.token()).accessToken.length > 20);
  assert.equal(dispatched, 1);
  assert.equal(as.requests.length, 1);
  await agent.close();
});

test('a caller\'s abort ends its wait only; the shared request completes and is cached', async () => {
  as.requests.length = 0;
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret }, { clock: new ManualClock() });
  const ac = new AbortController();
  const waiting = src.token(ac.signal);
  const other = src.token();
  ac.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  const t = await other;
  assert.equal((await src.token()).accessToken, t.accessToken);
  assert.equal(as.requests.length, 1);
  // An already aborted signal on a source with nothing cached: refused at once.
  const fresh = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret }, { clock: new ManualClock() });
  await assert.rejects(fresh.token(AbortSignal.abort()), { name: 'AbortError' });
});

test('token URL validation: https, or http to loopback only; no userinfo or fragment', () => {
  assert.equal(validateTokenUrl('https://as.example/token'), undefined);
  assert.equal(validateTokenUrl('http://127.0.0.1:8080/token'), undefined);
  assert.equal(validateTokenUrl('http://[::1]/token'), undefined);
  assert.equal(validateTokenUrl('http://localhost/token'), undefined);
  assert.equal(validateTokenUrl('http://as.example/token'), 'must use https (http only to a loopback address)');
  assert.equal(validateTokenUrl('ftp://as.example/token'), 'must be an https URL');
  assert.equal(validateTokenUrl('https://u:p@as.example/token'), 'must not contain a user name or password');
  assert.equal(validateTokenUrl('https://as.example/token#x'), 'must not contain a fragment (RFC 6749 §3.2)');
  assert.equal(validateTokenUrl('/token'), 'not an absolute URL');
  assert.throws(() => createClientCredentialsSource({ tokenUrl: 'http://10.0.0.1/token', clientId: 'x', clientSecret: async () => 'x' }, { clock: new ManualClock() }), /credential\.oauth\.token_url must use https/);
});

test('through the real SSRF guard: a loopback AS is refused unless the route allows it', async () => {
  as.requests.length = 0;
  const guard = createSsrfGuard();
  const refused = await refusal(createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret }, { clock: new ManualClock(), dispatcher: guard.dispatcher({ allow: [] }) }).token());
  assert.equal(refused.code, 'TESSERA_PROXY_TARGET_FORBIDDEN');
  assert.equal(as.requests.length, 0);
  const allowed = guard.dispatcher({ allow: ['127.0.0.1/32'] });
  const src = createClientCredentialsSource({ tokenUrl: as.tokenUrl, clientId: BASIC.id, clientSecret: async () => BASIC.secret }, { clock: new ManualClock(), dispatcher: allowed });
  assert.ok((await src.token()).accessToken.length > 20);
  assert.equal(as.requests.length, 1);
  await allowed.close();
});
