/**
 * The console's pure helpers (console/src/lib): the task-tree layout adapter over d3-hierarchy,
 * the subtree counts the "Revoke this subtree" confirmation states, the decision chart's scales
 * and its text alternative, and the kill-switch sentence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NODE, actorShort, clip, scopeText, findNode, layoutTaskTree, subtreeCounts, type TaskNodeJson } from '../../console/src/lib/task-tree.js';
import { decisionChart, hourLabel, niceCeil, summarizeDecisions } from '../../console/src/lib/bar-chart.js';
import { describeKill, describeSubtree } from '../../console/src/lib/describe.js';

let n = 0;
function node(over: Partial<TaskNodeJson> = {}, children: TaskNodeJson[] = []): TaskNodeJson {
  n++;
  return {
    txn: `task_${String(n).padStart(22, '0')}`,
    parent: null,
    root: 'task_root',
    depth: 0,
    max_depth: 3,
    state: 'active',
    sub: 'spiffe://example.org/a',
    actor: 'spiffe://example.org/ns/ops/sa/orchestrator',
    label: null,
    user: null,
    scope: ['secret:team/**'],
    purpose: 'triage',
    created_at: '2026-01-01T00:00:00Z',
    expires_at: '2026-01-01T00:10:00Z',
    tokens: [{ jti_hmac: 'x', issued_at: '2026-01-01T00:00:00Z', expires_at: '2026-01-01T00:10:00Z' }],
    leases: [],
    children,
    ...over,
  };
}

function overlaps(a: { x: number; y: number }, b: { x: number; y: number }): boolean {
  return a.x < b.x + NODE.width && b.x < a.x + NODE.width && a.y < b.y + NODE.height && b.y < a.y + NODE.height;
}

test('layout: every node placed inside the drawing, no two boxes overlap, children right of their parent', () => {
  const root = node({}, [node({ depth: 1 }, [node({ depth: 2 }), node({ depth: 2 })]), node({ depth: 1 }), node({ depth: 1 }, [node({ depth: 2 }, [node({ depth: 3 })])])]);
  const l = layoutTaskTree(root);
  assert.equal(l.nodes.length, 8);
  assert.equal(l.edges.length, 7);
  assert.equal(l.nodes[0]!.node, root, 'pre-order: the root first');
  for (const p of l.nodes) {
    assert.ok(p.x >= NODE.margin && p.y >= NODE.margin, 'inside the margin');
    assert.ok(p.x + NODE.width <= l.width && p.y + NODE.height <= l.height, `${p.node.txn} inside ${l.width}x${l.height}`);
    assert.equal(p.x, NODE.margin + p.node.depth * (NODE.width + NODE.levelGap), 'x follows the depth');
  }
  for (let i = 0; i < l.nodes.length; i++) for (let j = i + 1; j < l.nodes.length; j++) assert.ok(!overlaps(l.nodes[i]!, l.nodes[j]!), `nodes ${i} and ${j} overlap`);
  for (const e of l.edges) assert.match(e.d, /^M[0-9.]+,[0-9.]+ C/);
});

test('layout: a single node, and a flat tree of 200 children stays one column wide and grows down', () => {
  const one = layoutTaskTree(node());
  assert.deepEqual([one.nodes.length, one.edges.length], [1, 0]);
  assert.equal(one.width, NODE.width + 2 * NODE.margin);
  assert.equal(one.height, NODE.height + 2 * NODE.margin);
  const kids = Array.from({ length: 200 }, () => node({ depth: 1 }));
  const wide = layoutTaskTree(node({}, kids));
  assert.equal(wide.nodes.length, 201);
  assert.equal(wide.width, 2 * NODE.width + NODE.levelGap + 2 * NODE.margin);
  assert.equal(wide.height, 199 * (NODE.height + NODE.siblingGap) + NODE.height + 2 * NODE.margin);
  assert.equal(new Set(wide.nodes.map((p) => p.y)).size, 201, 'every child on its own row');
});

test('layout: siblings drawn oldest first (then by txn), top to bottom, whatever the API order', () => {
  const late = node({ depth: 1, created_at: '2026-01-01T00:00:05Z' });
  const early = node({ depth: 1, created_at: '2026-01-01T00:00:01Z' });
  const sameB = node({ depth: 1, created_at: '2026-01-01T00:00:03Z', txn: 'task_b' });
  const sameA = node({ depth: 1, created_at: '2026-01-01T00:00:03Z', txn: 'task_a' });
  const l = layoutTaskTree(node({}, [late, sameB, early, sameA]));
  const kids = l.nodes.slice(1);
  assert.deepEqual(kids.map((p) => p.node), [early, sameA, sameB, late], 'pre-order follows the sibling order');
  for (let i = 1; i < kids.length; i++) assert.ok(kids[i]!.y > kids[i - 1]!.y, 'each next sibling lower');
});

test('subtree counts: active tasks and their tokens, live leases only; expired and revoked tasks only in total', () => {
  const lease = (state: string) => ({ lease_id: `lease_${state}`, engine: 'pg', role: 'ro', state, expires_at: null });
  const sub = node({ depth: 1, leases: [lease('active'), lease('revoked'), lease('disabled'), lease('pending')] }, [
    node({ depth: 2, state: 'expired', leases: [lease('revoked')] }),
    node({ depth: 2, state: 'revoked' }),
    node({ depth: 2, leases: [lease('revoking')] }),
  ]);
  const root = node({}, [sub, node({ depth: 1, leases: [lease('active')] })]);
  assert.deepEqual(subtreeCounts(sub), { tasks: 2, tokens: 2, leases: 3, total: 4 });
  assert.deepEqual(subtreeCounts(root), { tasks: 4, tokens: 4, leases: 4, total: 6 });
  assert.equal(findNode(root, sub.txn), sub);
  assert.equal(findNode(root, 'task_nope'), undefined);
  assert.equal(describeSubtree(subtreeCounts(sub)), '2 active tasks, 2 task tokens, 3 leases');
  assert.equal(describeSubtree({ tasks: 1, tokens: 1, leases: 0 }), '1 active task, 1 task token, 0 leases');
});

test('node text: short actor names, scope lists as one line, clipping', () => {
  assert.equal(actorShort({ actor: 'spiffe://example.org/ns/ops/sa/orchestrator', label: null }), 'orchestrator');
  assert.equal(actorShort({ actor: 'spiffe://example.org/ns/ops/sa/orchestrator', label: 'reader' }), 'orchestrator (reader)');
  assert.equal(scopeText(['secret:team/**', 'tool:records/*']), 'secret:team/** tool:records/*');
  assert.equal(scopeText('secret:a/**'), 'secret:a/**');
  assert.equal(scopeText(undefined), '');
  assert.equal(clip('abcdef', 10), 'abcdef');
  assert.equal(clip('abcdefghijk', 5), 'abcd…');
});

test('chart: nice maximum, bars scaled within the plot, zero series draws nothing above the axis', () => {
  assert.deepEqual([0, 1, 3, 7, 10, 11, 99, 101, 4000].map(niceCeil), [1, 1, 5, 10, 10, 20, 100, 200, 5000]);
  const series = [
    { t: '2026-01-01T00:00:00Z', allow: 40, deny: 3 },
    { t: '2026-01-01T01:00:00Z', allow: 0, deny: 0 },
    { t: '2026-01-01T02:00:00Z', allow: 12, deny: 17 },
  ];
  const m = decisionChart(series, { width: 300, height: 120, left: 40, bottom: 20, top: 0, right: 0 });
  assert.equal(m.max, 50);
  assert.deepEqual(m.plot, { x: 40, y: 0, width: 260, height: 100 });
  assert.deepEqual(m.ticks.map((t) => [t.value, t.y]), [[0, 100], [25, 50], [50, 0]]);
  assert.equal(m.groups[0]!.allow.height, 80);
  assert.equal(m.groups[0]!.allow.y, 20);
  assert.equal(m.groups[1]!.deny.height, 0);
  for (const g of m.groups) {
    for (const b of [g.allow, g.deny]) {
      assert.ok(b.x >= m.plot.x && b.x + b.width <= m.plot.x + m.plot.width + 1e-9, 'inside the plot');
      assert.ok(b.y >= m.plot.y && b.y + b.height <= m.plot.y + m.plot.height + 1e-9);
    }
    assert.ok(g.deny.x >= g.allow.x + g.allow.width - 1e-9, 'denied bar right of the allowed one');
  }
  const empty = decisionChart([]);
  assert.deepEqual([empty.max, empty.groups.length], [1, 0]);
});

test('chart summary: totals, denial rate and the worst hour; no decisions says so', () => {
  assert.equal(
    summarizeDecisions([{ t: '2026-01-01T00:00:00Z', allow: 40, deny: 3 }, { t: '2026-01-01T02:00:00Z', allow: 12, deny: 17 }], 24),
    'Last 24 h: 52 allowed, 20 denied (27.8% denied); most denials (17) in the hour from 02:00 UTC.',
  );
  assert.equal(summarizeDecisions([], 24), 'Last 24 h: 0 allowed, 0 denied.');
  assert.equal(hourLabel('not a time'), 'not a time');
});

test('kill switch sentence names every count, singular and plural', () => {
  assert.equal(describeKill({ agent_tokens: 3, task_tokens: 2, leases: 4, tasks: 1 }), '3 agent tokens, 2 task tokens, 4 leases, 1 task');
  assert.equal(describeKill({ agent_tokens: 1, task_tokens: 0, leases: 1, tasks: 0 }), '1 agent token, 0 task tokens, 1 lease, 0 tasks');
});

test('audit events: stored rows and flat events read alike; ts in ms becomes RFC 3339; kind prefixes match both', async () => {
  const { flatEvent, kindIn } = await import('../../console/src/lib/events.js');
  const row = { seq: 7, ts: Date.UTC(2026, 0, 1, 12), prev_hash: 'a', hash: 'b', event: { kind: 'revocation.created', result: 'success', actor: { id: 'admin:adm_1' }, txn: 'task_x' } };
  const flat = { seq: 8, ts: '2026-01-01T12:00:00.000Z', kind: 'task.created', result: 'success' };
  assert.deepEqual(
    { ...flatEvent(row) },
    { kind: 'revocation.created', result: 'success', actor: { id: 'admin:adm_1' }, txn: 'task_x', seq: 7, ts: '2026-01-01T12:00:00.000Z' },
  );
  assert.equal(flatEvent(flat).kind, 'task.created');
  assert.equal(flatEvent(flat).ts, '2026-01-01T12:00:00.000Z');
  for (const bad of [null, undefined, 42, 'x', [], { seq: 1 }, { event: null }]) assert.equal(flatEvent(bad).kind, '', `no kind from ${JSON.stringify(bad)}`);
  const m = kindIn(['revocation.', 'task.']);
  assert.deepEqual([m(row), m(flat), m({ event: { kind: 'auth.login' } }), m(null), m({})], [true, true, false, false, false]);
});
