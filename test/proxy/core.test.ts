/**
 * The injection proxy's core through the whole of Tessera (src/main.ts, real HTTP on loopback, a
 * real upstream): reverse and forward routes, header and query injection, stripping, scrubbing,
 * every authentication form and refusal, policy on context.http, bounds, upstream failures,
 * audit and the kill switch on a real keep-alive connection.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { TesseraError } from '../../src/shared/errors.js';
import { connect, createServer } from 'node:net';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, auditTexts, type Harness } from '../e2e/harness.js';
import { ManualClock } from '../../src/shared/clock.js';
import { exchange } from '../tasks/helpers.js';
import { makeProof, proofKey } from '../helpers/dpop.js';
import { call, policyDir, startUpstream, until, type Upstream } from './helpers.js';
import { runCli } from '../../src/cli/index.js';
import { runtime } from '../../src/main.js';

const run = promisify(execFile);
const TD = 'spiffe://tessera.local';
const AGENT = `${TD}/agents/allowed-a`;
const KILLED = `${TD}/agents/allowed-k`;
const OTHER = `${TD}/agents/denied-b`;
const TUNNEL = `${TD}/agents/allowed-t`;
const KEY = `sk-proxy-${randomBytes(18).toString('hex')}`;

const POLICIES = `
@id("proxy-routes")
permit (principal, action == Tessera::Action::"http.request", resource is Tessera::Route)
when { ["echo", "echoq", "bearer", "down"].contains(resource.name) && principal.trust_domain == "tessera.local" && principal.attestor == "join_token" && principal.path like "/agents/allowed-*" };

@id("proxy-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"proxy")
when { principal.trust_domain == "tessera.local" && principal.attestor == "join_token" && principal.path like "/agents/allowed-*" };

@id("proxy-tasks")
permit (principal, action == Tessera::Action::"token.delegate", resource)
when { principal.trust_domain == "tessera.local" && principal.attestor == "join_token" && context.depth < 1 };

@id("no-delete")
forbid (principal, action == Tessera::Action::"http.request", resource) when { context.http.method == "DELETE" };

@id("no-admin-path")
forbid (principal, action == Tessera::Action::"http.request", resource) when { context.http.path like "/base/admin*" };

@id("model-allowlist")
forbid (principal, action == Tessera::Action::"http.request", resource == Tessera::Route::"echo") when { context.http.body has model && context.http.body.model != "small" };

@id("no-inject-n")
forbid (principal, action == Tessera::Action::"secret.inject", resource) when { principal.path like "/agents/allowed-n*" };

@id("no-debug-query")
forbid (principal, action == Tessera::Action::"http.request", resource) when { context.http.query_keys.contains("debug") };
`;

let h: Harness;
let up: Upstream;
let proxy: string;
let issuer: string;
let token: string;
const clock = new ManualClock(Date.now());

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const basic = (t: string) => ({ 'proxy-authorization': `Basic ${Buffer.from(`agent:${t}`).toString('base64')}` });
/** The proxy.request events of the JSONL sink (one line per event). */
const proxyEvents = async () => (await auditTexts(h)).filter((e) => e.kind === 'proxy.request' && e.text.startsWith('{"seq"'));

before(async () => {
  up = await startUpstream();
  const down = await closedPort();
  const secret = { secret: 'proxy/echo-key' };
  h = await startHarness({
    clock,
    policyDir: policyDir({ 'proxy.cedar': POLICIES }),
    config: {
      proxy: {
        listen: '127.0.0.1:0', max_request_bytes: '2KB', timeout: '1s',
        routes: [
          { name: 'echo', upstream: `${up.url}/base`, hosts: ['echo.test'], credential: { ...secret, header: 'x-api-key', format: '{value}' }, strip_headers: ['x-agent-secret'], body_fields: ['model'], allow_private: ['127.0.0.1/32'] },
          { name: 'echoq', upstream: `${up.url}/base`, hosts: ['echoq.test'], credential: { ...secret, query: 'api_key' }, allow_private: ['127.0.0.1/32'] },
          { name: 'bearer', upstream: up.url, hosts: ['bearer.test'], credential: secret, allow_private: ['127.0.0.1/32'] },
          { name: 'down', upstream: `http://127.0.0.1:${down}`, hosts: ['down.test'], credential: secret, allow_private: ['127.0.0.1/32'] },
          { name: 'closed', upstream: up.url, hosts: ['closed.test'], credential: secret, allow_private: ['127.0.0.1/32'] },
        ],
      },
    },
  });
  h.sensitive.add(KEY);
  proxy = h.tessera.proxyUrl!;
  issuer = h.tessera.url;
  const put = await h.admin('PUT', '/v1/admin/secrets/proxy/echo-key', { value: KEY, mode: 'inject' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  token = await h.login(await h.joinToken(AGENT), `${issuer}/proxy`);
});

after(async () => {
  await h?.close();
  await up?.close();
});

test('reverse route: the kv secret goes in the configured header; the agent\'s token and Authorization never reach the upstream', async () => {
  const r = await call(proxy, 'GET', '/echo/v1/items?x=1&y=%2F', { headers: bearer(token) });
  assert.equal(r.status, 200, r.text);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.url, '/base/v1/items?x=1&y=%2F', 'base path joined, query and percent-encoding kept');
  assert.equal(seen.headers['x-api-key'], KEY);
  assert.equal(seen.headers.authorization, undefined);
  assert.equal(seen.headers['accept-encoding'], 'identity');
  assert.equal(r.headers['x-upstream'], 'yes');
  assert.ok(!r.text.includes(token));
});

test('query injection: the secret goes in the configured parameter, replacing one the agent sent', async () => {
  const r = await call(proxy, 'GET', '/echoq/v1/items?x=1&api_key=mine', { headers: bearer(token) });
  assert.equal(r.status, 200, r.text);
  const u = new URL(up.seen.at(-1)!.url, 'http://x');
  assert.deepEqual(u.searchParams.getAll('api_key'), [KEY]);
  assert.equal(u.searchParams.get('x'), '1');
  assert.equal(u.pathname, '/base/v1/items');
});

test('default credential placement: Authorization: Bearer <secret>, replacing the agent\'s', async () => {
  const r = await call(proxy, 'GET', '/bearer/anything', { headers: { ...bearer(token) } });
  assert.equal(r.status, 200, r.text);
  assert.equal(up.seen.at(-1)!.headers.authorization, `Bearer ${KEY}`);
});

test('the agent never sees the key: a response echoing it (plain, split across writes, base64) is scrubbed', async () => {
  for (const path of ['/echo/echo-key', '/echoq/echo-key']) {
    const r = await call(proxy, 'GET', path, { headers: bearer(token) });
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.text.includes(KEY), `${path}: key in the response: ${r.text}`);
    assert.ok(!r.text.includes(Buffer.from(KEY).toString('base64')), `${path}: base64 key in the response`);
    assert.match(r.text, /REDACTED/);
    assert.equal(r.headers['content-length'], undefined, 'length is not passed on: scrubbing may change it');
  }
});

test('an answer with a Content-Length is scrubbed whole at its last byte: in one piece it is sent with its scrubbed length, cut in two it streams', async () => {
  const one = await call(proxy, 'GET', '/echo/echo-key-length', { headers: bearer(token) });
  assert.equal(one.status, 200, one.text);
  assert.ok(!one.text.includes(KEY) && !one.text.includes(Buffer.from(KEY).toString('base64')), one.text);
  assert.deepEqual(one.json, { echo: '[REDACTED:plain]', b64: '[REDACTED:base64]' });
  assert.equal(one.headers['content-length'], String(Buffer.byteLength(one.text)), 'the length of what is sent, not the upstream\'s');
  assert.equal(one.headers['transfer-encoding'], undefined);
  const split = await call(proxy, 'GET', '/echo/echo-key-length?split=1', { headers: bearer(token) });
  assert.equal(split.status, 200, split.text);
  assert.equal(split.text, one.text, 'the key cut across the two pieces is redacted the same');
  assert.equal(split.headers['content-length'], undefined, 'streamed: the head went with the first piece');
});

test('a large answer to an agent that stops reading is not buffered: the upstream is held back, then every byte arrives', async () => {
  const u = new URL(proxy);
  const mb = 64;
  const stalled: number[] = [];
  const got = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path: `/bearer/big?id=bp&mb=${mb}`, headers: bearer(token), agent: false }, (res) => {
      res.pause();
      // The agent reads nothing for a while: what the upstream wrote stops growing, far short of the whole.
      const look = (): void => void stalled.push(up.streams.get('bp')?.written ?? 0);
      setTimeout(look, 600);
      setTimeout(() => {
        look();
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(n));
        res.on('error', reject);
        res.resume();
      }, 800);
    });
    req.on('error', reject);
    req.end();
  });
  const st = up.streams.get('bp')!;
  assert.equal(got, mb * 1024 * 1024, 'every byte arrived');
  assert.ok(st.ended && !st.cut);
  assert.equal(stalled[0], stalled[1], `the upstream was held back while the agent did not read (${stalled.join(' → ')} bytes written)`);
  assert.ok(stalled[1]! < mb * 1024 * 1024, `held back before the end: ${stalled[1]} of ${mb} MiB written`);
});

test('an agent that goes away mid-answer: the upstream request is cut at once and the audit event says aborted', async () => {
  const u = new URL(proxy);
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path: '/bearer/slow?id=gone', headers: bearer(token), agent: false }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined);
    req.setTimeout(5000, () => reject(new Error('no first line')));
    req.end();
  });
  await until(() => up.streams.get('gone')?.cut === true, 'the upstream connection closed before its end');
  assert.ok(up.streams.get('gone')!.written < 100, `cut early: ${up.streams.get('gone')!.written} lines`);
  await until(async () => (await proxyEvents()).some((e) => e.text.includes('"path_template":"/slow"') && e.text.includes('"aborted":true')), 'the aborted request audited');
});

test('a HEAD answer: status and headers, no body and no Content-Length of the proxy\'s', async () => {
  const head = await call(proxy, 'HEAD', '/bearer/v1/items', { headers: bearer(token) });
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assert.equal(head.headers['x-upstream'], 'yes');
  assert.equal(head.headers['content-length'], undefined);
});

test('agent-sent credentials are stripped: Cookie, Proxy-Authorization, the credential header, strip_headers', async () => {
  const r = await call(proxy, 'POST', '/echo/v1/things', {
    headers: { ...basic(token), authorization: 'Bearer agent-upstream-token', cookie: 'session=agent', 'x-api-key': 'agent-own-key', 'x-agent-secret': 'nope', 'x-kept': 'yes', 'content-type': 'application/json' },
    body: '{"hello":1}',
  });
  assert.equal(r.status, 200, r.text);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.headers['x-api-key'], KEY);
  for (const h of ['authorization', 'cookie', 'proxy-authorization', 'x-agent-secret']) assert.equal(seen.headers[h], undefined, h);
  assert.equal(seen.headers['x-kept'], 'yes');
  assert.equal(seen.body, '{"hello":1}');
});

test('forward proxy (absolute-form HTTP) with the token as the proxy URL password: curl -x http://agent:<token>@proxy', async () => {
  const u = new URL(proxy);
  const { stdout } = await run('curl', ['-sS', '-x', `http://agent:${token}@${u.host}`, '-w', '\n%{http_code}', 'http://echo.test/v1/fwd?q=1']);
  const [body, status] = [stdout.slice(0, stdout.lastIndexOf('\n')), stdout.slice(stdout.lastIndexOf('\n') + 1)];
  assert.equal(status, '200', body);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.url, '/v1/fwd?q=1', 'forward requests keep their own path');
  assert.equal(seen.headers['x-api-key'], KEY);
  assert.equal(seen.headers['proxy-authorization'], undefined);
  // Proxy-Authorization: Bearer works too
  const b = await call(proxy, 'GET', 'http://bearer.test/x', { headers: { 'proxy-authorization': `Bearer ${token}`, host: 'bearer.test' } });
  assert.equal(b.status, 200, b.text);
});

test('forward proxy refusals: no token → 407 with Proxy-Authenticate; malformed; unrouted host → 403 TESSERA_PROXY_NO_ROUTE', async () => {
  const none = await call(proxy, 'GET', 'http://echo.test/x', { headers: { host: 'echo.test' } });
  assert.equal(none.status, 407);
  assert.equal(none.json.error.code, 'TESSERA_PROXY_AUTH_REQUIRED');
  assert.match(String(none.headers['proxy-authenticate']), /Basic realm="tessera-proxy"/);
  // A forward request's Authorization is meant for the upstream, never read as Tessera's.
  const auth = await call(proxy, 'GET', 'http://echo.test/x', { headers: { host: 'echo.test', ...bearer(token) } });
  assert.equal(auth.status, 407);
  for (const v of ['Digest abc', 'Basic !!!', `Basic ${Buffer.from('no-colon').toString('base64')}`, 'Bearer']) {
    const r = await call(proxy, 'GET', 'http://echo.test/x', { headers: { host: 'echo.test', 'proxy-authorization': v } });
    assert.equal(r.status, 407, v);
    assert.equal(r.json.error.code, 'TESSERA_PROXY_AUTH_MALFORMED', v);
  }
  const unrouted = await call(proxy, 'GET', 'http://example.invalid/x', { headers: { host: 'example.invalid', ...basic(token) } });
  assert.equal(unrouted.status, 403);
  assert.equal(unrouted.json.error.code, 'TESSERA_PROXY_NO_ROUTE');
  assert.match(unrouted.json.error.message, /example\.invalid/);
  const https = await call(proxy, 'GET', 'https://echo.test/x', { headers: { host: 'echo.test', ...basic(token) } });
  assert.equal(https.json.error.code, 'TESSERA_PROXY_PATH_INVALID');
});

test('reverse refusals: no token → 401 with WWW-Authenticate; wrong audience; unknown route; CONNECT to an unrouted host without a permit', async () => {
  const none = await call(proxy, 'GET', '/echo/x');
  assert.equal(none.status, 401);
  assert.equal(none.json.error.code, 'TESSERA_TOKEN_MISSING');
  assert.match(String(none.headers['www-authenticate']), /^Bearer realm="tessera-proxy"/);
  const apiToken = await h.login(await h.joinToken(AGENT)); // audience: the API, not the proxy
  const wrong = await call(proxy, 'GET', '/echo/x', { headers: bearer(apiToken) });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.error.code, 'TESSERA_TOKEN_AUDIENCE_INVALID');
  assert.match(String(wrong.headers['www-authenticate']), /error="invalid_token"/);
  const fwdWrong = await call(proxy, 'GET', 'http://echo.test/x', { headers: { host: 'echo.test', ...basic(apiToken) } });
  assert.equal(fwdWrong.status, 407);
  assert.equal(fwdWrong.json.error.code, 'TESSERA_TOKEN_AUDIENCE_INVALID');
  const garbage = await call(proxy, 'GET', '/echo/x', { headers: bearer('not.a.token') });
  assert.equal(garbage.status, 401);
  const unknown = await call(proxy, 'GET', '/nope/x', { headers: bearer(token) });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json.error.code, 'TESSERA_PROXY_ROUTE_NOT_FOUND');
  // CONNECT to a host no route serves, without a tunnel permit: refused with its code (raw socket).
  const u = new URL(proxy);
  const raw = await new Promise<string>((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => s.write(`CONNECT elsewhere.example:443 HTTP/1.1\r\nhost: elsewhere.example:443\r\nproxy-authorization: Bearer ${token}\r\n\r\n`));
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('utf8')));
    s.on('end', () => resolve(text));
    s.on('close', () => resolve(text));
    s.on('error', reject);
  });
  assert.match(raw, /^HTTP\/1\.1 403 /);
  assert.match(raw, /TESSERA_PROXY_TUNNEL_DENIED/);
  // Every 407 to a CONNECT carries the challenge (RFC 9110 §15.5.8): no credential, a malformed one, a refused token.
  for (const auth of ['', 'proxy-authorization: Digest x\r\n', 'proxy-authorization: Basic !!!\r\n', 'proxy-authorization: Bearer not-a-token\r\n']) {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(u.port), u.hostname, () => s.write(`CONNECT echo.test:443 HTTP/1.1\r\nhost: echo.test:443\r\n${auth}\r\n`));
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString('utf8')));
      s.on('end', () => resolve(text));
      s.on('close', () => resolve(text));
      s.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 407 /, auth);
    assert.match(answer, /\r\nproxy-authenticate: Bearer realm="tessera", Basic realm="tessera"\r\n/i, auth);
  }
});

test('paths that would escape the base path, and bad methods, are refused with their codes', async () => {
  // Request hygiene (hygiene.ts) refuses them before the route mapping (checkPath, units.test.ts) would.
  for (const p of ['/echo/../secret', '/echo/a/%2e%2e/b', '/echo/%2E/x', '/echo/a%zz', '/echo/a\\b']) {
    const r = await call(proxy, 'GET', p, { headers: bearer(token) });
    assert.equal(r.status, 400, p);
    assert.equal(r.json.error.code, 'TESSERA_PROXY_REQUEST_MALFORMED', p);
  }
  const trace = await call(proxy, 'TRACE', '/echo/x', { headers: bearer(token) });
  assert.equal(trace.json.error.code, 'TESSERA_PROXY_METHOD_INVALID');
});

test('policy on context.http: method, path, query keys and the JSON body field (model allowlist)', async () => {
  const del = await call(proxy, 'DELETE', '/echo/v1/items/1', { headers: bearer(token) });
  assert.equal(del.status, 403);
  assert.equal(del.json.error.code, 'TESSERA_PROXY_DENIED');
  assert.ok(del.json.error.details.policies.includes('no-delete'));
  assert.equal((await call(proxy, 'GET', '/echo/admin/users', { headers: bearer(token) })).json.error.code, 'TESSERA_PROXY_DENIED');
  assert.equal((await call(proxy, 'GET', '/echo/v1/x?debug=1', { headers: bearer(token) })).json.error.code, 'TESSERA_PROXY_DENIED');
  const json = { ...bearer(token), 'content-type': 'application/json' };
  const big = await call(proxy, 'POST', '/echo/v1/chat', { headers: json, body: JSON.stringify({ model: 'big', messages: [] }) });
  assert.equal(big.status, 403);
  assert.ok(big.json.error.details.policies.includes('model-allowlist'));
  const small = await call(proxy, 'POST', '/echo/v1/chat', { headers: json, body: JSON.stringify({ model: 'small', messages: [] }) });
  assert.equal(small.status, 200, small.text);
  assert.equal(JSON.parse(up.seen.at(-1)!.body).model, 'small', 'the body read for policy is forwarded whole');
  const bad = await call(proxy, 'POST', '/echo/v1/chat', { headers: json, body: '{"model": ' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'TESSERA_PROXY_BODY_INVALID');
  // Another agent: no permit.
  const other = await h.login(await h.joinToken(OTHER), `${issuer}/proxy`);
  const o = await call(proxy, 'GET', '/echo/v1/items', { headers: bearer(other) });
  assert.equal(o.status, 403);
  assert.equal(o.json.error.code, 'TESSERA_PROXY_DENIED');
  // A route no policy permits at all.
  assert.equal((await call(proxy, 'GET', '/closed/x', { headers: bearer(token) })).json.error.code, 'TESSERA_PROXY_DENIED');
});

test('task tokens: scope http:<route> is required for the route', async () => {
  // The subject token is the agent's proxy token: a task is usable only where what it derives from is.
  const agentApi = token;
  const ok = await exchange(h, { subject_token: agentApi, scope: 'http:echo secret:proxy/**', purpose: 'proxy test', audience: `${issuer}/proxy` });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal((await call(proxy, 'GET', '/echo/v1/items', { headers: bearer(ok.body.access_token) })).status, 200);
  const narrow = await exchange(h, { subject_token: agentApi, scope: 'http:echoq secret:proxy/**', purpose: 'proxy test', audience: `${issuer}/proxy` });
  assert.equal(narrow.status, 200, JSON.stringify(narrow.body));
  const r = await call(proxy, 'GET', '/echo/v1/items', { headers: bearer(narrow.body.access_token) });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
  assert.equal(r.json.error.details.scope, 'http:echo');
  // The credential's own scope too: http:echo without secret:proxy/** cannot inject the key.
  const noSecret = await exchange(h, { subject_token: agentApi, scope: 'http:echo', purpose: 'proxy test', audience: `${issuer}/proxy` });
  const s = await call(proxy, 'GET', '/echo/v1/items', { headers: bearer(noSecret.body.access_token) });
  assert.equal(s.status, 403);
  assert.equal(s.json.error.code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
});

test('DPoP-bound token: refused as Bearer (no proof), accepted with a proof for the proxy URL', async () => {
  const key = proofKey();
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await h.joinToken(AGENT), subject_token_type: 'urn:tessera:token-type:join-token', audience: `${issuer}/proxy` });
  const res = await fetch(`${issuer}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: makeProof(key, { htm: 'POST', htu: `${issuer}/v1/oauth/token` }) }, body: form });
  const body = (await res.json()) as { access_token: string; token_type: string };
  assert.equal(body.token_type, 'DPoP');
  h.sensitive.add(body.access_token);
  const noProof = await call(proxy, 'GET', '/echo/v1/items', { headers: bearer(body.access_token) });
  assert.equal(noProof.status, 401);
  assert.equal(noProof.json.error.code, 'TESSERA_DPOP_TOKEN_BOUND');
  assert.match(String(noProof.headers['www-authenticate']), /^DPoP /);
  const proof = makeProof(key, { htm: 'GET', htu: `${proxy}/echo/v1/items`, token: body.access_token });
  const ok = await call(proxy, 'GET', '/echo/v1/items', { headers: { authorization: `DPoP ${body.access_token}`, dpop: proof } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(up.seen.at(-1)!.headers.dpop, undefined, 'the proof is not passed upstream');
});

test('request body over proxy.max_request_bytes → 413 (declared length and streamed chunked)', async () => {
  const big = 'x'.repeat(3000);
  const declared = await call(proxy, 'POST', '/echo/v1/upload', { headers: { ...bearer(token), 'content-type': 'text/plain', 'content-length': String(big.length) }, body: big });
  assert.equal(declared.status, 413);
  assert.equal(declared.json.error.code, 'TESSERA_PROXY_BODY_TOO_LARGE');
  const chunked = await call(proxy, 'POST', '/bearer/v1/upload', { headers: { ...bearer(token), 'content-type': 'text/plain', 'transfer-encoding': 'chunked' }, body: big }); // a route without body_fields: streamed
  assert.equal(chunked.status, 413);
  assert.equal(chunked.json.error.code, 'TESSERA_PROXY_BODY_TOO_LARGE');
  const json = await call(proxy, 'POST', '/echo/v1/chat', { headers: { ...bearer(token), 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: JSON.stringify({ model: 'small', pad: big }) });
  assert.equal(json.json.error.code, 'TESSERA_PROXY_BODY_TOO_LARGE');
});

test('the agent\'s Tessera token never travels upstream: SDK API-key headers are stripped; elsewhere in a header or the query it is refused (A10-7)', async () => {
  // Headers the SDKs put an "API key" in: stripped (the agent holds no upstream credential of its own).
  const sdkHeaders = ['x-api-key', 'api-key', 'x-goog-api-key', 'private-token', 'ocp-apim-subscription-key', 'x-functions-key', 'x-auth-token', 'x-amz-security-token'];
  const r = await call(proxy, 'GET', '/bearer/v1/models', { headers: { ...bearer(token), ...Object.fromEntries(sdkHeaders.map((n) => [n, token])) } });
  assert.equal(r.status, 200, r.text);
  const seen = up.seen.at(-1)!;
  for (const n of sdkHeaders) assert.equal(seen.headers[n], undefined, n);
  assert.ok(!JSON.stringify(seen.headers).includes(token));
  // Anywhere else: refused with where it was, never forwarded.
  const before = up.seen.length;
  const cases: [string, Record<string, string>, string][] = [
    ['/bearer/v1/models', { 'x-custom-key': token }, 'header'],
    ['/bearer/v1/models', { 'x-custom-key': `Token ${token}` }, 'header'],
    [`/bearer/v1/models?key=${token}`, {}, 'query'],
    [`/bearer/v1/models?key=${encodeURIComponent(token).replace(/-/g, '%2D').replace(/_/g, '%5F')}`, {}, 'query'],
    [`/bearer/v1/models?a=1&key=x${token}y`, {}, 'query'],
  ];
  for (const [path, headers, where] of cases) {
    const refused = await call(proxy, 'GET', path, { headers: { ...bearer(token), ...headers } });
    assert.equal(refused.status, 400, `${path} ${JSON.stringify(Object.keys(headers))}: ${refused.text}`);
    assert.equal(refused.json.error.code, 'TESSERA_PROXY_TOKEN_FORWARDED');
    assert.equal(refused.json.error.details.where, where);
    assert.ok(!refused.text.includes(token), 'the answer never echoes the token');
  }
  assert.equal(up.seen.length, before, 'nothing reached the upstream');
});

/** Sends a request head and the first bytes of a longer body, then stalls; resolves with the raw answer. */
function stalledBody(path: string, headers: Record<string, string>): Promise<string> {
  const u = new URL(proxy);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      const head = Object.entries({ host: u.host, 'content-length': '100', ...headers }).map(([k, v]) => `${k}: ${v}`).join('\r\n');
      sock.write(`POST ${path} HTTP/1.1\r\n${head}\r\n\r\n{"model":"small",`);
    });
    let text = '';
    sock.setEncoding('utf8');
    // The proxy closes the connection after a 408 (the rest of the body will never be read).
    sock.on('data', (c: string) => (text += c));
    sock.on('close', () => resolve(text));
    sock.on('error', reject);
  });
}

test('a request body reaches the upstream byte for byte whether it had all arrived before forwarding (sent with the head) or comes later (streamed)', async () => {
  const body = `{"text":"${'é'.repeat(300)} ${randomBytes(8).toString('hex')}"}`;
  const whole = await call(proxy, 'POST', '/bearer/v1/upload', { headers: { ...bearer(token), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body });
  assert.equal(whole.status, 200, whole.text);
  assert.equal(up.seen.at(-1)!.body, body);
  // The head first, the body 300 ms later (the request is authorized and forwarded before it arrives).
  const u = new URL(proxy);
  const raw = await new Promise<string>((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname);
    let got = '';
    sock.on('data', (c: Buffer) => {
      got += c.toString('utf8');
      if (/\r\n\r\n[\s\S]*\}$/.test(got)) sock.end();
    });
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
    sock.write(`POST /bearer/v1/upload HTTP/1.1\r\nhost: ${u.host}\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`);
    setTimeout(() => sock.write(body.slice(10)), 300);
  });
  assert.match(raw, /^HTTP\/1\.1 200 /, raw.slice(0, 300));
  assert.equal(up.seen.at(-1)!.body, body);
});

test('a request body that stalls for proxy.timeout → 408 TESSERA_PROXY_BODY_TIMEOUT (streamed and read-for-policy bodies; A10-6)', async () => {
  const seenBefore = up.seen.length;
  for (const [path, type] of [['/bearer/v1/upload', 'text/plain'], ['/echo/v1/chat', 'application/json']] as const) {
    const raw = await stalledBody(path, { ...bearer(token), 'content-type': type });
    assert.match(raw, /^HTTP\/1\.1 408 /, `${path}: ${raw.slice(0, 200)}`);
    assert.match(raw, /"code":"TESSERA_PROXY_BODY_TIMEOUT"/);
    assert.match(raw, /proxy\.timeout/);
    assert.match(raw, /\r\nconnection: close\r\n/i);
  }
  // The read-for-policy body stalled before anything was sent upstream.
  assert.ok(up.seen.slice(seenBefore).every((s) => !s.url.includes('/v1/chat')), 'nothing of the stalled JSON body reached the upstream');
});

test('upstream down → 502 TESSERA_PROXY_UPSTREAM_UNAVAILABLE; no answer → 504 TESSERA_PROXY_UPSTREAM_TIMEOUT; redirects are not followed', async () => {
  const down = await call(proxy, 'GET', '/down/x', { headers: bearer(token) });
  assert.equal(down.status, 502);
  assert.equal(down.json.error.code, 'TESSERA_PROXY_UPSTREAM_UNAVAILABLE');
  const hang = await call(proxy, 'GET', '/echo/hang', { headers: bearer(token) });
  assert.equal(hang.status, 504);
  assert.equal(hang.json.error.code, 'TESSERA_PROXY_UPSTREAM_TIMEOUT');
  const redirect = await call(proxy, 'GET', '/echo/redirect', { headers: bearer(token) });
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.location, 'http://169.254.169.254/latest/meta-data/');
  // A same-origin redirect under the base path is mapped back to the reverse route.
  const same = await call(proxy, 'GET', '/echo/redirect-same', { headers: bearer(token) });
  assert.equal(same.status, 301);
  assert.equal(same.headers.location, '/echo/v1/next?x=1');
});

test('audit: one proxy.request event per authenticated request, with route, status and credential reference, never a secret', async () => {
  const before = (await proxyEvents()).length;
  await call(proxy, 'GET', '/echo/v1/audited/12345678?token=abc', { headers: bearer(token) });
  await call(proxy, 'DELETE', '/echo/v1/audited', { headers: bearer(token) });
  await call(proxy, 'GET', '/echo/v1/audited'); // unauthenticated: the pipeline audits auth.token_refused instead
  const events = await proxyEvents();
  assert.equal(events.length - before, 2);
  const [okEvent, deniedEvent] = events.slice(-2).map((e) => (JSON.parse(e.text) as { event: any }).event);
  assert.equal(okEvent.details.route, 'echo');
  assert.equal(okEvent.details.status, 200);
  assert.equal(okEvent.details.credential, 'kv/proxy/echo-key');
  assert.equal(okEvent.details.path_template, '/base/v1/audited/{id}');
  assert.equal(okEvent.result, 'success');
  assert.equal(deniedEvent.result, 'deny');
  assert.equal(deniedEvent.details.status, 403);
  for (const e of await auditTexts(h)) {
    assert.ok(!e.text.includes(KEY), `key in audit: ${e.kind}`);
    assert.ok(!e.text.includes(token), `token in audit: ${e.kind}`);
    assert.ok(!e.text.includes('token=abc'), 'query values are not audited');
  }
});

test('the injected key never reaches the agent in response headers or a mapped Location (header and query credentials)', async () => {
  for (const route of ['echo', 'echoq']) {
    const r = await call(proxy, 'GET', `/${route}/v1/echo-key-headers`, { headers: bearer(token) });
    assert.equal(r.status, 302, route);
    const all = JSON.stringify(r.headers);
    assert.ok(!all.includes(KEY), `${route}: key in response headers: ${all}`);
    assert.ok(!all.includes(encodeURIComponent(KEY)), route);
    assert.match(String(r.headers['x-echo']), /REDACTED/, route);
    assert.match(String(r.headers['location']), new RegExp(`^/${route}/next\\?api_key=`), route);
  }
});

test('body fields: policy and upstream read one body — duplicate names, non-scalar values and non-JSON bodies are refused', async () => {
  const post = (body: string, type: string) => call(proxy, 'POST', '/echo/v1/chat', { headers: { ...bearer(token), 'content-type': type }, body });
  const dup = await post('{"model":"big","model":"small"}', 'application/json');
  assert.equal(dup.status, 400);
  assert.equal((dup.json as any).error.code, 'TESSERA_PROXY_BODY_INVALID');
  const arr = await post('{"model":["big"]}', 'application/json');
  assert.equal(arr.status, 400);
  assert.equal((arr.json as any).error.code, 'TESSERA_PROXY_BODY_INVALID');
  for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
    const r = await post('{"model":"big"}', type);
    assert.equal(r.status, 400, type);
    assert.equal((r.json as any).error.code, 'TESSERA_PROXY_BODY_INVALID', type);
    assert.match((r.json as any).error.message, /must be JSON/, type);
  }
  const ok = await post('{"model":"small","n":1}', 'application/json');
  assert.equal(ok.status, 200, ok.text);
});

test('query credential: the agent\'s own value of the parameter is dropped whatever its spelling', async () => {
  const before = up.seen.length;
  for (const q of ['api_key=mine', 'api%5Fkey=mine', 'api%5fkey=mine&x=1', 'api_key=mine&api_key=again']) {
    const r = await call(proxy, 'GET', `/echoq/v1/q?${q}`, { headers: bearer(token) });
    assert.equal(r.status, 200, q);
  }
  for (const s of up.seen.slice(before)) {
    const params = [...new URL(s.url, 'http://x').searchParams.entries()].filter(([k]) => k === 'api_key');
    assert.deepEqual(params, [['api_key', KEY]], s.url);
    assert.ok(!s.url.includes('mine'), s.url);
  }
});

test('admin API: routes without secrets; what-if of reverse, forward and tunnel requests', async () => {
  const routes = await h.admin('GET', '/v1/admin/proxy/routes');
  assert.equal(routes.status, 200);
  assert.equal(routes.body.listen, proxy);
  const echo = routes.body.routes.find((r: any) => r.name === 'echo');
  assert.deepEqual(echo.credential, { source: 'secret', reference: 'kv/proxy/echo-key', header: 'x-api-key', format: '{value}' });
  assert.ok(!JSON.stringify(routes.body).includes(KEY));
  const rev = await h.admin('POST', '/v1/admin/proxy/test', { url: `${proxy}/echo/v1/chat`, method: 'POST', agent: AGENT, body: { model: 'big' } });
  assert.equal(rev.status, 200, JSON.stringify(rev.body));
  assert.equal(rev.body.route, 'echo');
  assert.equal(rev.body.mode, 'reverse');
  assert.equal(rev.body.decision.allowed, false);
  assert.equal(rev.body.decision.code, 'TESSERA_PROXY_DENIED');
  const fwd = await h.admin('POST', '/v1/admin/proxy/test', { url: 'http://echo.test/v1/chat', principal: { spiffe_id: AGENT, attestor: 'join_token', attestor_kind: 'join_token' } });
  assert.equal(fwd.body.mode, 'forward');
  assert.equal(fwd.body.decision.allowed, true);
  assert.equal(fwd.body.credential.reference, 'kv/proxy/echo-key');
  assert.deepEqual(fwd.body.ssrf, { checked: true, allowed: true, address: '127.0.0.1' });
  assert.equal(fwd.body.served, true);
  assert.deepEqual(fwd.body.credential.decision, { action: 'secret.inject', allowed: true });
  // http.request is permitted but the credential's own permit is not: not served, and why.
  const noInject = await h.admin('POST', '/v1/admin/proxy/test', { url: 'http://echo.test/v1/chat', principal: { spiffe_id: `${TD}/agents/allowed-n1`, attestor: 'join_token', attestor_kind: 'join_token' } });
  assert.equal(noInject.body.decision.allowed, true);
  assert.equal(noInject.body.credential.decision.allowed, false);
  assert.equal(noInject.body.credential.decision.code, 'TESSERA_POLICY_DENIED');
  assert.equal(noInject.body.served, false);
  const tunnel = await h.admin('POST', '/v1/admin/proxy/test', { url: 'https://elsewhere.example/', agent: AGENT });
  assert.equal(tunnel.body.mode, 'tunnel');
  assert.equal(tunnel.body.decision.code, 'TESSERA_PROXY_TUNNEL_DENIED');
  const unrouted = await h.admin('POST', '/v1/admin/proxy/test', { url: 'http://elsewhere.example/', agent: AGENT });
  assert.equal(unrouted.body.reason.code, 'TESSERA_PROXY_NO_ROUTE');
  const bad = await h.admin('POST', '/v1/admin/proxy/test', { url: 'http://echo.test/' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'TESSERA_REQUEST_INVALID');
  assert.equal((await h.agent(token, 'GET', '/v1/admin/proxy/routes')).status, 401);
});

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, runtime, { stdout: { write: (x: string) => ((stdout += x), true) }, stderr: { write: (x: string) => ((stderr += x), true) }, env: { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.adminToken } });
  return { code, stdout, stderr };
}

test('CLI: tessera proxy routes and tessera proxy test', async () => {
  const routes = await cli(['proxy', 'routes']);
  assert.equal(routes.code, 0, routes.stderr);
  assert.match(routes.stdout, /echo +http:\/\/127\.0\.0\.1:\d+\/base +echo\.test +kv\/proxy\/echo-key +x-api-key/);
  assert.match(routes.stdout, /echoq .* \?api_key=/);
  const json = await cli(['--json', 'proxy', 'routes']);
  assert.equal(JSON.parse(json.stdout).routes.length, 5);
  const t = await cli(['proxy', 'test', 'http://echo.test/v1/items', '--agent', OTHER]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /route: echo \(forward\)/);
  assert.match(t.stdout, /decision: deny \(TESSERA_PROXY_DENIED\)/);
  assert.match(t.stdout, /credential: kv\/proxy\/echo-key → header x-api-key; secret\.inject: deny \(TESSERA_POLICY_DENIED\)/);
  assert.match(t.stdout, /served: no/);
  const withBody = await cli(['--json', 'proxy', 'test', `${proxy}/echo/v1/chat`, '--method', 'post', '--agent', OTHER, '--body', '{"model":"big","n":2}']);
  assert.equal(withBody.code, 0, withBody.stderr);
  assert.deepEqual(JSON.parse(withBody.stdout).context.http.body, { model: 'big' });
  for (const b of ['{"model":', '[1]', '{"model":{"a":1}}']) {
    const r = await cli(['proxy', 'test', `${proxy}/echo/v1/chat`, '--agent', OTHER, '--body', b]);
    assert.equal(r.code, 2, b);
    assert.match(r.stderr, /--body[\s\S]*TESSERA_CLI_USAGE/, b);
  }
  const bad = await cli(['proxy', 'test', 'echo.test', '--agent', OTHER]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /TESSERA_CLI_USAGE/);
  assert.ok(!`${routes.stdout}${json.stdout}${t.stdout}`.includes(KEY));
});

test('kill switch: a revoked agent\'s open keep-alive connection is cut at once', async () => {
  const t = await h.login(await h.joinToken(KILLED), `${issuer}/proxy`);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await call(proxy, 'GET', '/echo/v1/a', { headers: bearer(t), agent });
    assert.equal(first.status, 200);
    const second = await call(proxy, 'GET', '/echo/v1/b', { headers: bearer(t), agent });
    assert.equal(second.socket, first.socket, 'the connection is kept alive');
    let closed = false;
    first.socket.once('close', () => (closed = true));
    const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: KILLED, reason: 'proxy kill switch test' });
    assert.equal(rev.status, 201, JSON.stringify(rev.body));
    await until(() => closed, 'the revoked agent\'s connection to close');
    const after = await call(proxy, 'GET', '/echo/v1/c', { headers: bearer(t) });
    assert.equal(after.status, 401);
    assert.equal(after.json.error.code, 'TESSERA_TOKEN_REVOKED');
    // Another agent's connection stays usable.
    assert.equal((await call(proxy, 'GET', '/echo/v1/d', { headers: bearer(token) })).status, 200);
  } finally {
    agent.destroy();
  }
});

test('CONNECT seam: an intercepted connection is served as its tunnel\'s route and principal, re-authenticated per request, and cut on revocation', async () => {
  const seams = h.tessera.proxy!.connectDeps;
  const t = await h.login(await h.joinToken(TUNNEL), `${issuer}/proxy`);
  // What the TLS part's handleConnect does with a CONNECT: authenticate, route, (tunnel policy).
  const connectReq = { headers: { 'proxy-authorization': `Bearer ${t}` }, url: 'echo.test:443', socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  const { principal, token: tunnelToken } = await seams.authenticate(connectReq);
  assert.equal(principal.spiffeId, TUNNEL);
  assert.deepEqual(seams.routeForHost('echo.test', 443), { name: 'echo' });
  assert.equal(seams.routeForHost('elsewhere.example', 443), undefined);
  assert.throws(() => seams.authorizeTunnel(principal, 'elsewhere.example', 443), (e: unknown) => (e as TesseraError).code === 'TESSERA_PROXY_TUNNEL_DENIED');
  await assert.rejects(seams.authenticate({ headers: {}, url: 'echo.test:443', socket: {} } as unknown as IncomingMessage), (e: unknown) => (e as TesseraError).code === 'TESSERA_PROXY_AUTH_REQUIRED');
  // The decrypted stream (a plain loopback socket stands in for the TLS socket) is handed to the proxy's HTTP server.
  const relay = createServer((s) => seams.serveIntercepted(s as unknown as TLSSocket, { principal, token: tunnelToken, host: 'echo.test', port: 443, route: 'echo' }));
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const client = connect((relay.address() as { port: number }).port, '127.0.0.1');
  try {
    const read = (): Promise<string> => new Promise((resolve) => client.once('data', (c: Buffer) => resolve(c.toString('utf8'))));
    await new Promise<void>((r) => client.once('connect', () => r()));
    const answer = read();
    client.write('GET /v1/tunnelled?x=1 HTTP/1.1\r\nHost: echo.test\r\n\r\n');
    assert.match(await answer, /^HTTP\/1\.1 200 /);
    const seen = up.seen.at(-1)!;
    assert.equal(seen.url, '/v1/tunnelled?x=1', 'the request\'s own path');
    assert.equal(seen.headers['x-api-key'], KEY);
    let closed = false;
    client.once('close', () => (closed = true));
    const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: TUNNEL, reason: 'proxy tunnel kill switch test' });
    assert.equal(rev.status, 201, JSON.stringify(rev.body));
    await until(() => closed, 'the revoked tunnel to close');
  } finally {
    client.destroy();
    relay.close();
  }
});

test('HTTPS_PROXY through the real CONNECT path: curl trusts Tessera\'s CA, the intercepted request is served as the route with the key injected', async () => {
  const ca = await fetch(`${issuer}/v1/proxy/ca.pem`);
  assert.equal(ca.status, 200);
  const caFile = join(h.dataDir, 'proxy-ca.pem');
  writeFileSync(caFile, await ca.text());
  const u = new URL(proxy);
  const { stdout } = await run('curl', ['-sS', '--proxy', `http://agent:${token}@${u.host}`, '--cacert', caFile, '-w', '\n%{http_code}', 'https://echo.test/v1/intercepted?z=1']);
  const status = stdout.slice(stdout.lastIndexOf('\n') + 1);
  assert.equal(status, '200', stdout);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.url, '/v1/intercepted?z=1');
  assert.equal(seen.headers['x-api-key'], KEY);
  const leak = await run('curl', ['-sS', '--proxy', `http://agent:${token}@${u.host}`, '--cacert', caFile, 'https://echo.test/echo-key']);
  assert.ok(!leak.stdout.includes(KEY));
  assert.match(leak.stdout, /REDACTED/);
});

test('an expired token is refused (401 TESSERA_TOKEN_EXPIRED)', async () => {
  const now = clock.now();
  clock.advance(3_600_000);
  try {
    const r = await call(proxy, 'GET', '/echo/v1/items', { headers: bearer(token) });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'TESSERA_TOKEN_EXPIRED');
  } finally {
    clock.set(now);
  }
});
