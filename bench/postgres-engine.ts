/**
 * Dynamic PostgreSQL credentials (issue 3). Against ONE throwaway PostgreSQL cluster
 * (test/helpers/postgres.ts: fsync off, loopback), in the same run:
 *  - Tessera issuance through the lease manager (intent in SQLite, CREATE ROLE with a SCRAM
 *    verifier computed in Tessera, activation, audit into memory), 16 in flight;
 *  - a naive issuer: `CREATE ROLE ... LOGIN PASSWORD '<plain>' IN ROLE <group>` with default
 *    settings (the server hashes the password with scram_iterations = 4096), same concurrency,
 *    same pool size;
 *  - revocation of 10,000 leases: the engine's batched `revokeMany` (one transaction per 500
 *    users), and the lease manager's per-lease path (`revokeByPrefix`) for comparison.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { systemClock } from '../src/shared/clock.js';
import { silentLogger } from '../src/shared/logger.js';
import { createKeySealer } from '../src/secrets/sealer.js';
import { createLeaseService } from '../src/leases/index.js';
import { createPostgresEngine } from '../src/engines/postgres/index.js';
import { MemoryAuditWriter } from '../src/audit/port.js';
import { startPostgres, withDatabase } from '../test/helpers/postgres.js';
import { percentile, type BenchResult } from './lib.js';
import type { AgentPrincipal } from '../src/shared/principal.js';

const CONCURRENCY = 16;
const POOL = 8;

/** Runs `fn` with `concurrency` in flight for `ms` (bounded by maxOps); ops/s and sorted latencies in µs. */
async function load(fn: (i: number) => Promise<unknown>, ms: number, maxOps: number, concurrency = CONCURRENCY): Promise<{ opsPerSec: number; lat: number[] }> {
  const lat: number[] = [];
  let started = 0;
  const t0 = performance.now();
  const deadline = t0 + ms;
  async function worker(): Promise<void> {
    while (performance.now() < deadline && started < maxOps) {
      const i = started++;
      const t = process.hrtime.bigint();
      await fn(i);
      lat.push(Number(process.hrtime.bigint() - t) / 1000);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - t0;
  return { opsPerSec: (lat.length / elapsed) * 1000, lat: lat.sort((a, b) => a - b) };
}

export async function run(): Promise<BenchResult[]> {
  const cluster = await startPostgres();
  const results: BenchResult[] = [];
  const su = new pg.Client({ connectionString: withDatabase(cluster.adminUrl, 'tessera') });
  await su.connect();
  try {
    const mgmtPassword = randomBytes(16).toString('hex');
    await su.query(`CREATE ROLE bench_mgmt LOGIN CREATEROLE PASSWORD '${mgmtPassword}'`);
    await su.query(`GRANT pg_signal_backend TO bench_mgmt`);
    await su.query(`CREATE ROLE bench_reader NOLOGIN`);
    await su.query(`CREATE TABLE patients (id int PRIMARY KEY, name text)`);
    await su.query(`GRANT USAGE ON SCHEMA public TO bench_reader`);
    await su.query(`GRANT SELECT ON patients TO bench_reader`);
    const mgmt = new URL(withDatabase(cluster.adminUrl, 'tessera'));
    mgmt.username = 'bench_mgmt';
    mgmt.password = mgmtPassword;

    const store = openSqliteStore({ file: ':memory:' });
    await store.migrate();
    const audit = new MemoryAuditWriter();
    const engine = createPostgresEngine({ store, sealer: createKeySealer(randomBytes(32), 'bench'), clock: systemClock, logger: silentLogger, audit });
    await engine.start();
    await engine.configure('bench', { connection_url: mgmt.toString(), username_prefix: 'tsrb_', pool_size: POOL });
    await engine.putRole('bench', 'patient-reader', { groups: ['bench_reader'], default_ttl: '1h', max_ttl: '2h' });
    const leases = createLeaseService({ store, clock: systemClock, audit, engines: [engine.engine] });
    const agent: AgentPrincipal = { spiffeId: 'spiffe://bench.example/ns/healthcare/sa/patient-reader', trustDomain: 'bench.example', path: '/ns/healthcare/sa/patient-reader', attributes: {}, jti: 'j', expiresAt: Date.now() + 86_400_000 };
    const issue = () => leases.issue({ engine: 'postgres', role: 'patient-reader', principal: agent });

    // Warm-up (pool connections, JIT).
    for (let i = 0; i < 50; i++) await issue();

    const tessera = await load(issue, 4000, 20_000);

    // Naive issuer: same server, same pool size and concurrency, server-side hashing (default settings).
    const naivePool = new pg.Pool({ connectionString: mgmt.toString(), max: POOL });
    const naiveTag = randomBytes(3).toString('hex');
    const naive = await load(async (i) => {
      const password = randomBytes(32).toString('base64url');
      await naivePool.query(`CREATE ROLE "naive_${naiveTag}_${i}" LOGIN PASSWORD '${password}' IN ROLE bench_reader`);
    }, 4000, 20_000);
    const naiveRoles = await su.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'naive_%'`);
    for (let i = 0; i < naiveRoles.rows.length; i += 500) {
      await su.query(`DROP ROLE ${naiveRoles.rows.slice(i, i + 500).map((r) => `"${r.rolname}"`).join(', ')}`);
    }
    await naivePool.end();

    const ratio = tessera.opsPerSec / naive.opsPerSec;
    results.push({
      name: `postgres engine: issuance through the lease manager (SCRAM verifier computed in Tessera, ${CONCURRENCY} in flight, pool ${POOL})`,
      value: Math.round(tessera.opsPerSec),
      unit: 'ops/s',
      baseline: { name: "naive CREATE ROLE ... PASSWORD '<plain>' (server hashes, 4096 iterations)", value: Math.round(naive.opsPerSec), unit: 'ops/s' },
      ratio: Number(ratio.toFixed(2)),
      goal: '≥ 1,000 issuances/s on 2 cores and ≥ 10× naive',
      met: tessera.opsPerSec >= 1000 && ratio >= 10,
    });
    results.push({
      name: 'postgres engine: issuance latency p50 (under load)',
      value: Math.round(percentile(tessera.lat, 50)),
      unit: 'µs',
      baseline: { name: 'naive issuer p50', value: Math.round(percentile(naive.lat, 50)), unit: 'µs' },
      ratio: Number((percentile(naive.lat, 50) / percentile(tessera.lat, 50)).toFixed(2)),
      ratioNote: 'naive / tessera (higher is better)',
    });
    results.push({
      name: 'postgres engine: issuance latency p99 (under load)',
      value: Math.round(percentile(tessera.lat, 99)),
      unit: 'µs',
      baseline: { name: 'naive issuer p99', value: Math.round(percentile(naive.lat, 99)), unit: 'µs' },
      ratio: Number((percentile(naive.lat, 99) / percentile(tessera.lat, 99)).toFixed(2)),
      ratioNote: 'naive / tessera (higher is better)',
    });

    // --- revocation of 10,000 leases ---------------------------------------------------
    await leases.revokeByPrefix('postgres/');
    const N = 10_000;
    const fill = async (): Promise<void> => {
      await load(issue, 120_000, N);
    };
    await fill();
    const open = await store.all<{ engine_data: string }>(`SELECT engine_data FROM leases WHERE state = 'active'`);
    const t0 = performance.now();
    const { failed } = await engine.engine.revokeMany(open.map((r) => JSON.parse(r.engine_data) as Record<string, string>));
    const batchedMs = performance.now() - t0;
    const left = await su.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE 'tsrb\\_%'`);
    // Close the leases (their users are gone; revoke is idempotent), timing the lease manager's per-lease path.
    const t1 = performance.now();
    await leases.revokeByPrefix('postgres/');
    const managerAfterBatchMs = performance.now() - t1;
    // The lease manager's own path on live users: 2,000 leases revoked one by one (scaled to 10k below).
    const M = 2000;
    await load(issue, 60_000, M);
    const t2 = performance.now();
    const counts = await leases.revokeByPrefix('postgres/');
    const perLeaseMs = performance.now() - t2;
    results.push({
      name: `postgres engine: revoke ${open.length} leases, batched (revokeMany: DROP ROLE of 500 users per transaction + terminate sessions)`,
      value: Math.round(batchedMs),
      unit: 'ms',
      goal: '10,000 revocations ≤ 10 s',
      met: open.length >= N && batchedMs <= 10_000 && failed.length === 0 && left.rows[0]!.n === 0,
    });
    results.push({
      name: `postgres engine: lease manager revokeByPrefix, one engine call per lease (${counts.revoked} live users; ×${(N / M).toFixed(0)} ≈ 10k)`,
      value: Math.round(perLeaseMs * (N / M)),
      unit: 'ms',
      baseline: { name: 'same path when the users were already dropped in batch (store + audit only, 10k)', value: Math.round(managerAfterBatchMs), unit: 'ms' },
      goal: '10,000 revocations ≤ 10 s',
      met: perLeaseMs * (N / M) <= 10_000,
    });
    await engine.stop();
    await store.close();
  } finally {
    await su.end().catch(() => undefined);
    await cluster.stop();
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await run();
  for (const r of out) console.log(JSON.stringify(r));
}
