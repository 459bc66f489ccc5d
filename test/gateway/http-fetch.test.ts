/**
 * The upstream fetch of the Streamable HTTP client transport (src/gateway/http-fetch.ts): a JSON
 * answer is read within the bound and handed over as a Response-like object whose json()/text()
 * read the buffer (ADR 0294); every other member is a real Response's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { boundedUpstreamFetch } from '../../src/gateway/http-fetch.js';

async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}

test('a JSON answer: status, headers, json(), once only; text() drops a byte order mark; clone() and arrayBuffer() work', async (t) => {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'é ✓' }] } });
  const { url, server } = await serve((req, res) => {
    res.writeHead(req.headers['x-bom'] ? 201 : 200, { 'content-type': 'application/json', 'mcp-session-id': 'abc' });
    res.end(req.headers['x-bom'] ? `\ufeff${body}` : body);
  });
  t.after(() => server.close());
  const f = boundedUpstreamFetch(1 << 20);
  const r = await f(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(r.status, 200);
  assert.equal(r.ok, true);
  assert.equal(r.headers.get('mcp-session-id'), 'abc');
  assert.equal(r.bodyUsed, false);
  assert.deepEqual(await r.json(), JSON.parse(body));
  assert.equal(r.bodyUsed, true);
  await assert.rejects(r.text(), TypeError);
  assert.equal(r.body, null);

  const b = await f(url, { method: 'POST', headers: { 'x-bom': '1' }, body: '{}' });
  assert.equal(b.status, 201);
  const copy = b.clone();
  assert.equal(await b.text(), body);
  assert.equal(new TextDecoder().decode(await copy.arrayBuffer()), body);

  const c = await f(url, { method: 'POST', body: '{}' });
  await c.body?.cancel();
});

test('an answer past the bound is refused (TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE), with or without a content-length', async (t) => {
  const { url, server } = await serve((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.headers['x-chunked']) {
      res.write('x'.repeat(600));
      res.end('x'.repeat(600));
    } else res.end('x'.repeat(1200));
  });
  t.after(() => server.close());
  const f = boundedUpstreamFetch(1000);
  for (const headers of [{}, { 'x-chunked': '1' }] as Record<string, string>[]) {
    await assert.rejects(f(url, { method: 'POST', headers, body: '{}' }), (e: Error & { code?: string }) => e.code === 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE');
  }
});
