/**
 * Hostile nesting through the MCP gateway (ADR 0041): 30,000-deep tool arguments and message
 * parts, a 30,000-deep tool result and a too-deep upstream inputSchema. The official MCP SDK
 * client over real HTTP against the full server. Nothing may answer with a 5xx or kill the
 * process, refused tool calls are audited, and the server keeps serving.
 *
 * The client cannot JSON.stringify a 30,000-deep value itself (V8's JSON.stringify recurses), so
 * its fetch swaps a placeholder string for the deep JSON text: the bytes on the wire are exactly
 * what a hostile client would send.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { startGatewayHarness, rawMcp, INIT, type GatewayHarness } from './harness.js';

const DEPTH = 30_000;
const deepArray = '['.repeat(DEPTH) + ']'.repeat(DEPTH);
const deepObject = '{"a":'.repeat(DEPTH) + '1' + '}'.repeat(DEPTH);
const PLACEHOLDER_ARRAY = '__DEEP_ARRAY__';
const PLACEHOLDER_OBJECT = '__DEEP_OBJECT__';

/** A value nested `n` levels deep, built without recursion. */
function nested(n: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
}

const provider: ToolProvider = {
  server: 'deep',
  async listTools() {
    return [
      { name: 'echo', inputSchema: { type: 'object', additionalProperties: true } },
      { name: 'deep_result', inputSchema: { type: 'object' } },
      { name: 'deep_schema', inputSchema: { type: 'object', properties: { x: nested(100) as Record<string, unknown> } } },
    ];
  },
  async callTool(tool, args) {
    if (tool === 'deep_result') return { content: [{ type: 'text', text: 'deep' }], structuredContent: nested(DEPTH) as Record<string, unknown> };
    return { content: [{ type: 'text', text: JSON.stringify(args).slice(0, 100) }] };
  },
  async close() {},
};

let h: GatewayHarness;
let token: string;

before(async () => {
  h = await startGatewayHarness({
    policies: '@id("deep") permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"deep");',
    gateway: { servers: [], audit_argument_values: true },
    providers: [provider],
  });
  token = await h.login('spiffe://example.org/ns/deep/sa/agent');
});
after(async () => {
  await h?.close();
});

/** The official client, whose fetch swaps the placeholders for the deep JSON on the wire. */
async function hostileClient(): Promise<Client> {
  const client = new Client({ name: 'hostile', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(h.mcpUrl), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    fetch: (url, init) => {
      const body = typeof init?.body === 'string' ? init.body.replace(`"${PLACEHOLDER_ARRAY}"`, deepArray).replace(`"${PLACEHOLDER_OBJECT}"`, deepObject) : init?.body;
      return fetch(url, { ...init, ...(body !== undefined ? { body } : {}) });
    },
  });
  await client.connect(transport);
  return client;
}

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof McpError, `expected McpError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the call to fail');
}

async function toolCallEvents(): Promise<AuditEvent[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>(`SELECT body FROM audit_events WHERE kind = 'gateway.tool_call' ORDER BY seq`);
  return rows.map((r) => JSON.parse(r.body) as AuditEvent);
}

async function healthy(client: Client): Promise<void> {
  const r = await client.callTool({ name: 'deep/echo', arguments: { ok: 1 } });
  assert.equal(r.isError, undefined);
  assert.equal((await fetch(`${h.url}/readyz`)).status, 200);
}

test('30,000-deep tool arguments (array and object): JSON-RPC invalid params with TESSERA_REQUEST_TOO_DEEP, audited, server healthy', async () => {
  const client = await hostileClient();
  for (const placeholder of [PLACEHOLDER_ARRAY, PLACEHOLDER_OBJECT]) {
    const before = (await toolCallEvents()).length;
    const e = await rpcError(client.callTool({ name: 'deep/echo', arguments: { x: placeholder } }));
    assert.equal(e.code, -32602);
    assert.equal((e.data as { code: string }).code, 'TESSERA_REQUEST_TOO_DEEP');
    const evs = (await toolCallEvents()).slice(before);
    assert.equal(evs.length, 1, 'the refused call is audited');
    assert.equal(evs[0]!.result, 'error');
    assert.equal(evs[0]!.reason?.code, 'TESSERA_REQUEST_TOO_DEEP');
    assert.equal(evs[0]!.resource, 'deep/echo');
  }
  // Ordinary nesting is accepted; the policy context keeps its own tighter bound (16 levels);
  // past 64 levels nothing walks the arguments at all.
  const ok = await client.callTool({ name: 'deep/echo', arguments: nested(10) as Record<string, unknown> });
  assert.equal(ok.isError, undefined);
  assert.equal((((await rpcError(client.callTool({ name: 'deep/echo', arguments: nested(20) as Record<string, unknown> }))).data) as { code: string }).code, 'TESSERA_POLICY_REQUEST_INVALID');
  const e = await rpcError(client.callTool({ name: 'deep/echo', arguments: nested(65) as Record<string, unknown> }));
  assert.equal((e.data as { code: string }).code, 'TESSERA_REQUEST_TOO_DEEP');
  await healthy(client);
  await client.close();
});

test('30,000-deep parts of an MCP message other than the arguments: HTTP 400 with a JSON-RPC error and the stable code', async () => {
  const init = await rawMcp(h.mcpUrl, token, INIT());
  const sid = init.headers.get('mcp-session-id')!;
  const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  const bodies = [
    `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{"x":${deepArray}}}}`,
    `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"deep/echo","arguments":{},"extra":${deepObject}}}`,
    `[{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"cursor":${deepArray}}}]`,
  ];
  for (const body of bodies) {
    const r = await rawMcp(h.mcpUrl, token, body, headers);
    assert.equal(r.status, 400, body.slice(0, 80));
    assert.equal(r.body.error.code, -32602);
    assert.equal(r.body.error.data.code, 'TESSERA_REQUEST_TOO_DEEP');
  }
  // Unauthenticated, the same body is refused for the missing token first.
  const anon = await rawMcp(h.mcpUrl, undefined, bodies[0]!, headers);
  assert.equal(anon.status, 401);
  const client = await hostileClient();
  await healthy(client);
  await client.close();
});

test('a 30,000-deep tool result is cut at the scrubber\'s depth bound, not a crash; a too-deep upstream inputSchema makes its tool uncallable, audited', async () => {
  const client = await hostileClient();
  const r = await client.callTool({ name: 'deep/deep_result', arguments: {} });
  assert.ok(JSON.stringify(r).length < 100_000, 'the result was bounded');
  assert.match(JSON.stringify(r.structuredContent), /too-deep/);

  const listed = await client.listTools();
  assert.ok(listed.tools.some((t) => t.name === 'deep__deep_schema'), 'listing survives the deep schema');
  const before = (await toolCallEvents()).length;
  const e = await rpcError(client.callTool({ name: 'deep/deep_schema', arguments: {} }));
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_UPSTREAM_FAILED');
  const evs = (await toolCallEvents()).slice(before);
  assert.equal(evs[0]?.reason?.code, 'TESSERA_GATEWAY_UPSTREAM_FAILED');
  await healthy(client);
  await client.close();
});

test('a tool name that looks like a credential: refused as unknown, audited under its HMAC, never in clear', async () => {
  const client = await hostileClient();
  const tsr = `tsr_admin_${'A'.repeat(30)}`;
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.c2lnbmF0dXJl';
  // Shapes the scrubber knows beyond the audit log's own (src/gateway/scrub/shapes.ts).
  const github = `ghp_${'a1B2'.repeat(9)}`;
  const aws = 'AKIAIOSFODNN7EXAMPLE';
  const cases: [string, string][] = [[`deep/${tsr}`, tsr], [`${tsr}/echo`, tsr], [jwt, jwt], [`deep/${jwt}`, jwt], [`deep/${github}`, github], [`deep__${aws}`, aws], [`deep/${'x'.repeat(300)}${tsr}`, tsr]];
  for (const [name, credential] of cases) {
    const before = (await toolCallEvents()).length;
    const e = await rpcError(client.callTool({ name, arguments: {} }));
    assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_NOT_FOUND', name);
    const evs = (await toolCallEvents()).slice(before);
    assert.equal(evs.length, 1, `${name}: audited`);
    assert.ok(!JSON.stringify(evs[0]).includes(credential.slice(0, 12)), `${name}: the credential is not in the event`);
    assert.match(String(evs[0]!.resource), /^hmac:[0-9a-f]+$/, name);
    // The resource is `<server>/<tool>` (a listed `deep__<tool>` name resolves to it), as its HMAC.
    const resource = name.replace(/^deep__/, 'deep/');
    assert.equal(evs[0]!.resource, `hmac:${h.tessera.audit.hmac(resource)}`, `${name}: the HMAC of the whole name, so an operator can search for it`);
  }
  await healthy(client);
  await client.close();
});

test('tool arguments with an unpaired surrogate: refused with a stable code and audited, not an engine crash', async () => {
  const client = await hostileClient();
  const before = (await toolCallEvents()).length;
  const e = await rpcError(client.callTool({ name: 'deep/echo', arguments: { text: 'a\ud800b' } }));
  assert.equal(e.code, -32602);
  assert.equal((e.data as { code: string }).code, 'TESSERA_POLICY_REQUEST_INVALID');
  assert.equal((await toolCallEvents()).slice(before)[0]?.reason?.code, 'TESSERA_POLICY_REQUEST_INVALID');
  // In a part of the message the gateway reads itself (the tool name): refused at the transport.
  const init = await rawMcp(h.mcpUrl, token, INIT());
  const sid = init.headers.get('mcp-session-id')!;
  const r = await rawMcp(h.mcpUrl, token, '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"deep/\\ud800","arguments":{}}}', { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.data.code, 'TESSERA_REQUEST_INVALID');
  await healthy(client);
  await client.close();
});

test('argument values in the audit (audit_argument_values): credential shapes the scrubber does not know are redacted, so the call is recorded', async () => {
  const client = await hostileClient();
  const odd = ['xeyJhbGciOiJIUzI1NiJ9.abcdefghij.sig', `tsr_custom_${'b'.repeat(24)}`];
  const before = (await toolCallEvents()).length;
  const r = await client.callTool({ name: 'deep/echo', arguments: { a: odd[0], b: odd[1] } });
  assert.equal(r.isError, undefined);
  const ev = (await toolCallEvents()).slice(before)[0]!;
  assert.equal(ev.result, 'allow');
  const args = String((ev.details as { args_json?: string }).args_json);
  assert.match(args, /\[redacted\]/);
  for (const o of odd) assert.ok(!JSON.stringify(ev).includes(o));
  await client.close();
});
