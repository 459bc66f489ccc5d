/**
 * Malformed MCP messages (issue 7 finding F12b, ADR 0141). `tools/call` with `arguments` an
 * array or a string, or `name` null / a number / an object, used to answer JSON-RPC -32603 with
 * a zod dump, no Tessera code and no audit. Every malformed message of every method the gateway
 * handles now answers with the JSON-RPC code the spec names (-32602 invalid params, -32600
 * invalid request, -32601 unknown method), `data.code` (TESSERA_GATEWAY_…), `data.field` and a
 * message naming the field — and is audited once. Real HTTP; the official SDK client where it
 * can send the message.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { CallToolResultSchema, ListToolsResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayHarness, rawMcp, INIT, type GatewayHarness } from './harness.js';
import type { ToolProvider } from '../../src/gateway/index.js';

const AGENT = 'spiffe://example.org/ns/gw/sa/sloppy';
const V = '2025-11-25';
const POLICIES = `
@id("all") permit (principal, action == Tessera::Action::"tool.call", resource)
when { principal.hasTag("team") && principal.getTag("team") == "gw" };
`;

let calls = 0;
const provider: ToolProvider = {
  server: 'p',
  async listTools() {
    return [{ name: 'echo', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }];
  },
  async callTool(_tool, args) {
    calls++;
    return { content: [{ type: 'text', text: String(args.text) }] };
  },
  async close() {},
};

let h: GatewayHarness;
let token: string;
let sid: string;
let client: Client;

before(async () => {
  h = await startGatewayHarness({ policies: POLICIES, providers: [provider], gateway: {} });
  token = await h.login(AGENT, { team: 'gw' });
  const init = await rawMcp(h.mcpUrl, token, INIT());
  sid = init.headers.get('mcp-session-id')!;
  assert.equal((await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), { 'mcp-session-id': sid, 'mcp-protocol-version': V })).status, 202);
  client = await h.connect(token);
});
after(() => h?.close());

interface Case {
  readonly name: string;
  readonly body: unknown;
  readonly status: number;
  readonly rpc: number;
  readonly code: string;
  /** `data.field`, also named in the message. */
  readonly field?: string;
  /** The id echoed (JSON-RPC 2.0 §5: null when the id itself is unusable, or for a notification). */
  readonly id: string | number | null;
  /** Sent without a session (initialize). */
  readonly noSession?: boolean;
}

const call = (params: unknown, id: number | string = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params });
const P = { status: 200, rpc: -32602, code: 'TESSERA_GATEWAY_PARAMS_INVALID' } as const;
const R = { status: 400, rpc: -32600, code: 'TESSERA_GATEWAY_REQUEST_INVALID' } as const;

const CASES: Case[] = [
  // tools/call: the attacker's inputs, and the rest of their kind.
  { name: 'tools/call arguments is an array', body: call({ name: 'p__echo', arguments: [1, 2] }), ...P, field: 'params.arguments', id: 1 },
  { name: 'tools/call arguments is a string', body: call({ name: 'p__echo', arguments: '{"text":"x"}' }), ...P, field: 'params.arguments', id: 1 },
  { name: 'tools/call arguments is a number', body: call({ name: 'p__echo', arguments: 5 }), ...P, field: 'params.arguments', id: 1 },
  { name: 'tools/call arguments is true', body: call({ name: 'p__echo', arguments: true }), ...P, field: 'params.arguments', id: 1 },
  { name: 'tools/call name is null', body: call({ name: null, arguments: {} }), ...P, field: 'params.name', id: 1 },
  { name: 'tools/call name is a number', body: call({ name: 42, arguments: {} }, 'n'), ...P, field: 'params.name', id: 'n' },
  { name: 'tools/call name is an object', body: call({ name: { server: 'p', tool: 'echo' } }), ...P, field: 'params.name', id: 1 },
  { name: 'tools/call name is an array', body: call({ name: ['p__echo'] }), ...P, field: 'params.name', id: 1 },
  { name: 'tools/call name is missing', body: call({ arguments: {} }), ...P, field: 'params.name', id: 1 },
  { name: 'tools/call without params', body: { jsonrpc: '2.0', id: 1, method: 'tools/call' }, ...P, field: 'params', id: 1 },
  { name: 'tools/call params is an array', body: call(['p__echo', {}]), ...P, field: 'params', id: 1 },
  { name: 'tools/call params is a string', body: call('p__echo'), ...P, field: 'params', id: 1 },
  { name: 'tools/call params is null', body: call(null), ...P, field: 'params', id: 1 },
  { name: 'tools/call _meta.progressToken is an object', body: call({ name: 'p__echo', arguments: {}, _meta: { progressToken: {} } }), ...P, field: 'params._meta.progressToken', id: 1 },
  // tools/list
  { name: 'tools/list cursor is a number', body: { jsonrpc: '2.0', id: 2, method: 'tools/list', params: { cursor: 5 } }, ...P, field: 'params.cursor', id: 2 },
  { name: 'tools/list params is an array', body: { jsonrpc: '2.0', id: 2, method: 'tools/list', params: [] }, ...P, field: 'params', id: 2 },
  // ping
  { name: 'ping params is a string', body: { jsonrpc: '2.0', id: 3, method: 'ping', params: 'x' }, ...P, field: 'params', id: 3 },
  // initialize (no session yet)
  { name: 'initialize protocolVersion is a number', body: { jsonrpc: '2.0', id: 4, method: 'initialize', params: { protocolVersion: 20251125, capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, ...P, field: 'params.protocolVersion', id: 4, noSession: true },
  { name: 'initialize without clientInfo', body: { jsonrpc: '2.0', id: 4, method: 'initialize', params: { protocolVersion: V, capabilities: {} } }, ...P, field: 'params.clientInfo', id: 4, noSession: true },
  { name: 'initialize clientInfo.name is null', body: { jsonrpc: '2.0', id: 4, method: 'initialize', params: { protocolVersion: V, capabilities: {}, clientInfo: { name: null, version: '1' } } }, ...P, field: 'params.clientInfo.name', id: 4, noSession: true },
  { name: 'initialize without params', body: { jsonrpc: '2.0', id: 4, method: 'initialize' }, ...P, field: 'params', id: 4, noSession: true },
  { name: 'initialize again on an open session', body: JSON.parse(INIT(5)), ...R, id: 5 },
  // notifications: no answer is possible, so the HTTP request is refused (no id).
  { name: 'notifications/cancelled requestId is an object', body: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: { id: 1 }, reason: 'x' } }, status: 400, rpc: -32602, code: 'TESSERA_GATEWAY_PARAMS_INVALID', field: 'params.requestId', id: null },
  { name: 'notifications/progress progress is a string', body: { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 'half' } }, status: 400, rpc: -32602, code: 'TESSERA_GATEWAY_PARAMS_INVALID', field: 'params.progress', id: null },
  { name: 'notifications/initialized params is a number', body: { jsonrpc: '2.0', method: 'notifications/initialized', params: 1 }, status: 400, rpc: -32602, code: 'TESSERA_GATEWAY_PARAMS_INVALID', field: 'params', id: null },
  // A method the gateway does not serve.
  { name: 'unknown method', body: { jsonrpc: '2.0', id: 6, method: 'resources/unknown' }, status: 200, rpc: -32601, code: 'TESSERA_GATEWAY_METHOD_NOT_FOUND', field: 'method', id: 6 },
  { name: 'method with a NUL and a token shape', body: { jsonrpc: '2.0', id: 6, method: 'x\u0000eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' }, status: 200, rpc: -32601, code: 'TESSERA_GATEWAY_METHOD_NOT_FOUND', field: 'method', id: 6 },
  // The JSON-RPC envelope.
  { name: 'jsonrpc is "1.0"', body: { jsonrpc: '1.0', id: 7, method: 'ping' }, ...R, field: 'jsonrpc', id: 7 },
  { name: 'no jsonrpc member', body: { id: 7, method: 'ping' }, ...R, field: 'jsonrpc', id: 7 },
  { name: 'id is null', body: { jsonrpc: '2.0', id: null, method: 'ping' }, ...R, field: 'id', id: null },
  { name: 'id is a fraction', body: { jsonrpc: '2.0', id: 1.5, method: 'ping' }, ...R, field: 'id', id: null },
  { name: 'id is an object', body: { jsonrpc: '2.0', id: { a: 1 }, method: 'ping' }, ...R, field: 'id', id: null },
  { name: 'id is a boolean', body: { jsonrpc: '2.0', id: true, method: 'ping' }, ...R, field: 'id', id: null },
  { name: 'method is a number', body: { jsonrpc: '2.0', id: 8, method: 5 }, ...R, field: 'method', id: 8 },
  { name: 'method is empty', body: { jsonrpc: '2.0', id: 8, method: '' }, ...R, field: 'method', id: 8 },
  { name: 'a response with neither result nor error', body: { jsonrpc: '2.0', id: 9 }, ...R, id: 9 },
  { name: 'the body is a JSON string', body: 'tools/call', ...R, id: null },
  { name: 'the body is null', body: null, ...R, id: null },
  { name: 'the body is a number', body: 7, ...R, id: null },
  { name: 'an empty batch', body: [], ...R, id: null },
];

/** Text that would show internals: zod's own phrasing, a stack, a type dump. */
const INTERNALS = /ZodError|Invalid input|invalid_type|"code":\s*"invalid|\bat [A-Za-z.]+ \(|node_modules|\bexpected\b.*\breceived\b/;

async function refusedCount(): Promise<number> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.request_refused' ORDER BY seq");
  return rows.length;
}

for (const c of CASES) {
  test(`malformed: ${c.name} → ${c.status} ${c.rpc} ${c.code}`, async () => {
    const before = await refusedCount();
    const headers: Record<string, string> = c.noSession ? {} : { 'mcp-session-id': sid, 'mcp-protocol-version': V };
    const r = await rawMcp(h.mcpUrl, token, JSON.stringify(c.body), headers);
    assert.equal(r.status, c.status, JSON.stringify(r.body));
    assert.equal(r.body.jsonrpc, '2.0');
    assert.equal(r.body.id, c.id);
    assert.equal(r.body.error.code, c.rpc, JSON.stringify(r.body));
    assert.equal(r.body.error.data.code, c.code);
    assert.equal(typeof r.body.error.data.request_id, 'string');
    if (c.field) {
      assert.equal(r.body.error.data.field, c.field);
      if (c.code === 'TESSERA_GATEWAY_PARAMS_INVALID' || c.code === 'TESSERA_GATEWAY_REQUEST_INVALID') assert.ok(r.body.error.message.includes(c.field), `the message names ${c.field}: ${r.body.error.message}`);
    }
    assert.doesNotMatch(JSON.stringify(r.body), INTERNALS);
    assert.ok(r.body.error.message.length < 400);
    if (c.noSession) assert.equal(r.headers.get('mcp-session-id'), null, 'no session is opened');
    // Audited exactly once.
    assert.equal((await refusedCount()) - before, 1);
  });
}

test('malformed messages inside a batch (MCP 2025-03-26): the whole batch is refused, naming the message and field; nothing runs', async () => {
  const init = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'old', version: '1' } } }));
  const old = init.headers.get('mcp-session-id')!;
  const hdr = { 'mcp-session-id': old, 'mcp-protocol-version': '2025-03-26' };
  const before = calls;
  const r = await rawMcp(h.mcpUrl, token, JSON.stringify([call({ name: 'p__echo', arguments: { text: 'a' } }, 1), call({ name: 'p__echo', arguments: ['b'] }, 2)]), hdr);
  assert.equal(r.status, 400);
  assert.equal(r.body.id, null);
  assert.equal(r.body.error.code, -32602);
  assert.equal(r.body.error.data.code, 'TESSERA_GATEWAY_PARAMS_INVALID');
  assert.equal(r.body.error.data.field, 'params.arguments');
  assert.match(r.body.error.message, /^message 2 of the batch: tools\/call: params\.arguments must be a JSON object, not an array/);
  const r2 = await rawMcp(h.mcpUrl, token, JSON.stringify([call({ name: 'p__echo', arguments: {} }, 1), 5]), hdr);
  assert.equal(r2.status, 400);
  assert.equal(r2.body.error.code, -32600);
  assert.equal(calls, before, 'no call of a refused batch ran');
});

test('the official SDK client gets McpError -32602 with the Tessera code for bad params; a good call still works after', async () => {
  for (const params of [{ name: 'p__echo', arguments: [1] }, { name: 'p__echo', arguments: 'x' }, { name: null }, { name: 7 }, { name: { a: 1 } }]) {
    let err: unknown;
    try {
      await client.request({ method: 'tools/call', params: params as never }, CallToolResultSchema);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, -32602);
    assert.equal((err.data as { code: string }).code, 'TESSERA_GATEWAY_PARAMS_INVALID');
    assert.doesNotMatch(err.message, INTERNALS);
  }
  let err: unknown;
  try {
    await client.request({ method: 'tools/list', params: { cursor: 5 } as never }, ListToolsResultSchema);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof McpError);
  assert.equal((err.data as { field: string }).field, 'params.cursor');
  const ok = await client.callTool({ name: 'p__echo', arguments: { text: 'fine' } });
  assert.deepEqual(ok.content, [{ type: 'text', text: 'fine' }]);
});

test('refusal events record the method only when the gateway knows it, never agent text', async () => {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.request_refused' ORDER BY seq");
  const events = rows.map((r) => JSON.parse(r.body) as { actor: { id: string }; details: { method?: string; code: string; rpc_code: number } });
  assert.ok(events.length >= CASES.length);
  for (const e of events) {
    assert.equal(e.actor.id, AGENT);
    if (e.details.method !== undefined) assert.ok(['initialize', 'ping', 'tools/list', 'tools/call', 'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed'].includes(e.details.method), e.details.method);
  }
  assert.ok(!rows.some((r) => r.body.includes('eyJhbGciOiJIUzI1NiJ9')));
});
