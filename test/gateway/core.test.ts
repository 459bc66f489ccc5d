/**
 * The per-call core without HTTP: argument digests, optional argument values in the audit,
 * listing rules. Real policy engine; an in-process provider.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPolicyEngine, type PolicyEngine } from '../../src/policy/index.js';
import { systemClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { createGatewayCore, canonicalJson, RpcError, type Caller } from '../../src/gateway/core.js';
import type { ToolProvider } from '../../src/gateway/types.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { createRequestAuthorizer } from '../../src/pipeline/authorize.js';

let dir: string;
let policy: PolicyEngine;

const principal: AgentPrincipal = { spiffeId: 'spiffe://example.org/ns/gw/sa/core', trustDomain: 'example.org', path: '/ns/gw/sa/core', attributes: {}, jti: 'jti-core-0123456789abcdef', expiresAt: Date.now() + 600_000 };
const caller: Caller = { principal, sessionId: 'session-1', where: { requestId: 'r1' } };

const provider: ToolProvider = {
  server: 'p',
  listTools: async () => [
    { name: 'echo', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
    { name: 'guarded', inputSchema: { type: 'object', properties: { ward: { type: 'string' } } } },
    { name: 'hidden', inputSchema: { type: 'object' } },
  ],
  callTool: async (_tool, args) => ({ content: [{ type: 'text', text: String(args.text ?? 'ok') }] }),
  close: async () => undefined,
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-gw-core-'));
  writeFileSync(join(dir, 'p.cedar'), `
@id("echo") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"p/echo");
@id("guarded") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"p/guarded") when { context.args has ward && context.args.ward == "a" };
`);
  policy = createPolicyEngine({ dir, clock: systemClock, logger: silentLogger, audit: new MemoryAuditWriter(), watch: false });
  await policy.start();
});

after(() => {
  policy.stop();
  rmSync(dir, { recursive: true, force: true });
});

function core(auditArgumentValues: boolean, audit = new MemoryAuditWriter()) {
  const injector = { resolveSecret: async () => '', issueCredential: async () => ({ leaseId: '', data: {} }), revokeLease: async () => undefined, mayInject: () => true, downstreamToken: async () => { throw new Error('unused'); } };
  return { audit, core: createGatewayCore({ upstreams: [], providers: [provider], authorizer: createRequestAuthorizer(policy), injector, audit, logger: silentLogger, auditArgumentValues }) };
}

test('canonical JSON sorts keys at every level, so the audited digest does not depend on key order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }), '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
  assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
});

test('argument values are audited only when configured, scrubbed of credential shapes', async () => {
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCIsImlhdCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
  const off = core(false);
  await off.core.callTool('p__echo', { text: 'hello values' }, caller, new AbortController().signal);
  const e1 = off.audit.events.find((e) => e.kind === 'gateway.tool_call')!;
  assert.equal((e1.details as { args_json?: string }).args_json, undefined);
  assert.ok(!JSON.stringify(e1).includes('hello values'));

  const on = core(true);
  const r = await on.core.callTool('p__echo', { text: `token ${jwt}` }, caller, new AbortController().signal);
  assert.deepEqual(r.content, [{ type: 'text', text: 'token [REDACTED:jwt]' }], 'credential shapes are scrubbed from results too');
  const e2 = on.audit.events.find((e) => e.kind === 'gateway.tool_call')!;
  const d = e2.details as { args_json: string; args_sha256: string; decision: string };
  assert.match(d.args_json, /^\{"text":"token \[REDACTED:jwt\]"\}$/);
  assert.equal(d.decision, 'allow');
  assert.deepEqual(e2.reason?.policies, ['echo']);
});

test('listing: a has-guarded argument condition is callable but not listed; unguarded tools listed; others hidden', async () => {
  const { core: c } = core(false);
  const names = (await c.listTools(caller, new AbortController().signal)).map((t) => t.name);
  assert.deepEqual(names, ['p__echo']);
  const ok = await c.callTool('p__guarded', { ward: 'a' }, caller, new AbortController().signal);
  assert.deepEqual(ok.content, [{ type: 'text', text: 'ok' }]);
  // The policy entity id <server>/<tool> is accepted as a name too.
  const alias = await c.callTool('p/guarded', { ward: 'a' }, caller, new AbortController().signal);
  assert.deepEqual(alias.content, [{ type: 'text', text: 'ok' }]);
  await assert.rejects(c.callTool('p__hidden', {}, caller, new AbortController().signal), (e: unknown) => e instanceof RpcError && e.data?.code === 'TESSERA_GATEWAY_TOOL_NOT_FOUND');
});

test('bad tool names and arguments that are not an object are refused with stable codes', async () => {
  const { core: c, audit } = core(false);
  for (const name of ['noslash', '/x', 'p/', 'nosuch/tool', '__x', 'p__', 'nosuch__tool', 'p__nosuch', 'p__echo.x', 'p__zz_abcdefgh', 'p___', '']) {
    await assert.rejects(c.callTool(name, {}, caller, new AbortController().signal), (e: unknown) => e instanceof RpcError && e.code === -32602 && e.data?.code === 'TESSERA_GATEWAY_TOOL_NOT_FOUND', name);
  }
  for (const args of [[1, 2], 'text', 5]) {
    await assert.rejects(c.callTool('p__echo', args, caller, new AbortController().signal), (e: unknown) => e instanceof RpcError && e.data?.code === 'TESSERA_TOOL_ARGS_INVALID');
  }
  assert.ok(audit.events.filter((e) => e.kind === 'gateway.tool_call').every((e) => e.result === 'error' || e.result === 'deny'));
});

test('a tool name that looks like a token is refused as unknown and audited without the token (the audit accepts the event)', async () => {
  const { validateEvent } = await import('../../src/audit/validate.js');
  const { core: c, audit } = core(false);
  const jwtName = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl';
  for (const name of [jwtName, `p/${jwtName}`, `p__${jwtName}`]) {
    await assert.rejects(c.callTool(name, {}, caller, new AbortController().signal), (e: unknown) => e instanceof RpcError && e.data?.code === 'TESSERA_GATEWAY_TOOL_NOT_FOUND', name);
  }
  const events = audit.events.filter((e) => e.kind === 'gateway.tool_call');
  assert.equal(events.length, 3);
  for (const e of events) validateEvent(e);
  assert.ok(!JSON.stringify(events).includes('eyJhbGciOiJFUzI1NiJ9.eyJ'));
});
