/**
 * The gateway on a bare app (createApp + createGateway) with the real policy engine, the real
 * kv service on an in-memory store, and real upstreams: a Streamable HTTP MCP server, a
 * declarative `http` tool and an in-process provider.
 *
 * The token verifier here is a table of principals: Tessera cannot issue scoped (task) tokens
 * yet, and the 403 `insufficient_scope` path needs a principal that carries a scope. Everything
 * else is real.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/server/app.js';
import { createPolicyEngine, type PolicyEngine } from '../../src/policy/index.js';
import { createKvService } from '../../src/secrets/kv.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { systemClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { parseConfig } from '../../src/config/index.js';
import { createGateway, type Gateway, type ToolProvider } from '../../src/gateway/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { startHttpUpstream, type HttpUpstream } from './fixtures/http-upstream.js';
import { testDpopGuard } from '../helpers/dpop.js';
import { rawMcp, INIT } from './harness.js';
import { createRequestAuthorizer } from '../../src/pipeline/authorize.js';
import { createRequestAuthenticator } from '../../src/pipeline/authenticate.js';

const HTTP_KEY = 'http-upstream-key-Qm4Zt8Wv1';
const WEB_TOKEN = 'web-api-token-Ls9Xc2Rb7N';
const MEM_KEY = 'mem-provider-key-Hy6Jd3Pw0';

const POLICY = `
@id("all-tools") permit (principal, action == Tessera::Action::"tool.call", resource) when { principal.hasTag("team") };
@id("inject") permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"gw") when { principal.hasTag("team") };
`;

const principal = (name: string, scope?: string[]): AgentPrincipal => ({
  spiffeId: `spiffe://example.org/ns/gw/sa/${name}`, trustDomain: 'example.org', path: `/ns/gw/sa/${name}`,
  attributes: { 'label.team': 'gw' }, jti: `jti-${name}-0123456789abcdef`, expiresAt: Date.now() + 600_000, ...(scope ? { scope } : {}),
});
const PRINCIPALS: Record<string, AgentPrincipal> = {
  'tok-full': principal('full'),
  'tok-scoped': principal('scoped', ['tool:mem/ping']),
};

let dir: string;
let store: Store;
let policy: PolicyEngine;
let app: FastifyInstance;
let gateway: Gateway;
let upstream: HttpUpstream;
let sseUpstream: HttpUpstream;
let web: HttpServer;
let url: string;
const audit = new MemoryAuditWriter();
const revoked = new Set<string>();

/** Tool names an upstream may use that strict MCP clients refuse. */
const ODD_TOOLS = ['files.read', 'files/read', 'with space', 'café', 'x'.repeat(80), 'plain_ok'];
const odd: ToolProvider = {
  server: 'odd',
  listTools: async () => ODD_TOOLS.map((name) => ({ name, inputSchema: { type: 'object', properties: {} } })),
  callTool: async (tool) => ({ content: [{ type: 'text', text: `called ${tool}` }] }),
  close: async () => undefined,
};

const mem: ToolProvider = {
  server: 'mem',
  listTools: async () => [
    { name: 'ping', inputSchema: { type: 'object', properties: {} } },
    { name: 'with_secret', inputSchema: { type: 'object', properties: {} } },
  ],
  callTool: async (tool, _args, ctx) => {
    if (tool === 'ping') return { content: [{ type: 'text', text: 'pong' }] };
    const key = await ctx.resolveSecret('gw/mem/key');
    return { content: [{ type: 'text', text: `b64=${Buffer.from(key).toString('base64')} hex=${Buffer.from(key).toString('hex')}` }] };
  },
  close: async () => undefined,
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-gw-stack-'));
  writeFileSync(join(dir, 'p.cedar'), POLICY);
  policy = createPolicyEngine({ dir, clock: systemClock, logger: silentLogger, audit, watch: false });
  await policy.start();
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const kv = createKvService({ store, sealer: masterSealer(randomBytes(32)), clock: systemClock, audit });
  const ctx = { actor: { id: 'admin:test' } };
  await kv.put('gw/http/key', HTTP_KEY, undefined, ctx);
  await kv.put('gw/web/token', WEB_TOKEN, undefined, ctx);
  await kv.put('gw/mem/key', MEM_KEY, undefined, ctx);
  // A key file stored with its trailing newline: no HTTP header can carry it.
  await kv.put('gw/http/badkey', `${HTTP_KEY}\n`, undefined, ctx);

  upstream = await startHttpUpstream();
  sseUpstream = await startHttpUpstream({ sse: true });
  web = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ you_sent: req.headers.authorization ?? null }));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const webPort = (web.address() as { port: number }).port;

  const config = parseConfig({
    gateway: {
      idle_timeout: '1s',
      servers: [
        { name: 'remote', transport: 'streamable_http', url: upstream.url, headers: { 'X-Api-Key': { secret: 'gw/http/key' } } },
        { name: 'badkey', transport: 'streamable_http', url: upstream.url, headers: { 'X-Api-Key': { secret: 'gw/http/badkey' } } },
        // The same upstream with a small max_result_bytes, answering in JSON and in SSE.
        { name: 'small', transport: 'streamable_http', url: upstream.url, max_result_bytes: 4096 },
        { name: 'smallsse', transport: 'streamable_http', url: sseUpstream.url, max_result_bytes: 4096 },
      ],
      tools: [
        { kind: 'http', server: 'web', name: 'whoami', method: 'GET', url: `http://127.0.0.1:${webPort}/whoami`, credential: { in: 'header', secret: 'gw/web/token', prefix: 'Bearer ' } },
        { kind: 'http', server: 'webbad', name: 'whoami', method: 'GET', url: `http://127.0.0.1:${webPort}/whoami`, credential: { in: 'header', secret: 'gw/http/badkey', prefix: 'Bearer ' } },
      ],
    },
  }).gateway;

  // The issuer (and so the gateway's resource URI) must be known before the app listens.
  const port = await new Promise<number>((res) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
  url = `http://127.0.0.1:${port}`;
  const dpop = testDpopGuard({ clock: systemClock, issuer: url });
  gateway = createGateway({
    config, authorizer: createRequestAuthorizer(policy), kv, audit, clock: systemClock, logger: silentLogger, issuer: url, providers: [mem, odd], dpop,
    // The pipeline's real authenticate step for the gateway audience (DPoP included), with a
    // table of test principals instead of signed tokens (revocation checked on every request).
    authenticator: createRequestAuthenticator({
      audit, dpop,
      tokens: {
        verify: async (token, { audience }) => {
          if (audience !== `${url}/mcp`) throw new TesseraError('TESSERA_TOKEN_AUDIENCE_INVALID', 'wrong audience');
          const p = PRINCIPALS[token];
          if (!p) throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'not a token');
          if (revoked.has(p.spiffeId)) throw new TesseraError('TESSERA_TOKEN_REVOKED', 'revoked');
          return p;
        },
      },
    }, { audience: `${url}/mcp`, resource: 'mcp' }),
    leases: { issue: async () => { throw new TesseraError('TESSERA_INTERNAL', 'unused'); }, revoke: async () => undefined },
    revocations: { isPrincipalRevoked: (p) => revoked.has(p.spiffeId) },
  });
  app = createApp({
    logger: silentLogger, replicaId: 'test', bodyLimit: 65536,
    admin: { authenticate: async () => { throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'no'); } },
    agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'no'); } },
  });
  gateway.register(app);
  await app.listen({ host: '127.0.0.1', port });
});

async function serve(): Promise<{ url: string }> {
  return { url };
}

after(async () => {
  await gateway?.close();
  await app?.close();
  await upstream?.close();
  await sseUpstream?.close();
  web?.closeAllConnections();
  await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
  policy?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(token: string): Promise<Client> {
  const { url: u } = await serve();
  const c = new Client({ name: 't', version: '1' });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${u}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  return c;
}

test('Streamable HTTP upstream: header injected from kv, scrubbed on the way back, agent token never forwarded', async () => {
  const c = await connect('tok-full');
  const names = (await c.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes('remote__ping') && names.includes('remote__leak') && names.includes('web__whoami') && names.includes('mem__ping'));
  const leak = await c.callTool({ name: 'remote__leak', arguments: {} });
  assert.deepEqual(leak.content, [{ type: 'text', text: 'key=[REDACTED:plain]' }]);
  const h = JSON.parse((await c.callTool({ name: 'remote__headers', arguments: {} }) as { content: { text: string }[] }).content[0]!.text) as { authorization: string | null; has_api_key: boolean };
  assert.equal(h.authorization, null, 'the agent token is not passed through');
  assert.equal(h.has_api_key, true);
  assert.deepEqual(upstream.authorizations, []);
  const hits = audit.events.filter((e) => e.kind === 'gateway.exfiltration_suspected');
  assert.ok(hits.some((e) => (e.details as { label?: string }).label === 'kv/gw/http/key'));
  await c.close();
});

test('a header secret with a line break: the call fails with TESSERA_GATEWAY_SECRET_UNUSABLE naming the secret and header (not "could not reach"), upstream and declarative tool alike', async () => {
  const c = await connect('tok-full');
  const before = upstream.authorizations.length;
  for (const [name, header] of [['webbad__whoami', 'Authorization'], ['badkey__ping', 'X-Api-Key']] as const) {
    const e = await c.callTool({ name, arguments: {} }).then(() => undefined, (x: unknown) => x as { code: number; message: string; data?: { code?: string } });
    assert.ok(e, `${name} succeeded`);
    assert.equal(e.data?.code, 'TESSERA_GATEWAY_SECRET_UNUSABLE', `${name}: ${e.message}`);
    assert.match(e.message, new RegExp(`the secret gw/http/badkey cannot be sent in the ${header} header: it holds a line break \\(LF\\) at its end`));
    assert.doesNotMatch(e.message, /could not reach|UND_ERR/);
    assert.ok(!e.message.includes(HTTP_KEY));
  }
  assert.equal(upstream.authorizations.length, before);
  await c.close();
});

test('declarative http tool: the credential is injected by Tessera and scrubbed from the response', async () => {
  const c = await connect('tok-full');
  const r = await c.callTool({ name: 'web__whoami', arguments: {} });
  const t = JSON.stringify(r);
  assert.ok(!t.includes(WEB_TOKEN));
  assert.match(t, /REDACTED/);
  await c.close();
});

test('in-process provider: secrets resolved through the call context are scrubbed in every encoding', async () => {
  const c = await connect('tok-full');
  const r = await c.callTool({ name: 'mem__with_secret', arguments: {} });
  const t = JSON.stringify(r);
  assert.ok(!t.includes(Buffer.from(MEM_KEY).toString('base64')) && !t.includes(Buffer.from(MEM_KEY).toString('hex')));
  assert.match(t, /b64=\[REDACTED:base64\] hex=\[REDACTED:hex\]/);
  await c.close();
});

test('token scope narrows the tool list, and a tools/call outside it is 403 insufficient_scope naming the scope', async () => {
  const c = await connect('tok-scoped');
  const names = (await c.listTools()).tools.map((t) => t.name);
  assert.deepEqual(names, ['mem__ping']);
  await c.close();
  const { url: u } = await serve();
  const init = await rawMcp(`${u}/mcp`, 'tok-scoped', INIT());
  const sid = init.headers.get('mcp-session-id')!;
  const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'remote__ping', arguments: {} } });
  const r = await rawMcp(`${u}/mcp`, 'tok-scoped', call, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('www-authenticate'), `Bearer error="insufficient_scope", scope="tool:remote/ping", resource_metadata="${u}/.well-known/oauth-protected-resource/mcp", error_description="the token scope does not cover tool:remote/ping"`);
  assert.equal(r.body.error.data.code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
  // A tool name the caller chose lands in the challenge: quotes, backslashes, non-ASCII and
  // control characters never make the header invalid (Node would answer 500 ERR_INVALID_CHAR).
  for (const name of ['remote__"x"', 'remote__a\\b', 'remote__caf\u00e9…', 'remote__a\r\nSet-Cookie: x=1', 'remote__\u{1F600}']) {
    const hostile = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name, arguments: {} } });
    const h = await rawMcp(`${u}/mcp`, 'tok-scoped', hostile, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    assert.ok(h.status < 500, `${JSON.stringify(name)} answered ${h.status}`);
    const challenge = h.headers.get('www-authenticate');
    if (challenge !== null) assert.match(challenge, /^Bearer [\x20-\x7e]*$/, `${JSON.stringify(name)}: ${challenge}`);
  }
  const ok = await rawMcp(`${u}/mcp`, 'tok-scoped', JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'mem__ping', arguments: {} } }), { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.result.content, [{ type: 'text', text: 'pong' }]);
});

test('onRevocation closes the revoked principal\'s sessions at once; DELETE ends a session', async () => {
  const { url: u } = await serve();
  const init = await rawMcp(`${u}/mcp`, 'tok-full', INIT());
  const sid = init.headers.get('mcp-session-id')!;
  const before = gateway.sessionCount;
  assert.ok(before >= 1);
  revoked.add(PRINCIPALS['tok-full']!.spiffeId);
  try {
    gateway.onRevocation();
    // The sessions are closed synchronously by onRevocation (their cleanup is async).
    assert.ok(gateway.sessionCount < before);
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const r = await rawMcp(`${u}/mcp`, 'tok-full', list, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.data.code, 'TESSERA_TOKEN_REVOKED');
    assert.ok(audit.events.some((e) => e.kind === 'gateway.session_closed' && (e.details as { cause: string }).cause === 'revoked'));
  } finally {
    revoked.clear();
  }
  const init2 = await rawMcp(`${u}/mcp`, 'tok-full', INIT());
  const sid2 = init2.headers.get('mcp-session-id')!;
  const del = await fetch(`${u}/mcp`, { method: 'DELETE', headers: { authorization: 'Bearer tok-full', 'mcp-session-id': sid2, 'mcp-protocol-version': '2025-11-25' } });
  assert.equal(del.status, 200);
  const after = await rawMcp(`${u}/mcp`, 'tok-full', JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }), { 'mcp-session-id': sid2, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(after.status, 404);
});

test('gateway config: bad server definitions are refused with TESSERA_CONFIG_INVALID naming the key', () => {
  const bad = [
    { servers: [{ name: 'Bad Name', transport: 'stdio', command: 'x' }] },
    { servers: [{ name: 'a', transport: 'stdio', command: 'x', env: { KEY: { secret: '../etc' } } }] },
    { servers: [{ name: 'a', transport: 'streamable_http', url: 'http://x/mcp', headers: { 'Mcp-Session-Id': 'x' } }] },
    { servers: [{ name: 'a', transport: 'stdio', command: 'x' }, { name: 'a', transport: 'stdio', command: 'y' }] },
    { call_timeout: '0s' },
    { stdio_isolation: 'shared' },
  ];
  for (const g of bad) {
    assert.throws(() => parseConfig({ gateway: g }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && /gateway/.test(e.message), JSON.stringify(g));
  }
  const ok = parseConfig({ gateway: { servers: [{ name: 'gh', transport: 'stdio', command: 'npx', env: { TOKEN: { credential: { engine: 'postgres', role: 'ro', field: 'password' } } } }] } }).gateway;
  assert.equal(ok.stdio_isolation, 'per_agent');
  assert.equal(ok.call_timeout, 30_000);
});

test('a policy change that withdraws secret.inject stops the pooled upstream and refuses the call at once', async () => {
  const c = await connect('tok-full');
  const ok = await c.callTool({ name: 'remote__ping', arguments: {} });
  assert.deepEqual(ok.content, [{ type: 'text', text: 'pong' }]);
  writeFileSync(join(dir, 'p.cedar'), POLICY.replace(/@id\("inject"\)[^\n]*\n/, ''));
  assert.equal((await policy.load()).ok, true);
  try {
    await assert.rejects(c.callTool({ name: 'remote__ping', arguments: {} }), (e: { code?: number; data?: { code?: string } }) => e.code === -32003 && e.data?.code === 'TESSERA_POLICY_DENIED');
  } finally {
    writeFileSync(join(dir, 'p.cedar'), POLICY);
    await policy.load();
  }
  const again = await c.callTool({ name: 'remote__ping', arguments: {} });
  assert.deepEqual(again.content, [{ type: 'text', text: 'pong' }]);
  assert.ok(audit.events.some((e) => e.kind === 'gateway.upstream_stopped' && (e.details as { cause: string }).cause === 'policy'));
  await c.close();
});

test('an idle upstream connection is stopped after idle_timeout', async () => {
  const c = await connect('tok-full');
  await c.callTool({ name: 'remote__ping', arguments: {} });
  const idle = (): boolean => audit.events.some((e) => e.kind === 'gateway.upstream_stopped' && (e.details as { cause: string }).cause === 'idle');
  for (let i = 0; i < 50 && !idle(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(idle(), 'upstream_stopped with cause idle');
  // And the next call reconnects.
  const r = await c.callTool({ name: 'remote__ping', arguments: {} });
  assert.deepEqual(r.content, [{ type: 'text', text: 'pong' }]);
  await c.close();
});

/** Polls `cond` every 20 ms, at most `max` times. */
async function until(cond: () => boolean, what: string, max = 500): Promise<void> {
  for (let i = 0; i < max && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

test('tool names: every listed name is what strict clients accept, each calls its tool, the audit records server and tool', async () => {
  const c = await connect('tok-full');
  const listed = (await c.listTools()).tools.map((t) => t.name);
  for (const n of listed) assert.match(n, /^[a-zA-Z0-9_-]{1,64}$/);
  const odds = listed.filter((n) => n.startsWith('odd__'));
  // Valid MCP names that strict clients would refuse ('.', over 64) are mapped (ADR 0051); names
  // outside the MCP rules ('/', space, non-ASCII) are left out, never renamed (ADR 0148).
  const MCP_VALID = ODD_TOOLS.filter((t) => /^[A-Za-z0-9_.-]{1,128}$/.test(t));
  assert.deepEqual(MCP_VALID.sort(), ['files.read', 'plain_ok', 'x'.repeat(80)].sort());
  assert.equal(odds.length, MCP_VALID.length);
  assert.ok(odds.includes('odd__plain_ok'));
  const called = new Set<string>();
  for (const name of odds) {
    const r = await c.callTool({ name, arguments: {} });
    called.add((r.content as { text: string }[])[0]!.text.replace(/^called /, ''));
  }
  assert.deepEqual([...called].sort(), [...MCP_VALID].sort(), 'each exposed name reaches its own tool');
  const audited = audit.events.filter((e) => e.kind === 'gateway.tool_call' && (e.details as { server: string }).server === 'odd').map((e) => (e.details as { tool: string }).tool);
  for (const t of MCP_VALID) assert.ok(audited.includes(t), `audit names ${t}`);
  for (const t of ODD_TOOLS.filter((x) => !MCP_VALID.includes(x))) {
    await assert.rejects(c.callTool({ name: `odd/${t}`, arguments: {} }), (e: { data?: { code?: string } }) => e.data?.code === 'TESSERA_GATEWAY_TOOL_NAME_REFUSED', t);
    assert.ok(audit.events.some((e) => e.kind === 'gateway.tool_name_refused' && (e.details as { tool: string; why: string }).tool === t && (e.details as { why: string }).why === 'invalid'), `refusal of ${t} audited`);
  }
  // The same tool by its policy entity id.
  const byId = await c.callTool({ name: 'odd/files.read', arguments: {} });
  assert.deepEqual(byId.content, [{ type: 'text', text: 'called files.read' }]);
  await c.close();
});

test('max_result_bytes on HTTP upstreams: a JSON or SSE answer over the limit is refused with a stable code; the connection stays usable', async () => {
  const c = await connect('tok-full');
  for (const server of ['small', 'smallsse']) {
    const ok = await c.callTool({ name: `${server}__big`, arguments: { bytes: 1000 } });
    assert.equal((ok.content as { text: string }[])[0]!.text.length, 1000, server);
    await assert.rejects(c.callTool({ name: `${server}__big`, arguments: { bytes: 100_000 } }), (e: { code?: number; data?: { code?: string }; message?: string }) => {
      assert.equal(e.code, -32002, server);
      assert.equal(e.data?.code, 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE', server);
      assert.match(e.message ?? '', /4096 bytes/);
      return true;
    });
    const after = await c.callTool({ name: `${server}__ping`, arguments: {} });
    assert.deepEqual(after.content, [{ type: 'text', text: 'pong' }], `${server}: usable after the refusal`);
  }
  await c.close();
});

test('revocation cancels a call in flight on an HTTP upstream: the upstream observes the cancellation, the side effect never happens', async () => {
  const c = await connect('tok-full');
  const started = upstream.effects.length;
  const inflight = c.callTool({ name: 'remote__side_effect', arguments: {} }).then(() => 'resolved', (e: Error) => e.message);
  await until(() => upstream.effects.length > started, 'the tool to start');
  revoked.add(PRINCIPALS['tok-full']!.spiffeId);
  try {
    gateway.onRevocation();
    await until(() => upstream.effects.length > started + 1, 'the upstream to observe the cancellation');
    assert.deepEqual(upstream.effects.slice(started), ['started', 'cancelled']);
    upstream.release();
    assert.match(await inflight, /revoked|401|closed/i);
    assert.ok(!upstream.effects.slice(started).includes('done'), 'no side effect after revocation');
    // The call ended with the session's reason (its signal joined the session's: http.ts callerOf), not as a plain cancellation.
    await until(() => audit.events.some((e) => e.kind === 'gateway.tool_call' && (e.details as { tool: string }).tool === 'side_effect' && (e.details as { outcome: string }).outcome !== 'delivered'), 'the call to be audited');
    const ended = audit.events.filter((e) => e.kind === 'gateway.tool_call' && (e.details as { tool: string }).tool === 'side_effect').at(-1)!;
    assert.equal((ended.reason as { code?: string }).code, 'TESSERA_TOKEN_REVOKED');
    // The stop is audited after the session is terminated and the client closed, which may end after the call's rejection.
    await until(() => audit.events.some((e) => e.kind === 'gateway.upstream_stopped' && (e.details as { cause: string; server: string }).cause === 'revoked' && (e.details as { server: string }).server === 'remote'), 'the stop of the upstream connection to be audited (cause revoked)');
  } finally {
    revoked.clear();
  }
  await c.close().catch(() => undefined);
});
