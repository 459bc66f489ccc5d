/**
 * `tessera mcp` through a desktop day (issue 7, item 13), against the REAL Tessera gateway:
 * - the gateway session ends (idle expiry, then a full restart of the server on the same
 *   address and data) and the relay starts a new one transparently: the official MCP SDK
 *   client, talking stdio to the real `tessera mcp` process, never notices;
 * - a failing renewal is retried once, never in a loop;
 * - a join-token session ends with an error that says to use --token-file (and warns at start);
 * - a token-file session survives a stale file: that request fails with the reason, the relay
 *   keeps running and re-reads the file.
 * Time for the relay's token lifetime is a manual clock; nothing waits on wall-clock time
 * except bounded polling for conditions.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startTessera, type RunningTessera } from '../../src/main.js';
import { parseConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import { runStdioRelay, RELAY_EXIT } from '../../src/gateway/stdio-relay/index.js';
import type { SdkClock } from '../../src/sdk/client.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tessera.js');
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const echo: ToolProvider = {
  server: 'echo',
  listTools: async () => [{ name: 'say', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }],
  callTool: async (_tool, args) => ({ content: [{ type: 'text', text: `said: ${String(args.text)}` }] }),
  close: async () => undefined,
};

const POLICY = `@id("any-agent-echo")
permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"echo");`;

/** A real Tessera (dev mode) with the echo tool, on `listen`, keeping its data in `dataDir`. */
async function tessera(dataDir: string, listen = '127.0.0.1:0', extra: Record<string, unknown> = {}): Promise<RunningTessera> {
  const policies = join(dataDir, 'policies');
  mkdirSync(policies, { recursive: true });
  writeFileSync(join(policies, 'echo.cedar'), POLICY);
  const config = parseConfig({ data_dir: dataDir, server: { listen }, policy: { dir: policies, watch: false }, log: { level: 'silent' }, ...extra });
  return startTessera({ config, mode: 'dev', logger: silentLogger, gatewayProviders: [echo] });
}

async function gatewaySessions(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^tessera_gateway_sessions (\d+)/m.exec(text)?.[1] ?? NaN);
}

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function connect(addr: string, args: string[]): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp', '--addr', addr, ...args], stderr: 'pipe', env: { PATH: process.env.PATH ?? '' } });
  let stderr = '';
  (transport.stderr as NodeJS.ReadableStream).on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const client = new Client({ name: 'desktop-day', version: '1.0.0' });
  await client.connect(transport).catch((e: unknown) => {
    throw new Error(`the relay did not start: ${String(e)}; stderr: ${stderr}`);
  });
  cleanups.push(() => client.close());
  return { client, stderr: () => stderr };
}

async function say(client: Client, text: string): Promise<unknown> {
  const tools = await client.listTools();
  assert.equal(tools.tools.length, 1);
  return (await client.callTool({ name: tools.tools[0]!.name, arguments: { text } })).content;
}

test('the gateway forgets the session (idle expiry, then a restart): the relay opens a new one and the client never notices', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-relay-day-'));
  let t = await tessera(dataDir, '127.0.0.1:0', { gateway: { session_idle_timeout: '1s' } });
  cleanups.push(() => t.close());
  const { client, stderr } = await connect(t.url, ['--join-token', t.joinToken!]);
  assert.match(stderr(), /warning: --join-token gives ONE agent token.*--token-file/);
  assert.deepEqual(await say(client, 'morning'), [{ type: 'text', text: 'said: morning' }]);

  // Lunch: the gateway closes the idle session.
  await until(async () => (await gatewaySessions(t.localUrl)) === 0, 'the idle session to be closed');
  assert.deepEqual(await say(client, 'afternoon'), [{ type: 'text', text: 'said: afternoon' }]);
  assert.match(stderr(), /no longer knows this MCP session \(HTTP 404/);
  assert.equal(await gatewaySessions(t.localUrl), 1);

  // A deploy: the server restarts on the same address and data; every session is gone.
  const port = new URL(t.localUrl).port;
  await t.close();
  t = await tessera(dataDir, `127.0.0.1:${port}`, { gateway: { session_idle_timeout: '1s' } });
  assert.deepEqual(await say(client, 'evening'), [{ type: 'text', text: 'said: evening' }]);
  assert.equal((stderr().match(/starting a new one/g) ?? []).length, 2, stderr());
  assert.doesNotMatch(stderr(), /eyJ[A-Za-z0-9_-]+\.eyJ/, 'no token on stderr');
});

// --- in-process: the relay on PassThrough stdio, raw JSON-RPC lines --------------------------

function rpcPeer(stdout: PassThrough, stdin: PassThrough) {
  const waiting = new Map<string | number, (m: Record<string, unknown>) => void>();
  let buf = '';
  stdout.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      waiting.get(m.id as string | number)?.(m);
    }
  });
  let next = 1;
  return {
    request(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
      const id = next++;
      const p = new Promise<Record<string, unknown>>((r) => waiting.set(id, r));
      stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
      return p;
    },
    notify(method: string): void {
      stdin.write(JSON.stringify({ jsonrpc: '2.0', method }) + '\n');
    },
    async initialize(): Promise<Record<string, unknown>> {
      const r = await this.request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
      this.notify('notifications/initialized');
      return r;
    },
  };
}

/** The relay's clock: moves only when the test says; timers never fire (no background refresh). */
function manualClock(): SdkClock & { advance(ms: number): void } {
  let now = Date.now();
  return { now: () => now, setTimeout: () => ({}), clearTimeout: () => undefined, advance: (ms) => void (now += ms) };
}

function inProcessRelay(opts: { addr: string; joinToken?: string; tokenFile?: string; clock?: SdkClock }) {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let err = '';
  const running = runStdioRelay({ ...opts, stdin, stdout, stderr: { write: (s: string) => (err += s) } });
  cleanups.push(async () => {
    stdin.end();
    await running;
  });
  return { peer: rpcPeer(stdout, stdin), running, stdin, stderr: () => err };
}

test('a renewal that fails is tried once per message, never in a loop', async () => {
  // A gateway that opens sessions but forgets each one at once (every request with a session id: 404).
  let initializes = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/v1/oauth/token') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'agt_x', issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_type: 'Bearer', expires_in: 300 }));
      if (req.method !== 'POST') return void res.writeHead(405).end();
      if (req.headers['mcp-session-id']) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","error":{"code":-32001,"message":"no such session"},"id":null}');
      const m = JSON.parse(body) as { id: number; method: string; params: { protocolVersion: string } };
      if (m.method !== 'initialize') return void res.writeHead(400).end();
      initializes++;
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': randomUUID() }).end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'forgetful', version: '1' } } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  const addr = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const relay = inProcessRelay({ addr, joinToken: 'tsr_join_forgetful_0123456789abcdef' });
  await relay.peer.request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
  assert.equal(initializes, 1);
  const r = (await relay.peer.request('tools/list')) as { error: { code: number; message: string; data: { code: string } } };
  assert.equal(r.error.code, -32000);
  assert.equal(r.error.data.code, 'TESSERA_GATEWAY_RELAY_REFUSED');
  assert.match(r.error.message, /404/);
  assert.equal(initializes, 2, 'one renewal for the failed message, then the error');
  await relay.peer.request('tools/list');
  assert.equal(initializes, 3);
});

test('--join-token: warned at start; when the token expires the request gets an error naming --token-file, then exit 1', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-relay-join-'));
  const t = await tessera(dataDir);
  cleanups.push(() => t.close());
  const clock = manualClock();
  const relay = inProcessRelay({ addr: t.url, joinToken: t.joinToken!, clock });
  const init = (await relay.peer.initialize()) as { result?: unknown };
  assert.ok(init.result);
  assert.ok(((await relay.peer.request('tools/list')) as { result?: unknown }).result);
  assert.match(relay.stderr(), /warning: --join-token gives ONE agent token, which cannot be renewed .* it expires at \d{4}-\d\d-\d\dT[\d:.]+Z \(in about 5 min\).*--token-file <path>.*docs\/gateway\.md/);

  clock.advance(5 * 60_000);
  const r = (await relay.peer.request('tools/list')) as { error: { message: string; data: { code: string } } };
  assert.equal(r.error.data.code, 'TESSERA_SDK_REFRESH_IMPOSSIBLE');
  assert.match(r.error.message, /--join-token expired and cannot be renewed .* Restart `tessera mcp` with --token-file <path>/);
  const result = await relay.running;
  assert.equal(result.exitCode, RELAY_EXIT.REFUSED);
  assert.equal(result.error?.code, 'TESSERA_SDK_REFRESH_IMPOSSIBLE');
  assert.match(relay.stderr(), /error: the agent token from --join-token expired .*--token-file.* \[TESSERA_SDK_REFRESH_IMPOSSIBLE\]/);
  assert.ok(!relay.stderr().includes(t.joinToken!));
});

test('--token-file: a stale file fails that request with the reason; the relay keeps running and re-reads the file', async () => {
  // A person's identity from their identity provider: a JWT the `jwt` attestor verifies.
  const dir = mkdtempSync(join(tmpdir(), 'tessera-relay-file-'));
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' }] }));
  const idToken = (expSecondsFromNow: number): Promise<string> =>
    new SignJWT({ email: 'alice@example.org' }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer('https://idp.example.org').setAudience('tessera').setSubject('alice').setIssuedAt(Math.floor(Date.now() / 1000) - 60).setExpirationTime(Math.floor(Date.now() / 1000) + expSecondsFromNow).sign(privateKey);
  const t = await tessera(join(dir, 'data'), '127.0.0.1:0', {
    attestors: [{ kind: 'jwt', name: 'idp', issuer: 'https://idp.example.org', audience: 'tessera', jwks_file: join(dir, 'jwks.json'), template: 'spiffe://{trust_domain}/user/{claims.sub}', algorithms: ['ES256'] }],
  });
  cleanups.push(() => t.close());
  const file = join(dir, 'id.jwt');
  writeFileSync(file, await idToken(3600));
  const clock = manualClock();
  const relay = inProcessRelay({ addr: t.url, tokenFile: file, clock });
  assert.ok(((await relay.peer.initialize()) as { result?: unknown }).result);
  assert.ok(((await relay.peer.request('tools/list')) as { result?: unknown }).result);

  // The laptop slept; the loop that refreshes the file has not run yet: it holds an expired token.
  writeFileSync(file, await idToken(-120));
  clock.advance(10 * 60_000);
  const stale = (await relay.peer.request('tools/list')) as { error: { message: string; data: { code: string } } };
  assert.match(stale.error.data.code, /^TESSERA_ATTEST/);
  assert.match(stale.error.message, new RegExp(`could not be renewed from ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: .*the next request tries again \\(the file is re-read\\)`));

  // The loop runs: the next request works, with no restart.
  writeFileSync(file, await idToken(3600));
  const again = (await relay.peer.request('tools/list')) as { result?: { tools: unknown[] } };
  assert.equal(again.result?.tools.length, 1);
  relay.stdin.end();
  assert.equal((await relay.running).exitCode, RELAY_EXIT.OK);
});
