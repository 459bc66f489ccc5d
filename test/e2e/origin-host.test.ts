/**
 * Transport security per the MCP specification (issue 7 item 12), through real HTTP against the
 * whole server: `Origin` is validated on /mcp and on every API route (403 with a stable code
 * when present and not allowed), `Host` on the loopback listener (DNS rebinding), and allowed
 * origins get CORS answers. Requests are sent with node:http so that Origin and Host are exactly
 * what the test says (a browser could send any of these).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHarness, type Harness } from './harness.js';
import { INIT } from '../gateway/harness.js';

const AGENT = 'spiffe://tessera.local/ns/web/sa/agent';
const ALLOWED = 'https://console.example.com';

let h: Harness;
let token: string;
let mcpToken: string;
let port: number;

before(async () => {
  const policyDir = mkdtempSync(join(tmpdir(), 'tessera-origin-pol-'));
  mkdirSync(policyDir, { recursive: true });
  writeFileSync(join(policyDir, 'p.cedar'), '@id("none") forbid (principal, action, resource) when { false };');
  h = await startHarness({ policyDir, config: { server: { listen: '127.0.0.1:0', allowed_origins: [ALLOWED, 'http://tool.example.com:3000'], allowed_hosts: ['tessera.internal'] } } });
  port = Number(new URL(h.url).port);
  token = await h.login(await h.joinToken(AGENT));
  mcpToken = await h.login(await h.joinToken(AGENT), `${h.tessera.url}/mcp`);
});
after(() => h?.close());

interface Raw { status: number; headers: Record<string, string | string[] | undefined>; body: any }

/** One HTTP/1.1 request with exactly these headers (Host included: setHost is off). */
function raw(method: string, path: string, headers: Record<string, string | string[]>, body?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, setHost: false, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const auth = (t: string) => ({ authorization: `Bearer ${t}` });
const mcpPost = (headers: Record<string, string>) => raw('POST', '/mcp', { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...auth(mcpToken), ...headers }, INIT());
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();

/** Every kind of route a browser could reach: MCP, agent API, OAuth, operator API, discovery, health, unknown. */
const ROUTES: { name: string; send: (headers: Record<string, string>) => Promise<Raw>; okStatus: number }[] = [
  { name: 'POST /mcp (initialize)', send: (x) => mcpPost(x), okStatus: 200 },
  { name: 'GET /v1/whoami', send: (x) => raw('GET', '/v1/whoami', { ...auth(token), ...x }), okStatus: 200 },
  { name: 'POST /v1/oauth/token', send: (x) => raw('POST', '/v1/oauth/token', { 'content-type': 'application/x-www-form-urlencoded', ...x }, form({ grant_type: 'password' })), okStatus: 400 },
  { name: 'GET /v1/admin/revocations', send: (x) => raw('GET', '/v1/admin/revocations', { ...auth(h.adminToken), ...x }), okStatus: 200 },
  { name: 'GET /.well-known/jwks.json', send: (x) => raw('GET', '/.well-known/jwks.json', x), okStatus: 200 },
  { name: 'GET /.well-known/oauth-protected-resource/mcp', send: (x) => raw('GET', '/.well-known/oauth-protected-resource/mcp', x), okStatus: 200 },
  { name: 'GET /healthz', send: (x) => raw('GET', '/healthz', x), okStatus: 200 },
  { name: 'GET /no/such/route', send: (x) => raw('GET', '/no/such/route', x), okStatus: 404 },
];

function codeOf(r: Raw): string | undefined {
  return r.body?.error?.data?.code ?? r.body?.error?.code ?? r.body?.code;
}

test('an evil Origin is refused with 403 TESSERA_REQUEST_ORIGIN_NOT_ALLOWED on every route; no Origin is served', async () => {
  for (const route of ROUTES) {
    const evil = await route.send({ origin: 'http://evil.example.com' });
    assert.equal(evil.status, 403, `${route.name}: ${JSON.stringify(evil.body)}`);
    assert.equal(codeOf(evil), 'TESSERA_REQUEST_ORIGIN_NOT_ALLOWED', route.name);
    assert.equal(evil.headers['access-control-allow-origin'], undefined, `${route.name}: no CORS grant for a refused origin`);
    const none = await route.send({});
    assert.equal(none.status, route.okStatus, `${route.name} without Origin: ${JSON.stringify(none.body)}`);
  }
  // The MCP error is JSON-RPC shaped (code in data); the OAuth one RFC 6749 shaped.
  const mcp = await mcpPost({ origin: 'http://evil.example.com' });
  assert.equal(mcp.body.jsonrpc, '2.0');
  assert.equal(mcp.body.error.data.code, 'TESSERA_REQUEST_ORIGIN_NOT_ALLOWED');
  const oauth = await raw('POST', '/v1/oauth/token', { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example.com' }, form({ grant_type: 'password' }));
  assert.equal(oauth.body.error, 'invalid_request');
  assert.equal(oauth.body.code, 'TESSERA_REQUEST_ORIGIN_NOT_ALLOWED');
});

test('allowed origins (configured, own, loopback names) are served with a CORS grant; look-alikes are refused', async () => {
  for (const origin of [ALLOWED, 'HTTPS://Console.Example.COM', 'https://console.example.com:443', 'http://tool.example.com:3000', `http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
    const r = await mcpPost({ origin });
    assert.equal(r.status, 200, `${origin}: ${JSON.stringify(r.body)}`);
    assert.equal(r.headers['access-control-allow-origin'], origin);
    assert.match(String(r.headers['access-control-expose-headers']), /mcp-session-id/);
    assert.match(String(r.headers.vary), /Origin/i);
    const api = await raw('GET', '/v1/whoami', { ...auth(token), origin });
    assert.equal(api.status, 200, origin);
  }
  const lookAlikes = [
    'null', 'https://console.example.com.evil.com', 'https://evilconsole.example.com', 'https://console.example.co', 'http://console.example.com', 'https://console.example.com:8443',
    'https://console.example.com/', 'https://console.example.com/app', 'https://user@console.example.com', `${ALLOWED}, http://evil.example.com`, 'http://tool.example.com', 'http://tool.example.com:3001',
    `https://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`, `http://localhost.:${port}`, 'file://', '*', '',
  ];
  for (const origin of lookAlikes) {
    const r = await mcpPost({ origin });
    assert.equal(r.status, 403, `${JSON.stringify(origin)}: ${r.status}`);
    assert.equal(codeOf(r), 'TESSERA_REQUEST_ORIGIN_NOT_ALLOWED', origin);
  }
  // Two Origin headers (only one may be sent): refused.
  const twice = await raw('GET', '/v1/whoami', { ...auth(token), origin: [ALLOWED, 'http://evil.example.com'] });
  assert.equal(twice.status, 403);
});

test('CORS preflight: an allowed origin gets the MCP headers; another is refused', async () => {
  const ok = await raw('OPTIONS', '/mcp', { origin: ALLOWED, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-session-id' });
  assert.equal(ok.status, 204);
  assert.equal(ok.headers['access-control-allow-origin'], ALLOWED);
  assert.match(String(ok.headers['access-control-allow-headers']), /authorization/);
  assert.match(String(ok.headers['access-control-allow-headers']), /mcp-session-id/);
  assert.match(String(ok.headers['access-control-allow-methods']), /POST/);
  assert.equal(ok.headers['access-control-allow-credentials'], undefined, 'no credentials mode: bearer tokens only');
  const evil = await raw('OPTIONS', '/mcp', { origin: 'http://evil.example.com', 'access-control-request-method': 'POST' });
  assert.equal(evil.status, 403);
});

test('the MCP SDK client works from an allowed Origin and is refused from another', async () => {
  const connectWith = async (origin: string) => {
    const client = new Client({ name: 'origin-test', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${mcpToken}`, origin } } });
    await client.connect(transport);
    return client;
  };
  const good = await connectWith(ALLOWED);
  assert.ok(Array.isArray((await good.listTools()).tools));
  await good.close();
  await assert.rejects(connectWith('http://evil.example.com'), /403|ORIGIN_NOT_ALLOWED/);
});

test('Host on the loopback listener: loopback names on its port pass; rebinding names are refused with 403 TESSERA_REQUEST_HOST_NOT_ALLOWED', async () => {
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LocalHost:${port}`, `[::1]:${port}`, 'tessera.internal', `tessera.internal:${port}`]) {
    const r = await raw('GET', '/v1/whoami', { ...auth(token), host });
    assert.equal(r.status, 200, `${host}: ${JSON.stringify(r.body)}`);
  }
  const rebinding = ['evil.example.com', `evil.example.com:${port}`, `127.0.0.1.evil.example.com:${port}`, `localhost.evil.example.com:${port}`, `localhost:${port + 1}`, 'localhost', `localhost.:${port}`,
    `127.0.0.2:${port}`, `0.0.0.0:${port}`, `tessera.internal.evil.example.com:${port}`];
  for (const host of rebinding) {
    for (const send of [() => raw('GET', '/v1/whoami', { ...auth(token), host }), () => mcpPost({ host }), () => raw('GET', '/healthz', { host })]) {
      const r = await send();
      assert.equal(r.status, 403, `${host}: ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(codeOf(r), 'TESSERA_REQUEST_HOST_NOT_ALLOWED', host);
    }
  }
  // Same-origin GET from a rebinding page carries no Origin but its own Host: refused by Host.
  const sameOriginGet = await raw('GET', '/.well-known/jwks.json', { host: `evil.example.com:${port}` });
  assert.equal(sameOriginGet.status, 403);
});

test('a request without Host (HTTP/1.0) is refused on the loopback listener', async () => {
  const text = await new Promise<string>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end('GET /healthz HTTP/1.0\r\n\r\n'));
    let out = '';
    s.on('data', (d) => (out += d.toString('utf8')));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
  assert.match(text, /^HTTP\/1\.[01] 403/);
  assert.match(text, /TESSERA_REQUEST_HOST_NOT_ALLOWED/);
});

test('refusals are counted in tessera_http_guard_refusals_total', async () => {
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(metrics, /tessera_http_guard_refusals_total\{header="origin"\} [1-9]/);
  assert.match(metrics, /tessera_http_guard_refusals_total\{header="host"\} [1-9]/);
});
