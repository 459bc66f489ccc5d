/**
 * Self-tests of the proxy test fixtures, without Tessera: the OpenAI/Anthropic-compatible
 * upstream (its key check, recording, streaming control, debug paths) and every client recipe of
 * test/proxy/fixtures/clients.ts, straight to the upstream over HTTPS with the upstream's test CA
 * and through a plain CONNECT proxy that records the proxy credentials. So when the real-client
 * end-to-end test (clients.test.ts) fails through Tessera, the fixture and the client are known
 * to be good.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startOpenAiUpstream, type OpenAiUpstream } from './fixtures/openai-upstream.js';
import { createTestCa, type TestCa } from './fixtures/test-ca.js';
import { startTunnelProxy, type TunnelProxy } from './fixtures/tunnel-proxy.js';
import { CLIENT_KINDS, clientUnavailable, openaiDirect, openaiViaForwardProxy, send, stream } from './fixtures/clients.js';

const KEY = 'sk-fixture-upstream-key-0123456789abcdef';
const AGENT_TOKEN = 'agent-token-for-the-fixture-proxy-0123456789';
const CHAT = JSON.stringify({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }] });
const CHAT_STREAM = JSON.stringify({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });

let ca: TestCa;
let plain: OpenAiUpstream;
let tls: OpenAiUpstream;
let proxy: TunnelProxy;

before(async () => {
  ca = await createTestCa();
  const leaf = await ca.issue(['localhost', '127.0.0.1']);
  plain = await startOpenAiUpstream({ openaiKey: KEY, anthropicKey: 'sk-ant-fixture-key-0123456789' });
  tls = await startOpenAiUpstream({ openaiKey: KEY, tls: { cert: leaf.certPem, key: leaf.keyPem } });
  proxy = await startTunnelProxy();
});

after(async () => {
  await proxy.close();
  await tls.close();
  await plain.close();
  ca.dispose();
});

async function call(path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const r = await request(`${plain.origin}${path}`, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) });
  return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
}

describe('the OpenAI-compatible upstream', () => {
  test('answers a chat completion with usage when the key is right, and records the request as received', async () => {
    const before = plain.received.length;
    const r = await call('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'x-agent-own': 'kept' }, body: CHAT });
    assert.equal(r.status, 200);
    const body = JSON.parse(r.text);
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.choices[0].message.role, 'assistant');
    assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
    const seen = plain.received[before]!;
    assert.equal(seen.authorized, true);
    assert.equal(seen.headers['x-agent-own'], 'kept');
    assert.equal(seen.headers.authorization, `Bearer ${KEY}`);
    assert.equal(seen.body, CHAT);
  });

  for (const [name, headers] of [
    ['no key', {}],
    ['a wrong key', { authorization: 'Bearer sk-wrong' }],
    ['the key with another scheme', { authorization: `Basic ${KEY}` }],
    ['the key in x-api-key', { 'x-api-key': KEY }],
  ] as const) {
    test(`refuses ${name} with an OpenAI-shaped 401 that does not echo what was sent`, async () => {
      const r = await call('/v1/models', { headers });
      assert.equal(r.status, 401);
      const body = JSON.parse(r.text);
      assert.equal(body.error.code, 'invalid_api_key');
      assert.equal(body.error.type, 'invalid_request_error');
      assert.ok(!r.text.includes('sk-wrong') && !r.text.includes(KEY));
      assert.equal(plain.received.at(-1)!.authorized, false);
    });
  }

  test('lists models, and answers /v1/responses', async () => {
    const m = await call('/v1/models', { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(JSON.parse(m.text).data[0].id, 'gpt-fixture');
    const r = await call('/v1/responses', { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify({ model: 'gpt-fixture', input: 'hi' }) });
    assert.equal(JSON.parse(r.text).usage.total_tokens, 16);
  });

  test('refuses a body that is not a JSON object with 400', async () => {
    const r = await call('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '[1' });
    assert.equal(r.status, 400);
  });

  test('streams SSE chunks, the usage chunk with include_usage, then [DONE]', async () => {
    const r = await call('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: CHAT_STREAM });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    const events = r.text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const usage = JSON.parse(events.at(-2)!);
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.total_tokens, 20);
    const text = events.slice(0, -2).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, 'Hello from the fixture upstream, streamed word by word.');
    const noUsage = await call('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify({ model: 'm', messages: [], stream: true }) });
    assert.ok(!noUsage.text.includes('"usage"'));
  });

  test('holds a stream after its first event until released', async () => {
    const gate = plain.hold('self-hold');
    const r = await request(`${plain.origin}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'x-fixture-hold': 'self-hold' }, body: CHAT_STREAM });
    const it = r.body[Symbol.asyncIterator]();
    const first = await it.next();
    assert.match(String(first.value), /^data: \{/);
    await gate.firstSent;
    assert.equal(gate.finished, false, 'the rest is held until release()');
    gate.release();
    let rest = '';
    for (let c = await it.next(); !c.done; c = await it.next()) rest += String(c.value);
    assert.ok(rest.endsWith('data: [DONE]\n\n'));
    assert.equal(gate.finished, true);
  });

  test('Anthropic /v1/messages: x-api-key checked, JSON and SSE with usage in message_start and message_delta', async () => {
    const bad = await call('/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{}' });
    assert.equal(bad.status, 401);
    assert.equal(JSON.parse(bad.text).error.type, 'authentication_error');
    const h = { 'x-api-key': 'sk-ant-fixture-key-0123456789', 'anthropic-version': '2023-06-01' };
    const j = await call('/v1/messages', { method: 'POST', headers: h, body: JSON.stringify({ model: 'claude-fixture', max_tokens: 10, messages: [] }) });
    assert.equal(JSON.parse(j.text).usage.input_tokens, 11);
    const s = await call('/v1/messages', { method: 'POST', headers: h, body: JSON.stringify({ model: 'claude-fixture', max_tokens: 10, messages: [], stream: true }) });
    const types = [...s.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    assert.deepEqual([types[0], types.at(-2), types.at(-1)], ['message_start', 'message_delta', 'message_stop']);
    assert.match(s.text, /"usage":\{"input_tokens":11/);
    assert.match(s.text, /"type":"message_delta".*"usage":\{"output_tokens":9\}/);
    assert.equal(plain.received.at(-1)!.headers['anthropic-version'], '2023-06-01');
  });

  test('debug paths: the key echoed (JSON and split across SSE events), a redirect without a key, chunked without length, a first-byte delay', async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    assert.equal(JSON.parse((await call('/v1/debug/echo-key', { headers: auth })).text).key, KEY);
    const sse = await call('/v1/debug/echo-key?sse=1', { headers: auth });
    assert.ok(sse.text.includes(`key=${KEY.slice(0, KEY.length / 2)}${KEY.slice(KEY.length / 2)} end`));
    const redirect = await call('/v1/debug/redirect?to=/v1/models&status=307');
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.location, '/v1/models');
    const chunked = await call('/v1/debug/chunked?n=3', { headers: auth });
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    assert.equal(chunked.headers['content-length'], undefined);
    assert.equal(chunked.text, 'chunk 0\nchunk 1\nchunk 2\n');
    const delayed = await call('/v1/models', { headers: { ...auth, 'x-fixture-delay-ms': '20' } });
    assert.equal(delayed.status, 200);
  });
});

describe('client recipes, straight to the HTTPS upstream', () => {
  for (const kind of CLIENT_KINDS) {
    test(`${kind}: JSON, and an SSE stream read incrementally`, { skip: clientUnavailable(kind) }, async () => {
      const url = `${tls.origin}/v1/chat/completions`;
      const r = await send(kind, { url, body: CHAT, headers: { authorization: `Bearer ${KEY}` }, caFile: ca.certFile });
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).object, 'chat.completion');
      assert.equal(tls.received.at(-1)!.authorized, true);

      const id = `direct-${kind}`;
      const gate = tls.hold(id);
      const s = stream(kind, { url, body: CHAT_STREAM, headers: { authorization: `Bearer ${KEY}`, 'x-fixture-hold': id }, caFile: ca.certFile });
      const first = await s.firstEvent;
      assert.equal(JSON.parse(first).object, 'chat.completion.chunk');
      assert.equal(gate.finished, false, 'the client read the first event while the upstream held the rest');
      gate.release();
      const done = await s.done;
      assert.match(done.headers['content-type'] ?? '', /^text\/event-stream/);
      assert.ok(done.body.endsWith('data: [DONE]\n\n'));
    });

    test(`${kind}: an upstream 401 reaches the client as is`, { skip: clientUnavailable(kind) }, async () => {
      const r = await send(kind, { url: `${tls.origin}/v1/models`, caFile: ca.certFile });
      assert.equal(r.status, 401);
      assert.equal(JSON.parse(r.body).error.code, 'invalid_api_key');
    });
  }
});

describe('client recipes through a forward proxy (CONNECT), token as the proxy credential', () => {
  for (const kind of CLIENT_KINDS) {
    test(`${kind}: reaches the HTTPS upstream through CONNECT and authenticates to the proxy`, { skip: clientUnavailable(kind) }, async () => {
      const seenBefore = proxy.seen.length;
      const r = await send(kind, { url: `${tls.origin}/v1/chat/completions`, body: CHAT, headers: { authorization: `Bearer ${KEY}` }, proxy: { url: proxy.url, token: AGENT_TOKEN }, caFile: ca.certFile });
      assert.equal(r.status, 200, r.body);
      const seen = proxy.seen.slice(seenBefore);
      assert.equal(seen.length, 1, JSON.stringify(seen));
      assert.equal(seen[0]!.kind, 'connect');
      assert.equal(seen[0]!.target, `localhost:${tls.port}`);
      const expected = kind === 'undici' ? `Bearer ${AGENT_TOKEN}` : `Basic ${Buffer.from(`agent:${AGENT_TOKEN}`).toString('base64')}`;
      assert.equal(seen[0]!.proxyAuthorization, expected);
      assert.equal(tls.received.at(-1)!.headers['proxy-authorization'], undefined, 'the proxy credential stays at the proxy');
    });
  }

  for (const kind of CLIENT_KINDS) {
    test(`${kind}: a CONNECT the proxy refuses ends the client (a 403 answer or an error), and reaches nothing`, { skip: clientUnavailable(kind) }, async () => {
      const seenBefore = proxy.seen.length;
      const outcome = await send(kind, { url: 'https://refused.example.invalid/v1/models', proxy: { url: proxy.url, token: AGENT_TOKEN }, caFile: ca.certFile }).then(
        (r) => `status ${r.status}`,
        (e: unknown) => `error ${(e as Error).message.slice(0, 80)}`,
      );
      assert.match(outcome, /^(status 403|error )/, outcome);
      assert.equal(proxy.seen.slice(seenBefore)[0]?.target, 'refused.example.invalid:443');
    });
  }

  for (const kind of ['curl', 'node-https', 'python-requests', 'python-urllib', 'python-httpx'] as const) {
    test(`${kind}: an http:// target goes to the proxy in absolute form with the proxy credential`, { skip: clientUnavailable(kind) }, async () => {
      const seenBefore = proxy.seen.length;
      const r = await send(kind, { url: `${plain.origin}/v1/models`, headers: { authorization: `Bearer ${KEY}` }, proxy: { url: proxy.url, token: AGENT_TOKEN } });
      assert.equal(r.status, 200, r.body);
      const seen = proxy.seen.slice(seenBefore);
      assert.equal(seen.length, 1, JSON.stringify(seen));
      assert.equal(seen[0]!.kind, 'absolute');
      assert.equal(seen[0]!.target, `${plain.origin}/v1/models`);
      assert.equal(seen[0]!.proxyAuthorization, `Basic ${Buffer.from(`agent:${AGENT_TOKEN}`).toString('base64')}`);
    });
  }
});

describe('the openai SDK (v6)', () => {
  test('straight to the upstream: a completion, a stream with the usage chunk, and the upstream sees the SDK key', async () => {
    const { client, close } = openaiDirect(`${tls.origin}/v1`, KEY, ca.certPem);
    try {
      const c = await client.chat.completions.create({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(c.usage?.total_tokens, 20);
      const s = await client.chat.completions.create({ model: 'gpt-fixture', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
      let text = '';
      let usage: number | undefined;
      for await (const chunk of s) {
        text += chunk.choices[0]?.delta?.content ?? '';
        if (chunk.usage) usage = chunk.usage.total_tokens;
      }
      assert.equal(text, 'Hello from the fixture upstream, streamed word by word.');
      assert.equal(usage, 20);
      assert.equal(tls.received.at(-1)!.headers.authorization, `Bearer ${KEY}`);
      await assert.rejects(openaiDirect(`${tls.origin}/v1`, 'sk-wrong', ca.certPem).client.models.list(), (e: unknown) => (e as { status?: number }).status === 401);
    } finally {
      await close();
    }
  });

  test('the forward-proxy recipe: undici fetch + ProxyAgent with the token as Proxy-Authorization: Bearer', async () => {
    const seenBefore = proxy.seen.length;
    const { client, close } = openaiViaForwardProxy(`${tls.origin}/v1`, { url: proxy.url, token: AGENT_TOKEN }, ca.certPem);
    try {
      // No Tessera here to inject the key: the fixture refuses the placeholder, which proves the
      // request went through the proxy to the upstream with the SDK's placeholder key.
      await assert.rejects(client.models.list(), (e: unknown) => (e as { status?: number }).status === 401);
      const seen = proxy.seen.slice(seenBefore);
      assert.equal(seen[0]?.kind, 'connect');
      assert.equal(seen[0]?.proxyAuthorization, `Bearer ${AGENT_TOKEN}`);
      assert.match(String(tls.received.at(-1)!.headers.authorization), /^Bearer placeholder-/);
    } finally {
      await close();
    }
  });
});
