/**
 * The console's read API at the issue's sizes — 10,000 leases and 1,000 agents — over real
 * HTTP, on SQLite and PostgreSQL: walking every page returns every row exactly once, counts
 * agree between the pages and the overview, and every query those pages run is served by an
 * index (SQLite: no plain table scan; PostgreSQL: with sequential scans disabled the planner
 * still finds a plan without one, i.e. an index exists for it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';
import type { Row, SqlValue, Store } from '../../src/store/port.js';

export const AGENTS = 1000;
export const LEASES = 10_000;

/** Seeds agents, one open agent-token window each, and leases (ties in created_at on purpose), in one transaction. */
export async function seed(store: Store, now: number): Promise<void> {
  const rows = <T>(n: number, f: (i: number) => T[]): T[][] => Array.from({ length: n }, (_, i) => f(i));
  const insert = async (tx: { run(sql: string, p: SqlValue[]): Promise<unknown> }, table: string, cols: string[], values: SqlValue[][]) => {
    for (let i = 0; i < values.length; i += 500) {
      const part = values.slice(i, i + 500);
      await tx.run(`INSERT INTO ${table} (${cols.join(', ')}) VALUES ${part.map(() => `(${cols.map(() => '?').join(', ')})`).join(', ')}`, part.flat());
    }
  };
  const agent = (i: number) => `spiffe://tessera.local/ns/load/sa/agent-${String(i).padStart(4, '0')}`;
  await store.transaction(async (tx) => {
    await insert(tx, 'agents', ['spiffe_id', 'attestor', 'attributes', 'first_seen', 'last_seen', 'logins'],
      // Every 10 agents share a last_seen: pages must break ties by SPIFFE ID.
      rows(AGENTS, (i) => [agent(i), 'join_token', '{}', now - 86_400_000, now - Math.floor(i / 10) * 1000, 1]));
    await insert(tx, 'exposures', ['id', 'kind', 'agent', 'task', 'root', 'user_id', 'resource', 'issued_at', 'expires_at', 'closed_at', 'closed_by'],
      rows(AGENTS, (i) => [`jti-hmac-${i}`, 'agent_token', agent(i), null, null, null, null, now - 60_000, now + 3_600_000, null, null]));
    await insert(tx, 'leases', ['id', 'engine', 'role', 'path', 'owner_agent', 'task_id', 'user_id', 'state', 'engine_data', 'created_at', 'expires_at', 'max_expires_at'],
      // Seven leases per millisecond: ties in created_at are broken by id.
      rows(LEASES, (i) => [`lease_load_${String(i).padStart(5, '0')}`, 'mem', 'reader', `mem/reader/lease_load_${i}`, agent(i % AGENTS), null, null, 'active', '{}', now - 600_000 + Math.floor(i / 7), now + 3_600_000, now + 7_200_000]));
  });
}

/** Captures the SELECTs the server runs on `store` while `fn` runs. */
async function captured(store: Store, fn: () => Promise<void>): Promise<{ sql: string; params: readonly SqlValue[] }[]> {
  const seen: { sql: string; params: readonly SqlValue[] }[] = [];
  const own = { all: Object.getOwnPropertyDescriptor(store, 'all'), get: Object.getOwnPropertyDescriptor(store, 'get') };
  const all = store.all.bind(store);
  const get = store.get.bind(store);
  const note = (sql: string, params: readonly SqlValue[]) => {
    if (/^\s*SELECT/i.test(sql)) seen.push({ sql, params });
  };
  store.all = <T extends Row = Row>(sql: string, params: readonly SqlValue[] = []) => (note(sql, params), all<T>(sql, params));
  store.get = <T extends Row = Row>(sql: string, params: readonly SqlValue[] = []) => (note(sql, params), get<T>(sql, params));
  try {
    await fn();
  } finally {
    for (const k of ['all', 'get'] as const) {
      const d = own[k];
      if (d) Object.defineProperty(store, k, d);
      else delete (store as unknown as Record<string, unknown>)[k];
    }
  }
  return seen;
}

const BIG_TABLES = ['agents', 'leases', 'audit_events', 'exposures', 'tasks'];

async function assertIndexed(store: Store, queries: { sql: string; params: readonly SqlValue[] }[]): Promise<number> {
  let checked = 0;
  for (const q of queries) {
    if (!BIG_TABLES.some((t) => new RegExp(`\\b${t}\\b`).test(q.sql))) continue;
    checked++;
    if (store.dialect === 'sqlite') {
      const plan = await store.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${q.sql}`, q.params);
      for (const p of plan) {
        const m = /^SCAN (\w+)(?: AS \w+)?$/.exec(p.detail);
        assert.ok(!m || !BIG_TABLES.includes(m[1]!), `a full scan of ${m?.[1]} for: ${q.sql}\n${plan.map((x) => x.detail).join('\n')}`);
      }
    } else {
      const plan = await store.transaction(async (tx) => {
        await tx.run('SET LOCAL enable_seqscan = off');
        return tx.all<{ 'QUERY PLAN': string }>(`EXPLAIN ${q.sql}`, q.params);
      });
      const text = plan.map((p) => p['QUERY PLAN']).join('\n');
      const seq = [...text.matchAll(/Seq Scan on (\w+)/g)].map((m) => m[1]!);
      assert.ok(!seq.some((t) => BIG_TABLES.includes(t)), `no index serves: ${q.sql}\n${text}`);
    }
  }
  return checked;
}

async function walk(h: Harness, path: string, key: string, limit: number): Promise<{ rows: any[]; pages: number }> {
  const rows: any[] = [];
  let cursor: string | null = null;
  let pages = 0;
  for (let i = 0; i < 1000; i++) {
    const r = await h.admin('GET', `${path}?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    rows.push(...r.body[key]);
    pages++;
    cursor = r.body.next_cursor;
    if (cursor === null) break;
  }
  return { rows, pages };
}

async function atScale(h: Harness): Promise<void> {
  const store = h.tessera.store;
  await seed(store, Date.now());
  if (store.dialect === 'postgres') await store.run('ANALYZE');

  const queries = await captured(store, async () => {
    const agents = await walk(h, '/v1/admin/agents', 'agents', 100);
    assert.equal(agents.pages, 10);
    const ids = agents.rows.map((a) => a.spiffe_id);
    assert.equal(ids.length, AGENTS);
    assert.equal(new Set(ids).size, AGENTS, 'every agent exactly once');
    // Each agent: its token window and its ten leases.
    assert.ok(agents.rows.every((a) => a.live_credentials === 1 + LEASES / AGENTS), 'live credentials per agent');

    const leases = await walk(h, '/v1/admin/leases', 'leases', 1000);
    assert.equal(leases.pages, 10);
    const leaseIds = leases.rows.map((l) => l.lease_id);
    assert.equal(leaseIds.length, LEASES);
    assert.equal(new Set(leaseIds).size, LEASES, 'every lease exactly once');
    // Newest first, ties by id.
    for (let i = 1; i < leases.rows.length; i++) {
      const a = leases.rows[i - 1];
      const b = leases.rows[i];
      assert.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.lease_id < b.lease_id), `order at ${i}`);
    }

    const search = await walk(h, '/v1/admin/agents', 'agents', 1000);
    assert.equal(search.rows.length, AGENTS);
    const q = await h.admin('GET', '/v1/admin/agents?q=AGENT-09&limit=1000');
    assert.equal(q.body.agents.length, 100);

    const o = await h.admin('GET', '/v1/admin/overview');
    assert.equal(o.status, 200, JSON.stringify(o.body));
    assert.equal(o.body.agents.total, AGENTS);
    assert.equal(o.body.agents.seen_24h, AGENTS);
    assert.equal(o.body.live.leases, LEASES);
    assert.equal(o.body.live.agent_tokens, AGENTS);
    const leaseKind = o.body.exposure.kinds.find((k: any) => k.kind === 'lease');
    assert.equal(leaseKind.live, LEASES);

    const detail = await h.admin('GET', `/v1/admin/agents/detail?id=${encodeURIComponent(ids[0])}`);
    assert.equal(detail.status, 200, JSON.stringify(detail.body));
    assert.deepEqual(detail.body.kill_preview, { agent_tokens: 1, task_tokens: 0, leases: LEASES / AGENTS, tasks: 0 });
    assert.equal(detail.body.credentials.length, 1 + LEASES / AGENTS);

    assert.equal((await h.admin('GET', '/v1/admin/audit?before_seq=9007199254740991&limit=100&result=success')).status, 200);
  });
  const checked = await assertIndexed(store, queries);
  assert.ok(checked >= 20, `only ${checked} queries checked`);
}

test('10,000 leases and 1,000 agents on SQLite: pages walk every row once, counts agree, indexes serve every query', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  await atScale(h);
});

test('10,000 leases and 1,000 agents on PostgreSQL: the same', async (t) => {
  const db = await createTestDatabase('console_scale');
  t.after(() => db.drop());
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 11).toString('base64');
  const h = await startHarness({ config: { store: { kind: 'postgres', url: db.url }, master_key: { env: 'TESSERA_TEST_MASTER_KEY' } } });
  t.after(() => h.close());
  await atScale(h);
});
