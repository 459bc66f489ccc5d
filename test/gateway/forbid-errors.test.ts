/**
 * A `forbid` whose condition errors (issue 7 finding F7, ADR 0140): Cedar skips an erroring
 * policy, and tools/list asks without arguments (`context.args = {}`), so a forbid reading
 * `context.args.path` errors there. Such an error must never make a tool visible, nor start an
 * upstream (and inject its secrets) for a caller that no permit covers; for the call itself
 * it still fails closed. Real policy sets, real HTTP, the official MCP SDK client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayHarness, ENV_ECHO_SERVER, type GatewayHarness } from './harness.js';

const API_KEY = 'f7-injected-Vq81mZ02Lk';
const TEAM = 'spiffe://example.org/ns/gw/sa/member';
const PERMIT = `
@id("team-echo")
permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"echo")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("team-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"gw")
when { principal.hasTag("team") };
`;

/** Each forbid errors when evaluated without the attribute it reads, each in its own way. */
const ERRORING_FORBIDS: { kind: string; forbid: string; /** Arguments of echo__echo that the forbid refuses. */ refused: Record<string, unknown> }[] = [
  {
    kind: 'missing argument (the attacker input: context.args.path like …)',
    forbid: 'forbid (principal, action == Tessera::Action::"tool.call", resource) when { context.args.text like "*/etc/*" };',
    refused: { text: 'cat /etc/passwd' },
  },
  {
    kind: 'type error on an argument',
    forbid: 'forbid (principal, action == Tessera::Action::"tool.call", resource) when { context.args.text != "hello" && context.args.text > 3 };',
    refused: { text: 'not hello' },
  },
  {
    kind: 'error in an unless clause',
    forbid: 'forbid (principal, action == Tessera::Action::"tool.call", resource) unless { context.args.text == "hello" };',
    refused: { text: 'anything else' },
  },
];

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof McpError, `expected McpError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the call to fail');
}

async function eventsOf(h: GatewayHarness, actorId: string): Promise<{ kind: string; action: string; result: string; reason?: { code?: string; policies?: string[] } }[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
  return rows.map((r) => JSON.parse(r.body) as { kind: string; action: string; result: string; actor: { id: string } }).filter((e) => e.actor.id === actorId);
}

for (const variant of ERRORING_FORBIDS) {
  test(`an erroring forbid (${variant.kind}) shows no tool and starts no upstream for a caller with no permit; it fails closed for the call`, async (t) => {
    const h = await startGatewayHarness({
      policies: `${PERMIT}\n@id("guard")\n${variant.forbid}\n`,
      secrets: { 'gw/echo/api-key': API_KEY },
      gateway: { servers: [{ name: 'echo', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], env: { API_KEY: { secret: 'gw/echo/api-key' } } }] },
    });
    t.after(() => h.close());

    // A caller no permit covers: nothing listed, nothing started, nothing injected.
    const stranger = 'spiffe://example.org/ns/x/sa/stranger';
    const s = await h.connect(await h.login(stranger));
    assert.deepEqual((await s.listTools()).tools, [], 'an erroring forbid must not make tools visible');
    for (const args of [{ text: 'hello' }, {}, variant.refused]) {
      const e = await rpcError(s.callTool({ name: 'echo__echo', arguments: args }));
      assert.equal(e.code, -32602, JSON.stringify({ message: e.message, data: e.data }));
      assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_NOT_FOUND');
    }
    const mine = await eventsOf(h, stranger);
    assert.deepEqual(mine.filter((x) => x.kind === 'gateway.upstream_started'), [], 'no upstream was started for a caller permitted nothing');
    assert.deepEqual(mine.filter((x) => x.action === 'secret.inject'), [], 'no secret was resolved for it');
    const calls = mine.filter((x) => x.kind === 'gateway.tool_call');
    assert.equal(calls.length, 3);
    for (const c of calls) assert.equal(c.result, 'deny');

    // A permitted caller: the tool is listed (a permit applies) and the forbid is enforced.
    const member = await h.connect(await h.login(TEAM, { team: 'gw' }));
    const names = (await member.listTools()).tools.map((x) => x.name);
    assert.ok(names.includes('echo__echo'), `listed for a permitted caller: ${names.join(',')}`);
    const ok = await member.callTool({ name: 'echo__echo', arguments: { text: 'hello' } });
    assert.deepEqual(ok.content, [{ type: 'text', text: 'hello' }]);
    const refused = await rpcError(member.callTool({ name: 'echo__echo', arguments: variant.refused }));
    assert.equal((refused.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_DENIED');
    // Arguments without the attribute the forbid reads: the forbid errors, the call fails closed.
    const closed = await rpcError(member.callTool({ name: 'echo__add', arguments: { a: 1, b: 2 } }));
    assert.equal(closed.code, -32003);
    assert.equal((closed.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_DENIED');
    const denied = (await eventsOf(h, TEAM)).filter((x) => x.kind === 'gateway.tool_call' && x.result === 'deny');
    assert.equal(denied.length, 2);
    for (const d of denied) assert.deepEqual(d.reason?.policies, ['guard']);
  });
}

test('a permit that errors on context.args still lists its tool (the call decides), unless a forbid is satisfied', async (t) => {
  const h = await startGatewayHarness({
    policies: `
@id("ward") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"echo/query_patients")
when { context.args.ward == "cardiology" };
@id("no-interns") forbid (principal, action == Tessera::Action::"tool.call", resource)
when { principal.hasTag("role") && principal.getTag("role") == "intern" };
`,
    gateway: { servers: [{ name: 'echo', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER] }] },
  });
  t.after(() => h.close());
  const nurse = await h.connect(await h.login('spiffe://example.org/ns/gw/sa/nurse'));
  assert.deepEqual((await nurse.listTools()).tools.map((x) => x.name), ['echo__query_patients']);
  const r = await nurse.callTool({ name: 'echo__query_patients', arguments: { ward: 'cardiology' } });
  assert.equal(r.isError ?? false, false);
  const e = await rpcError(nurse.callTool({ name: 'echo__query_patients', arguments: { ward: 'oncology' } }));
  assert.equal((e.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_DENIED');

  const intern = await h.connect(await h.login('spiffe://example.org/ns/gw/sa/intern', { role: 'intern' }));
  assert.deepEqual((await intern.listTools()).tools, [], 'a satisfied forbid hides the tool');
  const e2 = await rpcError(intern.callTool({ name: 'echo__query_patients', arguments: { ward: 'cardiology' } }));
  assert.equal((e2.data as { code: string }).code, 'TESSERA_GATEWAY_TOOL_NOT_FOUND');
});
