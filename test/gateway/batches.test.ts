/**
 * JSON-RPC batches on POST /mcp (issue 7 finding F3, ADR 0141). A batch used to count as ONE
 * request for the per-agent rate and in-flight limits (ADR 0062), so 100 tools/call in batches
 * took the gateway's memory from 216 to 1365 MB. Now: refused for MCP ≥ 2025-06-18 (which
 * removed batching); before it, every message counts, the length is bounded, the results of
 * one request are bounded together, and a duplicate id never leaves a request unanswered.
 * Real HTTP against the whole server; a provider whose tool blocks until the test releases it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGatewayHarness, rawMcp, type GatewayHarness } from './harness.js';
import type { ToolProvider } from '../../src/gateway/index.js';

const POLICIES = `
@id("all") permit (principal, action == Tessera::Action::"tool.call", resource)
when { principal.hasTag("team") && principal.getTag("team") == "gw" };
`;
const GW = { team: 'gw' };

/** A provider: `wait` blocks until released, `big` returns `bytes` characters, `now` answers at once. */
function blockingProvider(): { provider: ToolProvider; waiting: (() => void)[]; calls: () => number } {
  const waiting: (() => void)[] = [];
  let calls = 0;
  const provider: ToolProvider = {
    server: 'slow',
    async listTools() {
      return [
        { name: 'wait', inputSchema: { type: 'object' } },
        { name: 'now', inputSchema: { type: 'object' } },
        { name: 'big', inputSchema: { type: 'object', properties: { bytes: { type: 'integer' } } } },
      ];
    },
    async callTool(tool, args) {
      calls++;
      if (tool === 'wait') await new Promise<void>((resolve) => waiting.push(resolve));
      if (tool === 'big') return { content: [{ type: 'text', text: 'x'.repeat(Number(args.bytes)) }] };
      return { content: [{ type: 'text', text: tool }] };
    },
    async close() {
      for (const r of waiting.splice(0)) r();
    },
  };
  return { provider, waiting, calls: () => calls };
}

async function openSession(h: GatewayHarness, token: string, version: string): Promise<string> {
  const init = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'batcher', version: '1' } } }));
  assert.equal(init.status, 200, JSON.stringify(init.body));
  assert.equal(init.body.result.protocolVersion, version);
  const sid = init.headers.get('mcp-session-id')!;
  const note = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), { 'mcp-session-id': sid, 'mcp-protocol-version': version });
  assert.equal(note.status, 202);
  return sid;
}

const callMsg = (id: number | string, tool: string, args: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: `slow__${tool}`, arguments: args } });

function post(h: GatewayHarness, token: string, sid: string, version: string, body: unknown) {
  return rawMcp(h.mcpUrl, token, JSON.stringify(body), { 'mcp-session-id': sid, 'mcp-protocol-version': version });
}

function assertRefused(r: { status: number; body: any }, status: number, rpc: number, code: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.ok(!Array.isArray(r.body), 'a refused batch is answered with one error');
  assert.equal(r.body.jsonrpc, '2.0');
  assert.equal(r.body.error.code, rpc, JSON.stringify(r.body));
  assert.equal(r.body.error.data.code, code);
  assert.equal(typeof r.body.error.data.request_id, 'string');
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

async function refusedEvents(h: GatewayHarness, code: string): Promise<{ actor: { id: string }; details: Record<string, unknown> }[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
  return rows.map((r) => JSON.parse(r.body)).filter((e: { kind: string; reason?: { code?: string } }) => e.kind === 'gateway.request_refused' && e.reason?.code === code);
}

test('batches are refused for MCP 2025-06-18 and later (batching was removed there); nothing in them runs', async (t) => {
  const { provider, calls } = blockingProvider();
  const h = await startGatewayHarness({ policies: POLICIES, providers: [provider], gateway: {} });
  t.after(() => h.close());
  const token = await h.login('spiffe://example.org/ns/gw/sa/modern', GW);
  for (const version of ['2025-11-25', '2025-06-18']) {
    const sid = await openSession(h, token, version);
    for (const batch of [
      [callMsg(1, 'now'), callMsg(2, 'now')],
      [callMsg(3, 'now')], // a batch of one is still a batch
      Array.from({ length: 100 }, (_, i) => callMsg(100 + i, 'now')), // the attacker's shape
      [{ jsonrpc: '2.0', method: 'notifications/initialized' }],
      [{ jsonrpc: '2.0', id: 4, method: 'ping' }, { jsonrpc: '2.0', id: 5, method: 'tools/list' }],
    ]) {
      assertRefused(await post(h, token, sid, version, batch), 400, -32600, 'TESSERA_GATEWAY_BATCH_UNSUPPORTED');
    }
    // The session is still usable one message at a time.
    const one = await post(h, token, sid, version, callMsg(9, 'now'));
    assert.equal(one.status, 200);
    assert.equal(one.body.result.content[0].text, 'now');
  }
  assert.equal(calls(), 2, 'only the two single calls ran');
  // initialize cannot be batched, whatever the version.
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
  assertRefused(await rawMcp(h.mcpUrl, token, JSON.stringify([init])), 400, -32600, 'TESSERA_GATEWAY_BATCH_UNSUPPORTED');
  assertRefused(await rawMcp(h.mcpUrl, token, JSON.stringify([init, { jsonrpc: '2.0', id: 2, method: 'ping' }])), 400, -32600, 'TESSERA_GATEWAY_BATCH_UNSUPPORTED');
  const events = await refusedEvents(h, 'TESSERA_GATEWAY_BATCH_UNSUPPORTED');
  assert.equal(events.length, 12, 'each refused batch audited once');
  assert.equal(events.find((e) => e.details.batch_size === 100)?.actor.id, 'spiffe://example.org/ns/gw/sa/modern');
});

test('MCP 2025-03-26 batches: answered in full; every message counts against the rate', async (t) => {
  const { provider } = blockingProvider();
  // A bucket that refills too slowly to matter during the test: exactly `burst` messages pass.
  const h = await startGatewayHarness({ policies: POLICIES, providers: [provider], gateway: { rate_limit: { per_second: 0.001, burst: 12 } } });
  t.after(() => h.close());
  const token = await h.login('spiffe://example.org/ns/gw/sa/legacy', GW);
  const v = '2025-03-26';
  const sid = await openSession(h, token, v); // 2 messages (initialize, initialized)
  const r = await post(h, token, sid, v, [callMsg(1, 'now'), callMsg('two', 'now'), { jsonrpc: '2.0', id: 3, method: 'ping' }, { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 1 } }]);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(Array.isArray(r.body));
  assert.deepEqual(r.body.map((m: { id: unknown }) => m.id).sort(), [1, 3, 'two'].sort());
  // 6 of 12 taken; a batch of 7 needs more than is left: refused, nothing runs (the refused
  // HTTP request itself costs one, like any request).
  const refused = await post(h, token, sid, v, Array.from({ length: 7 }, (_, i) => callMsg(10 + i, 'now')));
  assert.equal(refused.status, 429, JSON.stringify(refused.body));
  assert.equal(refused.body.error.data.code, 'TESSERA_GATEWAY_RATE_LIMITED');
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  // Exactly the 5 left still pass.
  const rest = await post(h, token, sid, v, Array.from({ length: 5 }, (_, i) => callMsg(20 + i, 'now')));
  assert.equal(rest.status, 200, JSON.stringify(rest.body));
  assert.equal(rest.body.length, 5);
  const empty = await post(h, token, sid, v, callMsg(30, 'now'));
  assert.equal(empty.status, 429);
});

test('MCP 2025-03-26 batches: each request holds an in-flight place; the length is bounded; 100 calls in batches cannot pass the bounds', async (t) => {
  const { provider, waiting, calls } = blockingProvider();
  const h = await startGatewayHarness({ policies: POLICIES, providers: [provider], gateway: { max_batch_messages: 10, max_inflight_per_session: 12, max_inflight_per_agent: 16 } });
  t.after(() => h.close());
  const token = await h.login('spiffe://example.org/ns/gw/sa/batcher', GW);
  const v = '2025-03-26';
  const s1 = await openSession(h, token, v);
  const s2 = await openSession(h, token, v);

  // Longer than max_batch_messages: refused whole, nothing runs.
  assertRefused(await post(h, token, s1, v, Array.from({ length: 11 }, (_, i) => callMsg(i + 1, 'now'))), 400, -32600, 'TESSERA_GATEWAY_BATCH_TOO_LARGE');
  assert.equal(calls(), 0);

  // The attacker's load: 100 tools/call in 10 concurrent batches of 10 on one session. One batch
  // fits the session's 12 places; every other is refused before anything runs.
  const batches = Array.from({ length: 10 }, (_, b) => post(h, token, s1, v, Array.from({ length: 10 }, (_, i) => callMsg(1000 + b * 10 + i, 'wait'))));
  await until(() => waiting.length === 10, 'the admitted batch to reach the tool');
  // Two more single calls fit the session (12); a third does not.
  const singles = [post(h, token, s1, v, callMsg(1, 'wait')), post(h, token, s1, v, callMsg(2, 'wait'))];
  await until(() => waiting.length === 12, 'two more calls to reach the tool');
  const third = await post(h, token, s1, v, callMsg(3, 'now'));
  assert.equal(third.status, 429);
  assert.equal(third.body.error.data.code, 'TESSERA_GATEWAY_INFLIGHT_LIMIT');
  // The agent has 12 of 16: a batch of 5 on its other session is refused, a batch of 4 fits.
  const five = await post(h, token, s2, v, Array.from({ length: 5 }, (_, i) => callMsg(i + 1, 'wait')));
  assert.equal(five.status, 429);
  assert.match(five.body.error.message, /max_inflight_per_agent/);
  const four = post(h, token, s2, v, Array.from({ length: 4 }, (_, i) => callMsg(i + 1, 'wait')));
  await until(() => waiting.length === 16, 'the batch of four to reach the tool');
  assert.equal(calls(), 16, 'never more calls running than the bounds allow');

  for (const r of waiting.splice(0)) r();
  const answered = await Promise.all(batches);
  const ok = answered.filter((r) => r.status === 200);
  assert.equal(ok.length, 1, 'exactly one batch of ten was admitted');
  assert.equal(ok[0]!.body.length, 10);
  for (const r of answered.filter((x) => x.status !== 200)) {
    assert.equal(r.status, 429);
    assert.equal(r.body.error.data.code, 'TESSERA_GATEWAY_INFLIGHT_LIMIT');
  }
  for (const r of await Promise.all(singles)) assert.equal(r.status, 200);
  assert.equal((await four).body.length, 4);
  // Every place came back.
  const again = await post(h, token, s1, v, Array.from({ length: 10 }, (_, i) => callMsg(5000 + i, 'now')));
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(again.body.length, 10);
});

test('MCP 2025-03-26 batches: the results of one request are bounded together (gateway.max_response_bytes)', async (t) => {
  const { provider } = blockingProvider();
  const h = await startGatewayHarness({ policies: POLICIES, providers: [provider], gateway: { max_response_bytes: 4096 } });
  t.after(() => h.close());
  const token = await h.login('spiffe://example.org/ns/gw/sa/hoarder', GW);
  const v = '2025-03-26';
  const sid = await openSession(h, token, v);
  // Three results of ~1500 bytes: two fit in 4096, the third does not.
  const r = await post(h, token, sid, v, [callMsg(1, 'big', { bytes: 1500 }), callMsg(2, 'big', { bytes: 1500 }), callMsg(3, 'big', { bytes: 1500 })]);
  assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
  const delivered = r.body.filter((m: { result?: unknown }) => m.result);
  const refused = r.body.filter((m: { error?: unknown }) => m.error);
  assert.equal(delivered.length, 2);
  assert.equal(refused.length, 1);
  assert.equal(refused[0].error.code, -32600);
  assert.equal(refused[0].error.data.code, 'TESSERA_GATEWAY_RESPONSE_TOO_LARGE');
  assert.ok(JSON.stringify(r.body).length < 4096 + 1024);
  // The refused call is audited with its real outcome.
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
  const calls = rows.map((x) => JSON.parse(x.body)).filter((e: { kind: string; actor: { id: string } }) => e.kind === 'gateway.tool_call' && e.actor.id === 'spiffe://example.org/ns/gw/sa/hoarder');
  assert.equal(calls.length, 3);
  assert.equal(calls.filter((e: { reason?: { code?: string }; details: { outcome: string } }) => e.reason?.code === 'TESSERA_GATEWAY_RESPONSE_TOO_LARGE' && e.details.outcome === 'failed').length, 1);
  // A single request is bounded by the per-result limits, not this one.
  const single = await post(h, token, sid, v, callMsg(4, 'big', { bytes: 6000 }));
  assert.equal(single.status, 200);
  assert.equal(single.body.result.content[0].text.length, 6000);
  // tools/list in a batch counts too.
  const lists = await post(h, token, sid, v, [callMsg(5, 'big', { bytes: 4000 }), { jsonrpc: '2.0', id: 6, method: 'tools/list' }]);
  assert.equal(lists.body.filter((m: { error?: { data: { code: string } } }) => m.error?.data.code === 'TESSERA_GATEWAY_RESPONSE_TOO_LARGE').length, 1);
});

test('duplicate request ids never hang: refused inside a batch, across concurrent batches and single requests of one session', async (t) => {
  const { provider, waiting, calls } = blockingProvider();
  const h = await startGatewayHarness({ policies: POLICIES, providers: [provider], gateway: {} });
  t.after(() => h.close());
  const token = await h.login('spiffe://example.org/ns/gw/sa/dup', GW);
  const v = '2025-03-26';
  const sid = await openSession(h, token, v);
  // Inside one batch (number and string ids are different ids: 1 and "1" may coexist).
  assertRefused(await post(h, token, sid, v, [callMsg(1, 'now'), callMsg(1, 'now')]), 400, -32600, 'TESSERA_GATEWAY_DUPLICATE_ID');
  assertRefused(await post(h, token, sid, v, [callMsg('a', 'now'), { jsonrpc: '2.0', id: 'a', method: 'ping' }]), 400, -32600, 'TESSERA_GATEWAY_DUPLICATE_ID');
  assert.equal(calls(), 0);
  const mixed = await post(h, token, sid, v, [callMsg(1, 'now'), callMsg('1', 'now')]);
  assert.equal(mixed.status, 200);
  assert.equal(mixed.body.length, 2);

  // Across concurrent requests of one session: id 7 in flight, then id 7 again (batch or single).
  const first = post(h, token, sid, v, [callMsg(7, 'wait'), callMsg(8, 'now')]);
  await until(() => waiting.length === 1, 'the first batch to be in flight');
  assertRefused(await post(h, token, sid, v, [callMsg(9, 'now'), callMsg(7, 'now')]), 400, -32600, 'TESSERA_GATEWAY_DUPLICATE_ID');
  const single = await post(h, token, sid, v, callMsg(7, 'now'));
  assert.equal(single.status, 400);
  assert.equal(single.body.id, 7);
  assert.equal(single.body.error.data.code, 'TESSERA_GATEWAY_DUPLICATE_ID');
  // The same id on another session is another request.
  const other = await openSession(h, token, v);
  assert.equal((await post(h, token, other, v, callMsg(7, 'now'))).status, 200);
  waiting.splice(0)[0]!();
  const answered = await first;
  assert.equal(answered.status, 200);
  assert.deepEqual(answered.body.map((m: { id: number }) => m.id).sort(), [7, 8]);
  // Once answered, the id is free again.
  assert.equal((await post(h, token, sid, v, callMsg(7, 'now'))).status, 200);

  // The same in 2025-11-25 single requests (no batches there).
  const modern = await openSession(h, token, '2025-11-25');
  const held = post(h, token, modern, '2025-11-25', callMsg(42, 'wait'));
  await until(() => waiting.length === 1, 'the call to be in flight');
  const dup = await post(h, token, modern, '2025-11-25', callMsg(42, 'now'));
  assert.equal(dup.status, 400);
  assert.equal(dup.body.error.data.code, 'TESSERA_GATEWAY_DUPLICATE_ID');
  waiting.splice(0)[0]!();
  assert.equal((await held).body.result.content[0].text, 'wait');
  assert.equal((await refusedEvents(h, 'TESSERA_GATEWAY_DUPLICATE_ID')).length, 5);
});
