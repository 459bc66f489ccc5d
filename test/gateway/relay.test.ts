/**
 * The gateway relay (issue 9 items 3–5): progress, cancellation, log messages, list changes,
 * sampling and elicitation, end to end — the official SDK client over real HTTP through the full
 * Tessera server, to real upstreams over stdio (relay-server.mjs, server-everything) and
 * Streamable HTTP (relay-http.ts). Every wait is bounded polling on an event, never a sleep.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type ClientCapabilities,
} from '@modelcontextprotocol/sdk/types.js';
import { FIXTURES, startGatewayHarness, rawMcp, INIT, type GatewayHarness } from './harness.js';
import { startRelayHttpUpstream } from './fixtures/relay-http.js';

const SECRET = 'relay-Injected-Secret-7Qw2Zp91Lx';
const ASKER = 'spiffe://example.org/ns/relay/sa/asker';
const PLAIN = 'spiffe://example.org/ns/relay/sa/plain';
const RELAY_SERVER = join(FIXTURES, 'relay-server.mjs');

const POLICIES = `
@id("relay-tools")
permit (principal, action == Tessera::Action::"tool.call", resource)
when { principal.hasTag("team") && principal.getTag("team") == "relay" };

@id("relay-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"relay")
when { principal.hasTag("team") };

@id("asker-samples")
permit (principal, action == Tessera::Action::"upstream.sample", resource)
when { principal.hasTag("asks") };

@id("asker-elicits")
permit (principal, action == Tessera::Action::"upstream.elicit", resource == Tessera::Server::"relay")
when { principal.hasTag("asks") };

@id("relay-resources")
permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"relay")
when { principal.hasTag("team") };

@id("never-everything-elicits")
forbid (principal, action == Tessera::Action::"upstream.elicit", resource == Tessera::Server::"everything");
`;

let h: GatewayHarness;
let httpUpstream: Awaited<ReturnType<typeof startRelayHttpUpstream>>;
let asker: string;
let plain: string;
const clients: Client[] = [];

before(async () => {
  httpUpstream = await startRelayHttpUpstream(SECRET);
  h = await startGatewayHarness({
    policies: POLICIES,
    secrets: { 'relay/key': SECRET },
    gateway: {
      notification_rate: { per_second: 20, burst: 60 },
      servers: [
        { name: 'relay', transport: 'stdio', command: process.execPath, args: [RELAY_SERVER], env: { RELAY_SECRET: { secret: 'relay/key' } } },
        { name: 'relayhttp', transport: 'streamable_http', url: httpUpstream.url, headers: { 'X-Api-Key': { secret: 'relay/key' } } },
        { name: 'everything', transport: 'stdio', command: process.execPath, args: ['node_modules/@modelcontextprotocol/server-everything/dist/index.js', 'stdio'] },
      ],
    },
  });
  asker = await h.login(ASKER, { team: 'relay', asks: 'yes' });
  plain = await h.login(PLAIN, { team: 'relay' });
});

after(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await h?.close();
  await httpUpstream?.close();
});

interface Seen {
  readonly logs: unknown[];
  readonly listChanged: number[];
  readonly asked: unknown[];
  readonly updated: string[];
}

/** The official SDK client with the given capabilities; sampling/elicitation answered by the test. */
async function connect(token: string, capabilities: ClientCapabilities = {}): Promise<{ client: Client; seen: Seen }> {
  const client = new Client({ name: 'relay-test', version: '1.0.0' }, { capabilities });
  const seen: Seen = { logs: [], listChanged: [], asked: [], updated: [] };
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void seen.updated.push(n.params.uri));
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void seen.logs.push(n.params));
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => void seen.listChanged.push(1));
  if (capabilities.sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      seen.asked.push(req.params);
      return { role: 'assistant', content: { type: 'text', text: 'the model says hi' }, model: 'test-model' };
    });
  }
  if (capabilities.elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      seen.asked.push(req.params);
      return { action: 'accept', content: { name: 'Ada' } };
    });
  }
  await client.connect(new StreamableHTTPClientTransport(new URL(h.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  clients.push(client);
  return { client, seen };
}

/** Polls `cond` (every 20 ms, at most `tries` times) until it holds. */
async function until(cond: () => boolean | Promise<boolean>, what: string, tries = 500): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const textOf = (r: unknown): string => ((r as { content: { text: string }[] }).content[0]?.text ?? '');

async function auditEvents(kind: string): Promise<Record<string, any>[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events WHERE kind = ?', [kind]);
  return rows.map((r) => JSON.parse(r.body) as Record<string, any>);
}

test('progress of server-everything\'s long-running operation reaches the client under its own token', async () => {
  const { client } = await connect(asker);
  const progress: { progress: number; total?: number }[] = [];
  const r = await client.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 0.03, steps: 3 } }, CallToolResultSchema, { onprogress: (p) => void progress.push(p) });
  assert.match(textOf(r), /Long running operation completed/);
  assert.deepEqual(progress.map((p) => [p.progress, p.total]), [[1, 3], [2, 3], [3, 3]]);
});

for (const server of ['relay', 'relayhttp']) {
  test(`${server}: progress messages are scrubbed of the injected secret`, async () => {
    const { client } = await connect(asker);
    const progress: { message?: string }[] = [];
    const r = await client.callTool({ name: `${server}__progress`, arguments: { label: 'scrub', steps: 2, secret_in_message: true } }, CallToolResultSchema, { onprogress: (p) => void progress.push(p) });
    assert.equal(textOf(r), 'scrub done');
    assert.equal(progress.length, 2);
    for (const p of progress) {
      assert.match(p.message ?? '', /^scrub step \d key=/);
      assert.ok(!(p.message ?? '').includes(SECRET), 'the injected secret never reaches the client');
    }
  });

  test(`${server}: two sessions of one agent and another agent use the same progress token: each gets only its own`, async () => {
    // The SDK client's tokens are its request ids: the same numbers in every session. Calls of
    // one agent share one upstream connection; the gate keeps all three in flight together.
    const a1 = await connect(asker);
    const a2 = await connect(asker);
    const b = await connect(plain);
    const got = new Map<string, string[]>([['a1', []], ['a2', []], ['b', []]]);
    const call = (c: Client, label: string, gate: number) => c.callTool({ name: `${server}__progress`, arguments: { label, steps: 3, gate } }, CallToolResultSchema, { onprogress: (p) => void got.get(label)!.push(p.message ?? '') });
    const gate = server === 'relay' ? 2 : 1; // stdio: one process for the agent's two sessions
    await Promise.all([call(a1.client, 'a1', gate), call(a2.client, 'a2', gate), call(b.client, 'b', 1)]);
    for (const [label, messages] of got) {
      assert.equal(messages.length, 3, `${label}: ${JSON.stringify(messages)}`);
      for (const m of messages) assert.ok(m.startsWith(`${label} step`), `${label} received ${m}`);
    }
  });
}

test('progress under a token the gateway never issued is dropped, counted and audited once', async () => {
  const { client } = await connect(asker);
  const progress: unknown[] = [];
  const r = await client.callTool({ name: 'relay__forge_progress', arguments: {} }, CallToolResultSchema, { onprogress: (p) => void progress.push(p) });
  assert.equal(textOf(r), 'forged');
  assert.deepEqual(progress, []);
  await until(async () => (await auditEvents('gateway.notifications_dropped')).some((e) => e.details.method === 'notifications/progress' && e.details.reason === 'unattributed'), 'the audited drop');
  const metrics = await (await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${h.tessera.adminToken}` } })).text();
  assert.match(metrics, /tessera_gateway_relay_dropped_total\{[^}]*method="notifications\/progress"[^}]*\} [1-9]/);
});

test('a notifications/progress a client forges with another session\'s token reaches nobody', async () => {
  const victim = await connect(asker);
  const got: unknown[] = [];
  const pending = victim.client.callTool({ name: 'relay__wait', arguments: {} }, CallToolResultSchema, { onprogress: (p) => void got.push(p) });
  await until(async () => (JSON.parse(textOf(await victim.client.callTool({ name: 'relay__stats', arguments: {} }))) as { waiting: number }).waiting >= 1, 'the call in flight');
  const init = await rawMcp(h.mcpUrl, plain, INIT());
  const sid = init.headers.get('mcp-session-id')!;
  for (const token of [0, 1, 2, 3, 'progress-1']) {
    const r = await rawMcp(h.mcpUrl, plain, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token, progress: 99 } }), { 'mcp-session-id': sid });
    assert.equal(r.status, 202);
  }
  await victim.client.callTool({ name: 'relay__release', arguments: {} });
  assert.equal(textOf(await pending), 'released');
  assert.deepEqual(got, [], 'the victim saw no forged progress');
});

test('notifications/cancelled cancels the upstream call (the upstream sees the abort), audited as cancelled', async () => {
  const { client } = await connect(asker);
  const before = JSON.parse(textOf(await client.callTool({ name: 'relay__stats', arguments: {} }))) as { cancelled: number };
  const ac = new AbortController();
  const pending = client.callTool({ name: 'relay__wait', arguments: {} }, CallToolResultSchema, { signal: ac.signal });
  // Cancelled once the upstream holds the call (a cancellation that overtook its request would find nothing).
  const stats = async (): Promise<{ cancelled: number; waiting: number }> => JSON.parse(textOf(await client.callTool({ name: 'relay__stats', arguments: {} })));
  await until(async () => (await stats()).waiting === 1, 'the call to be in flight upstream');
  ac.abort('the user changed their mind');
  await assert.rejects(pending);
  await until(async () => (await stats()).cancelled === before.cancelled + 1, 'the upstream to see the cancellation');
  await until(async () => (await auditEvents('gateway.tool_call')).some((e) => e.details.tool === 'wait' && e.details.outcome === 'cancelled' && e.reason?.code === 'TESSERA_GATEWAY_REQUEST_CANCELLED'), 'the audited cancellation');
});

test('cancelling an unknown request, or another session\'s request id, changes nothing', async () => {
  const owner = await connect(asker);
  const pending = owner.client.callTool({ name: 'relay__wait', arguments: {} });
  await until(async () => (JSON.parse(textOf(await owner.client.callTool({ name: 'relay__stats', arguments: {} }))) as { waiting: number }).waiting >= 1, 'the call in flight');
  const init = await rawMcp(h.mcpUrl, asker, INIT());
  const sid = init.headers.get('mcp-session-id')!;
  // The owner's request ids are small integers (the SDK counts from 0): cancel every one of them from another session.
  for (const requestId of [0, 1, 2, 3, 4, 5, 'nope', 999]) {
    const r = await rawMcp(h.mcpUrl, asker, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'forged' } }), { 'mcp-session-id': sid });
    assert.equal(r.status, 202);
  }
  const list = await rawMcp(h.mcpUrl, asker, JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }), { 'mcp-session-id': sid });
  assert.equal(list.status, 200, 'the session still works');
  await owner.client.callTool({ name: 'relay__release', arguments: {} });
  assert.equal(textOf(await pending), 'released', 'the owner\'s call was not cancelled');
});

for (const server of ['relay', 'relayhttp']) {
  test(`${server}: logging/setLevel filters per session; log messages are scrubbed and reach only the caller's session`, async () => {
    const me = await connect(asker);
    const other = await connect(plain);
    await me.client.setLoggingLevel('info');
    await me.client.callTool({ name: `${server}__log`, arguments: { level: 'debug', text: 'too verbose' } });
    await me.client.callTool({ name: `${server}__log`, arguments: { level: 'warning', text: 'hello', leak: true } });
    await until(() => me.seen.logs.length >= 1, 'the log message');
    const texts = JSON.stringify(me.seen.logs);
    assert.ok(texts.includes('hello'));
    assert.ok(!texts.includes('too verbose'), 'below the session\'s level');
    assert.ok(!texts.includes(SECRET), 'the injected secret is scrubbed');
    // The other agent runs a call of its own (on its own connection) and sees none of it.
    await other.client.callTool({ name: `${server}__log`, arguments: { level: 'info', text: 'mine' } });
    await until(() => other.seen.logs.length >= 1, 'the other agent\'s own log');
    assert.ok(!JSON.stringify(other.seen.logs).includes('hello'));
    assert.ok(!JSON.stringify(me.seen.logs).includes('mine'));
    const hits = await auditEvents('gateway.exfiltration_suspected');
    assert.ok(hits.some((e) => e.details.tool === 'notifications/message' && e.resource === server), 'the scrubbed secret is audited');
  });
}

test('an upstream that floods log messages: the session gets a bounded number, the drop is audited once', async () => {
  const { client, seen } = await connect(asker);
  const r = await client.callTool({ name: 'relay__flood', arguments: { count: 3000 } });
  assert.equal(textOf(r), 'flooded');
  await until(async () => (await auditEvents('gateway.notifications_dropped')).some((e) => e.details.reason === 'rate'), 'the audited drop');
  // A round trip after the flood, then count: far fewer than sent (burst 60, 20 per second).
  await client.callTool({ name: 'relay__stats', arguments: {} });
  assert.ok(seen.logs.length < 3000, `${seen.logs.length} delivered`);
  const drops = (await auditEvents('gateway.notifications_dropped')).filter((e) => e.details.reason === 'rate');
  const sessions = new Set(drops.map((e) => e.details.session_hmac));
  assert.equal(drops.length, sessions.size, 'one event per session and reason');
  assert.equal(drops[0]!.reason.code, 'TESSERA_GATEWAY_NOTIFICATIONS_DROPPED');
});

test('sampling: a permitted upstream asks the client\'s model; the prompt is scrubbed, the answer returns, audited', async () => {
  const { client, seen } = await connect(asker, { sampling: {} });
  const r = await client.callTool({ name: 'relay__ask', arguments: {} });
  assert.match(textOf(r), /the model says hi/);
  assert.equal(seen.asked.length, 1);
  assert.ok(!JSON.stringify(seen.asked).includes(SECRET), 'the upstream\'s request is scrubbed');
  assert.match(JSON.stringify(seen.asked), /summarise; the key is/);
  const events = await auditEvents('gateway.server_request');
  assert.ok(events.some((e) => e.action === 'upstream.sample' && e.result === 'allow' && e.details.outcome === 'answered' && e.details.scrub_hits >= 1 && e.reason.policies.includes('asker-samples')));
});

test('sampling refused: policy does not permit it (TESSERA_GATEWAY_SERVER_REQUEST_DENIED), the client is never asked', async () => {
  const { client, seen } = await connect(plain, { sampling: {} });
  const r = await client.callTool({ name: 'relay__ask', arguments: {} });
  const body = JSON.parse(textOf(r)) as { refused: boolean; data: { code: string } };
  assert.equal(body.refused, true);
  assert.equal(body.data.code, 'TESSERA_GATEWAY_SERVER_REQUEST_DENIED');
  assert.equal(seen.asked.length, 0);
  const events = await auditEvents('gateway.server_request');
  assert.ok(events.some((e) => e.actor.id === PLAIN && e.result === 'deny' && e.reason.code === 'TESSERA_GATEWAY_SERVER_REQUEST_DENIED'));
});

test('sampling refused: the client did not declare the capability (TESSERA_GATEWAY_CLIENT_CAPABILITY_MISSING)', async () => {
  const { client } = await connect(asker);
  const body = JSON.parse(textOf(await client.callTool({ name: 'relay__ask', arguments: {} }))) as { data: { code: string } };
  assert.equal(body.data.code, 'TESSERA_GATEWAY_CLIENT_CAPABILITY_MISSING');
});

test('elicitation: form relayed when permitted; url mode needs the client\'s url capability; a forbidden server is refused', async () => {
  const { client, seen } = await connect(asker, { elicitation: { form: {} } });
  const ok = JSON.parse(textOf(await client.callTool({ name: 'relay__elicit', arguments: { mode: 'form' } }))) as { answered: { action: string; content: { name: string } } };
  assert.deepEqual(ok.answered, { action: 'accept', content: { name: 'Ada' } });
  assert.ok(!JSON.stringify(seen.asked).includes(SECRET));
  const url = JSON.parse(textOf(await client.callTool({ name: 'relay__elicit', arguments: { mode: 'url' } }))) as { data: { code: string } };
  assert.equal(url.data.code, 'TESSERA_GATEWAY_CLIENT_CAPABILITY_MISSING');
  // relayhttp has no upstream.elicit permit for anybody.
  const denied = JSON.parse(textOf(await client.callTool({ name: 'relayhttp__elicit', arguments: { mode: 'form' } }))) as { data: { code: string } };
  assert.equal(denied.data.code, 'TESSERA_GATEWAY_SERVER_REQUEST_DENIED');
  assert.equal(seen.asked.length, 1);
});

test('server-everything\'s sampling tool is relayed to a permitted client', async () => {
  const { client, seen } = await connect(asker, { sampling: {} });
  const { tools } = await client.listTools();
  assert.ok(tools.some((t) => t.name === 'everything__trigger-sampling-request'), 'the gateway declares sampling upstream, so the tool is offered');
  const r = await client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'hello', maxTokens: 5 } });
  assert.match(textOf(r), /the model says hi/);
  assert.equal(seen.asked.length, 1);
});

test('a request that cannot be attributed to one session is refused (TESSERA_GATEWAY_SERVER_REQUEST_UNATTRIBUTED)', async () => {
  // Two sessions of one agent share its stdio connection; both calls are in flight together.
  const s1 = await connect(asker, { sampling: {} });
  const s2 = await connect(asker, { sampling: {} });
  const [r1, r2] = await Promise.all([s1.client.callTool({ name: 'relay__ask', arguments: { gate: 2 } }), s2.client.callTool({ name: 'relay__ask', arguments: { gate: 2 } })]);
  for (const r of [r1, r2]) {
    const body = JSON.parse(textOf(r)) as { data: { code: string } };
    assert.equal(body.data.code, 'TESSERA_GATEWAY_SERVER_REQUEST_UNATTRIBUTED');
  }
  assert.equal(s1.seen.asked.length + s2.seen.asked.length, 0, 'nobody was asked by guess');
});

test('tools/list_changed reaches the sessions using that upstream connection, not another agent\'s', async () => {
  const me = await connect(asker);
  const other = await connect(plain);
  await other.client.callTool({ name: 'relayhttp__log', arguments: { text: 'x' } }); // uses another upstream only
  await me.client.callTool({ name: 'relay__change', arguments: {} });
  await until(() => me.seen.listChanged.length >= 1, 'list_changed');
  await other.client.callTool({ name: 'relayhttp__log', arguments: { text: 'y' } });
  assert.equal(other.seen.listChanged.length, 0);
});

test('resources/updated reaches only the sessions that subscribed that URI through the gateway on that connection', async () => {
  const DOC = 'tessera://relay/relay://doc/1';
  const a = await connect(asker);
  const a2 = await connect(asker); // same agent, same upstream process, no subscription
  const b = await connect(plain); // another agent (its own process) subscribing the same URI
  await a.client.subscribeResource({ uri: DOC });
  await b.client.subscribeResource({ uri: DOC });
  await a2.client.callTool({ name: 'relay__stats', arguments: {} });
  await a.client.callTool({ name: 'relay__touch', arguments: { uri: 'relay://doc/1' } });
  await until(() => a.seen.updated.length >= 1, 'the subscriber\'s update');
  await b.client.callTool({ name: 'relay__touch', arguments: { uri: 'relay://doc/1' } });
  await until(() => b.seen.updated.length >= 1, 'the other agent\'s own update');
  // Round trips on every session after both announcements, then count.
  for (const s of [a, a2, b]) await s.client.callTool({ name: 'relay__stats', arguments: {} });
  assert.deepEqual(a.seen.updated, [DOC], 'the subscriber got its update once, under the gateway URI');
  assert.deepEqual(b.seen.updated, [DOC], 'the other agent got only the update of its own connection');
  assert.deepEqual(a2.seen.updated, [], 'a session that did not subscribe gets nothing');
  // An update for a URI nobody subscribed on that connection is dropped and audited.
  await a.client.callTool({ name: 'relay__touch', arguments: { uri: 'relay://doc/2' } });
  await until(async () => (await auditEvents('gateway.notifications_dropped')).some((e) => e.details.method === 'notifications/resources/updated'), 'the audited drop');
  // Unsubscribed: the upstream is told once the last session of that connection leaves.
  await a.client.unsubscribeResource({ uri: DOC });
  const stats = JSON.parse(textOf(await a.client.callTool({ name: 'relay__stats', arguments: {} }))) as { subscribed: string[] };
  assert.deepEqual(stats.subscribed, []);
  const events = await auditEvents('gateway.resource_subscribe');
  assert.ok(events.some((e) => e.action === 'resource.subscribe' && e.result === 'allow'));
  assert.ok(events.some((e) => e.action === 'resource.unsubscribe' && e.result === 'allow'));
});

test('resources/subscribe of a URI the caller may not read, or of another server\'s prefix, is refused with a stable code', async () => {
  const { client } = await connect(asker);
  for (const [uri, code] of [['tessera://relayhttp/relay://doc/1', 'TESSERA_GATEWAY_RESOURCE_DENIED'], ['tessera://relay/tessera://relayhttp/relay://doc/1', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID'], ['tessera://relay/relay://doc/../1', 'TESSERA_GATEWAY_RESOURCE_URI_INVALID']] as const) {
    try {
      await client.subscribeResource({ uri });
      assert.fail(`${uri} was accepted`);
    } catch (e) {
      assert.equal((e as { data?: { code?: string } }).data?.code, code, uri);
    }
  }
});
