/**
 * Attack (issue 9, fixed, ADR 0177): completion/complete of a resource template the caller may
 * use returned the upstream's completion values unfiltered, so it named resources policy forbids
 * the caller to read (resources/list hides them). Now each value is expanded into the template
 * and kept only when resource.read on the result is permitted; prompt values likewise with
 * prompt.get. Real HTTP, official SDK client, the resources fixture.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';
import { startResourcesUpstream, type ResourcesUpstream } from '../gateway/fixtures/resources-upstream.js';

const POLICIES = `
@id("pages") permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"res")
when { context.uri like "docs://public/page/*" };
@id("not-page-2") forbid (principal, action == Tessera::Action::"resource.read", resource)
when { context.uri == "docs://public/page/2" };
@id("greet") permit (principal, action == Tessera::Action::"prompt.get", resource == Tessera::Prompt::"res/greet");
@id("not-alan") forbid (principal, action == Tessera::Action::"prompt.get", resource == Tessera::Prompt::"res/greet")
when { context.args has name && context.args.name == "Alan" };
`;

let h: GatewayHarness;
let up: ResourcesUpstream;
let client: Client;

before(async () => {
  up = await startResourcesUpstream();
  h = await startGatewayHarness({ policies: POLICIES, gateway: { servers: [{ name: 'res', transport: 'streamable_http', url: up.url }] } });
  client = await h.connect(await h.login('spiffe://example.org/ns/atk/sa/low'));
});

after(async () => {
  await h?.close();
  await up?.close();
});

test('completion never names a resource the caller may not read', async () => {
  await assert.rejects(client.readResource({ uri: 'tessera://res/docs://public/page/2' }), (e: { data?: { code?: string } }) => e.data?.code === 'TESSERA_GATEWAY_RESOURCE_DENIED');
  const r = await client.complete({ ref: { type: 'ref/resource', uri: 'tessera://res/docs://public/page/{id}' }, argument: { name: 'id', value: '' } });
  assert.deepEqual([...r.completion.values].sort(), ['1', '10', '20'], JSON.stringify(r));
  assert.equal(r.completion.total, undefined, 'a total would count the withheld value');
  const two = await client.complete({ ref: { type: 'ref/resource', uri: 'tessera://res/docs://public/page/{id}' }, argument: { name: 'id', value: '2' } });
  assert.deepEqual(two.completion.values, ['20']);
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events WHERE kind = ? ORDER BY seq', ['gateway.completion']);
  const ev = JSON.parse(rows.at(-1)!.body) as { details: { values_withheld?: number } };
  assert.equal(ev.details.values_withheld, 1);
});

test('prompt completion never offers a value prompt.get would refuse', async () => {
  const r = await client.complete({ ref: { type: 'ref/prompt', name: 'res__greet' }, argument: { name: 'name', value: 'A' } });
  assert.deepEqual(r.completion.values, ['Ada']);
  const g = await client.complete({ ref: { type: 'ref/prompt', name: 'res__greet' }, argument: { name: 'name', value: 'G' } });
  assert.deepEqual(g.completion.values, ['Grace']);
});
