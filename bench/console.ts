/**
 * Issue 11 "Performance": every console API call behind a page answers in ≤ 50 ms at 10,000
 * leases and 1,000 agents. For each page's call: p50/p99 over HTTP (the whole server, keep-alive,
 * admin token) against the same SQL statements run directly on the store (captured from that
 * very call, then replayed), ratio = HTTP p99 / store p99. The goal is judged on the HTTP p99.
 *
 * FRONT-END ROWS (lead): the console's first load on loopback (goal ≤ 1 s) and the JavaScript
 * bundle size belong in `frontEndRows()` below; `run()` already appends what it returns.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { parseConfig } from '../src/config/index.js';
import { startTessera } from '../src/main.js';
import { silentLogger } from '../src/shared/logger.js';
import { insertTask } from '../src/tasks/store.js';
import type { Row, SqlValue, Store } from '../src/store/port.js';
import { percentile, type BenchResult } from './lib.js';

const AGENTS = 1000;
const LEASES = 10_000;
const SAMPLES = 200;
const WARMUP = 20;
const GOAL_MS = 50;

const agentId = (i: number): string => `spiffe://tessera.local/ns/load/sa/agent-${String(i).padStart(4, '0')}`;
const txnOf = (i: number): string => `task_${String(i).padStart(22, '0')}`;

async function insertRows(tx: { run(sql: string, p: SqlValue[]): Promise<unknown> }, table: string, cols: readonly string[], values: SqlValue[][]): Promise<void> {
  for (let i = 0; i < values.length; i += 500) {
    const part = values.slice(i, i + 500);
    await tx.run(`INSERT INTO ${table} (${cols.join(', ')}) VALUES ${part.map(() => `(${cols.map(() => '?').join(', ')})`).join(', ')}`, part.flat());
  }
}

/** 1,000 agents (one live agent token each), 10,000 leases, 100 task trees of 10 nodes, in one transaction. */
async function seed(store: Store, now: number): Promise<void> {
  const n = (count: number) => Array.from({ length: count }, (_, i) => i);
  await store.transaction(async (tx) => {
    await insertRows(tx, 'agents', ['spiffe_id', 'attestor', 'attributes', 'first_seen', 'last_seen', 'logins'], n(AGENTS).map((i) => [agentId(i), 'join_token', '{}', now - 86_400_000, now - i * 1000, 1]));
    await insertRows(tx, 'exposures', ['id', 'kind', 'agent', 'task', 'root', 'user_id', 'resource', 'issued_at', 'expires_at', 'closed_at', 'closed_by'], n(AGENTS).map((i) => [`jti-${i}`, 'agent_token', agentId(i), null, null, null, null, now - 60_000, now + 3_600_000, null, null]));
    await insertRows(tx, 'leases', ['id', 'engine', 'role', 'path', 'owner_agent', 'task_id', 'user_id', 'state', 'engine_data', 'created_at', 'expires_at', 'max_expires_at'], n(LEASES).map((i) => [`lease_load_${String(i).padStart(5, '0')}`, 'mem', 'reader', `mem/reader/lease_load_${i}`, agentId(i % AGENTS), txnOf(Math.floor(i / 10) % 1000), null, 'active', '{}', now - 600_000 + i, now + 3_600_000, now + 7_200_000]));
    for (let t = 0; t < 1000; t++) {
      const root = txnOf(t - (t % 10));
      const isRoot = t % 10 === 0;
      await insertTask(tx, {
        txn: txnOf(t), parent: isRoot ? null : root, root, depth: isRoot ? 0 : 1, maxDepth: 5, sub: agentId(t % AGENTS), actor: agentId(t % AGENTS), actors: [{ sub: agentId(t % AGENTS) }],
        label: null, user: null, scope: ['secret:team/**'], purpose: 'bench', tctx: {}, audience: ['http://127.0.0.1'], jkt: null, jtiHmac: `jti-task-${t}`, createdAt: now - 300_000 + t, expiresAt: now + 3_600_000,
      }, isRoot ? [] : [root]);
    }
  });
}

function get(agent: http.Agent, base: URL, path: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, path, method: 'GET', agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.end();
  });
}

/** The SELECTs the server runs on `store` during `fn` (statements and parameters). */
async function capture(store: Store, fn: () => Promise<void>): Promise<{ sql: string; params: readonly SqlValue[]; one: boolean }[]> {
  const seen: { sql: string; params: readonly SqlValue[]; one: boolean }[] = [];
  const own = { all: Object.getOwnPropertyDescriptor(store, 'all'), get: Object.getOwnPropertyDescriptor(store, 'get') };
  const all = store.all.bind(store);
  const one = store.get.bind(store);
  store.all = <T extends Row = Row>(sql: string, params: readonly SqlValue[] = []) => (seen.push({ sql, params, one: false }), all<T>(sql, params));
  store.get = <T extends Row = Row>(sql: string, params: readonly SqlValue[] = []) => (seen.push({ sql, params, one: true }), one<T>(sql, params));
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

async function timed(fn: () => Promise<unknown>, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

/** Lead: first load of /ui on loopback (goal ≤ 1 s) and the bundle size go here. */
async function frontEndRows(): Promise<BenchResult[]> {
  return [];
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-console-'));
  const config = parseConfig({ data_dir: dir, server: { listen: '127.0.0.1:0' }, policy: { dir: 'examples/policies', watch: false }, audit: { sinks: [{ kind: 'store' }] }, log: { level: 'silent' } });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger });
  const token = tessera.adminToken!;
  const base = new URL(tessera.localUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results: BenchResult[] = [];
  try {
    const now = Date.now();
    await seed(tessera.store, now);
    // 20,000 audit events (allow/deny decisions over the last hours and other kinds), through the real log.
    for (let b = 0; b < 10; b++) {
      await Promise.all(Array.from({ length: 2000 }, (_, i) => tessera.audit.append({
        kind: 'policy.decision', actor: { id: agentId((b * 2000 + i) % AGENTS) }, action: 'secret.read', resource: 'secret:team/a', result: i % 5 === 0 ? 'deny' : 'allow',
        ...(i % 3 === 0 ? { txn: txnOf(i % 1000) } : {}), details: { principal: agentId(i % AGENTS), cached: false },
      })));
    }
    for (let i = 0; i < 200; i++) {
      const r = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: base.hostname, port: base.port, path: `/v1/admin/secrets/team/s${i}`, method: 'PUT', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ value: `bench-secret-${i}`, rotation_period: i % 2 ? 86_400 : null }));
      });
      if (r !== 200) throw new Error(`secret put: ${r}`);
    }
    await tessera.store.run('ANALYZE');

    const pages: [string, string][] = [
      ['overview', '/v1/admin/overview'],
      ['agents list', '/v1/admin/agents?limit=100'],
      ['agent detail', `/v1/admin/agents/detail?id=${encodeURIComponent(agentId(7))}`],
      ['leases page', '/v1/admin/leases?limit=100'],
      ['tasks list', '/v1/admin/tasks?limit=100'],
      ['task tree', `/v1/admin/tasks/${txnOf(10)}`],
      ['audit page', '/v1/admin/audit?before_seq=9007199254740991&limit=100'],
      ['exposure', '/v1/admin/exposure'],
      ['secrets list', '/v1/admin/secrets?limit=1000'],
    ];
    for (const [name, path] of pages) {
      const first = await get(agent, base, path, token);
      if (first.status !== 200) throw new Error(`${path}: ${first.status} ${first.body.slice(0, 300)}`);
      const statements = await capture(tessera.store, async () => {
        await get(agent, base, path, token);
      });
      const direct = async () => {
        for (const s of statements) await (s.one ? tessera.store.get(s.sql, s.params) : tessera.store.all(s.sql, s.params));
      };
      await timed(() => get(agent, base, path, token), WARMUP);
      await timed(direct, WARMUP);
      const viaHttp: number[] = [];
      const onStore: number[] = [];
      for (let block = 0; block < 4; block++) {
        viaHttp.push(...(await timed(() => get(agent, base, path, token), SAMPLES / 4)));
        onStore.push(...(await timed(direct, SAMPLES / 4)));
      }
      viaHttp.sort((a, b) => a - b);
      onStore.sort((a, b) => a - b);
      const p99 = percentile(viaHttp, 99);
      const storeP99 = percentile(onStore, 99);
      results.push({
        name: `${name}: GET ${path.split('?')[0]} over HTTP, p99 (p50 ${percentile(viaHttp, 50).toFixed(2)} ms; ${statements.length} statements; ${LEASES.toLocaleString('en-US')} leases, ${AGENTS.toLocaleString('en-US')} agents)`,
        value: p99,
        unit: 'ms',
        baseline: { name: `the same statements on the store, p99 (p50 ${percentile(onStore, 50).toFixed(2)} ms)`, value: storeP99, unit: 'ms' },
        ratio: storeP99 > 0 ? p99 / storeP99 : undefined,
        ratioNote: 'HTTP p99 / store p99',
        goal: `≤ ${GOAL_MS} ms`,
        met: p99 <= GOAL_MS,
      });
    }
    results.push(...(await frontEndRows()));
  } finally {
    agent.destroy();
    await tessera.close();
  }
  return results;
}
