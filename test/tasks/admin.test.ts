/**
 * The operator's view of task trees: the store (subtrees, ancestors), the computed state
 * (active / expired / revoked by a task above, an agent of the chain, or the user), listing with
 * filters and paging, `GET /v1/admin/tasks/<txn>` with each node's token HMAC, leases and audit
 * events, `audit tail --txn <root>` over the whole tree, and `tessera task list|tree`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createTaskStore, insertTask, type TaskNode } from '../../src/tasks/store.js';
import { listTasks, taskTree, type TaskViewDeps } from '../../src/tasks/tree.js';
import type { RevocationSubject } from '../../src/shared/revocation.js';
import type { AuditTailQuery } from '../../src/audit/query.js';
import { startHarness } from '../e2e/harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import { ACCESS, ORCH, SUB, openTask, delegate, exchange, policyDir } from './helpers.js';

const T = (n: number): string => `task_${String(n).padStart(22, '0')}`;

function node(txn: string, parent: TaskNode | undefined, over: Partial<TaskNode> = {}): TaskNode {
  return {
    txn, parent: parent?.txn ?? null, root: parent?.root ?? txn, depth: parent ? parent.depth + 1 : 0, maxDepth: 3, sub: ORCH, actor: ORCH,
    actors: [...(parent?.actors ?? []), { sub: ORCH }], label: null, user: null, scope: ['secret:a/**'], purpose: 'p', tctx: {}, audience: ['https://t'],
    jkt: null, jtiHmac: `hmac-${txn}`, createdAt: 1000 + Number(txn.slice(-4)), expiresAt: 100_000, ...over,
  };
}

async function fixture() {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(50_000);
  const revokedTasks = new Set<string>();
  const revokedAgents = new Set<string>();
  const deps: TaskViewDeps = {
    tasks: createTaskStore(store),
    revocations: { isRevoked: (s: RevocationSubject) => [s.task, ...(s.ancestors ?? [])].some((t) => t !== undefined && revokedTasks.has(t)) || [s.spiffeId, ...(s.chain ?? [])].some((a) => revokedAgents.has(a)) },
    leases: { list: async () => [] },
    audit: { tail: async (_q: AuditTailQuery) => ({ events: [], nextSeq: 0 }) },
    leaseView: () => ({}),
    clock,
  };
  // root ─┬─ a ── a1 ── a11
  //       └─ b (expires early)
  const root = node(T(1), undefined);
  const a = node(T(2), root);
  const a1 = node(T(3), a, { actor: SUB, actors: [...a.actors, { sub: SUB }] });
  const a11 = node(T(4), a1, { label: 'leaf' });
  const b = node(T(5), root, { expiresAt: 10_000 });
  const other = node(T(6), undefined, { actor: SUB, sub: SUB });
  for (const n of [root, a, a1, a11, b, other]) {
    const anc: string[] = [];
    for (let p = n; p.parent !== null; ) {
      anc.unshift(p.parent);
      p = [root, a, a1, a11, b, other].find((x) => x.txn === p.parent)!;
    }
    await store.transaction((tx) => insertTask(tx, n, anc));
  }
  return { store, clock, deps, revokedTasks, revokedAgents, nodes: { root, a, a1, a11, b, other } };
}

test('store: subtrees and ancestors from task_ancestors', async () => {
  const f = await fixture();
  const s = f.deps.tasks;
  assert.deepEqual((await s.subtree(T(2), 100)).map((n) => n.txn), [T(2), T(3), T(4)]);
  assert.deepEqual((await s.subtree(T(1), 100)).map((n) => n.txn).sort(), [T(1), T(2), T(3), T(4), T(5)]);
  assert.deepEqual((await s.subtree(T(4), 100)).map((n) => n.txn), [T(4)]);
  assert.deepEqual((await s.subtree(T(9), 100)), []);
  const anc = await s.ancestorsOf([f.nodes.a11, f.nodes.root, f.nodes.b]);
  assert.deepEqual(anc.get(T(4)), [T(1), T(2), T(3)]);
  assert.deepEqual(anc.get(T(1)), []);
  assert.deepEqual(anc.get(T(5)), [T(1)]);
  assert.deepEqual((await s.get(T(4)))?.label, 'leaf');
  await f.store.close();
});

test('state: revoked by a task above or an agent of the chain, else expired or active; list filters and pages', async () => {
  const f = await fixture();
  const states = async (): Promise<Record<string, string>> => Object.fromEntries((await listTasks(f.deps, { limit: 100 })).tasks.map((t) => [t.txn as string, t.state as string]));
  assert.deepEqual(await states(), { [T(1)]: 'active', [T(2)]: 'active', [T(3)]: 'active', [T(4)]: 'active', [T(5)]: 'expired', [T(6)]: 'active' });
  f.revokedTasks.add(T(2));
  assert.deepEqual(await states(), { [T(1)]: 'active', [T(2)]: 'revoked', [T(3)]: 'revoked', [T(4)]: 'revoked', [T(5)]: 'expired', [T(6)]: 'active' });
  f.revokedTasks.clear();
  f.revokedAgents.add(SUB); // acts in a1 (and a11 below it through the chain), and in the other tree
  assert.deepEqual(await states(), { [T(1)]: 'active', [T(2)]: 'active', [T(3)]: 'revoked', [T(4)]: 'revoked', [T(5)]: 'expired', [T(6)]: 'revoked' });

  assert.deepEqual((await listTasks(f.deps, { state: 'revoked', limit: 100 })).tasks.map((t) => t.txn), [T(6), T(4), T(3)]);
  assert.deepEqual((await listTasks(f.deps, { state: 'expired', limit: 100 })).tasks.map((t) => t.txn), [T(5)]);
  assert.deepEqual((await listTasks(f.deps, { rootsOnly: true, limit: 100 })).tasks.map((t) => t.txn), [T(6), T(1)]);
  assert.deepEqual((await listTasks(f.deps, { root: T(1), actor: SUB, limit: 100 })).tasks.map((t) => t.txn), [T(3)]);
  // Paging, newest first.
  const p1 = await listTasks(f.deps, { limit: 2 });
  assert.deepEqual(p1.tasks.map((t) => t.txn), [T(6), T(5)]);
  const [createdAt, txn] = [Number(p1.next!.split('.')[0]), p1.next!.split('.')[1]!];
  const p2 = await listTasks(f.deps, { limit: 10, before: { createdAt, txn } });
  assert.deepEqual(p2.tasks.map((t) => t.txn), [T(4), T(3), T(2), T(1)]);
  assert.equal(p2.next, undefined);
  const tree = await taskTree(f.deps, T(2), { events: false });
  assert.equal(tree!.nodes, 3);
  const kids = (n: any): any[] => n.children;
  assert.equal(kids(tree!.tree)[0].txn, T(3));
  assert.equal(kids(kids(tree!.tree)[0])[0].txn, T(4));
  assert.equal(kids(kids(tree!.tree)[0])[0].state, 'revoked');
  assert.equal(await taskTree(f.deps, T(99), { events: false }), undefined);
  await f.store.close();
});

test('GET /v1/admin/tasks/<txn>: the tree with each node\'s actor, scope, purpose, token HMAC, leases, tool calls and decisions; audit tail --txn covers it', async (t) => {
  const h = await startHarness({ policyDir: policyDir(), engines: [new MemoryEngine('mem')] });
  t.after(() => h.close());
  await h.admin('PUT', '/v1/admin/secrets/team/a', { value: 'admin-tree-value', mode: 'read' });
  h.sensitive.add('admin-tree-value');
  const orch = await h.login(await h.joinToken(ORCH));
  const sub = await h.login(await h.joinToken(SUB));
  const root = await openTask(h, orch, { scope: 'secret:team/** cred:mem/reader', purpose: 'nightly triage' });
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'cred:mem/reader secret:team/a', purpose: 'fetch' });
  const leaf = await delegate(h, child.token, { label: 'reader', scope: 'secret:team/a' });
  assert.equal((await h.agent(leaf.token, 'GET', '/v1/secrets/team/a')).status, 200);
  assert.equal((await h.agent(leaf.token, 'GET', '/v1/secrets/team/b')).status, 403);
  const l = await h.agent(child.token, 'POST', '/v1/creds/mem/reader', {});
  h.sensitive.add(String(l.body.data.password));
  assert.equal((await exchange(h, { subject_token: child.token, label: 'greedy', scope: 'secret:team/**' })).status, 400);

  const r = await h.admin('GET', `/v1/admin/tasks/${root.txn}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.nodes, 3);
  const top = r.body.task;
  assert.equal(top.txn, root.txn);
  assert.equal(top.actor, ORCH);
  assert.equal(top.purpose, 'nightly triage');
  assert.equal(top.state, 'active');
  assert.match(top.tokens[0].jti_hmac, /^[0-9a-f]{64}$/);
  const c = top.children[0];
  assert.equal(c.actor, SUB);
  assert.deepEqual(c.actors, [{ sub: ORCH }, { sub: SUB }]);
  assert.deepEqual(c.scope, ['cred:mem/reader', 'secret:team/a']);
  assert.equal(c.leases.length, 1);
  assert.equal(c.leases[0].lease_id, l.body.lease_id);
  assert.ok(c.events.some((e: any) => e.kind === 'task.refused' && e.reason.code === 'TESSERA_TASK_SCOPE_WIDENED'));
  const leafView = c.children[0];
  assert.equal(leafView.label, 'reader');
  assert.deepEqual(leafView.events.filter((e: any) => e.kind === 'secret.read').map((e: any) => e.result), ['success', 'deny']);
  assert.ok(!JSON.stringify(r.body).includes(leaf.token.split('.')[2]!), 'no token in the view');
  assert.equal((await h.admin('GET', `/v1/admin/tasks/${root.txn}?events=false`)).body.task.events, undefined);

  assert.equal((await h.admin('GET', '/v1/admin/tasks/task_nope00000000000000000')).body.error.code, 'TESSERA_TASK_NOT_FOUND');
  assert.equal((await h.admin('GET', '/v1/admin/tasks/not-a-task-id')).body.error.code, 'TESSERA_TASK_NOT_FOUND');
  assert.equal((await h.admin('GET', '/v1/admin/tasks?state=bogus')).body.error.code, 'TESSERA_REQUEST_INVALID');
  assert.equal((await h.admin('GET', '/v1/admin/tasks?root=x')).body.error.code, 'TESSERA_REQUEST_INVALID');
  assert.equal((await h.agent(orch, 'GET', '/v1/admin/tasks')).body.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  const list = await h.admin('GET', `/v1/admin/tasks?root=${root.txn}`);
  assert.deepEqual(list.body.tasks.map((x: any) => x.txn).sort(), [root.txn, child.txn, leaf.txn].sort());

  // The audit API (and `tessera audit tail --txn`): the root's id brings the whole tree's events.
  const tail = await h.admin('GET', `/v1/admin/audit?txn=${root.txn}&limit=1000`);
  const txns = new Set(tail.body.events.map((e: any) => e.event.txn));
  assert.deepEqual([...txns].sort(), [root.txn, child.txn, leaf.txn].sort());
  const leafOnly = await h.admin('GET', `/v1/admin/audit?txn=${leaf.txn}&limit=1000`);
  assert.deepEqual([...new Set(leafOnly.body.events.map((e: any) => e.event.txn))], [leaf.txn]);

  // The CLI, against the real server.
  let stdout = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stdout += s) }, env: { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.adminToken } };
  const runtime = {} as Runtime;
  assert.equal(await runCli(['task', 'tree', root.txn], runtime, io), 0, stdout);
  const lines = stdout.split('\n');
  assert.match(lines[0]!, new RegExp(`^${root.txn}  ${ORCH}  \\[active\\]  depth 0/3`));
  assert.ok(lines.some((x) => x.startsWith(`└─ ${child.txn}  ${SUB}  [active]  depth 1/3`)), stdout);
  assert.ok(lines.some((x) => x.startsWith(`   └─ ${leaf.txn}  ${SUB} (sub-agent reader)  [active]  depth 2/3`)), stdout);
  assert.ok(stdout.includes('task.refused task deny TESSERA_TASK_SCOPE_WIDENED'));
  stdout = '';
  assert.equal(await runCli(['task', 'list', '--root', root.txn, '--json'], runtime, io), 0, stdout);
  assert.equal(JSON.parse(stdout).tasks.length, 3);
  stdout = '';
  assert.equal(await runCli(['task', 'tree', 'nope'], runtime, io), 2, 'a malformed id is a usage error');
  stdout = '';
  assert.equal(await runCli(['audit', 'tail', '--txn', root.txn, '-n', '100', '--json'], runtime, io), 0, stdout);
  const tailed = stdout.trim().split('\n').map((x) => JSON.parse(x));
  assert.deepEqual([...new Set(tailed.map((e) => e.event.txn))].sort(), [root.txn, child.txn, leaf.txn].sort());
});
