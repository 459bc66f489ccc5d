/**
 * Token usage from provider responses (src/proxy/usage.ts): OpenAI chat/completions, embeddings
 * and Responses API JSON; OpenAI SSE with include_usage and Responses API events; Anthropic JSON
 * and SSE (message_start + cumulative message_delta); the WHATWG event-stream rules (CRLF/CR/LF
 * split anywhere, multi-line data, comments, BOM, unterminated last event); bounds; malformed
 * input; the include_usage rewrite of streamed requests. Also the presets (src/proxy/providers.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSseParser, createUsageReader, withStreamUsage, type Usage } from '../../src/proxy/usage.js';
import { PRESETS, applyPreset, missingDefaultHeaders } from '../../src/proxy/providers.js';

function read(kind: 'openai' | 'anthropic', type: string | undefined, body: string | Buffer, chunk = Infinity, opts = {}): Usage | undefined {
  const r = createUsageReader(kind, type, opts);
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  for (let i = 0; i < b.length; i += chunk === Infinity ? b.length : chunk) r.push(b.subarray(i, Math.min(b.length, i + (chunk === Infinity ? b.length : chunk))));
  return r.end();
}

const CHAT = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi "usage": {' } }], usage: { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19, prompt_tokens_details: { cached_tokens: 4 } } });

test('OpenAI chat completion JSON: prompt/completion/total tokens', () => {
  assert.deepEqual(read('openai', 'application/json', CHAT), { input: 12, output: 7, total: 19 });
  assert.deepEqual(read('openai', 'application/json; charset=utf-8', CHAT, 5), { input: 12, output: 7, total: 19 });
});

test('OpenAI embeddings JSON (no completion_tokens) and Responses API JSON', () => {
  assert.deepEqual(read('openai', 'application/json', JSON.stringify({ object: 'list', data: [], usage: { prompt_tokens: 8, total_tokens: 8 } })), { input: 8, output: 0, total: 8 });
  assert.deepEqual(read('openai', 'application/json', JSON.stringify({ object: 'response', output: [], usage: { input_tokens: 30, output_tokens: 11, total_tokens: 41, output_tokens_details: { reasoning_tokens: 3 } } })), { input: 30, output: 11, total: 41 });
  // total absent: input + output.
  assert.deepEqual(read('openai', 'application/json', JSON.stringify({ usage: { input_tokens: 2, output_tokens: 3 } })), { input: 2, output: 3, total: 5 });
});

test('Anthropic message JSON: input includes cache creation and reads', () => {
  const body = JSON.stringify({ id: 'msg_1', type: 'message', content: [{ type: 'text', text: 'x' }], usage: { input_tokens: 25, cache_creation_input_tokens: 100, cache_read_input_tokens: 50, output_tokens: 9 } });
  assert.deepEqual(read('anthropic', 'application/json', body), { input: 175, output: 9, total: 184 });
  assert.deepEqual(read('anthropic', 'application/json', JSON.stringify({ usage: { input_tokens: 3, output_tokens: 4, cache_read_input_tokens: null } })), { input: 3, output: 4, total: 7 });
});

test('no usage, malformed or wrong-typed usage, other media types: undefined, never a throw', () => {
  const cases: [string, string | undefined, string][] = [
    ['openai', 'application/json', '{"error":{"message":"bad","type":"invalid_request_error"}}'],
    ['openai', 'application/json', '{"usage":{"prompt_tokens":'],
    ['openai', 'application/json', '{"usage":{"prompt_tokens":"12","completion_tokens":1}}'],
    ['openai', 'application/json', '{"usage":{"prompt_tokens":-1,"completion_tokens":1}}'],
    ['openai', 'application/json', '{"usage":{"prompt_tokens":1.5,"completion_tokens":1}}'],
    ['openai', 'application/json', '{"usage":{"prompt_tokens":1,"completion_tokens":"x"}}'],
    ['openai', 'application/json', '{"usage":{"prompt_tokens":1e300,"completion_tokens":1}}'],
    ['openai', 'application/json', '[1,2]'],
    ['openai', 'application/json', 'null'],
    ['openai', 'application/json', ''],
    ['anthropic', 'application/json', '{"usage":{"input_tokens":3}}'],
    ['anthropic', 'application/json', '{"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":"5"}}'],
    ['openai', 'text/plain', CHAT],
    ['openai', undefined, CHAT],
    ['openai', 'application/octet-stream', CHAT],
  ];
  for (const [kind, type, body] of cases) assert.equal(read(kind as 'openai', type, body), undefined, `${kind} ${type} ${body}`);
  // Invalid UTF-8 in the body: still no throw.
  assert.equal(read('openai', 'application/json', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), undefined);
});

test('a JSON body over the bound: usage unknown, the body not kept', () => {
  const pad = 'x'.repeat(2000);
  const body = JSON.stringify({ choices: [{ message: { content: pad } }], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } });
  assert.equal(read('openai', 'application/json', body, 100, { maxJsonBytes: 1000 }), undefined);
  assert.deepEqual(read('openai', 'application/json', body, 100, { maxJsonBytes: body.length }), { input: 1, output: 2, total: 3 });
});

/** An OpenAI chat stream with include_usage, as the API sends it. */
const OPENAI_SSE = [
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}',
  '',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"}}],"usage":null}',
  '',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}',
  '',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}',
  '',
  'data: [DONE]',
  '',
  '',
].join('\n');

test('OpenAI SSE: the final usage chunk, whatever the chunking and line endings', () => {
  for (const eol of ['\n', '\r\n', '\r']) {
    const body = Buffer.from(OPENAI_SSE.replace(/\n/g, eol), 'utf8');
    for (let chunk = 1; chunk <= 40; chunk++) {
      assert.deepEqual(read('openai', 'text/event-stream', body, chunk), { input: 9, output: 2, total: 11 }, `eol ${JSON.stringify(eol)} chunk ${chunk}`);
    }
    assert.deepEqual(read('openai', 'text/event-stream; charset=utf-8', body), { input: 9, output: 2, total: 11 });
  }
});

test('OpenAI SSE without include_usage: no usage', () => {
  const body = OPENAI_SSE.split('\n\n').filter((e) => !e.includes('"total_tokens"')).join('\n\n');
  assert.equal(read('openai', 'text/event-stream', body), undefined);
});

test('OpenAI Responses API SSE: response.completed carries the usage', () => {
  const body = [
    'event: response.created',
    'data: {"type":"response.created","response":{"id":"resp_1","status":"in_progress","usage":null}}',
    '',
    'event: response.output_text.delta',
    'data: {"type":"response.output_text.delta","delta":"Hi"}',
    '',
    'event: response.completed',
    'data: {"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":14,"output_tokens":5,"total_tokens":19}}}',
    '',
    '',
  ].join('\n');
  assert.deepEqual(read('openai', 'text/event-stream', body, 7), { input: 14, output: 5, total: 19 });
});

/** An Anthropic Messages stream: message_start usage, then cumulative message_delta usage. */
const ANTHROPIC_SSE = [
  'event: message_start',
  'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":1}}}',
  '',
  'event: ping',
  'data: {"type": "ping"}',
  '',
  ': a comment line',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}',
  '',
  'event: message_delta',
  'data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":7}}',
  '',
  'event: message_delta',
  'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}',
  '',
  'event: message_stop',
  'data: {"type":"message_stop"}',
  '',
  '',
].join('\n');

test('Anthropic SSE: input from message_start, output the latest cumulative message_delta', () => {
  for (const eol of ['\n', '\r\n', '\r']) {
    const body = Buffer.from(ANTHROPIC_SSE.replace(/\n/g, eol), 'utf8');
    for (const chunk of [1, 2, 3, 13, 64, Infinity]) {
      assert.deepEqual(read('anthropic', 'text/event-stream', body, chunk), { input: 35, output: 15, total: 50 }, `chunk ${chunk}`);
    }
  }
});

test('Anthropic SSE: a message_delta that also reports input replaces message_start\'s', () => {
  const body = ANTHROPIC_SSE.replace('"usage":{"output_tokens":15}', '"usage":{"input_tokens":40,"output_tokens":15}');
  assert.deepEqual(read('anthropic', 'text/event-stream', body), { input: 50, output: 15, total: 65 });
});

test('Anthropic SSE cut before message_start completes: undefined', () => {
  assert.equal(read('anthropic', 'text/event-stream', ANTHROPIC_SSE.slice(0, 60)), undefined);
});

test('event-stream parsing: multi-line data, comments, field without colon, BOM, no space, unterminated last event', () => {
  const events: string[] = [];
  const p = createSseParser((d) => events.push(d));
  p.push(Buffer.from('\uFEFFdata: a\r\ndata:b\r\n: comment\r\ndata\r\nevent: x\r\nid: 1\r\n\r\n', 'utf8'));
  p.push(Buffer.from('data:  two spaces\n\n\n\ndata: never dispatched', 'utf8'));
  p.end();
  assert.deepEqual(events, ['a\nb\n', ' two spaces']);
  // The unterminated last event is discarded even when it holds usage.
  assert.equal(read('openai', 'text/event-stream', 'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}'), undefined);
  assert.equal(read('openai', 'text/event-stream', 'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n'), undefined);
  assert.deepEqual(read('openai', 'text/event-stream', 'data: {"choices":[],"usage":{"prompt_tokens":1,\ndata: "completion_tokens":1}}\n\n'), { input: 1, output: 1, total: 2 });
});

test('a CR at the end of one chunk and LF at the start of the next are one line end', () => {
  const events: string[] = [];
  const p = createSseParser((d) => events.push(d));
  p.push(Buffer.from('data: a\r'));
  p.push(Buffer.from('\ndata: b\r'));
  p.push(Buffer.from('\n\r'));
  p.push(Buffer.from('\n'));
  assert.deepEqual(events, ['a\nb']);
});

test('an over-long line is dropped as it streams (with its event), later events are read, memory stays bounded', () => {
  const events: string[] = [];
  const p = createSseParser((d) => events.push(d), 64);
  p.push(Buffer.from('data: short\n\n'));
  p.push(Buffer.from('data: ' + 'x'.repeat(50)));
  for (let i = 0; i < 1000; i++) p.push(Buffer.from('y'.repeat(100))); // 100 kB in a line: skipped
  p.push(Buffer.from('z\ndata: same event\n\ndata: next\n\n'));
  assert.deepEqual(events, ['short', 'next']);
  // Many data lines adding up past the bound: the event is dropped.
  const events2: string[] = [];
  const q = createSseParser((d) => events2.push(d), 64);
  q.push(Buffer.from(`${'data: 0123456789\n'.repeat(10)}\ndata: ok\n\n`));
  assert.deepEqual(events2, ['ok']);
  // Through the reader: a huge line, then the usage chunk, still counted.
  const body = `data: {"pad":"${'p'.repeat(5000)}"}\n\n` + OPENAI_SSE;
  assert.deepEqual(read('openai', 'text/event-stream', body, 333, { maxLineBytes: 1024 }), { input: 9, output: 2, total: 11 });
});

test('malformed SSE data (not JSON, wrong types) is skipped, never thrown', () => {
  const body = 'data: {not json\n\ndata: {"usage":{"prompt_tokens":"9"}}\n\ndata: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\ndata: {"usage":{"prompt_tokens":"x"}}\n\ndata: [DONE]\n\n';
  assert.deepEqual(read('openai', 'text/event-stream', body), { input: 3, output: 4, total: 7 });
  assert.equal(read('anthropic', 'text/event-stream', 'data: {"type":"message_start","message":{"usage":{"input_tokens":"1","output_tokens":1}}}\n\n'), undefined);
  assert.equal(read('anthropic', 'text/event-stream', Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a])), undefined);
});

test('withStreamUsage: asks a streamed chat completion for usage; leaves every other body alone', () => {
  const json = 'application/json';
  const out = withStreamUsage(Buffer.from('{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'), json);
  assert.deepEqual(JSON.parse(out!.toString()), { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } });
  const kept = withStreamUsage(Buffer.from('{"stream":true,"prompt":"x","stream_options":{"include_obfuscation":false}}'), 'application/json; charset=utf-8');
  assert.deepEqual(JSON.parse(kept!.toString()), { stream: true, prompt: 'x', stream_options: { include_obfuscation: false, include_usage: true } });
  const off = withStreamUsage(Buffer.from('{"stream":true,"messages":[],"stream_options":{"include_usage":false}}'), json);
  assert.deepEqual(JSON.parse(off!.toString()).stream_options, { include_usage: true });
  for (const [body, type] of [
    ['{"stream":true,"messages":[],"stream_options":{"include_usage":true}}', json], // already asks
    ['{"stream":false,"messages":[]}', json],
    ['{"messages":[]}', json],
    ['{"stream":"true","messages":[]}', json],
    ['{"stream":true,"input":"hi"}', json], // Responses API
    ['{"stream":true,"messages":[],"stream_options":"x"}', json],
    ['{"stream":true,"messages":[]', json],
    ['[]', json],
    ['', json],
    ['{"stream":true,"messages":[]}', 'text/plain'],
    ['{"stream":true,"messages":[]}', undefined],
  ] as const) assert.equal(withStreamUsage(Buffer.from(body), type), undefined, `${body} ${type}`);
});

test('presets: documented auth headers and upstreams; explicit keys win', () => {
  assert.deepEqual(PRESETS.openai.credential, { header: 'Authorization', format: 'Bearer {value}' });
  assert.deepEqual(PRESETS.anthropic.credential, { header: 'x-api-key', format: '{value}' });
  assert.deepEqual(PRESETS.anthropic.defaultHeaders, { 'anthropic-version': '2023-06-01' });
  assert.deepEqual(applyPreset({ name: 'openai', preset: 'openai', credential: { secret: 'kv/openai/key' } }), {
    name: 'openai', preset: 'openai', upstream: 'https://api.openai.com/v1', hosts: ['api.openai.com'], body_fields: ['model'],
    credential: { secret: 'kv/openai/key', header: 'Authorization', format: 'Bearer {value}' },
  });
  assert.deepEqual(applyPreset({ name: 'claude', preset: 'anthropic', credential: { secret: 'kv/anthropic/key' } }), {
    name: 'claude', preset: 'anthropic', upstream: 'https://api.anthropic.com', hosts: ['api.anthropic.com'], body_fields: ['model'],
    credential: { secret: 'kv/anthropic/key', header: 'x-api-key', format: '{value}' },
  });
  // An OpenAI-compatible server: its own upstream, hosts left to the schema's default; own fields win.
  assert.deepEqual(applyPreset({ name: 'local', preset: 'openai', upstream: 'http://127.0.0.1:8000/v1', body_fields: ['model', 'user'], credential: { secret: 'kv/x', format: 'Token {value}' } }), {
    name: 'local', preset: 'openai', upstream: 'http://127.0.0.1:8000/v1', body_fields: ['model', 'user'], credential: { secret: 'kv/x', format: 'Token {value}', header: 'Authorization' },
  });
  // Query credential: no header added. OAuth: {access_token}.
  assert.deepEqual((applyPreset({ preset: 'openai', credential: { secret: 'kv/x', query: 'key' } }) as { credential: unknown }).credential, { secret: 'kv/x', query: 'key' });
  assert.deepEqual((applyPreset({ preset: 'openai', credential: { oauth: { token_url: 'https://as/token' } } }) as { credential: unknown }).credential, { oauth: { token_url: 'https://as/token' }, header: 'Authorization', format: 'Bearer {access_token}' });
  // Own header other than the preset's: no format guessed.
  assert.deepEqual((applyPreset({ preset: 'anthropic', credential: { secret: 'kv/x', header: 'Authorization' } }) as { credential: unknown }).credential, { secret: 'kv/x', header: 'Authorization' });
  assert.deepEqual((applyPreset({ preset: 'anthropic', credential: { secret: 'kv/x', header: 'X-Api-Key' } }) as { credential: unknown }).credential, { secret: 'kv/x', header: 'X-Api-Key', format: '{value}' });
  // Not a preset route: unchanged (same object).
  for (const raw of [null, 'x', [], { name: 'a' }, { preset: 'gemini' }]) assert.equal(applyPreset(raw), raw);
});

test('anthropic-version is added only when the agent sent none', () => {
  assert.deepEqual(missingDefaultHeaders('anthropic', { 'content-type': 'application/json' }), { 'anthropic-version': '2023-06-01' });
  assert.deepEqual(missingDefaultHeaders('anthropic', { 'anthropic-version': '2024-01-01' }), {});
  assert.deepEqual(missingDefaultHeaders('anthropic', { 'Anthropic-Version': '2024-01-01' }), {});
  assert.deepEqual(missingDefaultHeaders('openai', {}), {});
});
