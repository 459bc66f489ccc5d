/**
 * The one request pipeline with task tokens, at the credential API and secret reads (the gateway:
 * test/tasks/gateway.test.ts): Cedar must permit the acting workload — with its label, chain,
 * task and facts in the context — AND the token's scope must cover the request. Plain agent
 * tokens keep their behaviour.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { ACCESS, ORCH, SUB, openTask, delegate, policyDir } from './helpers.js';

let h: Harness;
let orch: string;
let sub: string;
const engine = new MemoryEngine('mem');

before(async () => {
  h = await startHarness({ policyDir: policyDir(), engines: [engine] });
  for (const [path, value] of Object.entries({ 'team/a': 'value-team-a', 'team/b': 'value-team-b', 'team/private/key': 'value-private', 'team/tickets/t1': 'value-ticket', 'other/x': 'value-other' })) {
    assert.equal((await h.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode: 'read' })).status, 200);
    h.sensitive.add(value);
  }
  orch = await h.login(await h.joinToken(ORCH));
  sub = await h.login(await h.joinToken(SUB));
});
after(async () => {
  await h?.close();
});

const read = (token: string, path: string) => h.agent(token, 'GET', `/v1/secrets/${path}`);
const refusedWith = async (p: Promise<{ status: number; body: any }>, status: number, code: string): Promise<void> => {
  const r = await p;
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error.code, code);
};

test('secret reads: scope ∩ Cedar — the scope narrows what policy permits, never widens it', async () => {
  assert.equal((await read(orch, 'team/b')).status, 200, 'a plain agent token: policy alone, as before');
  const root = await openTask(h, orch, { scope: 'secret:team/a secret:other/**' });
  assert.equal((await read(root.token, 'team/a')).body.value, 'value-team-a');
  await refusedWith(read(root.token, 'team/b'), 403, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
  // In scope, but Cedar permits nothing outside team/: the scope grants nothing by itself.
  await refusedWith(read(root.token, 'other/x'), 403, 'TESSERA_POLICY_DENIED');
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/a' });
  assert.equal((await read(child.token, 'team/a')).status, 200);
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'secret.read' AND txn = ?", [child.txn]);
  const e = JSON.parse(rows.at(-1)!.body);
  assert.equal(e.actor.id, SUB, 'audited under the acting agent');
  assert.deepEqual(e.actor.chain, [ORCH], 'with the chain');
  assert.equal(e.txn, child.txn);
});

test('Cedar sees the sub-agent label: a sub-agent labelled "untrusted" is fenced off team/private', async () => {
  const root = await openTask(h, orch, { scope: 'secret:team/**' });
  const trusted = await delegate(h, root.token, { label: 'trusted', scope: 'secret:team/private/**' });
  const untrusted = await delegate(h, root.token, { label: 'untrusted', scope: 'secret:team/private/**' });
  assert.equal((await read(trusted.token, 'team/private/key')).status, 200);
  await refusedWith(read(untrusted.token, 'team/private/key'), 403, 'TESSERA_POLICY_DENIED');
  assert.equal((await read(root.token, 'team/private/key')).status, 200, 'the same agent without the label');
});

test('Cedar sees the task facts: team/tickets only within ticket INC-42', async () => {
  const none = await openTask(h, orch, { scope: 'secret:team/**' });
  await refusedWith(read(none.token, 'team/tickets/t1'), 403, 'TESSERA_POLICY_DENIED');
  const other = await openTask(h, orch, { scope: 'secret:team/**', tctx: '{"ticket":"INC-7"}' });
  await refusedWith(read(other.token, 'team/tickets/t1'), 403, 'TESSERA_POLICY_DENIED');
  const inc = await openTask(h, orch, { scope: 'secret:team/**', tctx: '{"ticket":"INC-42"}' });
  assert.equal((await read(inc.token, 'team/tickets/t1')).status, 200);
  const child = await delegate(h, inc.token, { label: 'reader', scope: 'secret:team/tickets/**' });
  assert.equal((await read(child.token, 'team/tickets/t1')).status, 200, 'facts are inherited down the tree');
});

test('credential API: cred:<engine>/<role> in scope ∩ Cedar; the lease is recorded under the task', async () => {
  const root = await openTask(h, orch, { scope: 'secret:team/** cred:mem/reader' });
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'cred:mem/reader' });
  const issued = await h.agent(child.token, 'POST', '/v1/creds/mem/reader', {});
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  h.sensitive.add(String(issued.body.data.password));
  const noCred = await delegate(h, root.token, { label: 'no-cred', scope: 'secret:team/a' });
  await refusedWith(h.agent(noCred.token, 'POST', '/v1/creds/mem/reader', {}), 403, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
  const leases = await h.admin('GET', `/v1/admin/leases?task=${root.txn}`);
  assert.equal(leases.status, 200);
  assert.deepEqual(leases.body.leases.map((l: any) => [l.lease_id, l.task, l.owner]), [[issued.body.lease_id, child.txn, SUB]], 'the subtree filter finds the child\'s lease; its owner is the acting agent');
});

test('a task token renews and revokes only the leases of its task subtree, never its parent\'s or a sibling\'s', async () => {
  const root = await openTask(h, orch, { scope: 'cred:mem/reader' });
  const a = await delegate(h, root.token, { label: 'a', scope: 'cred:mem/reader' });
  const b = await delegate(h, root.token, { label: 'b', scope: 'cred:mem/reader' });
  const issue = async (token: string): Promise<string> => {
    const r = await h.agent(token, 'POST', '/v1/creds/mem/reader', {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    h.sensitive.add(String(r.body.data.password));
    return r.body.lease_id as string;
  };
  const rootLease = await issue(root.token);
  const aLease = await issue(a.token);
  const bLease = await issue(b.token);
  const notFound = async (p: Promise<{ status: number; body: any }>): Promise<void> => refusedWith(p, 404, 'TESSERA_LEASE_NOT_FOUND');
  await notFound(h.agent(a.token, 'POST', `/v1/leases/${rootLease}/renew`, {}));
  await notFound(h.agent(a.token, 'DELETE', `/v1/leases/${bLease}`));
  assert.equal((await h.agent(a.token, 'POST', `/v1/leases/${aLease}/renew`, {})).status, 200);
  assert.equal((await h.agent(root.token, 'POST', `/v1/leases/${bLease}/renew`, {})).status, 200, 'a task reaches the leases below it');
  assert.equal((await h.agent(a.token, 'DELETE', `/v1/leases/${aLease}`)).status, 200);
  assert.equal((await h.agent(orch, 'DELETE', `/v1/leases/${rootLease}`)).status, 200, 'the agent itself owns all of them');
});

