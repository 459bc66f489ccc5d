/**
 * The MCP gateway end to end: the official SDK client over real HTTP against the full Tessera
 * server, upstreams over stdio (a hostile fixture and the real server-everything).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayHarness, rawMcp, INIT, ENV_ECHO_SERVER, type GatewayHarness } from './harness.js';

// Characters that change under every encoding: "/", "+", "=", " ", and a quote for JSON.
const API_KEY = 'Zq7/tessera+inj"ected=VALUE 41x9';
const EVERYTHING_KEY = 'everything-injected-Kx81Pq02Lm';
const READER = 'spiffe://example.org/ns/gw/sa/reader';
const OTHER = 'spiffe://example.org/ns/other/sa/nobody';

const POLICIES = `
@id("gw-echo")
permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"echo")
when { principal.hasTag("team") && principal.getTag("team") == "gw" }
unless { resource.name == "secret_tool" || resource.name == "query_patients" };

@id("gw-records-cardiology")
permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"echo/query_patients")
when { principal.hasTag("team") && context.args.ward == "cardiology" };

@id("gw-everything")
permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"everything")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("gw-sess")
permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"sess")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("gw-slow-bigs")
permit (principal, action == Tessera::Action::"tool.call", resource)
when { principal.hasTag("team") && principal.getTag("team") == "gw" && (resource in Tessera::Server::"slow" || resource in Tessera::Server::"bigs") };

@id("sess-only")
permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"sess/pid")
when { principal.hasTag("role") && principal.getTag("role") == "sessonly" };

@id("gw-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"gw")
when { principal.hasTag("team") && principal.path != "/ns/gw/sa/noinject" };
`;

let h: GatewayHarness;
let token: string;
let client: Client;

before(async () => {
  h = await startGatewayHarness({
    policies: POLICIES,
    secrets: { 'gw/echo/api-key': API_KEY, 'gw/everything/key': EVERYTHING_KEY },
    gateway: {
      // No short gateway-wide timeout: under load, starting server-everything takes seconds, and
      // a handshake bounded by a short call_timeout hid its tools (the flaky tools/list test).
      max_message_bytes: 8192,
      servers: [
        { name: 'echo', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], env: { API_KEY: { secret: 'gw/echo/api-key' }, PLAIN: 'not-a-secret' } },
        { name: 'sess', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], isolation: 'per_session' },
        // Only for the timeout test: its own short call_timeout.
        { name: 'slow', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], call_timeout: '1s' },
        // A small max_result_bytes (64 KiB) for the size-limit tests.
        { name: 'bigs', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], max_result_bytes: 65_536 },
        { name: 'everything', transport: 'stdio', command: process.execPath, args: ['node_modules/@modelcontextprotocol/server-everything/dist/index.js', 'stdio'], env: { EVERYTHING_API_KEY: { secret: 'gw/everything/key' } } },
      ],
    },
  });
  token = await h.login(READER, { team: 'gw' });
  client = await h.connect(token);
});

const pids = new Set<number>();

after(async () => {
  await h?.close();
  // Shutdown stops every upstream process.
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `upstream process ${pid} still runs after shutdown`);
});

async function pidOf(c: Client, tool = 'echo__pid'): Promise<number> {
  const r = await c.callTool({ name: tool, arguments: {} });
  const pid = Number((r.content as { text: string }[])[0]!.text);
  pids.add(pid);
  return pid;
}

const text = (r: unknown): string => JSON.stringify(r);

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof McpError, `expected McpError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the call to fail');
}

test('protected resource metadata (RFC 9728) names the gateway and Tessera as authorization server', async () => {
  const r = await fetch(`${h.url}/.well-known/oauth-protected-resource/mcp`);
  assert.equal(r.status, 200);
  const m = (await r.json()) as Record<string, unknown>;
  assert.equal(m.resource, `${h.url}/mcp`);
  assert.deepEqual(m.authorization_servers, [h.url]);
  assert.deepEqual(m.bearer_methods_supported, ['header']);
  assert.ok((m.scopes_supported as string[]).includes('tool:echo/*'));
});

test('tools/list shows only the tools the caller may call, named <server>__<tool>', async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  assert.ok(names.includes('echo__echo'));
  assert.ok(names.includes('echo__add'));
  // Argument-conditional permit: listed (the call decides with the real arguments).
  assert.ok(names.includes('echo__query_patients'));
  assert.ok(!names.includes('echo__secret_tool'), 'unauthorized tool must be invisible');
  assert.ok(names.includes('everything__echo'), 'server-everything tools are proxied');
  assert.ok(names.includes('everything__get-env'));
  for (const n of names) assert.match(n, /^[a-zA-Z0-9_-]{1,64}$/, `${n}: strict clients accept only these names`);
});

test('tools/call also accepts <server>/<tool>, the policy entity id', async () => {
  const r = await client.callTool({ name: 'echo/add', arguments: { a: 40, b: 2 } });
  assert.deepEqual(r.content, [{ type: 'text', text: '42' }]);
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.tool_call'");
  const last = JSON.parse(rows[rows.length - 1]!.body) as { resource: string; details: { server: string; tool: string } };
  assert.equal(last.resource, 'echo/add');
  assert.deepEqual([last.details.server, last.details.tool], ['echo', 'add'], 'the audit records server and tool, whatever the name used');
});

test('tools/call runs the upstream tool', async () => {
  const r = await client.callTool({ name: 'echo__add', arguments: { a: 2, b: 40 } });
  assert.deepEqual(r.content, [{ type: 'text', text: '42' }]);
  const e = await client.callTool({ name: 'everything__echo', arguments: { message: 'hello' } });
  assert.match(text(e.content), /hello/);
});

test('prompt injection: the injected key never comes back, in any encoding', async () => {
  for (const encoding of ['plain', 'base64', 'base64url', 'hex', 'url', 'json']) {
    const r = await client.callTool({ name: 'echo__echo_env', arguments: { name: 'API_KEY', encoding } });
    const t = (r.content as { text: string }[])[0]!.text;
    assert.match(t, /^here you go: \[REDACTED:[a-z0-9-]+\] \(enjoy\)$/, `${encoding}: ${t}`);
    assert.ok(!t.includes(API_KEY));
  }
  const dump = await client.callTool({ name: 'echo__dump_env', arguments: {} });
  assert.ok(!text(dump).includes(API_KEY));
  assert.ok(!text(dump).includes(Buffer.from(API_KEY).toString('base64')));
  assert.match(text(dump), /not-a-secret/, 'literal config values are not secrets');
  // Tessera's own environment does not reach the upstream.
  assert.ok(!text(dump).includes('TESSERA_'), 'gateway env is not inherited');
});

test('prompt injection: the key inside an upstream error message and an isError result is scrubbed', async () => {
  const err = await rpcError(client.callTool({ name: 'echo__fail_with_env', arguments: { name: 'API_KEY' } }));
  assert.ok(!err.message.includes(API_KEY));
  assert.match(err.message, /password=\[REDACTED:plain\]/);
  assert.equal((err.data as { code: string }).code, 'TESSERA_GATEWAY_UPSTREAM_ERROR');
  const r = await client.callTool({ name: 'echo__error_result_with_env', arguments: { name: 'API_KEY' } });
  assert.equal(r.isError, true);
  assert.ok(!text(r).includes(API_KEY));
  assert.match(text(r), /REDACTED/);
});

test('server-everything get-env with an injected env value: scrubbed, and audited as exfiltration', async () => {
  const r = await client.callTool({ name: 'everything__get-env', arguments: {} });
  const t = text(r);
  assert.match(t, /EVERYTHING_API_KEY/);
  assert.ok(!t.includes(EVERYTHING_KEY));
  assert.match(t, /REDACTED/);
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.exfiltration_suspected'");
  assert.ok(rows.some((x) => x.body.includes('kv/gw/everything/key')), 'the scrub hit is audited with the secret label');
  assert.ok(rows.every((x) => !x.body.includes(EVERYTHING_KEY) && !x.body.includes(API_KEY)));
});

test('every tools/call is audited with a digest of the arguments, never their values', async () => {
  await client.callTool({ name: 'echo__echo', arguments: { text: 'audit-me-please' } });
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.tool_call'");
  const ev = rows.map((r) => JSON.parse(r.body) as { resource: string; result: string; actor: { id: string }; details: Record<string, unknown> }).filter((e) => e.resource === 'echo/echo');
  assert.ok(ev.length >= 1);
  const last = ev[ev.length - 1]!;
  assert.equal(last.actor.id, READER);
  assert.equal(last.result, 'allow');
  assert.match(String(last.details.args_sha256), /^[0-9a-f]{64}$/);
  assert.equal(last.details.upstream_status, 'ok');
  assert.equal(typeof last.details.latency_ms, 'number');
  assert.equal(last.details.scrub_hits, 0);
  assert.equal(last.details.outcome, 'delivered');
  assert.ok(!rows.some((r) => r.body.includes('audit-me-please')), 'argument values are not audited by default');
});

test('unauthorized tool is uncallable and indistinguishable from an unknown one', async () => {
  const e1 = await rpcError(client.callTool({ name: 'echo__secret_tool', arguments: {} }));
  const e2 = await rpcError(client.callTool({ name: 'echo__no_such_tool', arguments: {} }));
  const e3 = await rpcError(client.callTool({ name: 'nosuchserver__x', arguments: {} }));
  for (const e of [e1, e2, e3]) {
    assert.equal(e.code, -32602);
    assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_NOT_FOUND');
  }
});

test('argument-level policy: query_patients only for ward == cardiology', async () => {
  const ok = await client.callTool({ name: 'echo__query_patients', arguments: { ward: 'cardiology' } });
  assert.match(text(ok), /patients in cardiology/);
  const e = await rpcError(client.callTool({ name: 'echo__query_patients', arguments: { ward: 'oncology' } }));
  assert.equal(e.code, -32003);
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_DENIED');
});

test('arguments failing the tool inputSchema: a clear JSON-RPC invalid params error', async () => {
  const e = await rpcError(client.callTool({ name: 'echo__add', arguments: { a: 'two', b: 1 } }));
  assert.equal(e.code, -32602);
  assert.equal((e.data as { code: string }).code, 'TESSERA_TOOL_ARGS_INVALID');
  assert.match(e.message, /argument "a": must be integer/);
  const e2 = await rpcError(client.callTool({ name: 'echo__add', arguments: { a: 1 } }));
  assert.match(e2.message, /argument "b": is required/);
});

test('an upstream that hangs: timeout error (its server\'s own call_timeout), and the gateway keeps serving', async () => {
  const e = await rpcError(client.callTool({ name: 'slow__hang', arguments: {} }));
  assert.equal(e.code, -32004);
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_UPSTREAM_TIMEOUT');
  const r = await client.callTool({ name: 'echo__add', arguments: { a: 1, b: 1 } });
  assert.deepEqual(r.content, [{ type: 'text', text: '2' }]);
});

test('an upstream that exits: clear error, restarted on the next call, other upstreams unaffected', async () => {
  const before = await pidOf(client);
  const e = await rpcError(client.callTool({ name: 'echo__exit', arguments: {} }));
  assert.equal(e.code, -32002);
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_UPSTREAM_FAILED');
  const ev = await client.callTool({ name: 'everything__echo', arguments: { message: 'still here' } });
  assert.match(text(ev), /still here/);
  assert.notEqual(await pidOf(client), before, 'a new process serves the next call');
});

test('stdio upstreams are isolated per agent: another agent gets its own process', async () => {
  const t2 = await h.login('spiffe://example.org/ns/gw/sa/second', { team: 'gw' });
  const c2 = await h.connect(t2);
  const p1 = await pidOf(client);
  const p2 = await pidOf(c2);
  assert.notEqual(p1, p2);
  // Same agent, second session: the pooled process is shared.
  const c3 = await h.connect(token);
  assert.equal(await pidOf(c3), p1);
});

test('per_session isolation: each session gets its own process, stopped when the session ends', async () => {
  const c1 = await h.connect(token);
  const c2 = await h.connect(token);
  const p1 = await pidOf(c1, 'sess__pid');
  const p2 = await pidOf(c2, 'sess__pid');
  assert.notEqual(p1, p2);
  assert.equal(await pidOf(c1, 'sess__pid'), p1);
  await (c1.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) {
    try {
      process.kill(p1, 0);
      await new Promise((r) => setTimeout(r, 100));
    } catch {
      gone = true;
    }
  }
  assert.ok(gone, 'the per-session process is stopped with its session');
  assert.equal(await pidOf(c2, 'sess__pid'), p2, 'the other session keeps its process');
});

test('injection needs secret.inject for the caller: without it the upstream does not start and the call is refused', async () => {
  const t = await h.login('spiffe://example.org/ns/gw/sa/noinject', { team: 'gw' });
  const c = await h.connect(t);
  const names = (await c.listTools()).tools.map((x) => x.name);
  assert.ok(!names.some((n) => n.startsWith('echo__')), 'tools of an upstream that cannot start for this caller are not listed');
  assert.ok(names.includes('sess__pid'), 'upstreams without injected values still work');
  const e = await rpcError(c.callTool({ name: 'echo__add', arguments: { a: 1, b: 1 } }));
  assert.equal(e.code, -32003);
  assert.equal((e.data as { code: string }).code, 'TESSERA_POLICY_DENIED');
  assert.ok(!e.message.includes(API_KEY));
});

/** Audit events of one actor, flushed first. */
async function eventsOf(actorId: string): Promise<{ kind: string; action: string; resource?: string; details?: Record<string, unknown> }[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
  return rows.map((r) => JSON.parse(r.body) as { kind: string; action: string; resource?: string; actor: { id: string }; details?: Record<string, unknown> }).filter((e) => e.actor.id === actorId);
}

test('an agent without permissions sees no tools, and no upstream is started or injected for it', async () => {
  const t = await h.login(OTHER);
  const c = await h.connect(t);
  const { tools } = await c.listTools();
  assert.deepEqual(tools, []);
  const e = await rpcError(c.callTool({ name: 'echo__echo', arguments: { text: 'x' } }));
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_NOT_FOUND');
  // A hashed-looking name needs the server's tool list: still no start for this caller.
  const e2 = await rpcError(c.callTool({ name: 'echo__files_read_abcdefgh', arguments: {} }));
  assert.equal((e2.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_NOT_FOUND');
  const mine = await eventsOf(OTHER);
  assert.deepEqual(mine.filter((x) => x.kind === 'gateway.upstream_started'), [], 'no upstream process was started for a caller permitted nothing');
  assert.deepEqual(mine.filter((x) => x.action === 'secret.inject'), [], 'no secret was resolved for it');
});

test('an agent permitted one tool of one server starts only that server (a tool-specific policy is enough to list it)', async () => {
  const id = 'spiffe://example.org/ns/gw/sa/sessonly';
  const t = await h.login(id, { role: 'sessonly' });
  const c = await h.connect(t);
  const names = (await c.listTools()).tools.map((x) => x.name);
  assert.deepEqual(names, ['sess__pid']);
  const started = (await eventsOf(id)).filter((x) => x.kind === 'gateway.upstream_started').map((x) => x.resource);
  assert.deepEqual(started, ['sess']);
  assert.ok((await eventsOf(id)).every((x) => x.action !== 'secret.inject'));
});

test('401: missing token, with WWW-Authenticate pointing at the resource metadata', async () => {
  const r = await rawMcp(h.mcpUrl, undefined, INIT());
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), `Bearer resource_metadata="${h.url}/.well-known/oauth-protected-resource/mcp"`);
  assert.equal(r.body.error.data.code, 'TESSERA_TOKEN_MISSING');
});

test('401: invalid token and a token for another audience (no passthrough) are refused with invalid_token', async () => {
  const bad = await rawMcp(h.mcpUrl, 'not.a.token', INIT());
  assert.equal(bad.status, 401);
  assert.match(bad.headers.get('www-authenticate')!, /^Bearer error="invalid_token", error_description="[^"]*", resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"$/);
  // A Tessera token for Tessera's own API (audience = issuer), not for the gateway.
  const apiToken = await h.login(READER, { team: 'gw' }, h.url);
  const wrongAud = await rawMcp(h.mcpUrl, apiToken, INIT());
  assert.equal(wrongAud.status, 401);
  assert.equal(wrongAud.body.error.data.code, 'TESSERA_TOKEN_AUDIENCE_INVALID');
  assert.match(wrongAud.headers.get('www-authenticate')!, /error="invalid_token"/);
});

// 403 insufficient_scope needs a scoped (task) token, which Tessera cannot issue yet: see stack.test.ts.

test('a session id presented with another agent\'s token is refused', async () => {
  const init = await rawMcp(h.mcpUrl, token, INIT());
  assert.equal(init.status, 200);
  const sid = init.headers.get('mcp-session-id')!;
  assert.ok(sid);
  const other = await h.login(OTHER);
  const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });
  const r = await rawMcp(h.mcpUrl, other, list, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(r.status, 404);
  assert.equal(r.body.error.data.code, 'TESSERA_GATEWAY_SESSION_NOT_FOUND');
  const mine = await rawMcp(h.mcpUrl, token, list, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(mine.status, 200);
  const unknown = await rawMcp(h.mcpUrl, token, list, { 'mcp-session-id': 'nope', 'mcp-protocol-version': '2025-11-25' });
  assert.equal(unknown.status, 404);
});

test('bad input: malformed JSON, invalid JSON-RPC, no session, oversized message', async () => {
  const malformed = await rawMcp(h.mcpUrl, token, '{"jsonrpc": "2.0", "id": 1, "method": ');
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.error.code, -32700);
  assert.equal(malformed.body.error.data.code, 'TESSERA_GATEWAY_REQUEST_INVALID');

  const noSession = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
  assert.equal(noSession.status, 400);
  assert.equal(noSession.body.error.data.code, 'TESSERA_GATEWAY_REQUEST_INVALID');

  const init = await rawMcp(h.mcpUrl, token, INIT());
  const sid = init.headers.get('mcp-session-id')!;
  const notRpc = await rawMcp(h.mcpUrl, token, JSON.stringify({ hello: 'world' }), { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(notRpc.status, 400);
  // JSON-RPC 2.0 §5.1: valid JSON that is not a Request object is -32600 (the SDK said -32700, without a code).
  assert.equal(notRpc.body.error.code, -32600);
  assert.equal(notRpc.body.error.data.code, 'TESSERA_GATEWAY_REQUEST_INVALID');

  const big = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo__echo', arguments: { text: 'x'.repeat(10_000) } } });
  const tooLarge = await rawMcp(h.mcpUrl, token, big, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.body.error.data.code, 'TESSERA_GATEWAY_MESSAGE_TOO_LARGE');

  const badVersion = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list' }), { 'mcp-session-id': sid, 'mcp-protocol-version': '1999-01-01' });
  assert.equal(badVersion.status, 400);
});

test('older protocol revisions negotiate (2025-06-18, 2025-03-26)', async () => {
  for (const v of ['2025-06-18', '2025-03-26']) {
    const r = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: v, capabilities: {}, clientInfo: { name: 'old', version: '1' } } }));
    assert.equal(r.status, 200);
    assert.equal(r.body.result.protocolVersion, v);
  }
});

/** Polls `cond` every 20 ms, at most `max` times (bounded: no test waits on time alone). */
async function until(cond: () => boolean, what: string, max = 500): Promise<void> {
  for (let i = 0; i < max && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('revoking the agent cancels its call in flight: the upstream is stopped at once and the side effect never happens', async () => {
  const victimId = 'spiffe://example.org/ns/gw/sa/victim';
  const t = await h.login(victimId, { team: 'gw' });
  const c = await h.connect(t);
  const r = await c.callTool({ name: 'echo__add', arguments: { a: 1, b: 2 } });
  assert.deepEqual(r.content, [{ type: 'text', text: '3' }]);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-side-effect-'));
  try {
    // In flight when the revocation lands: the tool has started (the file says so).
    const inflight = c.callTool({ name: 'echo__side_effect', arguments: { dir } }).then(() => 'resolved', (e: Error) => e.message);
    await until(() => existsSync(join(dir, 'started')), 'the tool to start');
    const pid = Number(readFileSync(join(dir, 'started'), 'utf8'));
    pids.add(pid);
    const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: victimId, reason: 'test' });
    assert.equal(rev.status, 201);
    // The tool ignores cancellation and would finish as soon as it is released. The gateway
    // killed its process when the revocation took effect (before the 201), so releasing it now
    // must not produce the side effect (a graceful stop left it running ~2 s: it did).
    writeFileSync(join(dir, 'release'), '');
    assert.match(await inflight, /401|revoked/i);
    await until(() => !alive(pid), 'the upstream process to be gone');
    assert.ok(!existsSync(join(dir, 'done')), 'the side effect of the revoked call never happened');
    const stopped = (await eventsOf(victimId)).filter((x) => x.kind === 'gateway.upstream_stopped');
    assert.ok(stopped.some((x) => x.details?.cause === 'revoked'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(c.callTool({ name: 'echo__add', arguments: { a: 1, b: 2 } }), /401|revoked|invalid_token/i);
  // Everyone else keeps working.
  const mine = await client.callTool({ name: 'echo__add', arguments: { a: 2, b: 2 } });
  assert.deepEqual(mine.content, [{ type: 'text', text: '4' }]);
});

test('max_result_bytes: a result over the limit is refused with a stable code; a smaller one, and the next call, work', async () => {
  const ok = await client.callTool({ name: 'bigs__big', arguments: { bytes: 30_000 } });
  assert.equal((ok.content as { text: string }[])[0]!.text.length, 30_000);
  const pid = await pidOf(client, 'bigs__pid');
  const e = await rpcError(client.callTool({ name: 'bigs__big', arguments: { bytes: 200_000 } }));
  assert.equal(e.code, -32002);
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE');
  assert.match(e.message, /65536 bytes/);
  // The oversized line was skipped, not the connection: the same process answers the next call.
  assert.equal(await pidOf(client, 'bigs__pid'), pid);
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.tool_call'");
  const audited = rows.map((x) => JSON.parse(x.body) as { result: string; reason?: { code?: string }; details: { upstream_status: string; outcome: string } }).filter((x) => x.reason?.code === 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE');
  assert.ok(audited.some((x) => x.result === 'error' && x.details.upstream_status === 'too_large' && x.details.outcome === 'failed'));
});

test('a 60 MB result (default max_result_bytes, 4 MiB) is discarded while it is read; /healthz answers meanwhile', async () => {
  const health = async (): Promise<number> => (await fetch(`${h.url}/healthz`)).status;
  const [e, ...statuses] = await Promise.all([rpcError(client.callTool({ name: 'echo__big', arguments: { bytes: 60_000_000 } })), health(), health(), health()]);
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE');
  assert.deepEqual(statuses, [200, 200, 200]);
  const r = await client.callTool({ name: 'echo__add', arguments: { a: 1, b: 1 } });
  assert.deepEqual(r.content, [{ type: 'text', text: '2' }]);
});

test('an answer that never ends: refused as too large (not a timeout), /healthz answers while it streams, the upstream is replaced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-endless-'));
  try {
    const call = rpcError(client.callTool({ name: 'bigs__endless', arguments: { dir, first: 32_768 } }));
    await until(() => existsSync(join(dir, 'started')), 'the answer to start');
    const pid = Number(readFileSync(join(dir, 'started'), 'utf8'));
    pids.add(pid);
    // Half an answer is in flight: the gateway still serves.
    assert.equal((await fetch(`${h.url}/healthz`)).status, 200);
    writeFileSync(join(dir, 'release'), '');
    const e = await call;
    assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE');
    // An upstream that never ends its message is stopped after 16× the limit...
    await until(() => !alive(pid), 'the endless upstream to be stopped');
    // ...and a fresh one serves the next call.
    assert.notEqual(await pidOf(client, 'bigs__pid'), pid);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
