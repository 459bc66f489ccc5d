/**
 * Revoking a task tree (DESIGN.md "Task tree"): every token below the task is refused from the
 * request after the call returns (their `anc` claim names it: no store access per request), the
 * leases issued anywhere below it are dropped, gateway sessions using them are closed, and other
 * replicas enforce it too (PostgreSQL LISTEN/NOTIFY).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { ACCESS, ORCH, SUB, openTask, delegate, policyDir } from './helpers.js';

async function lease(h: Harness, token: string): Promise<string> {
  const r = await h.agent(token, 'POST', '/v1/creds/mem/reader', {});
  assert.equal(r.status, 201, JSON.stringify(r.body));
  h.sensitive.add(String(r.body.data.password));
  return r.body.lease_id as string;
}

test('revoke task: the subtree\'s tokens and leases, not the parent\'s nor a sibling\'s', async (t) => {
  const engine = new MemoryEngine('mem');
  const h = await startHarness({ policyDir: policyDir(), engines: [engine] });
  t.after(() => h.close());
  const orch = await h.login(await h.joinToken(ORCH));
  const sub = await h.login(await h.joinToken(SUB));
  const root = await openTask(h, orch, { scope: 'cred:mem/reader secret:team/**' });
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'cred:mem/reader' });
  const grandchild = await delegate(h, child.token, { label: 'worker', scope: 'cred:mem/reader' });
  const sibling = await delegate(h, root.token, { label: 'sibling', scope: 'cred:mem/reader' });
  const ids = { root: await lease(h, root.token), child: await lease(h, child.token), grandchild: await lease(h, grandchild.token), sibling: await lease(h, sibling.token) };

  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: child.txn, reason: 'runaway sub-agent' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  assert.equal(rev.body.leases_revoked, 2, 'the child\'s and the grandchild\'s leases');
  const state = async (id: string): Promise<string> => (await h.admin('GET', '/v1/admin/leases?limit=100')).body.leases.find((l: any) => l.lease_id === id).state;
  assert.equal(await state(ids.child), 'revoked');
  assert.equal(await state(ids.grandchild), 'revoked');
  assert.equal(await state(ids.root), 'active');
  assert.equal(await state(ids.sibling), 'active');
  for (const tok of [child.token, grandchild.token]) assert.equal((await h.agent(tok, 'GET', '/v1/whoami')).body.error.code, 'TESSERA_TOKEN_REVOKED');
  for (const tok of [root.token, sibling.token]) assert.equal((await h.agent(tok, 'GET', '/v1/whoami')).status, 200);

  // Revoking the root takes the rest, and a lease issued under the tree is found however deep.
  const all = await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn });
  assert.equal(all.body.leases_revoked, 2);
  assert.equal(await state(ids.sibling), 'revoked');
  await h.tessera.audit.flush();
  const leaseEvents = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'lease.revoked'");
  const causes = leaseEvents.map((r) => JSON.parse(r.body).details.cause);
  assert.equal(causes.filter((c: string) => c === 'task_revoked').length, 4);
});

test('refusal at once: no request sent after the revoke call returns is accepted, at any depth', async (t) => {
  const h = await startHarness({ policyDir: policyDir() });
  t.after(() => h.close());
  const orch = await h.login(await h.joinToken(ORCH));
  const root = await openTask(h, orch);
  let parent = root.token;
  const tokens: string[] = [];
  for (let i = 0; i < 3; i++) {
    parent = (await delegate(h, parent, { label: `level-${i}`, scope: 'secret:team/**' })).token;
    tokens.push(parent);
  }
  const mark: { revokedAt?: number } = {};
  const acceptedAfter: string[] = [];
  // Bounded request loops running while the revocation happens.
  const loop = async (token: string): Promise<void> => {
    let refusals = 0;
    for (let i = 0; i < 400 && refusals < 3; i++) {
      const sent = performance.now();
      const r = await h.agent(token, 'GET', '/v1/whoami');
      if (mark.revokedAt !== undefined && sent > mark.revokedAt && r.status === 200) acceptedAfter.push(`${r.status} at depth of ${token.slice(-6)}`);
      if (r.status === 401) refusals++;
    }
  };
  const loops = tokens.map(loop);
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn });
  mark.revokedAt = performance.now();
  assert.equal(rev.status, 201);
  await Promise.all(loops);
  assert.deepEqual(acceptedAfter, []);
  for (const tok of tokens) assert.equal((await h.agent(tok, 'GET', '/v1/whoami')).body.error.code, 'TESSERA_TOKEN_REVOKED');
});

test('a gateway session opened with a task token is closed when its task tree is revoked', async (t) => {
  const h = await startHarness({ policyDir: policyDir() });
  t.after(() => h.close());
  const agent = await h.login(await h.joinToken(ORCH), `${h.url}/mcp`);
  const root = await openTask(h, agent, { scope: 'tool:docs/*' });
  const child = await delegate(h, root.token, { label: 'mcp-user', scope: 'tool:docs/*' });
  const init = await fetch(`${h.url}/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${child.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
  });
  assert.equal(init.status, 200, await init.text());
  const sid = init.headers.get('mcp-session-id');
  assert.ok(sid);
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn })).status, 201);
  // The session is closed by the revocation hook (asynchronously): wait for its event, bounded.
  let closed: any;
  for (let i = 0; i < 100 && !closed; i++) {
    await h.tessera.audit.flush();
    const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.session_closed' AND txn = ?", [child.txn]);
    closed = rows.map((r) => JSON.parse(r.body)).find((e) => e.details.cause === 'revoked');
    if (!closed) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(closed, 'gateway.session_closed (revoked) recorded for the child task');
  const after = await fetch(`${h.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${child.token}`, 'mcp-session-id': sid, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) });
  assert.equal(after.status, 401);
});

test('two replicas on PostgreSQL: a task tree revoked on one is refused on the other', async (t) => {
  const db = await createTestDatabase('tasks_replicas');
  t.after(() => db.drop());
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 9).toString('base64');
  const dir = policyDir();
  const config = (replica: string) => ({
    server: { listen: '127.0.0.1:0', public_url: 'https://tessera.test' },
    replica_id: replica,
    store: { kind: 'postgres', url: db.url },
    master_key: { env: 'TESSERA_TEST_MASTER_KEY' },
  });
  const rootToken = 'tsr_admin_task-replicas-share-one-root-token';
  // Both replicas are dev mode on one database: they share one --root-token (each dev start
  // would otherwise revoke the other's dev token, docs/operators.md).
  const a = await startHarness({ config: config('replica-a'), policyDir: dir, rootToken });
  t.after(() => a.close());
  const b = await startHarness({ config: config('replica-b'), policyDir: dir, rootToken });
  t.after(() => b.close());
  // One public URL (issuer) for both; each is reached at its own address.
  const orch = await a.login(await a.joinToken(ORCH), 'https://tessera.test');
  const root = await openTask(a, orch);
  const child = await delegate(b, root.token, { label: 'on-b', scope: 'secret:team/**' });
  assert.equal((await b.agent(child.token, 'GET', '/v1/whoami')).status, 200);
  assert.equal((await a.admin('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn })).status, 201);
  assert.equal((await a.agent(child.token, 'GET', '/v1/whoami')).status, 401, 'at once on the replica that revoked');
  let refusedOnB = false;
  for (let i = 0; i < 100 && !refusedOnB; i++) {
    const r = await b.agent(child.token, 'GET', '/v1/whoami');
    refusedOnB = r.status === 401 && r.body.error.code === 'TESSERA_TOKEN_REVOKED';
    if (!refusedOnB) await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(refusedOnB, 'replica b refuses the revoked tree once the notification arrives');
});
