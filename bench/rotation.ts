/**
 * Rotating 1,000 due secrets (issue 13, Performance: ≤ 10 s on this machine) with the `manual`
 * rotator (alerts only) and the `http` rotator against a local key service on 127.0.0.1 (create
 * call, sealed intent, new kv version with its audit event, state row), through the rotation
 * job's pass (src/rotation/service.ts) on a SQLite file store with the real audit log.
 * Baseline, same run: the same number of plain `kv put`s (one new version each, same store and
 * audit log). Bounded: N secrets, one pass each.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { createAuditLog } from '../src/audit/index.js';
import { createKvService } from '../src/secrets/kv.js';
import { createKeySealer } from '../src/secrets/sealer.js';
import { createRotationService, rotationConfigSchema } from '../src/rotation/index.js';
import { ManualClock } from '../src/shared/clock.js';
import { silentLogger } from '../src/shared/logger.js';
import type { BenchResult } from './lib.js';

const N = 1000;
const GOAL_MS = 10_000;
const ctx = { actor: { id: 'admin:bench' } };

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-rotation-'));
  let n = 0;
  const keys = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ value: `k-${++n}-${randomBytes(8).toString('hex')}`, id: `kid-${n}` }));
    });
  });
  await new Promise<void>((r) => keys.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(keys.address() as { port: number }).port}/keys`;
  try {
    const store = openSqliteStore({ file: join(dir, 'tessera.db') });
    await store.migrate();
    const clock = new ManualClock(Date.now());
    const sealer = createKeySealer(randomBytes(32), 'mk_bench');
    const audit = await createAuditLog({ store, clock, sealer, replicaId: 'r1', logger: silentLogger, checkpointEveryEvents: 1000 });
    const kv = createKvService({ store, sealer, clock, audit });
    const config = rotationConfigSchema.parse({ max_concurrency: 8, http_rotators: { keys: { url, auth_secret: 'ops/auth', allow_private: ['127.0.0.1/32'] } } });
    const rotation = createRotationService({ store, kv, sealer, clock, audit, logger: silentLogger, config, singleProcess: true });
    await kv.put('ops/auth', 'bench-auth-credential', undefined, ctx);

    // Baseline: N plain puts (a new version each).
    for (let i = 0; i < N; i++) await kv.put(`base/s${i}`, 'v1', undefined, ctx);
    let t = performance.now();
    for (let i = 0; i < N; i++) await kv.put(`base/s${i}`, `v2-${i}`, undefined, ctx);
    const putsMs = performance.now() - t;

    const results: BenchResult[] = [];
    for (const kind of ['manual', 'http'] as const) {
      for (let i = 0; i < N; i++) await kv.put(`${kind}/s${i}`, 'v1', { rotationPeriodMs: kind === 'manual' ? 3_600_000 : 7_200_000, rotator: JSON.stringify(kind === 'http' ? { kind, endpoint: 'keys' } : { kind }) }, ctx);
    }
    clock.advance(3_600_000);
    // manual: the pass alerts each due secret once (audit event + state row).
    t = performance.now();
    const manualPass = await rotation.pass();
    const manualMs = performance.now() - t;
    if (manualPass.alerted !== N || manualPass.rotated !== 0) throw new Error(`manual: ${JSON.stringify(manualPass)}`);
    // http: due an hour later; the pass rotates every http secret (the manual ones are alerted already).
    clock.advance(3_600_000);
    t = performance.now();
    const httpPass = await rotation.pass();
    const httpMs = performance.now() - t;
    if (httpPass.rotated !== N || httpPass.failed !== 0) throw new Error(`http: ${JSON.stringify(httpPass)}`);
    await rotation.stop();
    await audit.close();
    await store.close();
    const baseline = { name: `${N} plain kv puts (new version + audit event)`, value: Math.round(putsMs), unit: 'ms' };
    results.push({ name: `${N} due secrets, manual rotator (one pass: alert + state)`, value: Math.round(manualMs), unit: 'ms', baseline, ratio: manualMs / putsMs, ratioNote: 'time / baseline time', goal: '≤ 10 s', met: manualMs <= GOAL_MS });
    results.push({ name: `${N} due secrets, http rotator on 127.0.0.1 (one pass, concurrency 8)`, value: Math.round(httpMs), unit: 'ms', baseline, ratio: httpMs / putsMs, ratioNote: 'time / baseline time', goal: '≤ 10 s', met: httpMs <= GOAL_MS });
    return results;
  } finally {
    keys.closeAllConnections();
    await new Promise((r) => keys.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}
