import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDeclarativeProviders, parseDeclarativeTools } from '../../src/gateway/tools/index.js';
import type { ToolProvider } from '../../src/gateway/types.js';
import { systemClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { testContext } from './tools-helpers.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

const API_KEY = 'sk-weather-0123456789abcdef';
const secrets = { 'weather/api-key': API_KEY, 'svc/basic': 'svc-user:p@ss:word', 'svc/user': 'ünïcode', 'svc/password': 'pw!*()' };

let upstream: Server;
let other: Server;
let base = '';
let otherBase = '';
const seen: Seen[] = [];
let otherHits = 0;

async function listen(s: Server): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

before(async () => {
  other = createServer((_req, res) => {
    otherHits++;
    res.end('you should not be here');
  });
  otherBase = await listen(other);
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const path = req.url!.split('?')[0]!;
      if (path === '/slow') return; // never answers: the tool's timeout must fire
      if (path === '/big') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (let i = 0; i < 10; i++) res.write('x'.repeat(1000));
        return res.end();
      }
      if (path === '/big-cl') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5000' });
        return res.end('y'.repeat(5000));
      }
      if (path.startsWith('/status/')) {
        const status = Number(path.slice('/status/'.length));
        res.writeHead(status, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: `status ${status}` }));
      }
      if (path === '/redirect') {
        res.writeHead(302, { location: `${otherBase}/steal` });
        return res.end();
      }
      if (path === '/text') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        return res.end('plain text ✓');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, path }));
    });
  });
  base = await listen(upstream);
});

after(async () => {
  upstream.closeAllConnections();
  other.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  await new Promise((r) => other.close(r));
});

const citySchema = { type: 'object', properties: { city: { type: 'string', maxLength: 100 }, days: { type: 'integer', minimum: 1, maximum: 14 } }, required: ['city'] };

function providers(tools: unknown[]): ToolProvider[] {
  return createDeclarativeProviders(parseDeclarativeTools(tools), { clock: systemClock, logger: silentLogger });
}

function weatherProvider(extra: Record<string, unknown> = {}): ToolProvider {
  return providers([
    {
      server: 'weather',
      name: 'forecast',
      kind: 'http',
      description: 'Forecast for a city',
      url: `${base}/v1/forecast/{city}?days={days}`,
      input_schema: citySchema,
      credential: { secret: 'weather/api-key', in: 'header', name: 'Authorization', prefix: 'Bearer ' },
      headers: { Accept: 'application/json' },
      ...extra,
    },
  ])[0]!;
}

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TesseraError, String(e));
    assert.equal(e.code, code);
    if (re) assert.match(e.message, re);
    return true;
  });
}

const last = (): Seen => seen[seen.length - 1]!;

test('listTools advertises the normalised schema; one provider per server namespace', async () => {
  const ps = providers([
    { server: 'weather', name: 'forecast', kind: 'http', url: `${base}/v1/{city}`, input_schema: citySchema, method: 'POST' },
    { server: 'weather', name: 'now', kind: 'http', url: `${base}/v1/now/{city}`, input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
    { server: 'other', name: 'ping', kind: 'http', url: `${base}/ping` },
  ]);
  assert.deepEqual(ps.map((p) => p.server), ['weather', 'other']);
  const tools = await ps[0]!.listTools(new AbortController().signal);
  assert.deepEqual(tools.map((t) => t.name), ['forecast', 'now']);
  assert.equal(tools[0]!.inputSchema.additionalProperties, false);
  await rejectsWith(ps[0]!.callTool('nope', {}, testContext({ secrets })), 'TESSERA_TOOL_NOT_FOUND');
});

test('header credential arrives in the configured header; arguments are percent-encoded into the URL', async () => {
  const p = weatherProvider();
  const ctx = testContext({ secrets });
  const r = await p.callTool('forecast', { city: 'Oslo', days: 3 }, ctx);
  assert.equal(r.isError, false);
  assert.equal(last().method, 'GET');
  assert.equal(last().url, '/v1/forecast/Oslo?days=3');
  assert.equal(last().headers.authorization, `Bearer ${API_KEY}`);
  assert.equal(last().headers.accept, 'application/json');
  assert.deepEqual(r.structuredContent, { ok: true, path: '/v1/forecast/Oslo' });
  assert.deepEqual(JSON.parse((r.content[0] as { text: string }).text), { ok: true, path: '/v1/forecast/Oslo' });
  assert.deepEqual(ctx.resolved, ['weather/api-key']);
  // an optional query variable that is absent drops its pair
  await p.callTool('forecast', { city: 'Bergen' }, testContext({ secrets }));
  assert.equal(last().url, '/v1/forecast/Bergen');
});

test('path injection attempts stay inside one encoded segment', async () => {
  const p = weatherProvider();
  const cases: [string, string][] = [
    ['../admin', '/v1/forecast/..%2Fadmin'],
    ['%2F', '/v1/forecast/%252F'],
    ['?x=1', '/v1/forecast/%3Fx%3D1'],
    ['a#frag', '/v1/forecast/a%23frag'],
    ['a&days=99', '/v1/forecast/a%26days%3D99'],
    ['sp ace/é', '/v1/forecast/sp%20ace%2F%C3%A9'],
    ["it's(*)!", '/v1/forecast/it%27s%28%2A%29%21'],
    ['...', '/v1/forecast/...'],
  ];
  for (const [city, expected] of cases) {
    await p.callTool('forecast', { city, days: 1 }, testContext({ secrets }));
    assert.equal(last().url, `${expected}?days=1`, city);
  }
  for (const city of ['..', '.', '', 'a\ud800b']) {
    const before = seen.length;
    await rejectsWith(p.callTool('forecast', { city }, testContext({ secrets })), 'TESSERA_TOOL_ARGS_INVALID', /argument "city"/);
    assert.equal(seen.length, before, 'nothing was sent');
  }
  // query values are encoded too
  const q = providers([{ server: 's', name: 'q', kind: 'http', url: `${base}/search?q={q}&lang=en`, input_schema: { type: 'object', properties: { q: { type: 'string' } } } }])[0]!;
  await q.callTool('q', { q: 'a&lang=xx#y=1 /z' }, testContext());
  assert.equal(last().url, '/search?q=a%26lang%3Dxx%23y%3D1%20%2Fz&lang=en');
});

test('query credential is appended as a query parameter and registered in its encoded form', async () => {
  const p = weatherProvider({ credential: { secret: 'svc/password', in: 'query', name: 'appid' } });
  const ctx = testContext({ secrets });
  await p.callTool('forecast', { city: 'Oslo', days: 2 }, ctx);
  assert.equal(last().url, '/v1/forecast/Oslo?days=2&appid=pw%21%2A%28%29');
  assert.equal(last().headers.authorization, undefined);
  assert.ok(ctx.sensitive.includes('pw%21%2A%28%29'));
});

test('basic credential: from a user:password secret, or from username + password_secret (RFC 7617)', async () => {
  let ctx = testContext({ secrets });
  await weatherProvider({ credential: { in: 'basic', secret: 'svc/basic' } }).callTool('forecast', { city: 'Oslo' }, ctx);
  const token = Buffer.from('svc-user:p@ss:word', 'utf8').toString('base64');
  assert.equal(last().headers.authorization, `Basic ${token}`);
  assert.ok(ctx.sensitive.includes(token));
  ctx = testContext({ secrets });
  await weatherProvider({ credential: { in: 'basic', username_secret: 'svc/user', password_secret: 'svc/password' } }).callTool('forecast', { city: 'Oslo' }, ctx);
  assert.equal(last().headers.authorization, `Basic ${Buffer.from('ünïcode:pw!*()', 'utf8').toString('base64')}`);
  await weatherProvider({ credential: { in: 'basic', username: 'svc', password_secret: 'svc/password' } }).callTool('forecast', { city: 'Oslo' }, testContext({ secrets }));
  assert.equal(last().headers.authorization, `Basic ${Buffer.from('svc:pw!*()').toString('base64')}`);
});

test('POST with body: json sends the arguments not used in the URL; arguments never become headers', async () => {
  const p = providers([
    {
      server: 'tickets',
      name: 'create',
      kind: 'http',
      method: 'POST',
      url: `${base}/v1/projects/{project}/tickets`,
      input_schema: { type: 'object', properties: { project: { type: 'string' }, title: { type: 'string' }, authorization: { type: 'string' } }, required: ['project', 'title'] },
      credential: { secret: 'weather/api-key', in: 'header', name: 'X-Api-Key' },
      headers: { 'X-Static': { secret: 'svc/password' } },
    },
  ])[0]!;
  await p.callTool('create', { project: 'p1', title: 'Hi', authorization: 'Bearer attacker' }, testContext({ secrets }));
  assert.equal(last().method, 'POST');
  assert.equal(last().url, '/v1/projects/p1/tickets');
  assert.equal(last().headers['x-api-key'], API_KEY);
  assert.equal(last().headers['x-static'], 'pw!*()');
  assert.equal(last().headers.authorization, undefined);
  assert.equal(last().headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(last().body), { title: 'Hi', authorization: 'Bearer attacker' });
});

test('schema failures are refused before anything is sent', async () => {
  const p = weatherProvider();
  const before = seen.length;
  await rejectsWith(p.callTool('forecast', {}, testContext({ secrets })), 'TESSERA_TOOL_ARGS_INVALID', /argument "city": is required/);
  await rejectsWith(p.callTool('forecast', { city: 'Oslo', days: 15 }, testContext({ secrets })), 'TESSERA_TOOL_ARGS_INVALID', /argument "days": must be <= 14/);
  await rejectsWith(p.callTool('forecast', { city: 'Oslo', days: '3' }, testContext({ secrets })), 'TESSERA_TOOL_ARGS_INVALID', /argument "days": must be of type integer/);
  await rejectsWith(p.callTool('forecast', { city: 'Oslo', host: 'evil' }, testContext({ secrets })), 'TESSERA_TOOL_ARGS_INVALID', /argument "host"/);
  await rejectsWith(p.callTool('forecast', [] as unknown as Record<string, unknown>, testContext({ secrets })), 'TESSERA_TOOL_ARGS_INVALID');
  assert.equal(seen.length, before);
});

test('a header secret with a line break or control character is refused before anything is sent, naming path and header, never the value', async () => {
  const before = seen.length;
  const cases: [Record<string, string>, Record<string, unknown>, RegExp][] = [
    [{ ...secrets, 'weather/api-key': `${API_KEY}\n` }, {}, /weather\/forecast: the secret weather\/api-key cannot be sent in the Authorization header: it holds a line break \(LF\) at its end .*tessera kv put weather\/api-key --from-file FILE/],
    [{ ...secrets, 'weather/api-key': `${API_KEY}\r\n` }, {}, /a line break \(CR\) at its end/],
    [{ ...secrets, 'weather/api-key': `abc\rdef` }, {}, /a line break \(CR\) at character 4 of 7/],
    [{ ...secrets, 'weather/api-key': `abc\u0000def` }, {}, /a control character \(0x00\) at character 4/],
    [{ ...secrets, 'svc/user': 'line1\nline2' }, { headers: { 'X-User': { secret: 'svc/user' } } }, /the secret svc\/user cannot be sent in the X-User header: it holds a line break \(LF\) at character 6 of 11/],
  ];
  for (const [values, extra, re] of cases) {
    await assert.rejects(weatherProvider(extra).callTool('forecast', { city: 'Oslo' }, testContext({ secrets: values })), (e: unknown) => {
      assert.ok(e instanceof TesseraError, String(e));
      assert.equal(e.code, 'TESSERA_GATEWAY_SECRET_UNUSABLE');
      assert.match(e.message, re);
      for (const v of Object.values(values)) if (v.length > 6) assert.ok(!e.message.includes(v.trim()), 'the value is never in the message');
      return true;
    });
  }
  assert.equal(seen.length, before, 'nothing was sent');
  // A tab is a valid field-value character (RFC 9110 §5.5): sent.
  const ok = await weatherProvider().callTool('forecast', { city: 'Oslo' }, testContext({ secrets: { ...secrets, 'weather/api-key': 'a\tb' } }));
  assert.equal(ok.isError, false);
  assert.equal(last().headers.authorization, 'Bearer a\tb');
});

test('4xx and 5xx become isError results; text bodies stay text', async () => {
  for (const status of [404, 500]) {
    const p = providers([{ server: 's', name: 't', kind: 'http', url: `${base}/status/${status}` }])[0]!;
    const r = await p.callTool('t', {}, testContext());
    assert.equal(r.isError, true);
    assert.match((r.content[0] as { text: string }).text, new RegExp(`^upstream answered HTTP ${status}: \\{"error"`));
  }
  const t = providers([{ server: 's', name: 't', kind: 'http', url: `${base}/text` }])[0]!;
  const r = await t.callTool('t', {}, testContext());
  assert.deepEqual(r, { content: [{ type: 'text', text: 'plain text ✓' }], isError: false });
});

test('redirects are not followed: the credential never reaches another origin', async () => {
  const p = providers([{ server: 's', name: 't', kind: 'http', url: `${base}/redirect`, credential: { secret: 'weather/api-key', in: 'header', name: 'Authorization', prefix: 'Bearer ' } }])[0]!;
  const r = await p.callTool('t', {}, testContext({ secrets }));
  assert.equal(r.isError, true);
  assert.match((r.content[0] as { text: string }).text, /HTTP 302 \(a redirect\); Tessera does not follow redirects/);
  assert.equal(otherHits, 0);
});

test('timeout → TESSERA_TOOL_TIMEOUT', async () => {
  const p = providers([{ server: 's', name: 't', kind: 'http', url: `${base}/slow`, timeout: '200ms' }])[0]!;
  await rejectsWith(p.callTool('t', {}, testContext()), 'TESSERA_TOOL_TIMEOUT', /within 200ms/);
});

test('oversized responses → TESSERA_TOOL_RESPONSE_TOO_LARGE (streamed and with Content-Length)', async () => {
  for (const path of ['/big', '/big-cl']) {
    const p = providers([{ server: 's', name: 't', kind: 'http', url: `${base}${path}`, max_response_bytes: 1000 }])[0]!;
    await rejectsWith(p.callTool('t', {}, testContext()), 'TESSERA_TOOL_RESPONSE_TOO_LARGE', /max_response_bytes \(1000\)/);
  }
  const ok = providers([{ server: 's', name: 't', kind: 'http', url: `${base}/big`, max_response_bytes: 10_000 }])[0]!;
  assert.equal(((await ok.callTool('t', {}, testContext())).content[0] as { text: string }).text.length, 10_000);
});

test('unreachable upstream → TESSERA_TOOL_UPSTREAM_FAILED without echoing the URL', async () => {
  const s = createServer();
  const dead = await listen(s);
  await new Promise((r) => s.close(r));
  const p = providers([{ server: 's', name: 't', kind: 'http', url: `${dead}/x`, credential: { secret: 'weather/api-key', in: 'query', name: 'key' } }])[0]!;
  await assert.rejects(p.callTool('t', {}, testContext({ secrets })), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_TOOL_UPSTREAM_FAILED');
    assert.ok(!e.message.includes(API_KEY));
    assert.match(e.message, /ECONNREFUSED/);
    return true;
  });
});

test('a call aborted by the caller rejects with the caller’s reason', async () => {
  const p = providers([{ server: 's', name: 't', kind: 'http', url: `${base}/slow`, timeout: '30s' }])[0]!;
  const ac = new AbortController();
  const reason = new Error('session closed');
  const before = seen.length;
  const call = p.callTool('t', {}, testContext({ signal: ac.signal }));
  // Aborted once the upstream has the request (not after a guessed delay).
  for (let i = 0; i < 500 && seen.length === before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.at(-1)?.url, '/slow');
  ac.abort(reason);
  await assert.rejects(call, (e: unknown) => e === reason);
});
