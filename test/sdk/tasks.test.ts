/**
 * The SDK's task API (issue 8 §5, docs/sdk.md "Tasks") against the whole server over real HTTP:
 * openTask / delegate (label and actor-token children), DPoP keys chosen inside (bound parents
 * share their key, unbound parents' children get their own), widening refused with the server's
 * exact code, revoke (RFC 7009) with the tree's leases, refresh by re-derivation and what happens
 * when the task or its parent was revoked or expired, and the MCP gateway through the official
 * MCP SDK client with the task's fetch. Every token the SDK receives is registered for the
 * suite-wide leak scan (a fetch spy reads them off the token endpoint's answers).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TesseraClient, TesseraApiError, TesseraAuthError, TesseraTaskError, type Task, type SdkClock } from '../../src/sdk/index.js';
import { startHarness, type Harness } from '../e2e/harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { ENV_ECHO_SERVER } from '../gateway/harness.js';
import { ORCH, SUB, TASK_POLICIES, policyDir } from '../tasks/helpers.js';

const TOOLS = `
@id("echo-tools") permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"echo") when { principal.trust_domain == "tessera.local" };
`;

let h: Harness;
let engine: MemoryEngine;
const clients: TesseraClient[] = [];

before(async () => {
  engine = new MemoryEngine('mem');
  h = await startHarness({
    policyDir: policyDir(TASK_POLICIES + TOOLS),
    engines: [engine],
    config: { gateway: { servers: [{ name: 'echo', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER] }] } },
  });
  for (const [path, value] of [['team/a', 'team-a-value'], ['team/tickets/INC-42', 'ticket-value'], ['team/private/x', 'private-value']] as const) {
    assert.equal((await h.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode: 'read' })).status, 200);
    h.sensitive.add(value);
  }
});
after(async () => {
  for (const c of clients) c.close();
  await h.close();
});

/** A fetch that registers every token the token endpoint hands out (the SDK never exposes them). */
function spyFetch(): (input: string, init: RequestInit) => Promise<Response> {
  return async (input, init) => {
    const res = await fetch(input, init);
    if (input.endsWith('/v1/oauth/token')) {
      const body = (await res.clone().json().catch(() => ({}))) as { access_token?: unknown };
      if (typeof body.access_token === 'string') h.sensitive.add(body.access_token);
    }
    return res;
  };
}

/** A clock `offsetMs` ahead of the real one: the SDK thinks time passed, the server still accepts. */
function aheadClock(): SdkClock & { offsetMs: number } {
  const c = {
    offsetMs: 0,
    now: () => Date.now() + c.offsetMs,
    setTimeout: (fn: () => void, ms: number) => {
      const t = setTimeout(fn, ms);
      t.unref();
      return t;
    },
    clearTimeout: (x: unknown) => clearTimeout(x as NodeJS.Timeout),
  };
  return c;
}

async function client(spiffeId: string, opts: ConstructorParameters<typeof TesseraClient>[0] = {}): Promise<TesseraClient> {
  const c = new TesseraClient({ addr: h.url, audience: [h.tessera.url, `${h.tessera.url}/mcp`], fetch: spyFetch(), ...opts });
  clients.push(c);
  await c.loginWithJoinToken(await h.joinToken(spiffeId));
  return c;
}

async function refusal(p: Promise<unknown>): Promise<TesseraApiError> {
  const err = await p.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof TesseraApiError, String(err));
  return err;
}

async function tokenOf(task: Task): Promise<string> {
  const a = await task.authorization('GET', `${h.url}/v1/whoami`);
  return a.authorization!.replace(/^(Bearer|DPoP) /, '');
}

const leaseState = async (id: string): Promise<string> => (await h.admin('GET', '/v1/admin/leases?limit=100')).body.leases.find((l: { lease_id: string }) => l.lease_id === id).state;

test('bound (the default): the root task and a label child are bound to the client\'s key; scope, depth and facts as granted; the token is never printed', async () => {
  const c = await client(ORCH);
  const root = await c.openTask({ scope: 'secret:team/** cred:mem/reader', purpose: 'triage INC-42', facts: { ticket: 'INC-42' }, ttl: 240 });
  assert.match(root.txn, /^task_[A-Za-z0-9_-]{22}$/);
  assert.deepEqual(root.scope, ['secret:team/**', 'cred:mem/reader']);
  assert.equal(root.depth, 0);
  assert.equal(root.purpose, 'triage INC-42');
  assert.deepEqual(root.facts, { ticket: 'INC-42' });
  assert.equal(root.bound, true);
  assert.equal(root.dpopThumbprint, c.dpopThumbprint);
  assert.ok(Math.abs(root.expiresAt.getTime() - (Date.now() + 240_000)) < 30_000);
  assert.equal((await root.readSecret('team/a')).value, 'team-a-value');

  const reader = await root.delegate({ label: 'reader', scope: 'secret:team/tickets/**' });
  assert.equal(reader.depth, 1);
  assert.equal(reader.parent, root);
  assert.equal(reader.label, 'reader');
  assert.equal(reader.purpose, 'triage INC-42', 'inherited');
  assert.equal(reader.dpopThumbprint, c.dpopThumbprint, 'a bound parent\'s children are bound to its key (docs/tasks.md binding table)');
  assert.equal((await reader.readSecret('team/tickets/INC-42')).value, 'ticket-value');
  const outside = await refusal(reader.readSecret('team/a'));
  assert.equal(outside.code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
  const who = (await reader.whoami()) as { task: { txn: string; parent: string; label: string; bound: boolean } };
  assert.deepEqual([who.task.txn, who.task.parent, who.task.label, who.task.bound], [reader.txn, root.txn, 'reader', true]);

  // The token goes only into request headers: never JSON, never inspect.
  const token = await tokenOf(reader);
  for (const shown of [JSON.stringify(reader), inspect(reader, { depth: 5, showHidden: true }), JSON.stringify(root), inspect(root)]) {
    assert.ok(!shown.includes(token.split('.')[1]!) && !shown.includes(token.split('.')[2]!), shown);
  }
  // Stolen without the key, the bound token is refused.
  const stolen = await h.agent(token, 'GET', '/v1/whoami');
  assert.equal(stolen.body.error.code, 'TESSERA_DPOP_TOKEN_BOUND');
});

test('unbound parent: a label child gets its OWN fresh key; dpop:false gives an unbound child; each key works only for its task', async () => {
  const c = await client(ORCH, { dpop: false });
  const root = await c.openTask({ scope: 'secret:team/**', purpose: 'unbound orchestrator' });
  assert.equal(root.bound, false);
  assert.equal(root.dpopThumbprint, undefined);
  const a = await root.delegate({ label: 'a', scope: 'secret:team/a' });
  const b = await root.delegate({ label: 'b', scope: 'secret:team/a' });
  assert.equal(a.bound, true);
  assert.ok(a.dpopThumbprint && b.dpopThumbprint && a.dpopThumbprint !== b.dpopThumbprint, 'each labelled child its own key');
  assert.equal((await a.readSecret('team/a')).value, 'team-a-value');
  const plain = await root.delegate({ label: 'plain', scope: 'secret:team/a', dpop: false });
  assert.equal(plain.bound, false);
  assert.equal((await plain.readSecret('team/a')).value, 'team-a-value');
  // a's token with b's key: the proof's key is not the token's.
  const aToken = await tokenOf(a);
  const proofByB = (await b.authorization('GET', `${h.tessera.url}/v1/whoami`)).dpop!;
  const res = await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `DPoP ${aToken}`, dpop: proofByB } });
  assert.equal(res.status, 401);
  assert.match(((await res.json()) as { error: { code: string } }).error.code, /^TESSERA_DPOP_(ATH|KEY)_MISMATCH$/);
});

test('actor-token children: a sub-agent\'s own TesseraClient (bound to its key) under an unbound parent; refusals with the server\'s codes', async () => {
  const orch = await client(ORCH, { dpop: false });
  const sub = await client(SUB);
  const root = await orch.openTask({ scope: 'secret:team/**', purpose: 'delegate to summarizer' });
  const child = await root.delegate({ actorToken: sub, scope: 'secret:team/a' });
  assert.equal(child.dpopThumbprint, sub.dpopThumbprint, 'bound to the sub-agent\'s key');
  const who = (await child.whoami()) as { spiffe_id: string; task: { chain: string[]; label: string | null } };
  assert.equal(who.spiffe_id, SUB);
  assert.equal(who.task.label, null);
  assert.equal((await child.readSecret('team/a')).value, 'team-a-value');

  // The sub-agent's token as a string without its key: the exchange needs a proof by that key.
  const subToken = await sub.token();
  const noKey = await refusal(root.delegate({ actorToken: subToken, scope: 'secret:team/a' }));
  assert.ok(noKey instanceof TesseraTaskError);
  assert.equal(noKey.code, 'TESSERA_TASK_BINDING_REQUIRED');
  assert.equal(noKey.details?.field, 'actor_token');

  // A bound parent cannot prove the sub-agent's key in the same request.
  const bound = await client(ORCH);
  const boundRoot = await bound.openTask({ scope: 'secret:team/**', purpose: 'bound orchestrator' });
  const mismatch = await refusal(boundRoot.delegate({ actorToken: sub, scope: 'secret:team/a' }));
  assert.ok(mismatch instanceof TesseraTaskError);
  assert.equal(mismatch.code, 'TESSERA_TASK_KEY_MISMATCH');
  // Policy: never to the intruder.
  const intruder = await client('spiffe://tessera.local/ns/ops/sa/intruder', { dpop: false });
  const denied = await refusal(root.delegate({ actorToken: intruder, scope: 'secret:team/a', dpop: false }));
  assert.equal(denied.code, 'TESSERA_TASK_DELEGATION_DENIED');
});

test('widening and other bad requests are refused with the exact code (TesseraTaskError), never trimmed unless asked', async () => {
  const c = await client(ORCH);
  const root = await c.openTask({ scope: ['secret:team/*', 'cred:mem/reader'], purpose: 'narrow root', ttl: 120 });
  for (const scope of ['secret:team/**', 'secret:**', 'secret:team/ab secret:other/x', 'cred:mem/*', 'tool:echo/echo']) {
    const e = await refusal(root.delegate({ label: 'wide', scope }));
    assert.ok(e instanceof TesseraTaskError, scope);
    assert.equal(e.code, 'TESSERA_TASK_SCOPE_WIDENED', scope);
    assert.equal(e.oauthError, 'invalid_scope');
    assert.equal(e.status, 400);
  }
  const trimmed = await root.delegate({ label: 'trimmed', scope: 'secret:team/** cred:mem/reader', scopeMode: 'trim' });
  assert.deepEqual([...trimmed.scope].sort(), ['cred:mem/reader', 'secret:team/*']);
  const cases: [() => Promise<unknown>, string, string?][] = [
    [() => root.delegate({ label: 'bad', scope: 'secret:team/%2Fx' }), 'TESSERA_OAUTH_INVALID_SCOPE'],
    [() => root.delegate({ label: 'long', scope: 'secret:team/a', ttl: 100_000 }), 'TESSERA_TASK_LIFETIME_EXCEEDED'],
    [() => root.delegate({ label: 'facts', scope: 'secret:team/a', facts: { 'not a key': 'x' } }), 'TESSERA_TASK_PARAMETER_INVALID', 'tctx'],
    [() => root.delegate({ label: 'bad label!', scope: 'secret:team/a' }), 'TESSERA_TASK_PARAMETER_INVALID', 'label'],
    [() => root.delegate({ label: 'shell', scope: 'secret:team/a' }), 'TESSERA_TASK_DELEGATION_DENIED'],
    [() => root.delegate({ label: 'deep', scope: 'secret:team/a', maxDepth: 5 }), 'TESSERA_TASK_MAX_DEPTH_RAISED'],
    [() => root.delegate({ label: 'deeper', scope: 'secret:team/a', maxDepth: 9 }), 'TESSERA_TASK_PARAMETER_INVALID', 'max_depth'],
    [() => c.openTask({ scope: 'secret:**', purpose: 'everything' }), 'TESSERA_TASK_DELEGATION_DENIED'],
    [() => c.openTask({ scope: 'secret:team/a', purpose: 'line\nbreak' }), 'TESSERA_TASK_PARAMETER_INVALID', 'purpose'],
  ];
  for (const [p, code, field] of cases) {
    const e = await refusal(p());
    assert.ok(e instanceof TesseraTaskError, `${code}: ${e.name}`);
    assert.equal(e.code, code, e.message);
    if (field) assert.equal(e.details?.field, field);
  }
  const life = await refusal(root.delegate({ label: 'long', scope: 'secret:team/a', ttl: 100_000 }));
  assert.equal(typeof life.details?.max_s, 'number');
});

test('revoke (RFC 7009): the task, its subtree and their leases; afterwards calls fail with TESSERA_SDK_TASK_ENDED or the server\'s TESSERA_TOKEN_REVOKED', async () => {
  const c = await client(ORCH);
  const root = await c.openTask({ scope: 'secret:team/** cred:mem/reader', purpose: 'revoke me' });
  const child = await root.delegate({ label: 'worker', scope: 'cred:mem/reader secret:team/a' });
  const sibling = await root.delegate({ label: 'sibling', scope: 'secret:team/a' });
  const lease = await child.issueCredential('mem', 'reader');
  h.sensitive.add(String(lease.data.password));
  assert.equal(await leaseState(lease.lease_id), 'active');

  await child.revoke();
  assert.equal(child.state, 'revoked');
  assert.equal(await leaseState(lease.lease_id), 'revoked', 'leases of the subtree are dropped before the call returns');
  const ended = await refusal(child.readSecret('team/a'));
  assert.ok(ended instanceof TesseraAuthError);
  assert.equal(ended.code, 'TESSERA_SDK_TASK_ENDED');
  assert.equal((await refusal(child.delegate({ label: 'x', scope: 'secret:team/a' }))).code, 'TESSERA_SDK_TASK_ENDED');
  assert.equal((await sibling.readSecret('team/a')).value, 'team-a-value', 'a sibling is untouched');

  // Killed by the operator: the server says so, and the SDK task ends (never re-derived).
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn })).status, 201);
  const revoked = await refusal(sibling.readSecret('team/a'));
  assert.ok(revoked instanceof TesseraAuthError);
  assert.equal(revoked.code, 'TESSERA_TOKEN_REVOKED');
  assert.equal(sibling.state, 'revoked');
  assert.equal((await refusal(sibling.refresh())).code, 'TESSERA_SDK_TASK_ENDED');
  const parentGone = await refusal(root.delegate({ label: 'late', scope: 'secret:team/a' }));
  assert.ok(parentGone instanceof TesseraAuthError);
  assert.equal(parentGone.code, 'TESSERA_OAUTH_INVALID_GRANT');
  assert.equal(parentGone.details?.cause, 'TESSERA_TOKEN_REVOKED');
  assert.equal(root.state, 'revoked');
});

test('refresh: a child is re-derived from its parent at 80 % of its lifetime (parent first when due); a root never; a revoked or expired one never', async () => {
  const clock = aheadClock();
  const c = await client(ORCH, { clock });
  const root = await c.openTask({ scope: 'secret:team/**', purpose: 'long work', ttl: 280 });
  const child = await root.delegate({ label: 'worker', scope: 'secret:team/**', ttl: 100 });
  const grandchild = await child.delegate({ label: 'sub-worker', scope: 'secret:team/a', ttl: 90 });
  const [childTxn, grandTxn] = [child.txn, grandchild.txn];

  clock.offsetMs = 82_000; // past 80 % of both the child's and the grandchild's lifetimes
  assert.equal((await grandchild.readSecret('team/a')).value, 'team-a-value');
  assert.notEqual(grandchild.txn, grandTxn);
  assert.notEqual(child.txn, childTxn, 'the parent was due as well: re-derived first');
  assert.deepEqual(grandchild.previousTxns, [grandTxn]);
  const who = (await grandchild.whoami()) as { task: { parent: string; root: string } };
  assert.deepEqual([who.task.parent, who.task.root], [child.txn, root.txn], 'the new node hangs under the parent\'s new node');
  assert.equal((await refusal(root.refresh())).code, 'TESSERA_SDK_TASK_NOT_RENEWABLE');

  // The operator kills the child's current node: its next re-derivation is refused, not done.
  const before = (await h.admin('GET', `/v1/admin/tasks?root=${root.txn}&limit=100`)).body.tasks.length;
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: child.txn })).status, 201);
  clock.offsetMs = 170_000;
  const ended = await refusal(child.readSecret('team/a'));
  assert.equal(ended.code, 'TESSERA_SDK_TASK_ENDED');
  assert.equal(child.state, 'revoked');
  assert.equal((await refusal(grandchild.readSecret('team/a'))).code, 'TESSERA_SDK_TASK_ENDED', 'the grandchild (under the revoked node) ends as well');
  assert.equal((await h.admin('GET', `/v1/admin/tasks?root=${root.txn}&limit=100`)).body.tasks.length, before, 'no node was derived from a revoked one');

  // Expired (on the SDK's clock): nothing is re-derived from it, and the root is not renewed.
  const other = await root.delegate({ label: 'short', scope: 'secret:team/a', ttl: 30 });
  clock.offsetMs += 40_000;
  assert.equal(other.state, 'expired');
  assert.equal((await refusal(other.readSecret('team/a'))).code, 'TESSERA_SDK_TASK_EXPIRED');
  clock.offsetMs = 300_000;
  assert.equal((await refusal(root.readSecret('team/a'))).code, 'TESSERA_SDK_TASK_EXPIRED');
});

test('refresh when the parent was revoked: the child\'s own token is refused (its `anc` names the parent), so it ends instead of being re-derived', async () => {
  const clock = aheadClock();
  const c = await client(ORCH, { clock });
  const root = await c.openTask({ scope: 'secret:team/**', purpose: 'parent revoked', ttl: 280 });
  const child = await root.delegate({ label: 'worker', scope: 'secret:team/a', ttl: 60 });
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn })).status, 201);
  clock.offsetMs = 55_000;
  const e = await refusal(child.refresh());
  assert.equal(e.code, 'TESSERA_SDK_TASK_ENDED');
  assert.equal((e.cause as TesseraApiError).code, 'TESSERA_TOKEN_REVOKED');
});

test('MCP gateway: the official MCP SDK client with task.authorizedFetch() sees and calls only the tools in the task\'s scope (DPoP-bound)', async () => {
  const c = await client(ORCH);
  const root = await c.openTask({ scope: 'tool:echo/* secret:team/**', purpose: 'use tools' });
  const caller = await root.delegate({ label: 'tool-user', scope: 'tool:echo/echo tool:echo/add' });
  assert.equal(caller.bound, true);
  const mcp = new Client({ name: 'sdk-task-test', version: '1.0.0' });
  await mcp.connect(new StreamableHTTPClientTransport(caller.mcpUrl, { fetch: caller.authorizedFetch() }));
  try {
    const names = (await mcp.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(names, ['echo__add', 'echo__echo']);
    const r = (await mcp.callTool({ name: 'echo__add', arguments: { a: 2, b: 3 } })) as { content: { text: string }[] };
    assert.equal(r.content[0]!.text, '5');
    await assert.rejects(mcp.callTool({ name: 'echo__pid', arguments: {} }));
  } finally {
    await mcp.close();
  }
});
