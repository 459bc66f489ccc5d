/**
 * Audit append throughput with the hash chain, durable (file-backed SQLite, WAL, every commit
 * fdatasync'ed before it resolves — ADR 0005), many concurrent appenders sharing group commits.
 * Baseline, same run: raw better-sqlite3 inserts of the same rows, one transaction per batch of
 * the same size, no hashing, no signing. Goal (issue): ≥ 10,000 events/s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { createKeySealer } from '../src/secrets/sealer.js';
import { systemClock } from '../src/shared/clock.js';
import { silentLogger } from '../src/shared/logger.js';
import { createAuditLog } from '../src/audit/log.js';
import { makeRecord, GENESIS_HASH } from '../src/audit/chain.js';
import type { AuditEvent } from '../src/audit/events.js';
import { throughput, type BenchResult } from './lib.js';

const CONCURRENCY = 512;
const MS = 2000;
const MAX_OPS = 400_000;

function event(i: number): AuditEvent {
  return {
    kind: 'policy.decision',
    actor: { id: `spiffe://tessera.local/agent/a${i % 50}`, chain: ['user:alice'] },
    action: 'secret.read',
    resource: `secret:db/${i % 100}`,
    result: 'allow',
    reason: { policies: ['p1', 'p2'] },
    txn: `txn-${i % 200}`,
    where: { source: '10.0.0.1', replica: 'r1', requestId: `req-${i}` },
    details: { principal: `a${i % 50}`, cached: true },
  };
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-audit-'));
  try {
    const store = openSqliteStore({ file: join(dir, 'audit.db') });
    await store.migrate();
    const log = await createAuditLog({ store, clock: systemClock, sealer: createKeySealer(randomBytes(32), 'mk_bench'), replicaId: 'r1', logger: silentLogger, checkpointEveryEvents: 1000 });
    let i = 0;
    const chained = await throughput(() => log.append(event(i++)), { ms: MS, maxOps: MAX_OPS, concurrency: CONCURRENCY });
    const verify = await log.verify();
    await log.close();
    await store.close();
    if (!verify.ok) throw new Error(`bench chain does not verify: ${JSON.stringify(verify.problems.slice(0, 3))}`);

    // Baseline: same rows (precomputed, so no hashing is timed), raw driver, same durability.
    const db = new Database(join(dir, 'raw.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE audit_events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT, txn TEXT, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)');
    db.exec('CREATE INDEX audit_events_actor ON audit_events (actor, seq)');
    db.exec('CREATE INDEX audit_events_txn ON audit_events (txn, seq)');
    const rows = Array.from({ length: CONCURRENCY }, (_, k) => makeRecord(GENESIS_HASH, k + 1, 0, event(k)));
    const insert = db.prepare('INSERT INTO audit_events (seq, ts, kind, actor, txn, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    let seq = 0;
    const batch = db.transaction(() => {
      for (const r of rows) insert.run(++seq, r.ts, r.kind, r.actor, r.txn, r.body, r.prevHash, r.hash);
    });
    const batches = await throughput(() => batch(), { ms: MS, maxOps: Math.ceil(MAX_OPS / CONCURRENCY) });
    db.close();
    const raw = batches * CONCURRENCY;
    return [
      {
        name: `audit append, hash chain + signed head, durable SQLite (every commit fdatasync-ed), ${CONCURRENCY} concurrent appenders (group commit)`,
        value: Math.round(chained),
        unit: 'events/s',
        baseline: { name: `raw better-sqlite3 inserts, ${CONCURRENCY} rows per transaction, no hashing`, value: Math.round(raw), unit: 'events/s' },
        ratio: chained / raw,
        ratioNote: 'chained / raw (higher is better)',
        goal: '≥ 10,000 events/s',
        met: chained >= 10_000,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((r) => console.log(JSON.stringify(r, null, 2)), (e) => {
    console.error(e);
    process.exit(1);
  });
}
