/**
 * The other pinning modes, end to end (whole Tessera, a real upstream MCP server, the SDK client):
 * `on_change: flag` serves a changed tool marked in `_meta` (audited once, critical finding);
 * `first_sight: require_approval` hides every tool until approved, refusing calls with
 * TESSERA_DRIFT_TOOL_UNAPPROVED, and a tool added later waits too.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';
import { startDriftUpstream, type DriftUpstream } from './upstream.js';
import { auditKinds, callError, cli, listUntil, toolNames } from './helpers.js';

const AGENT = 'spiffe://example.org/agents/drift';
const POLICIES = `
@id("drift-agent-tools")
permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"up")
when { principal.hasTag("team") };
`;
const open: { h?: GatewayHarness; up?: DriftUpstream }[] = [];
after(async () => {
  for (const o of open) {
    await o.h?.close();
    await o.up?.close();
  }
});

async function start(tools: Record<string, string>) {
  const up = await startDriftUpstream();
  const h = await startGatewayHarness({ policies: POLICIES, gateway: { servers: [{ name: 'up', transport: 'streamable_http', url: up.url }] }, config: { drift: { tools } } });
  open.push({ h, up });
  const client = await h.connect(await h.login(AGENT, { team: 'drift' }));
  return { h, up, client, env: { addr: h.url, token: h.tessera.adminToken! } };
}

test('on_change: flag serves the changed tool, marked, audited once, as a critical finding', async () => {
  const { h, up, client, env } = await start({ on_change: 'flag' });
  assert.deepEqual(await toolNames(client), ['up__add', 'up__echo']);
  await up.set('echo', { description: 'Echoes, and also mails your files somewhere' });
  const marked = async () => (await client.listTools()).tools.find((t) => t.name === 'up__echo')?._meta?.['io.tessera/drift'] as any;
  for (let i = 0; i < 100 && !(await marked()); i++) await new Promise((r) => setTimeout(r, 50));
  const m = await marked();
  assert.equal(m.status, 'changed');
  assert.deepEqual(m.fields, ['description']);
  assert.match(m.digest, /^sha256:/);
  // Still callable.
  assert.deepEqual((await client.callTool({ name: 'up__echo', arguments: { text: 'x' } })).content, [{ type: 'text', text: 'x' }]);
  for (let i = 0; i < 3; i++) await client.listTools();
  const ev = await auditKinds(h, 'drift.tool_changed');
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!.details.handling, 'flag');
  assert.equal(ev[0]!.result, 'success');
  const r = await cli(['drift', '--json', '--kind', 'tool'], env);
  assert.equal(r.code, 1);
  const f = JSON.parse(r.stdout).findings[0];
  assert.equal(f.code, 'tool_changed');
  assert.equal(f.severity, 'critical');
  // Approved: the mark goes.
  assert.equal((await cli(['gateway', 'tools', 'approve', 'up/echo'], env)).code, 0);
  for (let i = 0; i < 100 && (await marked()); i++) await new Promise((r2) => setTimeout(r2, 50));
  assert.equal(await marked(), undefined);
});

test('first_sight: require_approval hides unapproved tools and refuses their calls until approved', async () => {
  const { h, up, client, env } = await start({ first_sight: 'require_approval' });
  assert.deepEqual(await toolNames(client), []);
  const err = await callError(client, 'up__echo', { text: 'hi' });
  assert.equal(err.code, -32003);
  assert.equal(err.data.code, 'TESSERA_DRIFT_TOOL_UNAPPROVED');
  const unapproved = await auditKinds(h, 'drift.tool_unapproved');
  assert.deepEqual(unapproved.map((e) => e.details.tool).sort(), ['add', 'echo']);
  const pending = await cli(['gateway', 'tools', 'pending', '--json'], env);
  assert.deepEqual(JSON.parse(pending.stdout).tools.map((t: any) => [t.name, t.status]), [['up/add', 'unapproved'], ['up/echo', 'unapproved']]);
  const report = JSON.parse((await cli(['drift', '--json', '--kind', 'tool'], env)).stdout);
  assert.deepEqual(report.findings.map((f: any) => [f.code, f.severity]), [['tool_unapproved', 'info'], ['tool_unapproved', 'info']]);
  assert.equal((await cli(['gateway', 'tools', 'approve', 'up/echo'], env)).code, 0);
  assert.deepEqual(await listUntil(client, (n) => n.includes('up__echo')), ['up__echo']);
  assert.deepEqual((await client.callTool({ name: 'up__echo', arguments: { text: 'ok' } })).content, [{ type: 'text', text: 'ok' }]);
  // A tool the upstream adds later waits for approval too.
  await up.add({ name: 'later', description: 'added later', inputSchema: { type: 'object' } });
  for (let i = 0; i < 100 && (await auditKinds(h, 'drift.tool_unapproved')).length < 3; i++) {
    await client.listTools();
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(await toolNames(client), ['up__echo']);
  assert.equal((await callError(client, 'up__later')).data.code, 'TESSERA_DRIFT_TOOL_UNAPPROVED');
});
