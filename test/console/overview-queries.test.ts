/**
 * The overview's statements (ADR 0286), on SQLite and PostgreSQL: the decisions series counts
 * per hour exactly what grouping every event by its hour gives (hour edges, the first hour's
 * start, events before it and after the current hour, every result), and the live-lease count
 * and live list are served by the partial index of migration 386 while leases change state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import type { SqlValue, Store } from '../../src/store/port.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { DECISION_BUCKETS, DECISION_BUCKET_MS, decisionSeries } from '../../src/console/overview.js';
import { liveCounts, liveWindowsTop } from '../../src/exposure/store.js';
import { liveCredentials } from '../../src/exposure/report.js';

const H = DECISION_BUCKET_MS;
const NOW = 1_800_000_000_000 + 17 * 60_000 + 123; // not on an hour
const FIRST = Math.floor(NOW / H) * H - (DECISION_BUCKETS - 1) * H;
const RESULTS = ['allow', 'success', 'deny', 'failure', 'error', null];

/** What the series must be: every event at or after the first hour, by its hour, the hours after the current one left out. */
function reference(events: readonly { ts: number; result: string | null }[]): { allow: number; deny: number }[] {
  const out = Array.from({ length: DECISION_BUCKETS }, () => ({ allow: 0, deny: 0 }));
  for (const e of events) {
    if (e.ts < FIRST) continue;
    const b = out[Math.floor((e.ts - FIRST) / H)];
    if (!b) continue;
    if (e.result === 'deny') b.deny++;
    else if (e.result === 'allow' || e.result === 'success') b.allow++;
  }
  return out;
}

async function seedEvents(store: Store): Promise<{ ts: number; result: string | null }[]> {
  const events: { ts: number; result: string | null }[] = [];
  // Each hour edge and its neighbours, the first hour's start, before it, the current instant, the hours after it.
  const edges = Array.from({ length: DECISION_BUCKETS + 3 }, (_, i) => FIRST + (i - 1) * H);
  for (const edge of edges) for (const d of [-1, 0, 1]) for (const result of RESULTS) events.push({ ts: edge + d, result });
  for (let i = 0; i < 3000; i++) events.push({ ts: FIRST - 2 * H + ((i * 7_919_113) % (28 * H)), result: RESULTS[i % RESULTS.length]! });
  events.push({ ts: NOW, result: 'deny' }, { ts: NOW, result: 'allow' });
  const rows: SqlValue[][] = events.map((e, i) => [i + 1, e.ts, 'policy.decision', 'spiffe://t/a', null, '{}', 'p', 'h', e.result]);
  await store.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += 500) {
      const part = rows.slice(i, i + 500);
      await tx.run(`INSERT INTO audit_events (seq, ts, kind, actor, txn, body, prev_hash, hash, result) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, part.flat());
    }
  });
  return events;
}

/** The statements on `leases` that `fn` runs on `store`. */
async function leaseStatements(store: Store, fn: () => Promise<unknown>): Promise<{ sql: string; params: readonly SqlValue[] }[]> {
  const seen: { sql: string; params: readonly SqlValue[] }[] = [];
  const { all, get } = store;
  store.all = ((sql: string, params: readonly SqlValue[] = []) => (seen.push({ sql, params }), all.call(store, sql, params))) as Store['all'];
  store.get = ((sql: string, params: readonly SqlValue[] = []) => (seen.push({ sql, params }), get.call(store, sql, params))) as Store['get'];
  try {
    await fn();
  } finally {
    delete (store as Partial<Store>).all;
    delete (store as Partial<Store>).get;
    if (store.all !== all) Object.assign(store, { all, get });
  }
  return seen.filter((s) => /\bleases\b/.test(s.sql));
}

async function planOf(store: Store, sql: string, params: SqlValue[]): Promise<string> {
  if (store.dialect === 'sqlite') return (await store.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, params)).map((r) => r.detail).join('\n');
  return store.transaction(async (tx) => {
    await tx.run('SET LOCAL enable_seqscan = off');
    return (await tx.all<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).map((r) => r['QUERY PLAN']).join('\n');
  });
}

async function checkLiveLeases(store: Store): Promise<void> {
  const states = ['active', 'pending', 'revoking', 'revoked', 'disabled', 'irrevocable', 'active'];
  const causes = [null, 'create_failed', 'abandoned_intent', 'expired', null];
  const leases: SqlValue[][] = Array.from({ length: 350 }, (_, i) => [`lease_${String(i).padStart(4, '0')}`, 'mem', 'reader', `mem/reader/${i}`, 'spiffe://t/a', null, null, states[i % 7]!, '{}', NOW - 60_000, NOW + (i % 9) * 1500 - 3000, NOW + H, states[i % 7] === 'revoked' ? NOW - 1000 : null, causes[i % 5]!]);
  await store.run(`INSERT INTO leases (id, engine, role, path, owner_agent, task_id, user_id, state, engine_data, created_at, expires_at, max_expires_at, revoked_at, revoke_cause) VALUES ${leases.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, leases.flat());
  if (store.dialect === 'postgres') await store.run('ANALYZE leases');
  const expected = async () => {
    // The same set, read without the index (an expression on every column of its WHERE).
    const rows = await store.all<{ id: string; state: string; revoke_cause: string | null; expires_at: number }>(`SELECT id, state, revoke_cause, expires_at FROM leases WHERE expires_at + 0 > -1`);
    return rows.filter((r) => ['active', 'revoking', 'disabled', 'irrevocable'].includes(r.state) && !['create_failed', 'abandoned_intent'].includes(r.revoke_cause ?? ''));
  };
  for (let round = 0; round < 3; round++) {
    const live = await expected();
    assert.ok(live.length > 50 && live.length < 350, `round ${round}: ${live.length} live`);
    assert.equal((await liveCounts(store, NOW)).lease, live.length, `round ${round}: live count`);
    const top = await liveWindowsTop(store, NOW, 'lease', 1000, 1000);
    assert.equal(top.total, live.length);
    assert.deepEqual(top.windows.map((w) => w.id).sort(), live.map((r) => r.id).sort(), `round ${round}: the live list`);
    // The report's order: whole seconds remaining (0 past expiry), then id; a short list takes the first ones.
    const rem = (e: number) => (e > NOW ? Math.floor((e - NOW) / 1000) : 0);
    const ordered = live.sort((a, b) => rem(b.expires_at) - rem(a.expires_at) || (a.id < b.id ? -1 : 1)).map((r) => r.id);
    assert.deepEqual(top.windows.map((w) => w.id), ordered, `round ${round}: order`);
    assert.deepEqual(liveCredentials(top.windows, NOW).map((c) => c.id), ordered);
    const first = await liveWindowsTop(store, NOW, 'lease', 25, 1000);
    assert.deepEqual(first.windows.map((w) => w.id), ordered.slice(0, 25), `round ${round}: the first 25`);
    // Leases change state: entries enter and leave the partial index.
    await store.run(`UPDATE leases SET state = 'revoked', revoked_at = ? WHERE id IN (SELECT id FROM leases WHERE state = 'active' ORDER BY id LIMIT 20)`, [NOW]);
    await store.run(`UPDATE leases SET state = 'active', revoke_cause = NULL WHERE id IN (SELECT id FROM leases WHERE state = 'pending' ORDER BY id LIMIT 10)`);
    await store.run(`UPDATE leases SET revoke_cause = 'create_failed' WHERE id IN (SELECT id FROM leases WHERE state = 'revoking' AND revoke_cause IS NULL ORDER BY id LIMIT 5)`);
  }
  const statements = await leaseStatements(store, () => Promise.all([liveCounts(store, NOW), liveWindowsTop(store, NOW, 'lease', 1000, 1000)]));
  assert.equal(statements.length, 3, statements.map((s) => s.sql).join('\n'));
  for (const s of statements) assert.match(await planOf(store, s.sql, [...s.params]), /leases_live/, `the live leases' index serves: ${s.sql}`);
}

async function check(store: Store): Promise<void> {
  await store.migrate();
  const events = await seedEvents(store);
  const series = await decisionSeries(store, NOW);
  assert.equal(series.length, DECISION_BUCKETS);
  assert.deepEqual(series.map((b) => b.t), Array.from({ length: DECISION_BUCKETS }, (_, i) => new Date(FIRST + i * H).toISOString()));
  assert.deepEqual(series.map((b) => ({ allow: b.allow, deny: b.deny })), reference(events));
  assert.ok(series.every((b) => b.allow > 0 && b.deny > 0), 'every hour has events');
  await checkLiveLeases(store);
}

test('overview statements — SQLite', async () => {
  const store = openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'tessera-overview-sql-')), 'db.sqlite') });
  try {
    await check(store);
  } finally {
    await store.close();
  }
});

test('overview statements — PostgreSQL', async () => {
  const db = await createTestDatabase('overview_sql');
  const store = openPostgresStore({ url: db.url });
  try {
    await check(store);
  } finally {
    await store.close();
    await db.drop();
  }
});
