import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { systemClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createKeySealer } from '../../src/secrets/sealer.js';
import { createLeaseService } from '../../src/leases/index.js';
import { createPostgresEngine } from '../../src/engines/postgres/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { pgFixture } from './pg-setup.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Opens the store as a restarted server would, and runs recovery (recover = reap + reconcile). */
async function restart(file: string, key: Buffer) {
  const store = openSqliteStore({ file });
  await store.migrate();
  const audit = new MemoryAuditWriter();
  const postgres = createPostgresEngine({ store, sealer: createKeySealer(key, 'crash-key'), clock: systemClock, logger: silentLogger, audit });
  await postgres.start();
  const leases = createLeaseService({ store, clock: systemClock, audit, engines: [postgres.engine] });
  return { store, postgres, leases, close: async () => (await postgres.stop(), await store.close()) };
}

/** Runs the child until it has issued at least `minIssued` (then waits a random extra delay) and kills it with SIGKILL. */
function runAndKill(file: string, key: Buffer, extraMs: number): Promise<{ lastReported: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'crash-child.ts')], {
      env: { ...process.env, CRASH_STORE: file, CRASH_KEY: key.toString('hex') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let last = 0;
    let armed = false;
    let stderr = '';
    const guard = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      const m = /issued (\d+)\s*$/.exec(d.toString().trim());
      if (m) last = Number(m[1]);
      if (!armed && last >= 10) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), extraMs);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal === 'SIGKILL' && armed) resolve({ lastReported: last });
      else reject(new Error(`child ended unexpectedly (${code ?? signal}): ${stderr.slice(-2000)}`));
    });
  });
}

test('kill -9 during issuance, 5 rounds: zero orphaned users, zero lost leases after recovery', { timeout: 120_000 }, async () => {
  const fx = await pgFixture('pgcrash');
  const prefix = `c${fx.tag}_`;
  const file = join(dir, 'tessera.db');
  const key = randomBytes(32);
  try {
    const setup = await restart(file, key);
    await setup.postgres.configure('crash', { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 8 });
    await setup.postgres.putRole('crash', 'crash-reader', { groups: [fx.group], default_ttl: '10m', max_ttl: '1h' });
    await setup.close();

    let totalIssued = 0;
    for (let round = 1; round <= 5; round++) {
      const { lastReported } = await runAndKill(file, key, Math.floor(Math.random() * 150));
      totalIssued += lastReported;
      const r = await restart(file, key);
      try {
        const result = await r.leases.recover();
        const open = await r.leases.list({ limit: 10_000 });
        assert.equal(open.filter((l) => l.state === 'pending' || l.state === 'revoking').length, 0, `round ${round}: no intent left pending`);
        const users = new Set(await fx.usersWithPrefix(prefix));
        // The engine data names each lease's user; compare both ways.
        const rows = await r.store.all<{ id: string; engine_data: string }>(`SELECT id, engine_data FROM leases WHERE state = 'active'`);
        const leaseUsers = new Set(rows.map((x) => (JSON.parse(x.engine_data) as { username: string }).username));
        const orphans = [...users].filter((u) => !leaseUsers.has(u));
        const lost = [...leaseUsers].filter((u) => !users.has(u));
        assert.deepEqual(orphans, [], `round ${round}: orphaned database users`);
        assert.deepEqual(lost, [], `round ${round}: active leases whose user is gone`);
        console.log(`round ${round}: ${lastReported}+ issued before kill; recovery abandoned=${result.abandoned} orphansDropped=${result.reconciled.orphansDropped} missing=${result.reconciled.missing}; ${users.size} users = ${leaseUsers.size} active leases`);
      } finally {
        await r.close();
      }
    }
    assert.ok(totalIssued >= 50, 'the child really issued credentials before each kill');
    // Clean up every user this test created.
    const r = await restart(file, key);
    await r.leases.revokeByPrefix('postgres/');
    assert.deepEqual(await fx.usersWithPrefix(prefix), []);
    await r.close();
  } finally {
    await fx.drop();
  }
});
