/**
 * The console's read API (docs/console-api.md) over real HTTP against the whole server
 * (src/main.ts): overview, agents list and detail with the kill-switch preview, lease pages and
 * the operator renew, audit filters and backward pages, secrets' rotation state, and the exact
 * refusal of every bad query parameter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { ACCESS, ORCH, SUB, openTask, delegate, policyDir } from '../tasks/helpers.js';

const code = (r: { body: any }): string | undefined => r.body?.error?.code;

/** Waits (bounded) until the agents inventory holds `id` (it is written in batches, every second). */
async function seen(h: Harness, id: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await h.admin('GET', `/v1/admin/agents?q=${encodeURIComponent(id)}`);
    if ((r.body.agents as any[]).some((a) => a.spiffe_id === id)) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.fail(`agent ${id} never appeared in GET /v1/admin/agents`);
}

async function world(t: { after: (fn: () => Promise<void>) => void }) {
  const engine = new MemoryEngine('mem', { reader: { defaultTtlMs: 60_000, maxTtlMs: 300_000, renewable: true } });
  const h = await startHarness({ policyDir: policyDir(), engines: [engine] });
  t.after(() => h.close());
  const orch = await h.login(await h.joinToken(ORCH));
  const sub = await h.login(await h.joinToken(SUB));
  const root = await openTask(h, orch, { scope: 'secret:team/** cred:mem/reader', purpose: 'nightly triage' });
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'cred:mem/reader secret:team/a', purpose: 'fetch' });
  const lease = await h.agent(orch, 'POST', '/v1/creds/mem/reader', {});
  assert.equal(lease.status, 201, JSON.stringify(lease.body));
  h.sensitive.add(String(lease.body.data.password));
  const childLease = await h.agent(child.token, 'POST', '/v1/creds/mem/reader', {});
  assert.equal(childLease.status, 201, JSON.stringify(childLease.body));
  h.sensitive.add(String(childLease.body.data.password));
  // A refused read: a `deny` decision of the orchestrator.
  assert.equal((await h.agent(orch, 'GET', '/v1/secrets/other/x')).status, 403);
  await seen(h, ORCH);
  await seen(h, SUB);
  return { h, engine, orch, sub, root, child, leaseId: lease.body.lease_id as string, childLeaseId: childLease.body.lease_id as string };
}

test('GET /v1/admin/overview answers the contract\'s shape from the owning services', async (t) => {
  const { h } = await world(t);
  const r = await h.admin('GET', '/v1/admin/overview');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const o = r.body;
  assert.deepEqual(Object.keys(o).sort(), ['agents', 'audit', 'decisions', 'engines', 'exposure', 'live', 'policy', 'version'].sort());
  assert.equal(o.agents.total, 2);
  assert.equal(o.agents.seen_24h, 2);
  assert.equal(o.live.agent_tokens, 2);
  assert.equal(o.live.task_tokens, 2);
  assert.equal(o.live.leases, 2);
  assert.equal(o.live.mcp_sessions, 0);
  assert.equal(o.live.console_sessions, 0);
  assert.equal(o.decisions.bucket_s, 3600);
  assert.equal(o.decisions.series.length, 24);
  const last = o.decisions.series[23];
  assert.ok(Date.parse(last.t) <= Date.now() && Date.now() - Date.parse(last.t) < 3_600_000, 'the last bucket is the current hour');
  const allow = o.decisions.series.reduce((n: number, b: any) => n + b.allow, 0);
  const deny = o.decisions.series.reduce((n: number, b: any) => n + b.deny, 0);
  // The same events the audit page finds with its result filter.
  const denies = await h.admin('GET', '/v1/admin/audit?result=deny&limit=1000');
  const allows = await h.admin('GET', '/v1/admin/audit?result=allow&limit=1000');
  const successes = await h.admin('GET', '/v1/admin/audit?result=success&limit=1000');
  assert.equal(deny, denies.body.events.length);
  assert.equal(allow, allows.body.events.length + successes.body.events.length, 'allowed = results allow + success');
  assert.ok(successes.body.events.length >= 1, 'permitted actions recorded as success are counted');
  assert.ok(deny >= 1);
  const kinds = new Map<string, any>(o.exposure.kinds.map((k: any) => [k.kind, k]));
  assert.equal(kinds.get('lease')?.live, 2);
  for (const k of o.exposure.kinds) for (const f of ['live', 'p50_s', 'p95_s', 'max_s']) assert.equal(typeof k[f], 'number');
  const head = await h.admin('GET', '/v1/admin/audit?before_seq=9007199254740991&limit=1');
  assert.ok(o.audit.head_seq >= 1 && o.audit.head_seq <= head.body.events[0].seq);
  assert.equal(o.audit.last_verify, null);
  assert.equal(typeof o.policy.policies, 'number');
  assert.ok(o.policy.policies > 0);
  assert.equal(o.policy.errors, 0);
  assert.ok(Date.parse(o.policy.loaded_at) > 0);
  assert.deepEqual(o.engines, []);
  assert.match(o.version, /^\d+\.\d+\.\d+/);

  // After a verification, its outcome.
  const v = await h.admin('POST', '/v1/admin/audit/verify', { full: true, wait: true });
  assert.equal(v.status, 200);
  const after = await h.admin('GET', '/v1/admin/overview');
  assert.equal(after.body.audit.last_verify.ok, true);
  assert.equal(after.body.audit.last_verify.checked, v.body.job.result.checked);
  assert.equal(after.body.audit.last_verify.at, v.body.job.finished_at);
});

test('GET /v1/admin/agents: search, pages, live credentials and revoked; bad parameters are refused with what to send', async (t) => {
  const { h } = await world(t);
  const all = await h.admin('GET', '/v1/admin/agents');
  assert.equal(all.status, 200);
  assert.equal(all.body.next_cursor, null);
  const byId = new Map<string, any>(all.body.agents.map((a: any) => [a.spiffe_id, a]));
  // The orchestrator: its agent token, its root task token, its lease. The sub-agent: its agent
  // token, the child task token (it acts in it), the child's lease (issued to it).
  assert.equal(byId.get(ORCH).live_credentials, 3);
  assert.equal(byId.get(SUB).live_credentials, 3);
  assert.equal(byId.get(ORCH).revoked, false);
  for (const f of ['attestor', 'attributes', 'first_seen', 'last_seen', 'logins']) assert.ok(f in byId.get(ORCH), f);

  // Case-insensitive substring; LIKE wildcards are literal.
  assert.deepEqual((await h.admin('GET', '/v1/admin/agents?q=ORCHESTR')).body.agents.map((a: any) => a.spiffe_id), [ORCH]);
  assert.deepEqual((await h.admin('GET', '/v1/admin/agents?q=%25')).body.agents, []);
  assert.deepEqual((await h.admin('GET', '/v1/admin/agents?q=_')).body.agents, []);

  // One per page: two pages, then none.
  const p1 = await h.admin('GET', '/v1/admin/agents?limit=1');
  assert.equal(p1.body.agents.length, 1);
  assert.equal(typeof p1.body.next_cursor, 'string');
  const p2 = await h.admin('GET', `/v1/admin/agents?limit=1&cursor=${p1.body.next_cursor}`);
  assert.equal(p2.body.agents.length, 1);
  assert.notEqual(p2.body.agents[0].spiffe_id, p1.body.agents[0].spiffe_id);
  // The last page says so: no next_cursor.
  assert.equal(p2.body.next_cursor, null);

  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: SUB })).status, 201);
  const after = await h.admin('GET', `/v1/admin/agents?q=summarizer`);
  assert.equal(after.body.agents[0].revoked, true);
  assert.equal(after.body.agents[0].live_credentials, 0);

  for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=1.5', 'limit=-1', 'cursor=!!', 'cursor=bm90LWpzb24', `cursor=${Buffer.from('[1]').toString('base64url')}`, `cursor=${Buffer.from('["x","y"]').toString('base64url')}`, 'q=', 'bogus=1', 'limit=1&limit=2']) {
    const r = await h.admin('GET', `/v1/admin/agents?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(code(r), 'TESSERA_REQUEST_INVALID', q);
  }
  const bad = await h.admin('GET', '/v1/admin/agents?limit=0');
  assert.match(bad.body.error.message, /send a whole number from 1 to 1000/);
  const badCursor = await h.admin('GET', '/v1/admin/agents?cursor=bm90LWpzb24');
  assert.match(badCursor.body.error.message, /send the next_cursor of the previous page/);
});

test('GET /v1/admin/agents/detail: credentials, tasks, decisions, revocations, and a kill_preview equal to what the kill switch then revokes', async (t) => {
  const { h, orch, root, leaseId } = await world(t);
  const d = await h.admin('GET', `/v1/admin/agents/detail?id=${encodeURIComponent(ORCH)}`);
  assert.equal(d.status, 200, JSON.stringify(d.body));
  assert.equal(d.body.agent.spiffe_id, ORCH);
  assert.equal(d.body.agent.live_credentials, 3);
  assert.equal(d.body.agent.revoked, false);
  const kinds = d.body.credentials.map((c: any) => c.kind).sort();
  assert.deepEqual(kinds, ['agent_token', 'lease', 'task_token']);
  for (const c of d.body.credentials) {
    assert.ok(c.ttl_s > 0 && c.ttl_s <= 3600, JSON.stringify(c));
    assert.ok(Date.parse(c.expires_at) > Date.now());
  }
  assert.equal(d.body.credentials.find((c: any) => c.kind === 'lease').id, leaseId);
  assert.equal(d.body.credentials.find((c: any) => c.kind === 'task_token').detail, root.txn);
  assert.deepEqual(d.body.tasks.map((x: any) => x.txn), [root.txn]);
  assert.ok(d.body.decisions.length >= 1);
  assert.ok(d.body.decisions.every((e: any) => e.event.actor.id === ORCH && ['allow', 'deny'].includes(e.event.result)));
  assert.ok(d.body.decisions.some((e: any) => e.event.result === 'deny'));
  // Newest first.
  const seqs = d.body.decisions.map((e: any) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a: number, b: number) => b - a));
  assert.deepEqual(d.body.revocations, []);
  // The orchestrator's agent token, its root task and the child delegated below it (task tokens:
  // both acting in its subtree), both leases (its own, and the child's is owned by the sub-agent).
  assert.deepEqual(d.body.kill_preview, { agent_tokens: 1, task_tokens: 2, leases: 1, tasks: 2 });
  // The kill switch's dry run answers the same, and records nothing.
  const dry = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: ORCH, dry_run: true });
  assert.equal(dry.status, 200);
  assert.deepEqual(dry.body.would_revoke, d.body.kill_preview);
  assert.deepEqual((await h.admin('GET', '/v1/admin/revocations')).body.revocations, []);

  const kill = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: ORCH });
  assert.equal(kill.status, 201);
  assert.equal(kill.body.leases_revoked + kill.body.leases_retrying + kill.body.leases_disabled + kill.body.leases_irrevocable, d.body.kill_preview.leases);
  // What the preview counted is what the revocation closed: nothing of it is live any more.
  const exposure = await h.admin('GET', '/v1/admin/exposure?by=agent');
  const live = exposure.body.live.filter((c: any) => c.kind !== 'lease');
  assert.equal(live.filter((c: any) => c.agent === ORCH).length, 0);
  assert.equal((await h.agent(orch, 'GET', '/v1/whoami')).status, 401);
  const after = await h.admin('GET', `/v1/admin/agents/detail?id=${encodeURIComponent(ORCH)}`);
  assert.deepEqual(after.body.kill_preview, { agent_tokens: 0, task_tokens: 0, leases: 0, tasks: 0 });
  assert.equal(after.body.agent.revoked, true);
  assert.equal(after.body.revocations.length, 1);
  assert.equal(after.body.revocations[0].active, true);
  assert.equal(after.body.credentials.length, 0);

  const unknown = await h.admin('GET', `/v1/admin/agents/detail?id=${encodeURIComponent('spiffe://tessera.local/ns/x/sa/nobody')}`);
  assert.equal(unknown.status, 404);
  assert.equal(code(unknown), 'TESSERA_AGENT_NOT_FOUND');
  for (const q of ['', 'id=', 'id=not-a-spiffe-id', 'id=spiffe%3A%2F%2FUPPER.case%2Fx', 'id=a&id=b', 'other=1']) {
    const r = await h.admin('GET', `/v1/admin/agents/detail?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(code(r), 'TESSERA_REQUEST_INVALID', q);
  }
});

test('GET /v1/admin/leases pages with cursors and carries ttl_s; POST /v1/admin/leases/:id/renew follows the agent renew\'s rules and is audited', async (t) => {
  const { h, engine, leaseId, childLeaseId } = await world(t);
  const all = await h.admin('GET', '/v1/admin/leases');
  assert.equal(all.body.leases.length, 2);
  assert.equal(all.body.next_cursor, null);
  for (const l of all.body.leases) assert.ok(l.ttl_s > 0 && l.ttl_s <= 60, JSON.stringify(l));
  const p1 = await h.admin('GET', '/v1/admin/leases?limit=1');
  const p2 = await h.admin('GET', `/v1/admin/leases?limit=1&cursor=${p1.body.next_cursor}`);
  assert.deepEqual([...p1.body.leases, ...p2.body.leases].map((l: any) => l.lease_id).sort(), [leaseId, childLeaseId].sort());
  assert.equal(p2.body.next_cursor, null);
  for (const q of ['limit=0', 'limit=10001', 'limit=x', 'cursor=%25%25', 'cursor=WzEsMl0']) {
    const r = await h.admin('GET', `/v1/admin/leases?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(code(r), 'TESSERA_REQUEST_INVALID', q);
  }

  const before = all.body.leases.find((l: any) => l.lease_id === leaseId);
  const renewed = await h.admin('POST', `/v1/admin/leases/${leaseId}/renew`, { increment: '120s' });
  assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
  assert.equal(renewed.body.lease_id, leaseId);
  assert.ok(Date.parse(renewed.body.expires_at) > Date.parse(before.expires_at));
  assert.equal(renewed.body.renewable, true);
  assert.ok(engine.calls.renew >= 1);
  const ev = await h.admin('GET', '/v1/admin/audit?kind=lease.renewed&limit=10');
  assert.equal(ev.body.events.length, 1);
  assert.match(ev.body.events[0].event.actor.id, /^admin:/);
  // Same rules: capped at the max TTL; then not renewable; unknown and revoked leases refused.
  const capped = await h.admin('POST', `/v1/admin/leases/${leaseId}/renew`, { increment: '1h' });
  assert.equal(capped.status, 200);
  assert.equal(capped.body.renewable, false);
  const atCap = await h.admin('POST', `/v1/admin/leases/${leaseId}/renew`, {});
  assert.equal(atCap.status, 400, JSON.stringify(atCap.body));
  assert.equal(code(atCap), 'TESSERA_LEASE_NOT_RENEWABLE');
  const missing = await h.admin('POST', '/v1/admin/leases/lease_nope/renew', {});
  assert.equal(missing.status, 404);
  assert.equal(code(missing), 'TESSERA_LEASE_NOT_FOUND');
  assert.equal((await h.admin('DELETE', `/v1/admin/leases/${childLeaseId}`)).status, 200);
  const gone = await h.admin('POST', `/v1/admin/leases/${childLeaseId}/renew`, {});
  assert.equal(code(gone), 'TESSERA_LEASE_EXPIRED');
  const badInc = await h.admin('POST', `/v1/admin/leases/${leaseId}/renew`, { increment: 'soon' });
  assert.equal(code(badInc), 'TESSERA_LEASE_TTL_INVALID');
  const extra = await h.admin('POST', `/v1/admin/leases/${leaseId}/renew`, { increment: 10, other: 1 });
  assert.equal(code(extra), 'TESSERA_REQUEST_INVALID');
  const badId = await h.admin('POST', '/v1/admin/leases/bad%20id/renew', {});
  assert.equal(code(badId), 'TESSERA_REQUEST_INVALID');
});

test('GET /v1/admin/audit: result and task filters, newest-first pages with before_seq', async (t) => {
  const { h, root, child } = await world(t);
  const denies = await h.admin('GET', '/v1/admin/audit?result=deny');
  assert.ok(denies.body.events.length >= 1);
  assert.ok(denies.body.events.every((e: any) => e.event.result === 'deny'));
  const tree = await h.admin('GET', `/v1/admin/audit?task=${root.txn}`);
  const txns = new Set(tree.body.events.map((e: any) => e.event.txn));
  assert.ok(txns.has(root.txn) && txns.has(child.txn), [...txns].join(','));
  assert.deepEqual(tree.body.events, (await h.admin('GET', `/v1/admin/audit?txn=${root.txn}`)).body.events);

  // Backwards, 3 at a time, until nothing older: every event exactly once, newest first.
  const forward = (await h.admin('GET', '/v1/admin/audit?limit=1000')).body.events.map((e: any) => e.seq);
  const seen: number[] = [];
  let before = forward[forward.length - 1] + 1;
  for (let i = 0; i < 1000; i++) {
    const page = await h.admin('GET', `/v1/admin/audit?before_seq=${before}&limit=3`);
    assert.equal(page.status, 200);
    seen.push(...page.body.events.map((e: any) => e.seq));
    if (page.body.next_before_seq === null) break;
    before = page.body.next_before_seq;
  }
  assert.deepEqual(seen, [...forward].reverse());

  for (const q of ['result=maybe', 'before_seq=0', 'before_seq=-3', 'before_seq=x', 'before_seq=99999999999999999', 'before_seq=5&after_seq=1', `task=${root.txn}&txn=${child.txn}`, 'limit=0', 'limit=1001']) {
    const r = await h.admin('GET', `/v1/admin/audit?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(code(r), 'TESSERA_REQUEST_INVALID', q);
  }
  assert.match((await h.admin('GET', '/v1/admin/audit?result=maybe')).body.error.message, /send one of success, failure, allow, deny, error/);
});

test('GET /v1/admin/secrets: rotation_due_at and rotation_overdue', async (t) => {
  const clock = new ManualClock(Date.now());
  const h = await startHarness({ clock });
  t.after(() => h.close());
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/team/rotating', { value: 'rotating-value-1', rotation_period: 3600 })).status, 200);
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/team/static', { value: 'static-value-1' })).status, 200);
  h.sensitive.add('rotating-value-1');
  h.sensitive.add('static-value-1');
  const list = async () => new Map<string, any>(((r) => { assert.equal(r.status, 200, JSON.stringify(r.body)); return r.body; })(await h.admin('GET', '/v1/admin/secrets?prefix=team')).secrets.map((s: any) => [s.path, s]));
  let by = await list();
  assert.equal(by.get('team/rotating').rotation_due_at, clock.now() + 3_600_000);
  assert.equal(by.get('team/rotating').rotation_overdue, false);
  assert.equal(by.get('team/static').rotation_due_at, null);
  assert.equal(by.get('team/static').rotation_overdue, false);
  clock.advance(3_600_000);
  by = await list();
  assert.equal(by.get('team/rotating').rotation_overdue, true);
  assert.equal(by.get('team/static').rotation_overdue, false);
  // A new version is a rotation: due again one period later.
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/team/rotating', { value: 'rotating-value-2' })).status, 200);
  h.sensitive.add('rotating-value-2');
  by = await list();
  assert.equal(by.get('team/rotating').rotation_overdue, false);
  assert.ok(!JSON.stringify([...by.values()]).includes('value-'));
});
