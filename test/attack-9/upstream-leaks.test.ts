/**
 * Attacks (issue 9) by a malicious upstream: the injected secret in every corner of prompt
 * results, resource listings and contents, completion values; a flood of sampling requests the
 * gateway refuses (how much audit does it cost?). Real HTTP, official SDK client, stdio upstream.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';
import { MAX_AUDITED_REFUSALS } from '../../src/gateway/relay/hub.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SECRET = 'evil-Injected-Secret-9Zq4Lm27Kd';
const POLICIES = `
@id("all") permit (principal, action, resource) when { principal.hasTag("team") };
@id("nosample") forbid (principal, action == Tessera::Action::"upstream.sample", resource);
`;

let h: GatewayHarness;
let client: Client;

before(async () => {
  h = await startGatewayHarness({
    policies: POLICIES,
    secrets: { 'atk/key': SECRET },
    gateway: { servers: [{ name: 'evil', transport: 'stdio', command: process.execPath, args: [join(HERE, 'fixtures', 'evil-server.mjs')], env: { EVIL_SECRET: { secret: 'atk/key' } } }] },
  });
  client = await h.connect(await h.login('spiffe://example.org/ns/atk/sa/low', { team: 'x' }));
});

after(async () => {
  await h?.close();
});

const forms = (): string[] => [SECRET, Buffer.from(`key=${SECRET}`).toString('base64')];
const leaks = (v: unknown): string[] => forms().filter((f) => JSON.stringify(v).includes(f));

test('prompt result: no secret in image, audio, embedded blob, resource_link, _meta or description', async () => {
  const r = await client.getPrompt({ name: 'evil__leak' });
  assert.deepEqual(leaks(r), [], JSON.stringify(r).slice(0, 1500));
});

test('resources/list and resources/read: no secret in name, description, _meta, content URI or blob', async () => {
  const l = await client.listResources();
  assert.deepEqual(leaks(l), [], JSON.stringify(l).slice(0, 1500));
  const r = await client.readResource({ uri: 'tessera://evil/evil://doc' });
  assert.deepEqual(leaks(r), [], JSON.stringify(r).slice(0, 1500));
});

test('completion values are scrubbed', async () => {
  const r = await client.complete({ ref: { type: 'ref/prompt', name: 'evil__leak' }, argument: { name: 'a', value: '' } });
  assert.deepEqual(leaks(r), [], JSON.stringify(r));
});

test('a flood of refused sampling requests: each refused, at most MAX_AUDITED_REFUSALS audited per connection and code, the last one saying so', async () => {
  await h.tessera.audit.flush();
  const count = async (): Promise<number> => (await h.tessera.store.all<{ n: number }>("SELECT COUNT(*) AS n FROM audit_events WHERE kind = 'gateway.server_request'", []))[0]!.n;
  const before = await count();
  const r = await client.callTool({ name: 'evil__ask_flood', arguments: {} });
  await h.tessera.audit.flush();
  const added = (await count()) - before;
  assert.deepEqual(JSON.parse((r.content as { text: string }[])[0]!.text), { TESSERA_GATEWAY_SERVER_REQUEST_DENIED: 500 }, 'every request is still refused');
  assert.equal(added, MAX_AUDITED_REFUSALS, `500 refused sampling requests wrote ${added} audit events`);
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.server_request' ORDER BY seq", []);
  const last = JSON.parse(rows.at(-1)!.body) as { details: Record<string, unknown> };
  assert.equal(last.details.further_refusals_not_audited, true, 'the last audited refusal says the rest are counted only');
});

test('tool results and prompt messages: resource URIs federated under the upstream\'s own server; another server\'s URI is never passed on', async () => {
  const r = await client.callTool({ name: 'evil__links', arguments: {} });
  const items = r.content as { type: string; uri?: string; resource?: { uri: string }; text?: string }[];
  assert.equal(items[0]!.uri, 'tessera://evil/evil://doc', 'its own link is federated');
  for (const it of items.slice(1)) {
    assert.equal(it.type, 'text', JSON.stringify(it));
    assert.match(it.text!, /not one the gateway serves/);
  }
  const p = await client.getPrompt({ name: 'evil__leak' });
  const uris = JSON.stringify(p).match(/tessera:\/\/[a-z]+/g) ?? [];
  assert.ok(uris.every((u) => u === 'tessera://evil'), JSON.stringify(uris));
});
