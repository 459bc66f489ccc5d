/**
 * Issue 10, "Tests with real clients and servers on loopback": unmodified clients — curl,
 * undici's ProxyAgent, Node's https with NODE_EXTRA_CA_CERTS, Python requests / urllib / httpx
 * (Debian's /usr/bin/python3) and the `openai` npm SDK — reach an OpenAI-compatible upstream
 * (test/proxy/fixtures/openai-upstream.ts, HTTPS with its own test CA) through the whole of
 * Tessera's proxy, on a reverse route and as a forward proxy with TLS interception. For each:
 *  - the upstream sees the injected key, and neither the agent's token nor the credential the
 *    agent sent for the upstream (in any header);
 *  - the client never sees the key: the fixture's echo path answers it, Tessera scrubs it (JSON
 *    and an SSE stream that splits the key across events);
 *  - SSE arrives incrementally: the upstream holds the stream after its first event until the
 *    test releases it, and the client reads that first event while the rest is still held (a
 *    control, not timing: a buffering proxy fails the `finished === false` assertion);
 *  - a request without a valid token never reaches the upstream;
 *  - the audit log has the proxied requests and neither the key nor the token.
 * The client recipes are self-tested without Tessera in test/proxy/fixtures.test.ts.
 *
 * The routes' upstreams are origins without a base path, so a reverse route URL
 * `http://<proxy>/openai/v1/…` and a forward-proxy URL `https://localhost:<port>/v1/…` name the
 * same upstream path under either reading of a route's base path.
 *
 * One Tessera (and one pair of upstreams) for the whole file; the last test revokes the agent and
 * checks its open streams are cut (kill switch, real clients).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startOpenAiUpstream, type OpenAiUpstream } from './fixtures/openai-upstream.js';
import { createTestCa, type TestCa } from './fixtures/test-ca.js';
import { CLIENT_KINDS, clientUnavailable, openaiViaForwardProxy, openaiViaReverseRoute, send, stream, type ClientKind, type ClientRequest } from './fixtures/clients.js';
import { AGENT_SPIFFE_ID, startProxyHarness, type ProxyHarness } from './fixtures/tessera-proxy.js';
import { registerSensitive } from '../helpers/leak-registry.js';

const KEY = 'sk-proj-e2e-injected-key-0123456789abcdefABCDEF';
const ANTHROPIC_KEY = 'sk-ant-e2e-injected-key-0123456789abcdef';
/** What a misconfigured agent sends for the upstream itself: Tessera must strip it. */
const AGENT_OWN = 'sk-agent-own-credential-must-be-stripped-0123';
const CHAT = JSON.stringify({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }] });
const CHAT_STREAM = JSON.stringify({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });

let ca: TestCa;
let upstream: OpenAiUpstream;
let anthropic: OpenAiUpstream;
let p: ProxyHarness;
let token: string;
let tesseraCa: { pem: string; file: string };

/** Every header value the upstream received for the requests after `from`, joined. */
function receivedHeaderText(from: number): string {
  return upstream.received.slice(from).map((r) => r.rawHeaders.join('\n')).join('\n');
}

/** The upstream got exactly the injected key for each request after `from`, and nothing of the agent's. */
function assertInjected(from: number, kind: string): void {
  const got = upstream.received.slice(from);
  assert.ok(got.length > 0, `${kind}: the request reached the upstream`);
  for (const r of got) {
    assert.equal(r.headers.authorization, `Bearer ${KEY}`, `${kind}: the upstream sees the injected key`);
    assert.equal(r.authorized, true);
    assert.equal(r.headers['proxy-authorization'], undefined, `${kind}: no Proxy-Authorization upstream`);
  }
  const text = receivedHeaderText(from);
  assert.ok(!text.includes(token), `${kind}: the agent's token never reaches the upstream`);
  assert.ok(!text.includes(AGENT_OWN), `${kind}: the agent's own upstream credential is stripped`);
}

/** Reverse route: the agent calls the proxy's route URL with its token as Authorization: Bearer. */
function reverse(path: string, extra: Partial<ClientRequest> = {}): ClientRequest {
  return { url: `${p.proxyUrl}/openai/v1${path}`, ...extra, headers: { authorization: `Bearer ${token}`, ...(extra.headers ?? {}) } };
}

/** Forward proxy: the agent calls the upstream's real URL through the proxy, trusting Tessera's CA. */
function forward(path: string, extra: Partial<ClientRequest> = {}): ClientRequest {
  return { url: `${upstream.origin}/v1${path}`, proxy: { url: p.proxyUrl, token }, caFile: tesseraCa.file, ...extra, headers: { authorization: `Bearer ${AGENT_OWN}`, ...(extra.headers ?? {}) } };
}

describe('real clients through the proxy', () => {
  before(async () => {
    ca = await createTestCa();
    const leaf = await ca.issue(['localhost']);
    upstream = await startOpenAiUpstream({ openaiKey: KEY, tls: { cert: leaf.certPem, key: leaf.keyPem } });
    anthropic = await startOpenAiUpstream({ openaiKey: 'unused-openai-key-on-the-anthropic-fixture', anthropicKey: ANTHROPIC_KEY });
    p = await startProxyHarness({
      routes: [
        { name: 'openai', upstream: upstream.origin, secretPath: 'openai/key', secretValue: KEY, upstreamCaFile: ca.certFile, extra: { body_fields: ['model'] } },
        { name: 'anthropic', upstream: anthropic.origin, secretPath: 'anthropic/key', secretValue: ANTHROPIC_KEY, header: 'x-api-key', format: '{value}' },
      ],
    });
    token = await p.login();
    tesseraCa = await p.ca();
    registerSensitive(KEY, ANTHROPIC_KEY, token);
  });

  after(async () => {
    await p?.close();
    await upstream?.close();
    await anthropic?.close();
    ca?.dispose();
  });

  for (const kind of CLIENT_KINDS) {
    const skip = clientUnavailable(kind);
    for (const [mode, make] of [['reverse route', reverse], ['forward proxy (TLS intercepted)', forward]] as const) {
      test(`${kind}, ${mode}: the upstream gets the injected key and nothing of the agent's`, { skip }, async () => {
        const from = upstream.received.length;
        const r = await send(kind, make('/chat/completions', { body: CHAT }));
        assert.equal(r.status, 200, r.body);
        assert.equal(JSON.parse(r.body).object, 'chat.completion');
        assertInjected(from, kind);
      });

      test(`${kind}, ${mode}: the key echoed by the upstream is scrubbed (JSON and split across SSE events)`, { skip }, async () => {
        const json = await send(kind, make('/debug/echo-key'));
        assert.equal(json.status, 200, json.body);
        assert.ok(!json.body.includes(KEY), `${kind}: the key must not reach the client`);
        const sse = await send(kind, make('/debug/echo-key?sse=1'));
        assert.equal(sse.status, 200);
        assert.ok(!sse.body.includes(KEY), `${kind}: the key must not reach the client, also when a stream splits it`);
        assert.ok(sse.body.includes('data: [DONE]'), 'the rest of the stream arrives');
      });

      test(`${kind}, ${mode}: an SSE stream arrives incrementally, usage chunk included`, { skip }, async () => {
        const id = `${kind}-${mode}`.replace(/[^a-z0-9-]+/gi, '-');
        const gate = upstream.hold(id);
        const s = stream(kind, make('/chat/completions', { body: CHAT_STREAM, headers: { 'x-fixture-hold': id } }));
        const first = await s.firstEvent;
        assert.equal(JSON.parse(first).object, 'chat.completion.chunk');
        assert.equal(gate.finished, false, `${kind}: the client read the first event while the upstream still held the rest (the proxy does not buffer)`);
        gate.release();
        const done = await s.done;
        assert.equal(done.status, 200);
        assert.match(done.headers['content-type'] ?? '', /^text\/event-stream/);
        assert.match(done.body, /"usage":\{"prompt_tokens":11/);
        assert.ok(done.body.endsWith('data: [DONE]\n\n'));
      });
    }

    test(`${kind}: without a valid token nothing reaches the upstream`, { skip }, async () => {
      const from = upstream.received.length;
      const bad = 'not-a-tessera-token';
      const r1 = await send(kind, { ...reverse('/models'), headers: { authorization: `Bearer ${bad}` } });
      assert.ok(r1.status === 401 || r1.status === 407, `reverse route: ${r1.status} ${r1.body}`);
      assert.match(r1.body, /TESSERA_/);
      // Through the forward proxy the refusal is the CONNECT's answer: some clients report it as an
      // error instead of a response; either way the upstream must not see the request.
      await send(kind, { ...forward('/models'), proxy: { url: p.proxyUrl, token: bad } }).then(
        (r) => assert.ok(r.status === 401 || r.status === 407 || r.status === 403, `forward proxy: ${r.status} ${r.body}`),
        () => undefined,
      );
      assert.equal(upstream.received.length, from, 'the upstream saw no request');
    });
  }

  test('openai SDK, reverse route (apiKey = the agent token): completion and an incremental stream', async () => {
    const from = upstream.received.length;
    const client = openaiViaReverseRoute(`${p.proxyUrl}/openai/v1`, token);
    const c = await client.chat.completions.create({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(c.usage?.total_tokens, 20);
    const gate = upstream.hold('sdk-reverse');
    const s = await openaiViaReverseRoute(`${p.proxyUrl}/openai/v1`, token, { 'x-fixture-hold': 'sdk-reverse' }).chat.completions.create({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
    const it = s[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done, false);
    assert.equal(gate.finished, false, 'the SDK read the first chunk while the upstream held the rest');
    gate.release();
    let usage: number | undefined;
    for (let n = await it.next(); !n.done; n = await it.next()) usage = n.value.usage?.total_tokens ?? usage;
    assert.equal(usage, 20);
    assertInjected(from, 'openai SDK (reverse)');
    const echoed = await client.get('/debug/echo-key') as Record<string, unknown>;
    assert.ok(!JSON.stringify(echoed).includes(KEY));
  });

  test('openai SDK, forward proxy (undici ProxyAgent, Tessera CA trusted): completion and stream', async () => {
    const from = upstream.received.length;
    const { client, close } = openaiViaForwardProxy(`${upstream.origin}/v1`, { url: p.proxyUrl, token }, tesseraCa.pem);
    try {
      const c = await client.chat.completions.create({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(c.choices[0]?.message.content, 'Hello from the fixture upstream, streamed word by word.');
      const s = await client.chat.completions.create({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }], stream: true });
      let text = '';
      for await (const chunk of s) text += chunk.choices[0]?.delta?.content ?? '';
      assert.equal(text, 'Hello from the fixture upstream, streamed word by word.');
      assertInjected(from, 'openai SDK (forward)');
      assert.ok(!receivedHeaderText(from).includes('placeholder-tessera-injects-the-key'), 'the SDK placeholder key is stripped');
    } finally {
      await close();
    }
  });

  test('Anthropic route: x-api-key injected, the SSE stream with message_start and message_delta usage passes through', async () => {
    const from = anthropic.received.length;
    const r = await send('undici', { url: `${p.proxyUrl}/anthropic/v1/messages`, headers: { authorization: `Bearer ${token}`, 'x-api-key': AGENT_OWN, 'anthropic-version': '2023-06-01' }, body: JSON.stringify({ model: 'claude-fixture', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], stream: true }) });
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /event: message_start/);
    assert.match(r.body, /event: message_delta\ndata: .*"output_tokens":9/);
    const got = anthropic.received.slice(from);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.headers['x-api-key'], ANTHROPIC_KEY);
    assert.ok(!got[0]!.rawHeaders.join('\n').includes(token));
    assert.ok(!got[0]!.rawHeaders.join('\n').includes(AGENT_OWN));
  });

  test('the audit log has the proxied requests, and neither the key nor the token', async () => {
    const bodies = await p.auditBodies();
    const proxied = bodies.filter((b) => b.includes('proxy.request'));
    assert.ok(proxied.length >= CLIENT_KINDS.filter((k: ClientKind) => !clientUnavailable(k)).length * 2, `proxy.request events: ${proxied.length}`);
    for (const b of bodies) {
      assert.ok(!b.includes(KEY) && !b.includes(ANTHROPIC_KEY), 'no injected key in the audit log');
      assert.ok(!b.includes(token), 'no agent token in the audit log');
    }
  });

  // Last: it revokes the test agent.
  test('a revoked agent\'s open connections are cut: curl and undici mid-stream through HTTPS_PROXY (intercepted), then the token is refused', async () => {
    const streams = (['curl', 'undici'] as const).filter((k) => !clientUnavailable(k)).map((kind) => {
      const id = `kill-${kind}`;
      const gate = upstream.hold(id);
      return { kind, gate, s: stream(kind, forward('/chat/completions', { body: CHAT_STREAM, headers: { 'x-fixture-hold': id } })) };
    });
    for (const x of streams) await x.s.firstEvent;
    const rev = await fetch(`${p.h.url}/v1/admin/revocations`, { method: 'POST', headers: { authorization: `Bearer ${p.h.tessera.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'agent', target: AGENT_SPIFFE_ID, reason: 'proxy kill switch, real clients' }) });
    assert.equal(rev.status, 201, await rev.text());
    for (const x of streams) {
      // Cut while the upstream still holds the rest of the stream: the client's transfer fails.
      await assert.rejects(x.s.done, `${x.kind}: the open stream is cut`);
      assert.equal(x.gate.finished, false);
      x.gate.release();
    }
    const after = await send('curl', reverse('/models'));
    assert.equal(after.status, 401);
    assert.match(after.body, /TESSERA_TOKEN_REVOKED/);
  });
});
