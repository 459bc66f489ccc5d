/**
 * The PROVIDERS part wired into the proxy core, through the whole of Tessera (src/main.ts) and the
 * OpenAI/Anthropic-compatible fixture upstream: per-route request limits (429 with the exact
 * Retry-After), token limits counted from JSON and streamed (SSE) responses of both providers,
 * the OpenAI stream-usage option on a token-limited route, the preset's anthropic-version header,
 * GET /v1/admin/proxy/usage per agent and task, and OAuth client-credentials routes against a real
 * authorization server (oidc-provider): the upstream sees `Bearer <access token>`, one token
 * request serves several proxied requests.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ManualClock } from '../../src/shared/clock.js';
import { exchange } from '../tasks/helpers.js';
import { call, policyDir, startUpstream, until, type Upstream } from './helpers.js';
import { BASIC, startAs } from './fixtures/oidc-as.js';
import { startOpenAiUpstream, type OpenAiUpstream } from './fixtures/openai-upstream.js';

const TD = 'spiffe://tessera.local';
const AGENT = `${TD}/agents/metered-a`;
const OTHER = `${TD}/agents/metered-b`;
const OKEY = `sk-oai-${randomBytes(18).toString('hex')}`;
const AKEY = `sk-ant-${randomBytes(18).toString('hex')}`;

const POLICIES = `
@id("proxy-routes")
permit (principal, action == Tessera::Action::"http.request", resource is Tessera::Route)
when { principal.trust_domain == "tessera.local" && principal.attestor == "join_token" && principal.path like "/agents/metered-*" };

@id("proxy-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"proxy")
when { principal.trust_domain == "tessera.local" && principal.attestor == "join_token" && principal.path like "/agents/metered-*" };

@id("proxy-tasks")
permit (principal, action == Tessera::Action::"token.delegate", resource)
when { principal.trust_domain == "tessera.local" && principal.attestor == "join_token" && context.depth < 1 };
`;

let h: Harness;
let up: OpenAiUpstream;
let echo: Upstream;
let as: Awaited<ReturnType<typeof startAs>>;
let proxy: string;
let token: string;
// A window boundary (60 s windows), held still: the Retry-After is exact.
const clock = new ManualClock(Math.ceil(Date.now() / 60_000) * 60_000);
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const json = { 'content-type': 'application/json' };

before(async () => {
  up = await startOpenAiUpstream({ openaiKey: OKEY, anthropicKey: AKEY });
  echo = await startUpstream();
  as = await startAs();
  const allow = ['127.0.0.1/32'];
  h = await startHarness({
    clock,
    policyDir: policyDir({ 'proxy.cedar': POLICIES }),
    config: {
      proxy: {
        listen: '127.0.0.1:0', max_tunnels_per_agent: 1,
        routes: [
          { name: 'limited', preset: 'openai', upstream: `${up.origin}/v1`, hosts: ['limited.test'], credential: { secret: 'proxy/openai-key' }, limits: { window: '1m', requests: 2 }, allow_private: allow },
          { name: 'oai', preset: 'openai', upstream: `${up.origin}/v1`, hosts: ['oai.test'], credential: { secret: 'proxy/openai-key' }, limits: { tokens: 100000 }, allow_private: allow },
          { name: 'oa', upstream: `${echo.url}/api`, hosts: ['oa.test'], credential: { oauth: { token_url: as.tokenUrl, client_id: BASIC.id, client_secret: 'proxy/as-secret', scope: 'api:read' } }, allow_private: allow },
          { name: 'oabad', upstream: `${echo.url}/api`, hosts: ['oabad.test'], credential: { oauth: { token_url: as.tokenUrl, client_id: BASIC.id, client_secret: 'proxy/as-wrong' } }, allow_private: allow },
          { name: 'oaguard', upstream: `${echo.url}/api`, hosts: ['oaguard.test'], credential: { oauth: { token_url: as.tokenUrl, client_id: BASIC.id, client_secret: 'proxy/as-secret' } }, allow_private: ['127.0.0.1:1'] },
          { name: 'ant', preset: 'anthropic', upstream: up.origin, hosts: ['ant.test'], credential: { secret: 'proxy/anthropic-key' }, limits: { tokens: 100000 }, allow_private: allow },
        ],
      },
    },
  });
  h.sensitive.add(OKEY);
  h.sensitive.add(AKEY);
  proxy = h.tessera.proxyUrl!;
  h.sensitive.add(BASIC.secret);
  for (const [path, value] of [['proxy/openai-key', OKEY], ['proxy/anthropic-key', AKEY], ['proxy/as-secret', BASIC.secret], ['proxy/as-wrong', 'not-the-client-secret-0123456789']] as const) {
    const put = await h.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode: 'inject' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  }
  token = await h.login(await h.joinToken(AGENT), `${h.tessera.url}/proxy`);
});

after(async () => {
  await h?.close();
  await up?.close();
  await echo?.close();
  await as?.close();
});

async function usage(query: string): Promise<any[]> {
  const r = await h.admin('GET', `/v1/admin/proxy/usage?${query}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { rows: any[] }).rows;
}

test('limits { requests: 2 }: the third request in the window is 429 TESSERA_PROXY_RATE_LIMITED with the exact Retry-After; no credential is read for it', async () => {
  const other = await h.login(await h.joinToken(OTHER), `${h.tessera.url}/proxy`);
  for (let i = 0; i < 2; i++) assert.equal((await call(proxy, 'GET', '/limited/models', { headers: bearer(token) })).status, 200);
  const seen = up.received.length;
  const r = await call(proxy, 'GET', '/limited/models', { headers: bearer(token) });
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json.error.code, 'TESSERA_PROXY_RATE_LIMITED');
  assert.equal(r.json.error.details.per, 'agent');
  assert.equal(r.json.error.details.which, 'requests');
  // Sliding window at f = 0 with 2 counted: 2 × (1 − f) + 1 ≤ 2 at f = 1/2 of the next window: 60 s + 30 s.
  assert.equal(r.headers['retry-after'], '90');
  assert.equal(r.json.error.details.retry_after_s, 90);
  assert.equal(up.received.length, seen, 'a refused request never reaches the upstream');
  // Counted per agent: another agent still has its own two.
  assert.equal((await call(proxy, 'GET', '/limited/models', { headers: bearer(other) })).status, 200);
  // A forward (absolute-form) request is the same route and the same count.
  const f = await call(proxy, 'GET', 'http://limited.test/v1/models', { headers: { host: 'limited.test', 'proxy-authorization': `Bearer ${token}` } });
  assert.equal(f.status, 429);
  const rows = await usage(`route=limited&agent=${encodeURIComponent(AGENT)}`);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].per, 'agent');
  assert.equal(rows[0].window.requests, 2, 'refused requests are not counted');
});

test('tokens counted from an OpenAI JSON answer and from a streamed one (stream_options.include_usage added on a token-limited route)', async () => {
  const before = (await usage(`route=oai&agent=${encodeURIComponent(AGENT)}`))[0]?.since_start.total ?? 0;
  const a = await call(proxy, 'POST', '/oai/chat/completions', { headers: { ...bearer(token), ...json }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(a.status, 200, a.text);
  const perCall = a.json.usage.total_tokens as number;
  assert.ok(perCall > 11);
  const s = await call(proxy, 'POST', '/oai/chat/completions', { headers: { ...bearer(token), ...json }, body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(s.status, 200, s.text);
  assert.match(String(s.headers['content-type']), /text\/event-stream/);
  assert.match(s.text, /"usage":\{"prompt_tokens":11/);
  const sent = JSON.parse(up.received.at(-1)!.body);
  assert.deepEqual(sent.stream_options, { include_usage: true }, 'the proxy asked for the stream\'s usage');
  await until(async () => ((await usage(`route=oai&agent=${encodeURIComponent(AGENT)}`))[0]?.since_start.total ?? 0) === before + 2 * perCall, 'both answers counted');
  const row = (await usage(`route=oai&agent=${encodeURIComponent(AGENT)}`))[0]!;
  assert.equal(row.since_start.requests >= 2, true);
  assert.equal(row.window.total, before + 2 * perCall);
});

test('tokens counted from an Anthropic JSON answer and from a streamed one; anthropic-version added only when the agent sent none', async () => {
  const q = `route=ant&agent=${encodeURIComponent(AGENT)}`;
  const a = await call(proxy, 'POST', '/ant/v1/messages', { headers: { ...bearer(token), ...json }, body: JSON.stringify({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(a.status, 200, a.text);
  const got = up.received.at(-1)!;
  assert.equal(got.headers['anthropic-version'], '2023-06-01');
  assert.equal(got.headers['x-api-key'], AKEY);
  const perCall = (a.json.usage.input_tokens as number) + (a.json.usage.output_tokens as number);
  await until(async () => ((await usage(q))[0]?.since_start.total ?? 0) === perCall, 'the JSON answer counted');
  const s = await call(proxy, 'POST', '/ant/v1/messages', { headers: { ...bearer(token), ...json, 'anthropic-version': '2024-01-01' }, body: JSON.stringify({ model: 'claude-x', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(s.status, 200, s.text);
  assert.match(s.text, /event: message_delta/);
  assert.equal(up.received.at(-1)!.headers['anthropic-version'], '2024-01-01', 'the agent\'s own version is kept');
  await until(async () => ((await usage(q))[0]?.since_start.total ?? 0) === 2 * perCall, 'the streamed answer counted');
  const row = (await usage(q))[0]!;
  assert.equal(row.since_start.input, 22);
  assert.equal(row.since_start.output, 2 * (perCall - 11));
});

test('usage per task: a task token\'s requests are counted for the task and its agent; the usage API filters by task', async () => {
  const t = await exchange(h, { subject_token: token, scope: 'http:oai secret:proxy/**', purpose: 'metered task', audience: `${h.tessera.url}/proxy` });
  assert.equal(t.status, 200, JSON.stringify(t.body));
  const txn = t.body.txn as string;
  assert.ok(txn);
  const a = await call(proxy, 'POST', '/oai/chat/completions', { headers: { ...bearer(t.body.access_token), ...json }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(a.status, 200, a.text);
  await until(async () => (await usage(`task=${encodeURIComponent(txn)}`)).some((r) => r.since_start.total === a.json.usage.total_tokens), 'the task row');
  const rows = await usage(`task=${encodeURIComponent(txn)}`);
  assert.deepEqual(rows.map((r) => [r.route, r.per, r.task, r.since_start.requests]), [['oai', 'task', txn, 1]]);
  const both = await usage(`agent=${encodeURIComponent(AGENT)}&task=${encodeURIComponent(txn)}&route=oai`);
  assert.deepEqual(both.map((r) => r.per), ['agent', 'task']);
  // Bad input at the edge.
  const bad = await h.admin('GET', '/v1/admin/proxy/usage?route=Not%20A%20Route');
  assert.equal(bad.status, 400);
  assert.equal((bad.body as any).error.code, 'TESSERA_REQUEST_INVALID');
  const anon = await fetch(`${h.tessera.url}/v1/admin/proxy/usage`);
  assert.equal(anon.status, 401);
});

test('usage in metrics: tessera_proxy_usage_* counters per route', async () => {
  const r = await fetch(`${h.tessera.url}/metrics`);
  const text = await r.text();
  assert.match(text, /tessera_proxy_usage_requests_total\{[^}]*route="limited"[^}]*\} \d+/);
  assert.match(text, /tessera_proxy_usage_tokens_total\{[^}]*route="oai"/);
});

test('credential.oauth: the upstream sees Bearer <access token> from the real AS; one token request serves several proxied requests', async () => {
  as.requests.length = 0;
  const seen = echo.seen.length;
  for (let i = 0; i < 3; i++) {
    const r = await call(proxy, 'GET', `/oa/items/${i}`, { headers: bearer(token) });
    assert.equal(r.status, 200, r.text);
  }
  const auths = echo.seen.slice(seen).map((x) => x.headers.authorization);
  assert.equal(auths.length, 3);
  assert.match(auths[0]!, /^Bearer [\w.~+/=-]{16,}$/);
  assert.ok(auths.every((a) => a === auths[0]), 'the cached token is reused');
  assert.notEqual(auths[0], `Bearer ${token}`, 'never the agent\'s own token');
  h.sensitive.add(auths[0]!.slice(7));
  assert.equal(as.requests.length, 1, 'one token request at the AS');
  assert.match(as.requests[0]!.authorization ?? '', /^Basic /, 'client_secret_basic with the secret from kv');
  assert.match(as.requests[0]!.body, /grant_type=client_credentials/);
  assert.match(as.requests[0]!.body, /scope=api%3Aread/);
});

test('credential.oauth refusals: a wrong client secret, and a token endpoint the route\'s allow_private does not cover, are 502 TESSERA_PROXY_CREDENTIAL_UNAVAILABLE and reach no upstream', async () => {
  const seen = echo.seen.length;
  for (const route of ['oabad', 'oaguard']) {
    const r = await call(proxy, 'GET', `/${route}/items`, { headers: bearer(token) });
    assert.equal(r.status, 502, `${route}: ${r.text}`);
    assert.equal(r.json.error.code, 'TESSERA_PROXY_CREDENTIAL_UNAVAILABLE');
    if (route === 'oabad') assert.deepEqual(r.json.error.details, { route, cause: 'TESSERA_PROXY_OAUTH_FAILED', error: 'invalid_client' });
    else assert.equal(r.json.error.details.cause, 'TESSERA_PROXY_TARGET_FORBIDDEN');
    assert.ok(!r.text.includes('not-the-client-secret') && !r.text.includes(BASIC.secret));
  }
  assert.equal(echo.seen.length, seen);
});

/** Sends a CONNECT on a new connection; resolves the socket and the answer's head once it arrived. */
function rawConnect(target: string, bearerToken: string): Promise<{ socket: Socket; head: string }> {
  const u = new URL(proxy);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(u.port), u.hostname, () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Bearer ${bearerToken}\r\n\r\n`));
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end >= 0 && /^HTTP\/1\.1 200/.test(text)) resolve({ socket, head: text });
      else if (end >= 0 && text.includes('}')) resolve({ socket, head: text });
    });
    socket.on('error', reject);
  });
}

test('proxy.max_tunnels_per_agent (1 here) reaches the CONNECT handler through src/main.ts: a second open tunnel is 429 TESSERA_PROXY_TUNNEL_LIMIT', async () => {
  const first = await rawConnect('limited.test:443', token);
  assert.match(first.head, /^HTTP\/1\.1 200/);
  const second = await rawConnect('oai.test:443', token);
  assert.match(second.head, /^HTTP\/1\.1 429/);
  assert.match(second.head, /TESSERA_PROXY_TUNNEL_LIMIT/);
  second.socket.destroy();
  first.socket.destroy();
  // Released on close: a new tunnel opens again.
  await until(async () => {
    const again = await rawConnect('limited.test:443', token);
    again.socket.destroy();
    return /^HTTP\/1\.1 200/.test(again.head);
  }, 'the tunnel released');
});
