import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { runStdioRelay, RELAY_EXIT } from '../../src/gateway/stdio-relay/index.js';

const ENTRY = join(import.meta.dirname, 'stdio-relay-entry.ts');
const WORKLOAD_JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWdlbnRzOmJvdCJ9.workload-signature';

/**
 * A loopback stand-in for Tessera: an RFC 8693 token endpoint (`/v1/oauth/token`) that issues
 * opaque short-lived agent tokens for the gateway audience, and an MCP Streamable HTTP server
 * (`/mcp`, official SDK) that accepts only a currently valid token from that endpoint.
 */
async function startFakeTessera(opts: { expiresIn: number }) {
  const issued = new Map<string, { expiresAt: number; audience: string }>();
  const joinTokens = new Set<string>();
  const seenOnMcp: string[] = [];
  const refused: string[] = [];
  const exchanges: { subjectType: string; audience: string }[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  let url = '';

  const newMcp = (): McpServer => {
    const mcp = new McpServer({ name: 'fake-gateway', version: '1.0.0' });
    mcp.registerTool('echo', { description: 'echoes its input', inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }));
    mcp.registerTool('add', { description: 'adds', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }], structuredContent: { sum: a + b } }));
    return mcp;
  };

  const readBody = async (req: IncomingMessage): Promise<string> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = new URL(req.url ?? '/', url).pathname;
      if (path === '/v1/oauth/token' && req.method === 'POST') {
        const form = new URLSearchParams(await readBody(req));
        const subject = form.get('subject_token') ?? '';
        const type = form.get('subject_token_type') ?? '';
        const ok = (type === 'urn:ietf:params:oauth:token-type:jwt' && subject === WORKLOAD_JWT) || (type === 'urn:tessera:token-type:join-token' && joinTokens.delete(subject));
        res.setHeader('content-type', 'application/json');
        if (!ok) {
          res.statusCode = 400;
          res.end(JSON.stringify({ error: 'invalid_grant', error_description: 'the join token is unknown, used or expired', code: 'TESSERA_JOIN_TOKEN_INVALID' }));
          return;
        }
        const token = `agt_${randomBytes(18).toString('base64url')}`;
        const audience = form.get('audience') ?? '';
        exchanges.push({ subjectType: type, audience });
        issued.set(token, { expiresAt: Date.now() + opts.expiresIn * 1000, audience });
        res.end(JSON.stringify({ access_token: token, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: opts.expiresIn }));
        return;
      }
      if (path === '/mcp') {
        const auth = req.headers.authorization ?? '';
        const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
        const info = issued.get(token);
        if (!info || info.expiresAt <= Date.now() || info.audience !== `${url}/mcp`) {
          refused.push(token);
          res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${url}/.well-known/oauth-protected-resource/mcp"`, 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'invalid token' }, id: null }));
          return;
        }
        seenOnMcp.push(token);
        const sid = req.headers['mcp-session-id'];
        let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
        if (!transport) {
          if (typeof sid === 'string') {
            res.writeHead(404).end();
            return;
          }
          transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => void sessions.set(id, transport!) });
          await newMcp().connect(transport);
        }
        await transport.handleRequest(req, res);
        return;
      }
      res.writeHead(404).end();
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    issued,
    joinTokens,
    seenOnMcp,
    refused,
    exchanges,
    async close() {
      for (const t of sessions.values()) await t.close().catch(() => {});
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function collect(stream: NodeJS.ReadableStream | null): { text: () => string } {
  let buf = '';
  stream?.on('data', (c: Buffer) => (buf += c.toString('utf8')));
  return { text: () => buf };
}

const dir = mkdtempSync(join(tmpdir(), 'tessera-relay-'));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, WORKLOAD_JWT + '\n');

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function connectRelay(args: string[], command: string[] = ['--import', 'tsx', ENTRY], env: Record<string, string> = {}): Promise<{ client: Client; transport: StdioClientTransport; stderr: () => string }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [...command, ...args], stderr: 'pipe', env: { PATH: process.env.PATH ?? '', ...env } });
  const err = collect(transport.stderr as NodeJS.ReadableStream);
  const client = new Client({ name: 'relay-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr: err.text };
}

test('tessera mcp relays tools/list and tools/call over real stdio, with a fresh token per request', async () => {
  // expires_in 2 s is inside the SDK's 5 s safety margin: every request refreshes from the file.
  const gw = await startFakeTessera({ expiresIn: 2 });
  cleanups.push(() => gw.close());
  const { client, stderr } = await connectRelay(['--addr', gw.url, '--token-file', tokenFile]);
  try {
    const tools = await client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['add', 'echo']);
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello "world" ✓' } });
    assert.deepEqual(echo.content, [{ type: 'text', text: 'echo: hello "world" ✓' }]);
    const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
    assert.deepEqual(add.structuredContent, { sum: 42 });
    // Errors from the gateway come back unchanged: a tool error result, and a JSON-RPC error.
    const unknown = await client.callTool({ name: 'nope', arguments: {} });
    assert.equal(unknown.isError, true);
    assert.match(JSON.stringify(unknown.content), /nope/);
    await assert.rejects(client.request({ method: 'prompts/list', params: {} }, z.any()), (e: Error & { code?: number }) => e.code === -32601);

    assert.deepEqual(gw.refused, [], 'the gateway never saw an invalid or expired token');
    assert.ok(new Set(gw.seenOnMcp).size >= 3, `tokens were refreshed: ${new Set(gw.seenOnMcp).size} distinct`);
    assert.ok(gw.exchanges.every((e) => e.audience === `${gw.url}/mcp` && e.subjectType === 'urn:ietf:params:oauth:token-type:jwt'));
  } finally {
    await client.close();
  }
  const err = stderr();
  assert.match(err, /logged in to/);
  for (const t of gw.issued.keys()) assert.ok(!err.includes(t), 'no agent token on stderr');
  assert.ok(!err.includes('workload-signature'), 'no workload token on stderr');
});

test('a join token works for a session within the token lifetime', async () => {
  const gw = await startFakeTessera({ expiresIn: 300 });
  cleanups.push(() => gw.close());
  const join = `tsr_join_${randomBytes(24).toString('base64url')}`;
  gw.joinTokens.add(join);
  const { client, stderr } = await connectRelay(['--addr', gw.url, '--join-token', join]);
  try {
    const r = await client.callTool({ name: 'echo', arguments: { text: 'x' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'echo: x' }]);
    assert.equal(new Set(gw.seenOnMcp).size, 1);
    assert.equal(gw.exchanges[0]!.subjectType, 'urn:tessera:token-type:join-token');
  } finally {
    await client.close();
  }
  assert.ok(!stderr().includes(join));
  for (const t of gw.issued.keys()) assert.ok(!stderr().includes(t));
});

test('through the CLI: `tessera mcp --addr … ` with TESSERA_TOKEN_FILE', async () => {
  const gw = await startFakeTessera({ expiresIn: 300 });
  cleanups.push(() => gw.close());
  const { client, stderr } = await connectRelay(['mcp', '--addr', gw.url], [join(import.meta.dirname, '..', '..', 'bin', 'tessera.js')], { TESSERA_TOKEN_FILE: tokenFile });
  try {
    const r = await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } });
    assert.deepEqual(r.structuredContent, { sum: 3 });
  } finally {
    await client.close();
  }
  for (const t of gw.issued.keys()) assert.ok(!stderr().includes(t));
});

test('through the CLI: login failure is one clear line on stderr and exit 1', async () => {
  const gw = await startFakeTessera({ expiresIn: 300 });
  cleanups.push(() => gw.close());
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'tessera.js'), 'mcp', '--addr', gw.url, '--join-token', 'tsr_join_unknown_0123456789abcdefghij'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  child.stdin.end();
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 1);
  assert.equal(out.text(), '');
  assert.match(err.text(), /^error: login to .* failed: .* \[TESSERA_JOIN_TOKEN_INVALID\]\n$/);
});

/** Runs the relay as a subprocess with the given arguments and empty stdin; returns exit code and output. */
async function runProcess(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  child.stdin.end();
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, stdout: out.text(), stderr: err.text() };
}

test('login failure: a clear error on stderr, nothing on stdout, non-zero exit', async () => {
  const gw = await startFakeTessera({ expiresIn: 300 });
  cleanups.push(() => gw.close());
  const bad = `tsr_join_${randomBytes(24).toString('base64url')}`;
  const r = await runProcess(['--addr', gw.url, '--join-token', bad]);
  assert.equal(r.code, RELAY_EXIT.REFUSED);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /login to .* failed: the join token is unknown, used or expired \[TESSERA_JOIN_TOKEN_INVALID\]/);
  assert.ok(!r.stderr.includes(bad));
});

test('unreadable token file: TESSERA_SDK_TOKEN_FILE_UNREADABLE, exit 1', async () => {
  const gw = await startFakeTessera({ expiresIn: 300 });
  cleanups.push(() => gw.close());
  const r = await runProcess(['--addr', gw.url, '--token-file', join(dir, 'missing')]);
  assert.equal(r.code, RELAY_EXIT.REFUSED);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /\[TESSERA_SDK_TOKEN_FILE_UNREADABLE\]/);
});

test('unreachable server: TESSERA_SDK_CONNECT_FAILED, exit 3', async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  const r = await runProcess(['--addr', `http://127.0.0.1:${port}`, '--token-file', tokenFile]);
  assert.equal(r.code, RELAY_EXIT.CONNECT);
  assert.match(r.stderr, /\[TESSERA_SDK_CONNECT_FAILED\]/);
});

test('usage errors: neither or both credentials, bad address (TESSERA_CLI_USAGE, exit 2)', async () => {
  const io = () => ({ stdin: new PassThrough(), stdout: new PassThrough(), stderr: { lines: '' as string, write(s: string) { this.lines += s; } } });
  for (const opts of [{ addr: 'http://127.0.0.1:1' }, { addr: 'http://127.0.0.1:1', tokenFile: tokenFile, joinToken: 'tsr_join_x' }, { addr: 'ftp://x', tokenFile }]) {
    const i = io();
    const r = await runStdioRelay({ ...opts, ...i });
    assert.equal(r.exitCode, RELAY_EXIT.USAGE, JSON.stringify(opts));
    assert.equal(r.error?.code, 'TESSERA_CLI_USAGE');
    assert.match(i.stderr.lines, /\[TESSERA_CLI_USAGE\]/);
    assert.equal(i.stdout.read(), null);
  }
});

test('in-process: a gateway that refuses the token yields a JSON-RPC error for the request, and stdin end stops the relay', async () => {
  const gw = await startFakeTessera({ expiresIn: 300 });
  cleanups.push(() => gw.close());
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let err = '';
  // The audience is wrong for this gateway: login succeeds, the gateway answers 401.
  const running = runStdioRelay({ addr: gw.url, tokenFile, audience: 'https://elsewhere.example/mcp', stdin, stdout, stderr: { write: (s: string) => (err += s) } });
  const line = new Promise<string>((r) => stdout.once('data', (c: Buffer) => r(c.toString('utf8'))));
  stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }) + '\n');
  const reply = JSON.parse(await line) as { id: number; error: { code: number; message: string; data: { code: string } } };
  assert.equal(reply.id, 7);
  assert.equal(reply.error.code, -32000);
  assert.equal(reply.error.data.code, 'TESSERA_GATEWAY_RELAY_REFUSED');
  assert.match(reply.error.message, /401/);
  stdin.end();
  const result = await running;
  assert.equal(result.exitCode, RELAY_EXIT.OK);
  assert.equal(gw.refused.length, 1);
  for (const t of gw.issued.keys()) assert.ok(!err.includes(t));
});
