/** The conformance front's SSE rewriting (test/conformance/sse.ts): framing kept, messages rewritten. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sseRewriter } from './sse.js';

const upper = (m: unknown): unknown => ({ ...(m as object), method: String((m as { method: string }).method).toUpperCase() });

test('events split across chunks are rewritten once complete; id, retry, event and comments are kept', () => {
  const sse = sseRewriter(upper);
  const input = ': keep-alive\n\nid: 7\nretry: 500\ndata: \n\nevent: message\nid: 8\ndata: {"method":"notifications/progress"}\n\n';
  let out = '';
  for (let i = 0; i < input.length; i += 5) out += sse.push(input.slice(i, i + 5));
  out += sse.end();
  assert.equal(out, ': keep-alive\n\nid: 7\nretry: 500\ndata: \n\nevent: message\nid: 8\ndata: {"method":"NOTIFICATIONS/PROGRESS"}\n\n');
});

test('CRLF framing, multi-line data and non-JSON data', () => {
  const sse = sseRewriter(upper);
  assert.equal(sse.push('data: {"method":\r\ndata: "a"}\r\n\r\n'), 'data: {"method":"A"}\r\n\r\n');
  assert.equal(sse.push('data: not json\n\n'), 'data: not json\n\n');
  assert.equal(sse.push('data: {"method":"b"}'), '', 'an incomplete event waits');
  assert.equal(sse.end(), 'data: {"method":"b"}', 'and is passed on as it is when the stream ends');
});
