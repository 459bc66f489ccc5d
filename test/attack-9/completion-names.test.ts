/**
 * Attack (issue 9): completion/complete of a resource template the caller may use returns the
 * upstream's completion values unfiltered, so it names resources policy forbids the caller to
 * read (resources/list would hide them). Real HTTP, official SDK client, the resources fixture.
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

test('completion never names a resource the caller may not read', { todo: 'FINDING (open): completion values are not filtered by resource.read' }, async () => {
  await assert.rejects(client.readResource({ uri: 'tessera://res/docs://public/page/2' }), /policy does not permit/);
  const r = await client.complete({ ref: { type: 'ref/resource', uri: 'tessera://res/docs://public/page/{id}' }, argument: { name: 'id', value: '' } });
  assert.ok(r.completion.values.includes('1'), JSON.stringify(r));
  assert.ok(!r.completion.values.includes('2'), `the forbidden page is named: ${JSON.stringify(r.completion.values)}`);
});
