import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { httpLoad, wrkAvailable } from '../../bench/http-load.js';

interface Seen {
  tokens: Set<string>;
  bodies: Set<string>;
  methods: Set<string>;
  contentTypes: Set<string>;
}

/** A server that records what it received and answers 204 unless the body is "bad". */
async function recorder(): Promise<{ server: Server; url: string; seen: Seen }> {
  const seen: Seen = { tokens: new Set(), bodies: new Set(), methods: new Set(), contentTypes: new Set() };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const auth = req.headers.authorization;
      if (auth) seen.tokens.add(auth.replace(/^Bearer /, ''));
      if (body) seen.bodies.add(body);
      seen.methods.add(req.method ?? '');
      if (req.headers['content-type']) seen.contentTypes.add(req.headers['content-type']);
      res.writeHead(body === 'bad' ? 418 : 204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return { server, url: `http://127.0.0.1:${addr.port}`, seen };
}

const tools: ('wrk' | 'node')[] = wrkAvailable() ? ['wrk', 'node'] : ['node'];

for (const tool of tools) {
  test(`httpLoad (${tool}) cycles tokens and bodies, byte for byte, and counts unexpected statuses`, async () => {
    const prev = process.env.TESSERA_BENCH_CLIENT;
    if (tool === 'node') process.env.TESSERA_BENCH_CLIENT = 'node';
    const { server, url, seen } = await recorder();
    try {
      // Long, distinct tokens (as many as the tokens bench uses) and bodies with bytes that
      // need escaping or framing: newline, quote, backslash, non-ASCII.
      const tokens = Array.from({ length: 15_000 }, (_, i) => `${String(i).padStart(6, '0')}.${'x'.repeat(500)}`);
      const bodies = ['a=1&b="q"', 'line1\nline2', 'back\\slash', 'ünïcode ✓'];
      const r = await httpLoad({ url, method: 'POST', path: '/p?x=1', tokens, bodies, contentType: 'text/plain', expectStatus: 204, concurrency: 4, seconds: 1, warmupSeconds: 0 });
      assert.equal(r.tool, tool);
      assert.equal(r.unexpected, 0, r.firstUnexpected ?? "");
      assert.ok(r.requests > 0 && r.rps > 0, "some requests completed");
      assert.deepEqual([...seen.methods], ['POST']);
      assert.deepEqual([...seen.contentTypes], ['text/plain']);
      assert.deepEqual([...seen.bodies].sort(), [...bodies].sort());
      for (const t of seen.tokens) assert.ok(tokens.includes(t) || /^\d{6}\.x{500}$/.test(t), 'only the given tokens are sent');
      // Distinct tokens are used (not one repeated): at least min(requests, 100) of them.
      assert.ok(seen.tokens.size >= Math.min(r.requests, 100), `${seen.tokens.size} distinct tokens for ${r.requests} requests`);

      const bad = await httpLoad({ url, method: 'PUT', path: '/', bodies: ['bad', 'ok'], expectStatus: 204, concurrency: 2, seconds: 1, warmupSeconds: 0 });
      assert.ok(bad.unexpected > 0);
      assert.match(bad.firstUnexpected ?? '', /^418/);
    } finally {
      server.close();
      if (prev === undefined) delete process.env.TESSERA_BENCH_CLIENT;
      else process.env.TESSERA_BENCH_CLIENT = prev;
    }
  });
}

for (const tool of tools) {
  test(`httpLoad (${tool}) sends the token scheme given and a cycled header, each value once while the list lasts`, async () => {
    const prev = process.env.TESSERA_BENCH_CLIENT;
    if (tool === 'node') process.env.TESSERA_BENCH_CLIENT = 'node';
    const auths = new Set<string>();
    const values: string[] = [];
    const server = createServer((req, res) => {
      auths.add(req.headers.authorization ?? '');
      values.push(String(req.headers['x-cycled'] ?? ''));
      res.writeHead(204).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const list = Array.from({ length: 50 }, (_, i) => `v${i}`);
      const r = await httpLoad({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, method: 'GET', path: '/', tokens: ['tok'], scheme: 'DPoP', cycled: { name: 'x-cycled', values: list }, expectStatus: 204, concurrency: 1, seconds: 1, warmupSeconds: 0, maxRequests: 50 });
      assert.equal(r.unexpected, 0, r.firstUnexpected ?? '');
      assert.deepEqual([...auths], ['DPoP tok']);
      assert.ok(values.length > 0 && values.length <= 50);
      assert.equal(new Set(values).size, values.length, 'no value sent twice');
      for (const v of values) assert.ok(list.includes(v));
    } finally {
      server.close();
      if (prev === undefined) delete process.env.TESSERA_BENCH_CLIENT;
      else process.env.TESSERA_BENCH_CLIENT = prev;
    }
  });
}

test('httpLoad refuses a non-loopback target', async () => {
  await assert.rejects(httpLoad({ url: 'http://192.0.2.1:80', method: 'GET', path: '/', expectStatus: 200, concurrency: 1, seconds: 1 }), /not loopback/);
});
