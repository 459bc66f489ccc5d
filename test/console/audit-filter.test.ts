/**
 * The audit page's filter (console/src/lib/audit-filter.ts): the same filter gives the same
 * rows whether the events arrive live (the shared stream, filtered in the browser) or come from
 * a reload (GET /v1/admin/audit with the filter's parameters, the server filtering). The
 * server's rules are replayed here over one event log (src/audit/query.ts: exact actor, exact
 * kind, exact result, the task and its subtree by task_ancestors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TaskSubtree, auditListParams, flattenAuditEntry, matchesAuditFilter, mergeNewestFirst, normaliseFilter,
  type AuditFilter, type FlatAuditEvent,
} from '../../console/src/lib/audit-filter.js';

// A task tree: t_root → t_a → t_a1, t_root → t_b; t_other is another tree.
const parentOf: Record<string, string | undefined> = { t_root: undefined, t_a: 't_root', t_a1: 't_a', t_b: 't_root', t_other: undefined };
const rootOf: Record<string, string> = { t_root: 't_root', t_a: 't_root', t_a1: 't_root', t_b: 't_root', t_other: 't_other' };

let seq = 0;
function ev(kind: string, actor: string, result: string, txn?: string, extra: Partial<FlatAuditEvent> = {}): FlatAuditEvent {
  seq++;
  const details = kind === 'task.created' && txn ? { root: rootOf[txn], ...(parentOf[txn] ? { parent: parentOf[txn] } : {}) } : {};
  return { seq, kind, actor: { id: actor }, action: 'x', result, ...(txn ? { txn } : {}), details, ...extra };
}

const A = 'spiffe://ex.org/a';
const B = 'spiffe://ex.org/b';
const LOG: FlatAuditEvent[] = [
  ev('auth.login', A, 'success'),
  ev('task.created', A, 'success', 't_root'),
  ev('policy.decision', A, 'allow', 't_root'),
  ev('task.created', A, 'success', 't_a'),
  ev('policy.decision', B, 'deny', 't_a'),
  ev('task.created', B, 'success', 't_other'),
  ev('task.created', B, 'success', 't_a1'),
  ev('lease.created', B, 'success', 't_a1'),
  ev('lease.revoked', 'admin:adm_1', 'success', 't_a1'),
  ev('task.created', A, 'success', 't_b'),
  ev('policy.decision', A, 'deny', 't_other'),
  ev('secret.read', A, 'failure'),
  ev('lease.revoke_failed', 'system', 'error', 't_b'),
];

/** What the server's list answers for a filter (src/audit/query.ts semantics). */
function serverList(f: AuditFilter): FlatAuditEvent[] {
  const p = auditListParams(f);
  const inSubtree = (txn: string | undefined, task: string): boolean => {
    for (let t = txn; t !== undefined; t = parentOf[t]) if (t === task) return true;
    return false;
  };
  return LOG.filter((e) =>
    (p.actor === undefined || e.actor?.id === p.actor)
    && (p.kind === undefined || e.kind === p.kind)
    && (p.result === undefined || e.result === p.result)
    && (p.task === undefined || inSubtree(e.txn, p.task)),
  );
}

/** What the console shows live: every event of the stream, in order, through the matcher. */
function liveRows(f: AuditFilter): FlatAuditEvent[] {
  const subtree = new TaskSubtree(normaliseFilter(f).task);
  const out: FlatAuditEvent[] = [];
  for (const e of LOG) {
    subtree.learn(e);
    if (matchesAuditFilter(e, f, subtree)) out.push(e);
  }
  return out;
}

/** What the console shows after a reload: the server's rows, narrowed by the same matcher (kind prefixes). */
function reloadRows(f: AuditFilter): FlatAuditEvent[] {
  const subtree = new TaskSubtree(normaliseFilter(f).task);
  const rows = serverList(f);
  for (const r of rows) subtree.add(r.txn);
  return rows.filter((e) => matchesAuditFilter(e, f, subtree));
}

const FILTERS: AuditFilter[] = [
  {},
  { actor: A },
  { actor: B },
  { actor: 'admin:adm_1' },
  { actor: '  ' + A + ' ' },
  { kind: 'policy.decision' },
  { kind: 'lease.' },
  { kind: 'lease' },
  { kind: 'task.created' },
  { result: 'deny' },
  { result: 'success' },
  { result: 'error' },
  { task: 't_root' },
  { task: 't_a' },
  { task: 't_a1' },
  { task: 't_b' },
  { task: 't_other' },
  { task: 't_none' },
  { task: 't_root', kind: 'lease.' },
  { task: 't_a', actor: B, result: 'success' },
  { actor: A, kind: 'policy.decision', result: 'deny' },
  { actor: '', kind: '', task: '', result: '' },
];

test('every filter gives the same rows live as on reload', () => {
  for (const f of FILTERS) {
    const live = liveRows(f).map((e) => e.seq);
    const reload = reloadRows(f).map((e) => e.seq);
    assert.deepEqual(live, reload, `filter ${JSON.stringify(f)}`);
  }
});

test('the filters select what they say', () => {
  assert.deepEqual(liveRows({ task: 't_a' }).map((e) => e.txn), ['t_a', 't_a', 't_a1', 't_a1', 't_a1']);
  assert.deepEqual(liveRows({ task: 't_root' }).map((e) => e.seq), [2, 3, 4, 5, 7, 8, 9, 10, 13]);
  assert.deepEqual(liveRows({ kind: 'lease.' }).map((e) => e.kind), ['lease.created', 'lease.revoked', 'lease.revoke_failed']);
  assert.deepEqual(liveRows({ kind: 'lease' }), [], 'a kind without a trailing dot is exact');
  assert.deepEqual(liveRows({ result: 'deny' }).map((e) => e.seq), [5, 11]);
  assert.equal(liveRows({}).length, LOG.length);
  assert.equal(liveRows({ task: 't_none' }).length, 0);
});

test('a subtree learned from the list keeps matching new events of its tasks', () => {
  const s = new TaskSubtree('t_a');
  s.add('t_a1'); // from the list
  assert.ok(matchesAuditFilter({ seq: 100, kind: 'lease.created', txn: 't_a1' }, { task: 't_a' }, s));
  assert.ok(!matchesAuditFilter({ seq: 101, kind: 'lease.created', txn: 't_b' }, { task: 't_a' }, s));
  assert.ok(!matchesAuditFilter({ seq: 102, kind: 'lease.created' }, { task: 't_a' }, s), 'an event outside any task is not in a task filter');
  const none = new TaskSubtree(undefined);
  none.add('t_x');
  assert.equal(none.size, 0, 'no task filter: nothing is tracked');
});

test('list parameters: trimmed, empty ones dropped, a kind prefix is not sent', () => {
  assert.deepEqual(auditListParams({ actor: ' a ', task: '', kind: 'lease.', result: 'deny' }), { actor: 'a', result: 'deny' });
  assert.deepEqual(auditListParams({ kind: 'lease.created', task: 't_1' }), { task: 't_1', kind: 'lease.created' });
  assert.deepEqual(auditListParams({}), {});
});

test('flattenAuditEntry accepts the stored-entry and the flat shape, refuses junk', () => {
  const stored = flattenAuditEntry({ seq: 7, ts: 1700000000000, prev_hash: 'a', hash: 'b', event: { kind: 'auth.login', actor: { id: A }, result: 'success' } });
  assert.deepEqual(stored, { kind: 'auth.login', actor: { id: A }, result: 'success', seq: 7, ts: 1700000000000 });
  const flat = flattenAuditEntry({ seq: 8, ts: '2026-01-01T00:00:00Z', kind: 'token.issued', result: 'success' });
  assert.equal(flat?.kind, 'token.issued');
  assert.equal(flat?.ts, Date.parse('2026-01-01T00:00:00Z'));
  const broken = flattenAuditEntry({ seq: 9, ts: 1, event: null, problem: 'body_malformed' });
  assert.deepEqual(broken, { seq: 9, ts: 1, problem: 'body_malformed', kind: '(unreadable)' });
  for (const junk of [null, undefined, 3, 'x', [], {}, { seq: 'x' }, { seq: Number.NaN }]) assert.equal(flattenAuditEntry(junk), undefined);
  // the seq of the entry wins over a `seq` inside the event body
  assert.equal(flattenAuditEntry({ seq: 10, event: { seq: 99, kind: 'k' } })?.seq, 10);
});

test('mergeNewestFirst: newest first, no duplicates, bounded', () => {
  const e = (s: number): FlatAuditEvent => ({ seq: s, kind: 'k' });
  const rows = [e(10), e(8), e(5)];
  assert.deepEqual(mergeNewestFirst(rows, [e(12), e(9), e(8), e(11), e(12)], 100).map((r) => r.seq), [12, 11, 10, 9, 8, 5]);
  assert.deepEqual(mergeNewestFirst(rows, [e(12), e(11)], 3).map((r) => r.seq), [12, 11, 10]);
  assert.deepEqual(mergeNewestFirst(rows, [], 2).map((r) => r.seq), [10, 8]);
  const many = Array.from({ length: 5000 }, (_, i) => e(i + 1));
  const merged = mergeNewestFirst([], many, 500);
  assert.equal(merged.length, 500);
  assert.equal(merged[0]!.seq, 5000);
  assert.equal(merged[499]!.seq, 4501);
});
