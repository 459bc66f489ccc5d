/**
 * Issue 9 fixes (ADR 0177) on resource subscriptions and logging/setLevel, through real HTTP, the
 * official SDK client, real stdio upstreams and a real policy reload (watched directory):
 *  - a connection holding a subscription is not stopped for idleness, and updates still arrive;
 *  - a connection that stops otherwise (its process exits) ends its subscriptions: the client is
 *    told (TESSERA_GATEWAY_SUBSCRIPTION_ENDED in a warning log message), audited once;
 *  - resources/updated is re-authorized at delivery: after a policy reload that forbids the
 *    resource nothing more is delivered, the subscription is ended (told, audited once);
 *  - logging/setLevel starts no upstream, is audited once, reaches connected upstreams only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { FIXTURES, startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';

const AGENT = 'spiffe://example.org/ns/atk/sa/low';
const BASE = `
@id("tools") permit (principal, action == Tessera::Action::"tool.call", resource);
@id("res") permit (principal, action == Tessera::Action::"resource.read", resource);
`;
const NO_DOC1 = `${BASE}
@id("no-doc-1") forbid (principal, action == Tessera::Action::"resource.read", resource)
when { context.uri == "relay://doc/1" };
`;

const POLICY_DIR = mkdtempSync(join(tmpdir(), 'atk9-sub-'));
let h: GatewayHarness;
let token: string;

function writePolicy(text: string): void {
  writeFileSync(join(POLICY_DIR, 'gw.cedar.next'), text);
  renameSync(join(POLICY_DIR, 'gw.cedar.next'), join(POLICY_DIR, 'gw.cedar'));
}

before(async () => {
  writePolicy(BASE);
  h = await startGatewayHarness({
    policies: BASE,
    config: { policy: { dir: POLICY_DIR, watch: true } },
    gateway: {
      idle_timeout: '1s',
      servers: [
        { name: 'relay', transport: 'stdio', command: process.execPath, args: [join(FIXTURES, 'relay-server.mjs')] },
        { name: 'other', transport: 'stdio', command: process.execPath, args: [join(FIXTURES, 'relay-server.mjs')] },
      ],
    },
  });
  token = await h.login(AGENT);
});

after(async () => {
  await h?.close();
});

interface Conn { client: Client; transport: StreamableHTTPClientTransport; logs: { level: string; logger?: string; data: any }[]; updated: string[] }

async function connect(): Promise<Conn> {
  const client = new Client({ name: 'atk', version: '1' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(h.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const c: Conn = { client, transport, logs: [], updated: [] };
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void c.logs.push(n.params as Conn['logs'][number]));
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void c.updated.push(n.params.uri));
  await client.connect(transport);
  return c;
}

/** Ends the MCP session (HTTP DELETE): its subscriptions end with it. */
async function close(c: Conn): Promise<void> {
  await c.transport.terminateSession();
  await c.client.close();
}

async function until(cond: () => boolean | Promise<boolean>, tries = 400): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

async function events(kind: string): Promise<any[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events WHERE kind = ? ORDER BY seq', [kind]);
  return rows.map((r) => JSON.parse(r.body));
}

const stops = async (server: string, cause: string): Promise<number> => (await events('gateway.upstream_stopped')).filter((e) => e.details.server === server && e.details.cause === cause).length;
const ended = (c: Conn): Conn['logs'] => c.logs.filter((l) => l.logger === 'tessera' && l.data?.code === 'TESSERA_GATEWAY_SUBSCRIPTION_ENDED');

test('logging/setLevel starts no upstream, is audited once, and reaches only connected upstreams', async () => {
  const c = await connect();
  const started = (await events('gateway.upstream_started')).length;
  const before = (await events('gateway.logging_level')).length;
  await c.client.setLoggingLevel('debug');
  const after1 = await events('gateway.logging_level');
  assert.equal(after1.length, before + 1);
  assert.deepEqual(after1.at(-1).details.forwarded, []);
  assert.equal(after1.at(-1).details.level, 'debug');
  assert.equal((await events('gateway.upstream_started')).length, started, 'setLevel started an upstream');
  // Once connected (by a call), the upstream gets the level forwarded.
  await c.client.callTool({ name: 'relay__change', arguments: {} });
  await c.client.setLoggingLevel('warning');
  assert.deepEqual((await events('gateway.logging_level')).at(-1).details.forwarded, ['relay']);
  await close(c);
});

test('a connection holding a subscription is not stopped for idleness; updates still arrive', async () => {
  const c = await connect();
  const DOC = 'tessera://relay/relay://doc/1';
  await c.client.subscribeResource({ uri: DOC });
  const relayIdle = await stops('relay', 'idle');
  const otherIdle = await stops('other', 'idle');
  // Used after the subscription: its idle timer fires after relay's would have.
  await c.client.callTool({ name: 'other__change', arguments: {} });
  assert.ok(await until(async () => (await stops('other', 'idle')) > otherIdle), 'the other connection stops for idleness');
  assert.equal(await stops('relay', 'idle'), relayIdle, 'the subscribed connection was stopped for idleness');
  await c.client.callTool({ name: 'relay__touch', arguments: { uri: 'relay://doc/1' } });
  assert.ok(await until(() => c.updated.length >= 1), `no update: ${JSON.stringify(c.updated)}`);
  assert.deepEqual(c.updated, [DOC]);
  await close(c);
});

test('an upstream that exits ends its subscriptions: the client is told, audited once', async () => {
  const c = await connect();
  const DOC = 'tessera://relay/relay://doc/2';
  await c.client.subscribeResource({ uri: DOC });
  const before = (await events('gateway.subscription_ended')).length;
  const pids = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'relay-server.mjs'], { encoding: 'utf8' }).trim().split('\n').map(Number);
  // Kill exactly the upstream processes this test process started (the relay connection's among them).
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  assert.ok(await until(() => ended(c).length >= 1), `not told: ${JSON.stringify(c.logs)}`);
  assert.equal(ended(c)[0]!.level, 'warning');
  assert.equal(ended(c)[0]!.data.uri, DOC);
  const ev = (await events('gateway.subscription_ended')).slice(before);
  assert.equal(ev.length, 1);
  assert.equal(ev[0].details.reason, 'stopped');
  assert.equal(ev[0].details.cause, 'exited');
  assert.equal(ev[0].reason.code, 'TESSERA_GATEWAY_SUBSCRIPTION_ENDED');
  await close(c);
});

test('resources/updated is re-authorized at delivery: after a policy reload that forbids it, the subscription ends (told, audited once)', async () => {
  const c = await connect();
  const DOC = 'tessera://relay/relay://doc/1';
  await c.client.subscribeResource({ uri: DOC });
  await c.client.callTool({ name: 'relay__touch', arguments: { uri: 'relay://doc/1' } });
  assert.ok(await until(() => c.updated.length === 1), 'delivered while permitted');
  const before = (await events('gateway.subscription_ended')).length;
  writePolicy(NO_DOC1);
  assert.ok(await until(() => h.tessera.policy?.ids.includes('no-doc-1') === true), 'the policy reloaded');
  await c.client.callTool({ name: 'relay__touch', arguments: { uri: 'relay://doc/1' } });
  assert.ok(await until(() => ended(c).length >= 1), `not told: ${JSON.stringify(c.logs)}`);
  await c.client.callTool({ name: 'relay__touch', arguments: { uri: 'relay://doc/1' } });
  assert.deepEqual(c.updated, [DOC], 'an update was delivered after the policy forbade the resource');
  const ev = (await events('gateway.subscription_ended')).slice(before);
  assert.equal(ev.length, 1, 'audited once');
  assert.equal(ev[0].details.reason, 'denied');
  assert.equal(ev[0].result, 'deny');
  // Subscribing again is refused by the new policy.
  await assert.rejects(c.client.subscribeResource({ uri: DOC }), (e: { data?: { code?: string } }) => e.data?.code === 'TESSERA_GATEWAY_RESOURCE_DENIED');
  writePolicy(BASE);
  assert.ok(await until(() => h.tessera.policy?.ids.includes('no-doc-1') === false), 'the policy reloaded back');
  await close(c);
});
