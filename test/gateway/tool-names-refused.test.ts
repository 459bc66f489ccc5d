/**
 * F9: upstream tool names are identifiers, never rewritten. A name that looked like a credential
 * was scrubbed into `evil__[REDACTED:openai-key]`, which strict MCP clients refuse — and with it
 * the whole tools/list. Now a name outside the MCP tool-name rules, or holding a credential shape
 * or the upstream's own injected value, is dropped from the list (audited once, logged) and
 * refused for tools/call; the rest of the list stays valid. Checked with the official SDK client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayHarness, FIXTURES, type GatewayHarness } from './harness.js';
import { PORTABLE_TOOL_NAME } from '../../src/gateway/names.js';

const SERVER = join(FIXTURES, 'named-tools-server.mjs');
const INJECTED = 'InjectedKey_9f8e7d6c5b';
const AGENT = 'spiffe://example.org/ns/gw/sa/names';

// Fake credentials of the shapes the scrubber knows (the first is the attacker's input).
const OPENAI = 'sk-proj-' + 'A1b2C3d4E5f6G7h8I9j0K1l2';
const GITHUB = 'ghp_' + 'a'.repeat(36);
const AWS = 'AKIA' + 'ABCDEFGHIJKLMNOP';
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.' + 'c2lnbmF0dXJlLXBhcnQteHl6';
const TESSERA = 'tsr_admin_' + 'Q'.repeat(40);

const VALID = ['ok_tool', 'dotted.name', 'dash-name', 'x'.repeat(128)];
const CREDENTIAL_LIKE = [OPENAI, `lookup_${GITHUB}`, `${AWS}_fetch`, JWT, TESSERA, `key_${INJECTED}`];
const INVALID = ['has space', 'a/b', 'esc\u001b[31mred', 'new\nline', 'naïve', '', 'y'.repeat(129), 'semi;colon', 'quote"d'];

const POLICIES = `
@id("names-all")
permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"evil")
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("names-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"gw")
when { principal.hasTag("team") };
`;

let h: GatewayHarness;
let client: Client;

before(async () => {
  h = await startGatewayHarness({
    policies: POLICIES,
    secrets: { 'gw/evil/key': INJECTED },
    gateway: {
      servers: [{
        name: 'evil', transport: 'stdio', command: process.execPath, args: [SERVER],
        // key_<INJECTED> is added by the fixture itself from its injected API_KEY.
        env: { TOOL_NAMES: JSON.stringify([...VALID, ...CREDENTIAL_LIKE.slice(0, -1), ...INVALID]), API_KEY: { secret: 'gw/evil/key' } },
      }],
    },
  });
  client = await h.connect(await h.login(AGENT, { team: 'gw' }));
});

after(async () => {
  await h?.close();
});

async function refusedEvents(): Promise<any[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
  return rows.map((r) => JSON.parse(r.body)).filter((e) => e.kind === 'gateway.tool_name_refused');
}

test('tools/list (SDK client) keeps only valid, credential-free names; nothing is renamed or redacted', async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  // Names valid for MCP but not for strict clients (".", > 64 chars) keep the deterministic mapping of ADR 0051.
  assert.deepEqual(names.filter((n) => !/_[a-z2-7]{8}$/.test(n)), ['evil__dash-name', 'evil__ok_tool']);
  assert.equal(names.length, VALID.length);
  for (const n of names) {
    assert.match(n, PORTABLE_TOOL_NAME, `portable: ${n}`);
    assert.ok(!n.includes('REDACTED'), n);
  }
  for (const secretish of [...CREDENTIAL_LIKE, INJECTED]) assert.ok(!JSON.stringify(tools).includes(secretish), 'no credential-like name in the list');
});

test('every refused name is audited once (with why), credential-like ones only as an HMAC', async () => {
  await client.listTools();
  await client.listTools();
  const events = await refusedEvents();
  assert.equal(events.length, CREDENTIAL_LIKE.length + INVALID.length, 'once per name, not per listing');
  const byWhy = (why: string): any[] => events.filter((e) => e.details.why === why);
  assert.equal(byWhy('credential-like').length, CREDENTIAL_LIKE.length);
  assert.equal(byWhy('invalid').length, INVALID.length);
  for (const e of byWhy('credential-like')) {
    assert.match(e.details.tool, /^hmac:/);
    assert.equal(e.result, 'deny');
    assert.equal(e.reason.code, 'TESSERA_GATEWAY_TOOL_NAME_REFUSED');
  }
  const raw = JSON.stringify(events);
  for (const c of [...CREDENTIAL_LIKE, INJECTED]) assert.ok(!raw.includes(c), 'the credential is not in the audit log');
});

test('tools/call of a refused name is refused with TESSERA_GATEWAY_TOOL_NAME_REFUSED; the upstream is never called', async () => {
  for (const name of [`evil/${OPENAI}`, `evil__lookup_${GITHUB}`, `evil/${AWS}_fetch`, `evil/${JWT}`, `evil/${TESSERA}`, 'evil/has space', 'evil/a/b', 'evil/esc\u001b[31mred', `evil/${'y'.repeat(129)}`, `evil__key_${INJECTED}`.replace('evil__', 'evil/')]) {
    const e = await client.callTool({ name, arguments: {} }).then(() => undefined, (err: unknown) => err);
    assert.ok(e instanceof McpError, `${JSON.stringify(name).slice(0, 60)} was called`);
    assert.equal((e.data as { code?: string } | undefined)?.code, 'TESSERA_GATEWAY_TOOL_NAME_REFUSED', JSON.stringify(name).slice(0, 60));
  }
  // A credential-looking name no upstream listed is simply unknown (the agent typed it).
  const unknown = await client.callTool({ name: `evil__${GITHUB}`, arguments: {} }).then(() => undefined, (err: unknown) => err);
  assert.equal(((unknown as McpError).data as { code?: string }).code, 'TESSERA_GATEWAY_TOOL_NOT_FOUND');
  const ok = await client.callTool({ name: 'evil__ok_tool', arguments: {} });
  assert.deepEqual(ok.content, [{ type: 'text', text: 'called ok_tool' }]);
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
  const calls = rows.map((r) => JSON.parse(r.body)).filter((e) => e.kind === 'gateway.tool_call' && e.reason?.code === 'TESSERA_GATEWAY_TOOL_NAME_REFUSED');
  assert.ok(calls.length >= 7);
  for (const c of calls) assert.equal(c.details.upstream_status, 'not_called');
  // The name with the injected value: the upstream was listed (to learn the name), never called.
  assert.ok(!JSON.stringify(calls).includes(INJECTED), 'the injected value is not in the audit log');
});
