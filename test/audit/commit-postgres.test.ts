/**
 * `audit.commit` on the real PostgreSQL adapter: savepoints contain a failing change, and
 * serialization retries (two replicas, one hot row, SERIALIZABLE — ADR 0003) re-run the changes
 * of a batch without counting any of them twice or losing an event.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import type { Store } from '../../src/store/port.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { makeLog, testSealer } from './setup.js';

let db: TestDatabase;
let a: Store;
let b: Store;
/** One master key for the database: the audit keys it seals are created by the first log. */
const sealer = testSealer(randomBytes(32));
before(async () => {
  db = await createTestDatabase('audit_commit');
  a = openPostgresStore({ url: db.url, poolSize: 4 });
  await a.migrate();
  b = openPostgresStore({ url: db.url, poolSize: 4 });
});
after(async () => {
  await a?.close();
  await b?.close();
  await db.drop();
});

const counted = (n: number): AuditEvent => ({ kind: 'secret.metadata_updated', actor: { id: 'admin:t' }, action: 'secret.metadata', resource: `secret:counter/${n}`, result: 'success', details: { mode: 'inject' } });

test('postgres: a failing change is rolled back to its savepoint alone; the batch commits', async () => {
  const { log } = await makeLog({ store: a, sealer });
  await a.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['pg-taken', 'x']);
  const results = await Promise.allSettled(
    ['pg-1', 'pg-taken', 'pg-2'].map((key) =>
      log.commit(a, async (tx) => {
        await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [`${key}-side`, 'x']);
        await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [key, 'v']);
        return key;
      }, (k) => ({ ...counted(0), resource: `secret:${k}` })),
    ),
  );
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  const err = (results[1] as PromiseRejectedResult).reason;
  assert.ok(err instanceof TesseraError && err.code === 'TESSERA_STORE_CONFLICT', String(err));
  const keys = (await a.all<{ key: string }>(`SELECT key FROM meta WHERE key LIKE 'pg-%' ORDER BY key`)).map((r) => r.key);
  assert.deepEqual(keys, ['pg-1', 'pg-1-side', 'pg-2', 'pg-2-side', 'pg-taken']);
  const resources = (await a.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq')).map((r) => (JSON.parse(r.body) as AuditEvent).resource);
  assert.deepEqual(resources, ['secret:pg-1', 'secret:pg-2']);
  await log.close();
});

test('postgres: two replicas increment one hot row through commit: retries re-run changes, each counted once with exactly one event', async () => {
  await a.run(`INSERT INTO meta (key, value) VALUES ('hot', '0') ON CONFLICT (key) DO UPDATE SET value = '0'`);
  const r1 = await makeLog({ store: a, sealer, replicaId: 'r1' });
  const r2 = await makeLog({ store: b, sealer, replicaId: 'r2' });
  const before = Number((await a.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_events'))?.n ?? 0);
  let runs = 0;
  const increment = (log: typeof r1.log, store: Store) =>
    log.commit(store, async (tx) => {
      runs++;
      const row = await tx.get<{ value: string }>(`SELECT value FROM meta WHERE key = 'hot'`);
      const next = Number(row!.value) + 1;
      await tx.run(`UPDATE meta SET value = ? WHERE key = 'hot'`, [String(next)]);
      return next;
    }, (n) => counted(n));
  const values = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? increment(r1.log, a) : increment(r2.log, b))));
  assert.deepEqual([...values].sort((x, y) => x - y), Array.from({ length: 40 }, (_, i) => i + 1), 'every increment saw a distinct committed value');
  assert.equal((await a.get<{ value: string }>(`SELECT value FROM meta WHERE key = 'hot'`))?.value, '40');
  assert.ok(runs >= 40, `changes ran ${runs} times (more than 40 means serialization retries re-ran them)`);
  const bodies = (await a.all<{ body: string }>('SELECT body FROM audit_events WHERE seq > ? ORDER BY seq', [before])).map((r) => JSON.parse(r.body) as AuditEvent);
  assert.deepEqual(bodies.map((e) => e.resource).sort(), Array.from({ length: 40 }, (_, i) => `secret:counter/${i + 1}`).sort(), 'one event per increment, carrying the value it committed');
  const v = await r1.log.verify();
  assert.equal(v.ok, true, JSON.stringify(v.problems));
  await r1.log.close();
  await r2.log.close();
});
