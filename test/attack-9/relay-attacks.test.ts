/**
 * Attacks (issue 9) on the relay: a malicious upstream sending unsolicited / unknown messages and
 * hiding the injected secret in log messages. (A subscription's fate when the upstream connection
 * stops — the finding once held here as a `todo` — is tested in subscription-fixes.test.ts.) Real HTTP, the official SDK client, real stdio upstreams.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { FIXTURES, startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SECRET = 'evil-Injected-Secret-9Zq4Lm27Kd';
const AGENT = 'spiffe://example.org/ns/atk/sa/low';

const POLICIES = `
@id("tools") permit (principal, action == Tessera::Action::"tool.call", resource);
@id("inject") permit (principal, action == Tessera::Action::"secret.inject", resource);
@id("res") permit (principal, action == Tessera::Action::"resource.read", resource);
`;

let h: GatewayHarness;
let token: string;
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown): void => void unhandled.push(e);

before(async () => {
  process.on('unhandledRejection', onUnhandled);
  h = await startGatewayHarness({
    policies: POLICIES,
    secrets: { 'atk/key': SECRET },
    gateway: {
      idle_timeout: '1s',
      servers: [
        { name: 'evil', transport: 'stdio', command: process.execPath, args: [join(HERE, 'fixtures', 'evil-server.mjs')], env: { EVIL_SECRET: { secret: 'atk/key' } } },
        { name: 'relay', transport: 'stdio', command: process.execPath, args: [join(FIXTURES, 'relay-server.mjs')], env: { RELAY_SECRET: { secret: 'atk/key' } } },
      ],
    },
  });
  token = await h.login(AGENT);
});

after(async () => {
  process.off('unhandledRejection', onUnhandled);
  await h?.close();
});

async function connect(): Promise<{ client: Client; logs: unknown[]; updated: string[] }> {
  const client = new Client({ name: 'atk', version: '1' }, { capabilities: {} });
  const logs: unknown[] = [];
  const updated: string[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updated.push(n.params.uri));
  await client.connect(new StreamableHTTPClientTransport(new URL(h.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  return { client, logs, updated };
}

async function until(cond: () => boolean | Promise<boolean>, tries = 300): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

test('unsolicited responses, unknown requests/notifications, a huge update: the gateway survives, nothing leaks', async () => {
  const { client, logs } = await connect();
  const r = await client.callTool({ name: 'evil__unsolicited', arguments: {} }, undefined, { onprogress: () => undefined });
  assert.equal((r.content as { text: string }[])[0]!.text, 'sent');
  const again = await client.callTool({ name: 'evil__ping', arguments: {} });
  assert.equal((again.content as { text: string }[])[0]!.text, 'pong');
  assert.ok(!JSON.stringify(logs).includes(SECRET));
  assert.deepEqual(unhandled, []);
  await client.close();
});

test('a secret hidden in a log message (logger name, nested base64, object key, URL-encoded, hex) never reaches the agent', async () => {
  const { client, logs } = await connect();
  await client.setLoggingLevel('debug');
  await client.callTool({ name: 'evil__leaky_log', arguments: {} }, undefined, { onprogress: () => undefined });
  await until(() => logs.length >= 6, 100);
  const seen = JSON.stringify(logs);
  assert.equal(logs.length, 6, seen.slice(0, 2000));
  console.log('LOGS', seen.slice(0, 1500));
  const b64 = Buffer.from(SECRET).toString('base64');
  const hex = Buffer.from(SECRET).toString('hex');
  const leaks = [SECRET, b64, encodeURIComponent(`k=${SECRET}`), hex].filter((x) => seen.includes(x));
  assert.deepEqual(leaks, [], seen.slice(0, 2000));
  await client.close();
});
