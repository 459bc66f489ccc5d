/**
 * The MCP gateway with task tokens (official SDK client, real HTTP upstreams): tools/list shows
 * only what the task may call, a call outside the task's scope is refused, and the gateway passes
 * the task context downstream: upstreams configured with `task_token` receive a short-lived token
 * for their own audience carrying `txn`, `sub` and `act`, which they verify with Tessera's JWKS
 * (jose), and which Tessera itself never accepts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';
import { parseConfig } from '../../src/config/index.js';
import { startTessera } from '../../src/main.js';
import { silentLogger } from '../../src/shared/logger.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ORCH = 'spiffe://example.org/ns/ops/sa/orchestrator';
const WORKER = 'spiffe://example.org/ns/ops/sa/worker';
const RECORDS_AUD = 'https://records.internal';
const WEB_AUD = 'https://web.internal';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';

let h: GatewayHarness;
let records: Server;
let web: Server;
/** What each upstream verified (claims), and the raw tokens it saw. */
const seen = { records: [] as JWTPayload[], web: [] as JWTPayload[], tokens: [] as string[] };
let issuer = '';

async function verify(req: IncomingMessage, header: string, audience: string): Promise<JWTPayload | undefined> {
  const raw = req.headers[header];
  const value = typeof raw === 'string' ? raw : undefined;
  const token = header === 'authorization' ? value?.replace(/^Bearer /, '') : value;
  if (!token) return undefined;
  seen.tokens.push(token);
  try {
    // What a downstream service does: Tessera's JWKS, its issuer, its own audience, the explicit type.
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(token, jwks, { issuer, audience, typ: 'tessera-downstream+jwt', algorithms: ['ES256'] });
    return payload;
  } catch {
    return undefined;
  }
}

before(async () => {
  // An HTTP MCP upstream that accepts only requests carrying a valid downstream token.
  records = createServer((req, res) => {
    void (async () => {
      const claims = await verify(req, 'authorization', RECORDS_AUD);
      if (!claims) return void res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      seen.records.push(claims);
      const mcp = new McpServer({ name: 'records', version: '1.0.0' });
      mcp.registerTool('whoami', { inputSchema: {} }, async () => ({ content: [{ type: 'text', text: JSON.stringify({ txn: claims.txn, sub: claims.sub, act: claims.act }) }] }));
      // A careless upstream that echoes the credential it got: the gateway scrubs it.
      mcp.registerTool('echo_auth', { inputSchema: { n: z.number().optional() } }, async () => ({ content: [{ type: 'text', text: `you sent ${String(req.headers.authorization)}` }] }));
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await mcp.connect(transport);
      res.on('close', () => void transport.close());
      await transport.handleRequest(req, res);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((r) => records.listen(0, '127.0.0.1', r));
  // A plain HTTP API behind a declarative http tool; the task token in a header of its own.
  web = createServer((req, res) => {
    void (async () => {
      const claims = await verify(req, 'txn-token', WEB_AUD);
      if (!claims) return void res.writeHead(401).end('{"error":"no task token"}');
      seen.web.push(claims);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ txn: claims.txn, act: claims.act }));
    })();
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const rp = (records.address() as AddressInfo).port;
  const wp = (web.address() as AddressInfo).port;
  h = await startGatewayHarness({
    gateway: {
      servers: [{ name: 'records', transport: 'streamable_http', url: `http://127.0.0.1:${rp}/mcp`, task_token: { audience: RECORDS_AUD } }],
      tools: [{ kind: 'http', server: 'web', name: 'lookup', method: 'GET', url: `http://127.0.0.1:${wp}/lookup`, task_token: { audience: WEB_AUD, header: 'txn-token', ttl: '30s' } }],
    },
    policies: `
@id("tools") permit (principal, action == Tessera::Action::"tool.call", resource) when { principal.trust_domain == "example.org" };
@id("delegate") permit (principal, action == Tessera::Action::"token.delegate", resource) when { principal.trust_domain == "example.org" };
`,
  });
  issuer = h.url;
});
after(async () => {
  await h?.close();
  for (const s of [records, web]) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function exchange(params: Record<string, string>): Promise<any> {
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: GRANT, subject_token_type: ACCESS, ...params }) });
  const body = (await res.json()) as any;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

test('tools/list shows only what the task may call; a call outside its scope is refused with the scope needed', async () => {
  const agent = await h.login(ORCH);
  const all = await h.connect(agent);
  assert.deepEqual((await all.listTools()).tools.map((t) => t.name).sort(), ['records__echo_auth', 'records__whoami', 'web__lookup']);
  const task = await exchange({ subject_token: agent, scope: 'tool:records/whoami', purpose: 'who am i' });
  const c = await h.connect(task.access_token);
  assert.deepEqual((await c.listTools()).tools.map((t) => t.name), ['records__whoami']);
  await assert.rejects(c.callTool({ name: 'web__lookup', arguments: {} }), (e: unknown) => /TESSERA_TOKEN_INSUFFICIENT_SCOPE|403|does not cover tool:web\/lookup/.test(String(e)));
});

test('an HTTP MCP upstream receives a token for its audience with the caller\'s txn, sub and act, verified with Tessera\'s JWKS', async () => {
  const agent = await h.login(ORCH);
  const worker = await h.login(WORKER);
  const root = await exchange({ subject_token: agent, scope: 'tool:records/* tool:web/*', purpose: 'records lookup' });
  const child = await exchange({ subject_token: root.access_token, actor_token: worker, actor_token_type: ACCESS, scope: 'tool:records/whoami tool:records/echo_auth tool:web/lookup' });
  const c = await h.connect(child.access_token);
  const r = await c.callTool({ name: 'records__whoami', arguments: {} });
  const told = JSON.parse((r.content as { text: string }[])[0]!.text);
  assert.deepEqual(told, { txn: child.txn, sub: ORCH, act: { sub: WORKER, act: { sub: ORCH } } });
  const last = seen.records.at(-1)!;
  assert.equal(last.iss, h.url);
  assert.equal(last.aud, RECORDS_AUD);
  assert.equal(last.txn, child.txn);
  assert.equal(last.rtxn, root.txn);
  assert.equal(last.ptxn, root.txn);
  assert.ok(last.exp! - last.iat! <= 60, 'short-lived (task_token.ttl, default 60 s)');
  // The declarative http tool: the token in its own header.
  const w = await c.callTool({ name: 'web__lookup', arguments: {} });
  assert.notEqual(w.isError, true, JSON.stringify(w));
  assert.equal(seen.web.at(-1)!.txn, child.txn);
  assert.equal(seen.web.at(-1)!.aud, WEB_AUD);
  // An echoed token is scrubbed from the result.
  const echo = await c.callTool({ name: 'records__echo_auth', arguments: {} });
  const text = (echo.content as { text: string }[])[0]!.text;
  for (const t of seen.tokens) assert.ok(!text.includes(t), 'the downstream token never reaches the agent');
  // A plain agent token: the upstream sees the agent, without a task.
  const plain = await h.connect(agent);
  const p = JSON.parse(((await plain.callTool({ name: 'records__whoami', arguments: {} })).content as { text: string }[])[0]!.text);
  assert.deepEqual(p, { sub: ORCH });
  // Minting is audited, as the HMAC of the jti.
  await h.tessera.audit.flush();
  const issued = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'token.issued' AND txn = ?", [child.txn]);
  assert.ok(issued.length >= 2);
  for (const row of issued) assert.equal(JSON.parse(row.body).details.token_type, 'downstream');
});

test('Tessera never accepts a downstream token: not at an enforcement point, not as a subject', async () => {
  const token = seen.tokens.find((t) => t.split('.').length === 3);
  assert.ok(token, 'an earlier test captured one');
  const r = await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 401);
  assert.equal(((await r.json()) as any).error.code, 'TESSERA_TOKEN_TYPE_INVALID');
  const ex = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: GRANT, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', subject_token: token }) });
  assert.equal(((await ex.json()) as any).code, 'TESSERA_OAUTH_NOT_ATTESTATION');
});

test('task_token configuration: HTTP only, its own header, never one of Tessera\'s audiences', async () => {
  const base = { data_dir: mkdtempSync(join(tmpdir(), 'tessera-tt-')), server: { listen: '127.0.0.1:0' }, log: { level: 'silent' } };
  const bad: unknown[] = [
    { servers: [{ name: 's', transport: 'stdio', command: 'x', task_token: { audience: 'https://a' } }] },
    { servers: [{ name: 's', transport: 'streamable_http', url: 'http://127.0.0.1:1/mcp', headers: { Authorization: 'Bearer x' }, task_token: { audience: 'https://a' } }] },
    { servers: [{ name: 's', transport: 'streamable_http', url: 'http://127.0.0.1:1/mcp', task_token: { audience: 'https://a', header: 'mcp-session-id' } }] },
    { servers: [{ name: 's', transport: 'streamable_http', url: 'http://127.0.0.1:1/mcp', task_token: { audience: 'has space' } }] },
    { servers: [{ name: 's', transport: 'streamable_http', url: 'http://127.0.0.1:1/mcp', task_token: { audience: 'https://a', ttl: '1h' } }] },
    { tools: [{ kind: 'http', server: 'w', name: 't', url: 'http://127.0.0.1:1/x', credential: { in: 'header', secret: 'a/b' }, task_token: { audience: 'https://a' } }] },
    { tools: [{ kind: 'http', server: 'w', name: 't', url: 'http://127.0.0.1:1/x', headers: { 'Txn-Token': 'x' }, task_token: { audience: 'https://a', header: 'txn-token' } }] },
  ];
  for (const gateway of bad) assert.throws(() => parseConfig({ ...base, gateway }), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_CONFIG_INVALID', JSON.stringify(gateway));
  const config = parseConfig({ ...base, server: { listen: '127.0.0.1:0', public_url: 'http://tessera.test' }, gateway: { servers: [{ name: 's', transport: 'streamable_http', url: 'http://127.0.0.1:1/mcp', task_token: { audience: 'http://tessera.test/mcp' } }] } });
  await assert.rejects(startTessera({ config, mode: 'dev', logger: silentLogger }), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_CONFIG_INVALID' && /Tessera's own audiences/.test(e.message));
});
