/**
 * The SDK does DPoP for its users (issue 8 §3), against the whole server over real HTTP:
 * - by default it binds its tokens to an in-memory ES256 key and signs every request;
 * - `authorization()` and `authorizedFetch()` give other HTTP clients (the MCP SDK) the same;
 * - server nonces are retried once, at login and on requests;
 * - `tessera mcp` (the stdio relay) does it for stdio MCP clients, even where unbound tokens are
 *   refused (`tokens.dpop.require: always`);
 * - `dpop: false` gives plain Bearer tokens.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TesseraClient, TesseraApiError, TesseraAuthError, DpopKey, decodeJwt } from '../../src/sdk/index.js';
import { runStdioRelay } from '../../src/gateway/stdio-relay/index.js';
import { startDpopServer, type DpopServer } from './server.js';

let s: DpopServer;
const clients: TesseraClient[] = [];
before(async () => {
  s = await startDpopServer();
  for (const [path, value] of [['open/a', 'open-value'], ['bound/a', 'bound-value']]) {
    assert.equal((await s.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode: 'read' })).status, 200);
  }
});
after(async () => {
  for (const c of clients) c.close();
  await s.close();
});

function client(srv: DpopServer, opts: ConstructorParameters<typeof TesseraClient>[0] = {}): TesseraClient {
  const c = new TesseraClient({ addr: srv.url, ...opts });
  clients.push(c);
  return c;
}

test('by default the SDK binds its token to an in-memory key (token_type DPoP, cnf.jkt) and signs each request; the token alone is useless', async () => {
  const c = client(s, { audience: s.issuer });
  await c.loginWithJoinToken(await s.joinToken());
  const token = await c.token();
  s.sensitive.add(token);
  assert.equal((decodeJwt(token).claims as { cnf?: { jkt: string } }).cnf?.jkt, c.dpopThumbprint);
  assert.equal((await c.readSecret('bound/a')).value, 'bound-value', 'the policy for bound/ requires context.dpop');
  assert.equal((await c.readSecret('open/a')).value, 'open-value');
  const stolen = await s.request('GET', '/v1/secrets/open/a', { authorization: `Bearer ${token}` });
  assert.equal(stolen.code, 'TESSERA_DPOP_TOKEN_BOUND');
  // The key object shows only its public half.
  const key = DpopKey.generate();
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(key))).sort(), ['alg', 'thumbprint']);
  assert.deepEqual(Object.keys(key.publicJwk).sort(), ['crv', 'kty', 'x', 'y']);
});

test('authorization(): headers for one request; used twice, the proof is a replay', async () => {
  const c = client(s, { audience: s.issuer });
  await c.loginWithJoinToken(await s.joinToken());
  s.sensitive.add(await c.token());
  const h = await c.authorization('GET', `${s.url}/v1/whoami`);
  assert.match(h.authorization!, /^DPoP /);
  assert.ok(h.dpop);
  assert.equal((await s.request('GET', '/v1/whoami', h)).status, 200);
  assert.equal((await s.request('GET', '/v1/whoami', h)).code, 'TESSERA_DPOP_REPLAYED');
  const wrongMethod = await c.authorization('POST', `${s.url}/v1/whoami`);
  assert.equal((await s.request('GET', '/v1/whoami', wrongMethod)).code, 'TESSERA_DPOP_HTM_MISMATCH');
});

test('authorizedFetch() lets the MCP SDK client use the bound token (a proof per request)', async () => {
  const c = client(s, { audience: `${s.issuer}/mcp` });
  await c.loginWithJoinToken(await s.joinToken());
  s.sensitive.add(await c.token());
  const mcp = new Client({ name: 'sdk-dpop', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), { fetch: c.authorizedFetch() }));
  assert.deepEqual((await mcp.listTools()).tools.map((t) => t.name), ['mem__echo']);
  assert.deepEqual((await mcp.callTool({ name: 'mem__echo', arguments: { x: 'y' } })).content, [{ type: 'text', text: 'echo {"x":"y"}' }]);
  await mcp.close();
});

test('server nonces: the SDK retries once with the nonce at login, on API requests and through authorizedFetch', async () => {
  const n = await startDpopServer({ config: { tokens: { dpop: { nonce: true } } } });
  try {
    const seen: { path: string; status: number; code?: string }[] = [];
    const spy = async (input: string, init: RequestInit): Promise<Response> => {
      const res = await fetch(input, init);
      seen.push({ path: new URL(input).pathname, status: res.status });
      return res;
    };
    const c = client(n, { audience: `${n.issuer}/mcp`, fetch: spy });
    await c.loginWithJoinToken(await n.joinToken());
    n.sensitive.add(await c.token());
    assert.deepEqual(seen.map((x) => `${x.path} ${x.status}`), ['/v1/oauth/token 400', '/v1/oauth/token 200'], 'one use_dpop_nonce, then the login');
    // The nonce is known for this origin; another name for the same server has none yet.
    const other = `http://localhost:${new URL(n.url).port}`;
    seen.length = 0;
    const mcp = new Client({ name: 'sdk-dpop-nonce', version: '1' });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${other}/mcp`), { fetch: c.authorizedFetch(spy) }));
    assert.deepEqual((await mcp.listTools()).tools.map((t) => t.name), ['mem__echo']);
    await mcp.close();
    assert.deepEqual(seen.slice(0, 2).map((x) => `${x.path} ${x.status}`), ['/mcp 401', '/mcp 200'], 'the first request learns the nonce and is retried once');
    assert.ok(seen.slice(2).every((x) => x.status !== 401), JSON.stringify(seen));
  } finally {
    await n.close();
  }
});

test('dpop: false gives a Bearer token, which policy sees as unbound', async () => {
  const c = client(s, { audience: s.issuer, dpop: false });
  await c.loginWithJoinToken(await s.joinToken());
  const token = await c.token();
  s.sensitive.add(token);
  assert.equal((decodeJwt(token).claims as { cnf?: unknown }).cnf, undefined);
  assert.equal(c.dpopThumbprint, undefined);
  assert.equal((await c.readSecret('open/a')).value, 'open-value');
  await assert.rejects(c.readSecret('bound/a'), (e: unknown) => e instanceof TesseraApiError && e.code === 'TESSERA_POLICY_DENIED');
  assert.deepEqual(await c.authorization('GET', `${s.url}/v1/whoami`), { authorization: `Bearer ${token}` });
});

test('with tokens.dpop.require: always, a Bearer-only client is refused at login and the SDK default works', async () => {
  const n = await startDpopServer({ config: { tokens: { dpop: { require: 'always' } } } });
  try {
    assert.equal((await n.admin('PUT', '/v1/admin/secrets/open/a', { value: 'v-always', mode: 'read' })).status, 200);
    const plain = client(n, { dpop: false });
    await assert.rejects(plain.loginWithJoinToken(await n.joinToken()), (e: unknown) => e instanceof TesseraAuthError && e.code === 'TESSERA_DPOP_PROOF_MISSING');
    const c = client(n, { audience: n.issuer });
    await c.loginWithJoinToken(await n.joinToken());
    n.sensitive.add(await c.token());
    assert.equal((await c.readSecret('open/a')).value, 'v-always');
  } finally {
    await n.close();
  }
});

test('tessera mcp (the stdio relay) does DPoP for its clients: it works where unbound tokens are refused', async () => {
  const n = await startDpopServer({ config: { tokens: { dpop: { require: 'always' } } } });
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let stderr = '';
  const running = runStdioRelay({ addr: n.url, joinToken: await n.joinToken(), stdin, stdout, stderr: { write: (x: string) => (stderr += x) } });
  try {
    const waiting = new Map<number, (m: any) => void>();
    let buf = '';
    stdout.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        waiting.get(m.id)?.(m);
      }
    });
    let id = 0;
    const request = (method: string, params: Record<string, unknown> = {}): Promise<any> => {
      const p = new Promise<any>((r) => waiting.set(++id, r));
      stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
      return p;
    };
    const init = await request('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'relay-dpop', version: '1' } });
    assert.ok(init.result, `${JSON.stringify(init)} ${stderr}`);
    stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
    const list = await request('tools/list');
    assert.deepEqual(list.result.tools.map((t: { name: string }) => t.name), ['mem__echo']);
    const call = await request('tools/call', { name: 'mem__echo', arguments: { via: 'relay' } });
    assert.deepEqual(call.result.content, [{ type: 'text', text: 'echo {"via":"relay"}' }]);
    assert.doesNotMatch(stderr, /eyJ[A-Za-z0-9_-]+\.eyJ/, 'no token or proof on stderr');
  } finally {
    stdin.end();
    await running;
    await n.close();
  }
});
