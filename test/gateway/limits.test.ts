/**
 * Per-agent bounds at the MCP gateway (issue 7 item 7), through real HTTP against the whole
 * server: one agent cannot take the sessions, in-flight capacity, upstream processes or request
 * rate the others need; each refusal is 429 (503 for the shared session cap) with Retry-After
 * and a stable TESSERA_ code in the JSON-RPC error data, audited once per window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayHarness, rawMcp, INIT, ENV_ECHO_SERVER, type GatewayHarness } from './harness.js';
import type { ToolProvider } from '../../src/gateway/index.js';

const GW = { team: 'gw' };
const POLICIES = `
@id("gw-all") permit (principal, action == Tessera::Action::"tool.call", resource)
when { principal.hasTag("team") && principal.getTag("team") == "gw" };
`;
const PROTOCOL = '2025-11-25';

/** Opens a session with raw HTTP; returns its id (or the refusal). */
async function initialize(h: GatewayHarness, token: string, headers: Record<string, string> = {}): Promise<{ status: number; sid?: string; body: any; headers: Headers }> {
  const r = await rawMcp(h.mcpUrl, token, INIT(), headers);
  const sid = r.headers.get('mcp-session-id') ?? undefined;
  if (r.status === 200 && sid) {
    const note = await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), { 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL });
    assert.equal(note.status, 202);
  }
  return { status: r.status, body: r.body, headers: r.headers, ...(sid ? { sid } : {}) };
}

function call(h: GatewayHarness, token: string, sid: string, name: string, id: number): ReturnType<typeof rawMcp> {
  return rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } }), { 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL });
}

async function closeSession(h: GatewayHarness, token: string, sid: string): Promise<number> {
  const r = await fetch(h.mcpUrl, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL } });
  await r.arrayBuffer();
  return r.status;
}

/** Asserts a limit refusal: status, code in the JSON-RPC data, Retry-After header = data.retry_after_s ≥ 1. */
function assertLimited(r: { status: number; headers: Headers; body: any }, status: number, code: string): number {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.jsonrpc, '2.0');
  assert.equal(r.body.error.data.code, code);
  const retry = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After: ${r.headers.get('retry-after')}`);
  assert.equal(r.body.error.data.retry_after_s, retry);
  return retry;
}

async function limitEvents(h: GatewayHarness, limit: string): Promise<{ event: { actor: { id: string }; details: { suppressed: number } } }[]> {
  await h.tessera.audit.flush();
  const r = await h.admin('GET', '/v1/admin/audit?kind=limit.exceeded&limit=500');
  assert.equal(r.status, 200);
  return (r.body.events as { event: { resource: string; actor: { id: string }; details: { suppressed: number } } }[]).filter((e) => e.event.resource === limit);
}

async function metric(h: GatewayHarness, line: RegExp): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const m = line.exec(text);
  return m ? Number(m[1]) : 0;
}

test('one agent filling its session quota does not stop other agents from initializing (the issue 7 scenario)', async (t) => {
  const h = await startGatewayHarness({ policies: POLICIES, gateway: { max_sessions: 9, max_sessions_per_agent: 2 } });
  t.after(() => h.close());
  // The greedy agent has no tool permission at all, as in the report.
  const greedy = await h.login('spiffe://example.org/ns/x/sa/greedy');
  const opened: string[] = [];
  let refused: Awaited<ReturnType<typeof initialize>> | undefined;
  for (let i = 0; i < 20 && !refused; i++) {
    const r = await initialize(h, greedy);
    if (r.status === 200) opened.push(r.sid!);
    else refused = r;
  }
  assert.equal(opened.length, 2, 'the greedy agent got exactly its quota');
  assertLimited(refused!, 429, 'TESSERA_GATEWAY_SESSION_LIMIT');
  for (let i = 0; i < 3; i++) assertLimited(await initialize(h, greedy), 429, 'TESSERA_GATEWAY_SESSION_LIMIT');

  // Another agent still initializes, with the official SDK client.
  const other = await h.login('spiffe://example.org/ns/gw/sa/other', GW);
  const client: Client = await h.connect(other);
  assert.ok(Array.isArray((await client.listTools()).tools));

  // Closing one of the greedy agent's sessions gives its place back.
  assert.equal(await closeSession(h, greedy, opened.pop()!), 200);
  const again = await initialize(h, greedy);
  assert.equal(again.status, 200, JSON.stringify(again.body));

  // Initializes the transport refuses (406: no text/event-stream in Accept) hold no place.
  const careful = await h.login('spiffe://example.org/ns/x/sa/careful');
  for (let i = 0; i < 4; i++) {
    const bad = await rawMcp(h.mcpUrl, careful, INIT(), { accept: 'application/json' });
    assert.equal(bad.status, 406);
  }
  assert.equal((await initialize(h, careful)).status, 200);
  assert.equal((await initialize(h, careful)).status, 200);

  // Concurrent initializes cannot overshoot the quota (a place is held from the first byte).
  const racer = await h.login('spiffe://example.org/ns/x/sa/racer');
  const burst = await Promise.all(Array.from({ length: 6 }, () => initialize(h, racer)));
  assert.equal(burst.filter((r) => r.status === 200).length, 2, 'exactly the quota, under concurrency');
  for (const r of burst.filter((x) => x.status !== 200)) assertLimited(r, 429, 'TESSERA_GATEWAY_SESSION_LIMIT');

  // 7 of 9 places taken (greedy 2, other 1, careful 2, racer 2). Every agent here logged in
  // through the one join_token attestor, whose identities together may hold max_sessions less a
  // tenth (8 of 9, ADR 0143): a fifth agent gets the last of those, then is refused by the
  // attestor's quota, not by the shared cap. (The shared cap, 503 TESSERA_GATEWAY_BUSY, is
  // reached with two attestors in test/gateway/attestor-quotas.test.ts.)
  const filler = await h.login('spiffe://example.org/ns/x/sa/filler');
  assert.equal((await initialize(h, filler)).status, 200);
  const attestorFull = await initialize(h, filler);
  assertLimited(attestorFull, 429, 'TESSERA_GATEWAY_SESSION_LIMIT');
  assert.match(attestorFull.body.error.message, /max_sessions_per_attestor/);

  // Audited once per agent and limit per window; every refusal counted in the metric.
  const events = await limitEvents(h, 'gateway.sessions_per_agent');
  assert.equal(events.filter((e) => e.event.actor.id === 'spiffe://example.org/ns/x/sa/greedy').length, 1);
  assert.ok((await metric(h, /tessera_limit_refusals_total\{limit="gateway\.sessions_per_agent"\} (\d+)/)) >= 4);
  assert.equal((await limitEvents(h, 'gateway.sessions_per_attestor')).length, 1);
});

test('in-flight calls are bounded per session and per agent; other agents are unaffected; places come back', async (t) => {
  const waiting: (() => void)[] = [];
  const slow: ToolProvider = {
    server: 'slow',
    async listTools() {
      return [{ name: 'wait', inputSchema: { type: 'object' } }, { name: 'now', inputSchema: { type: 'object' } }];
    },
    async callTool(tool) {
      if (tool === 'wait') await new Promise<void>((resolve) => waiting.push(resolve));
      return { content: [{ type: 'text', text: tool }] };
    },
    async close() {
      for (const r of waiting.splice(0)) r();
    },
  };
  const h = await startGatewayHarness({ policies: POLICIES, providers: [slow], gateway: { max_inflight_per_session: 2, max_inflight_per_agent: 3 } });
  t.after(() => h.close());
  const a = await h.login('spiffe://example.org/ns/gw/sa/busy', GW);
  const b = await h.login('spiffe://example.org/ns/gw/sa/calm', GW);
  const s1 = (await initialize(h, a)).sid!;
  const s2 = (await initialize(h, a)).sid!;
  const sb = (await initialize(h, b)).sid!;
  const untilWaiting = async (n: number): Promise<void> => {
    for (let i = 0; i < 500 && waiting.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(waiting.length, n, 'the blocked calls reached the tool');
  };

  const held = [call(h, a, s1, 'slow/wait', 1), call(h, a, s1, 'slow/wait', 2)];
  await untilWaiting(2);
  assertLimited(await call(h, a, s1, 'slow/now', 3), 429, 'TESSERA_GATEWAY_INFLIGHT_LIMIT');
  // The same agent's other session still has room, up to the agent's bound.
  held.push(call(h, a, s2, 'slow/wait', 4));
  await untilWaiting(3);
  const perAgent = await call(h, a, s2, 'slow/now', 5);
  assertLimited(perAgent, 429, 'TESSERA_GATEWAY_INFLIGHT_LIMIT');
  assert.match(perAgent.body.error.message, /max_inflight_per_agent/);
  // Another agent is not affected.
  const other = await call(h, b, sb, 'slow/now', 6);
  assert.equal(other.status, 200, JSON.stringify(other.body));
  assert.equal(other.body.result.content[0].text, 'now');

  for (const r of waiting.splice(0)) r();
  for (const r of await Promise.all(held)) assert.equal(r.status, 200, JSON.stringify(r.body));
  // Places are given back when the answers are sent.
  for (const sid of [s1, s2]) assert.equal((await call(h, a, sid, 'slow/now', 7)).status, 200);
  assert.equal((await limitEvents(h, 'gateway.inflight_per_session')).length, 1);
  assert.equal((await limitEvents(h, 'gateway.inflight_per_agent')).length, 1);
});

test('upstream processes are bounded per agent (per_session isolation): another agent still gets one', async (t) => {
  const h = await startGatewayHarness({
    policies: POLICIES,
    gateway: { max_upstream_processes: 4, max_upstream_processes_per_agent: 2, servers: [{ name: 'sess', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], isolation: 'per_session' }] },
  });
  t.after(() => h.close());
  const a = await h.login('spiffe://example.org/ns/gw/sa/spawner', GW);
  const b = await h.login('spiffe://example.org/ns/gw/sa/modest', GW);
  const echo = (c: Client) => c.callTool({ name: 'sess/echo', arguments: { text: 'hi' } });
  const a1 = await h.connect(a);
  const a2 = await h.connect(a);
  const a3 = await h.connect(a);
  await echo(a1);
  await echo(a2);
  let refusal: McpError | undefined;
  try {
    await echo(a3);
  } catch (e) {
    refusal = e as McpError;
  }
  assert.ok(refusal instanceof McpError, 'the third process for one agent is refused');
  const data = refusal.data as { code: string; details: { retry_after_s: number; limit: string } };
  assert.equal(data.code, 'TESSERA_GATEWAY_UPSTREAM_LIMIT');
  assert.equal(data.details.limit, 'gateway.upstream_processes_per_agent');
  assert.ok(data.details.retry_after_s >= 1);
  // Another agent starts its own process: the global cap (4) was not exhausted by the first.
  const r = await echo(await h.connect(b));
  assert.equal((r.content as { text: string }[])[0]!.text, 'hi');
  // Closing a session stops its process and gives the agent's place back.
  await (a1.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();
  let ok = false;
  for (let i = 0; i < 200 && !ok; i++) {
    ok = await echo(a3).then(() => true, () => false);
    if (!ok) await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(ok, 'a process place came back after its session closed');
  assert.equal((await limitEvents(h, 'gateway.upstream_processes_per_agent')).length, 1);
});

test('requests per second are bounded per agent; another agent is not slowed', async (t) => {
  // A rate so low that no token comes back during the test: the burst is the whole allowance.
  const h = await startGatewayHarness({ policies: POLICIES, gateway: { rate_limit: { per_second: 0.01, burst: 4 } } });
  t.after(() => h.close());
  const a = await h.login('spiffe://example.org/ns/gw/sa/chatty', GW);
  const b = await h.login('spiffe://example.org/ns/gw/sa/quiet', GW);
  const sid = (await initialize(h, a)).sid!; // initialize + notifications/initialized: 2 requests
  const list = (token: string, s: string) => rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }), { 'mcp-session-id': s, 'mcp-protocol-version': PROTOCOL });
  assert.equal((await list(a, sid)).status, 200);
  assert.equal((await list(a, sid)).status, 200);
  const refused = await list(a, sid);
  const retry = assertLimited(refused, 429, 'TESSERA_GATEWAY_RATE_LIMITED');
  assert.ok(retry >= 90 && retry <= 100, `one token takes 100 s at 0.01/s, Retry-After ${retry}`);
  assertLimited(await initialize(h, a), 429, 'TESSERA_GATEWAY_RATE_LIMITED');
  const sb = (await initialize(h, b)).sid!;
  assert.equal((await list(b, sb)).status, 200);
  const events = await limitEvents(h, 'gateway.requests_per_agent');
  assert.deepEqual(events.map((e) => e.event.actor.id), ['spiffe://example.org/ns/gw/sa/chatty']);
  assert.ok((await metric(h, /tessera_limit_refusals_total\{limit="gateway\.requests_per_agent"\} (\d+)/)) >= 2);
});
