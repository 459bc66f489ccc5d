/**
 * `tessera mcp` against the REAL Tessera server (src/main.ts `startTessera`, dev mode): the
 * relay logs in with the dev join token through the real RFC 8693 exchange, and a test MCP
 * server (official SDK) accepts a request only if Tessera's RFC 7662 introspection says the
 * bearer is active and meant for the gateway audience.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startTessera } from '../../src/main.js';
import { parseConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/shared/logger.js';

const ENTRY = join(import.meta.dirname, 'stdio-relay-entry.ts');
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('the relay logs in to the real Tessera with a join token; the gateway sees an active token for its audience', async () => {
  const tessera = await startTessera({ config: parseConfig({ data_dir: mkdtempSync(join(tmpdir(), 'tessera-relay-real-')), server: { listen: '127.0.0.1:0' } }), mode: 'dev', logger: silentLogger });
  cleanups.push(() => tessera.close());
  assert.ok(tessera.joinToken && tessera.adminToken);
  const gatewayAudience = `${tessera.url}/mcp`;

  const introspected: { active: boolean; aud?: unknown }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      // The relay's SDK logs in with DPoP: a bound token, sent with a proof (checked by Tessera
      // itself in test/dpop; this stand-in only introspects the token).
      const auth = req.headers.authorization ?? '';
      if (/^DPoP /.test(auth) && typeof req.headers.dpop !== 'string') {
        res.writeHead(401, { 'www-authenticate': 'DPoP error="invalid_dpop_proof"' }).end();
        return;
      }
      const token = auth.replace(/^(Bearer|DPoP) /, '');
      const r = await fetch(`${tessera.url}/v1/oauth/introspect`, { method: 'POST', headers: { authorization: `Bearer ${tessera.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }).toString() });
      const info = (await r.json()) as { active: boolean; aud?: string | string[] };
      introspected.push(info);
      const aud = Array.isArray(info.aud) ? info.aud : [info.aud];
      if (!info.active || !aud.includes(gatewayAudience)) {
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
        return;
      }
      const mcp = new McpServer({ name: 'gateway-stand-in', version: '1.0.0' });
      mcp.registerTool('ping', { inputSchema: { n: z.number() } }, async ({ n }) => ({ content: [{ type: 'text', text: `pong ${n}` }] }));
      // Stateless: a fresh transport per request.
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await mcp.connect(transport);
      res.on('close', () => void transport.close());
      await transport.handleRequest(req, res);
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const mcpUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;

  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', 'tsx', ENTRY, '--addr', tessera.url, '--join-token', tessera.joinToken!, '--audience', gatewayAudience, '--url', mcpUrl],
    stderr: 'pipe',
    env: { PATH: process.env.PATH ?? '' },
  });
  let stderr = '';
  (transport.stderr as NodeJS.ReadableStream).on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const client = new Client({ name: 'relay-real-test', version: '1.0.0' });
  await client.connect(transport).catch((e: unknown) => {
    throw new Error(`the relay did not start: ${String(e)}; stderr: ${stderr}`);
  });
  try {
    const tools = await client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name), ['ping']);
    const r = await client.callTool({ name: 'ping', arguments: { n: 7 } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'pong 7' }]);
  } finally {
    await client.close();
  }
  assert.ok(introspected.length >= 2 && introspected.every((i) => i.active));
  assert.ok(!stderr.includes(tessera.joinToken!));
  assert.doesNotMatch(stderr, /eyJ[A-Za-z0-9_-]+\.eyJ/, 'no JWT on stderr');
});
