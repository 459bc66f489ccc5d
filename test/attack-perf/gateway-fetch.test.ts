/**
 * Attacks on the gateway's upstream fetch after ADR 0294 (a JSON answer read into a buffer and
 * handed over as a Response-like object): an upstream speaking raw HTTP/1.1 that sends a huge
 * answer (with a lying or no Content-Length, chunked), something that is not JSON, a byte order
 * mark, a wrong content-type. The size bound holds in every case and the answers read as a
 * WHATWG Response would read them.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { boundedUpstreamFetch } from '../../src/gateway/http-fetch.js';
import { isTesseraError } from '../../src/shared/errors.js';

const LIMIT = 64 * 1024;
const sockets = new Set<Socket>();
const server = createServer((s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
  s.on('error', () => undefined);
  s.once('data', (c: Buffer) => {
    const path = c.toString('latin1').split(' ')[1]!;
    const big = 'x'.repeat(LIMIT * 4);
    const json = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { v: 'é' } });
    switch (path) {
      case '/huge-chunked': {
        s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
        for (let i = 0; i < 16; i++) s.write(`${(16 * 1024).toString(16)}\r\n${'y'.repeat(16 * 1024)}\r\n`);
        s.end('0\r\n\r\n');
        return;
      }
      case '/huge-close': // no length, no chunking: read until close
        s.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${big}`);
        return;
      case '/cl-lie': // a small Content-Length, a huge body after it
        s.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n${big}`);
        return;
      case '/cl-huge':
        s.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${LIMIT + 1}\r\n\r\n${'z'.repeat(100)}`);
        return;
      case '/bom':
        s.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(`\ufeff${json}`)}\r\n\r\n\ufeff${json}`);
        return;
      case '/html':
        s.end('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<h1>nope</h1>');
        return;
      case '/utf16':
        s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-16le\r\nContent-Length: ${json.length * 2}\r\n\r\n`), Buffer.from(json, 'utf16le')]));
        return;
      default:
        s.destroy();
    }
  });
});
const ready = new Promise<string>((r) => server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const f = boundedUpstreamFetch(LIMIT);
const tooLarge = (e: unknown): boolean => isTesseraError(e) && e.code === 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE';

for (const path of ['/huge-chunked', '/huge-close', '/cl-huge']) {
  test(`an answer over the bound (${path}) is refused TOO_LARGE, never read whole`, async () => {
    await assert.rejects(f(`${await ready}${path}`, { method: 'POST', body: '{}' }), tooLarge);
  });
}

test('a Content-Length smaller than the body: only the declared bytes are read (not JSON → json() throws), nothing beyond', async () => {
  const r = await f(`${await ready}/cl-lie`, { method: 'POST', body: '{}' });
  assert.equal(await r.text(), 'x'.repeat(10));
});

test('a byte order mark is dropped as WHATWG does; the same answer as a real Response', async () => {
  const r = await f(`${await ready}/bom`, { method: 'POST', body: '{}' });
  assert.deepEqual(await r.json(), { jsonrpc: '2.0', id: 1, result: { v: 'é' } });
});

test('not JSON, and a wrong charset: json() fails exactly as a real Response\'s does', async () => {
  for (const path of ['/html', '/utf16']) {
    const r = await f(`${await ready}${path}`, { method: 'POST', body: '{}' });
    const buf = Buffer.from(await r.clone().arrayBuffer());
    const real = new Response(buf, { headers: r.headers });
    const expected = await real.json().then((v) => ({ ok: v }), (e: Error) => ({ err: e.name }));
    const got = await r.json().then((v) => ({ ok: v }), (e: Error) => ({ err: e.name }));
    assert.deepEqual(got, expected, path);
  }
});
