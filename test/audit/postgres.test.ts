/**
 * The audit witness, jobs and retention on the PostgreSQL store (the HA configuration): two
 * replicas' job registries on one database (a job started on one is reported by the other),
 * archive and prune, verification with and without the archives, and the witness check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createAuditJobs } from '../../src/audit/jobs.js';
import { verifyAuditLocal } from '../../src/audit/offline.js';
import { toPublicKey } from '../../src/audit/chain.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { appendSequential, makeLog, tempDir, testSealer } from './setup.js';

test('PostgreSQL: jobs seen from another replica, archive + prune, verify with archives and witness', async (t) => {
  const db = await createTestDatabase('audit_witness');
  t.after(() => db.drop());
  const store = openPostgresStore({ url: db.url });
  t.after(() => store.close());
  await store.migrate();
  const dir = tempDir();
  const witness = join(dir, 'witness.jsonl');
  const archiveDir = join(dir, 'archive');
  const { log, clock } = await makeLog({ store, sealer: testSealer(), checkpointEveryEvents: 25, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  t.after(() => log.close());
  await appendSequential(log, 1, 120);
  const publicKey = toPublicKey(log.publicKey);
  const retention = { archiveDir, keepEvents: 30, keepForMs: 0, segmentEvents: 50 };
  const a = createAuditJobs({ store, clock, replicaId: 'replica-a', logger: silentLogger, audit: log, publicKey, retention, pageSize: 16 });
  const b = createAuditJobs({ store, clock, replicaId: 'replica-b', logger: silentLogger, audit: log, publicKey, retention, pageSize: 16 });

  const started = await a.start('verify', { full: true });
  const done = await a.wait(started.job.id);
  assert.equal(done.state, 'done');
  const seenByB = await b.get(started.job.id);
  assert.deepEqual({ state: seenByB.state, replica: seenByB.replica, ok: (seenByB.result as { ok: boolean }).ok }, { state: 'done', replica: 'replica-a', ok: true });

  const arch = await b.wait((await b.start('archive')).job.id);
  assert.equal(arch.state, 'done', JSON.stringify(arch));
  assert.deepEqual((arch.result as { segments: { from_seq: number; to_seq: number }[] }).segments.map((s) => [s.from_seq, s.to_seq]), [[1, 50], [51, 75]]);
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_events'))!.n, 45);

  const plain = await verifyAuditLocal({ store, publicKey, pageSize: 16 });
  assert.deepEqual({ ok: plain.ok, checked: plain.checked, pruned: plain.pruned }, { ok: true, checked: 45, pruned: { segments: 2, to_seq: 75, archives: 'not_checked' } });
  const full = await verifyAuditLocal({ store, publicKey, pageSize: 16, archiveDir, witnessPath: witness });
  assert.equal(full.ok, true, JSON.stringify(full.problems));
  assert.equal(full.checked, 120);
  assert.equal(full.witness!.max_seq, 120);

  // A rollback past the last checkpoint with a genuine older head: only the witness sees it.
  const lines = (await import('node:fs')).readFileSync(witness, 'utf8').split('\n');
  const h = JSON.parse(lines.find((l) => l.includes('"tessera.audit.head"') && l.includes('"seq":110,'))!) as { seq: number; ts: number; hash: string; key_id: string; signature: string };
  await store.run('DELETE FROM audit_events WHERE seq > 110');
  await store.run('DELETE FROM audit_checkpoints WHERE seq > 110');
  await store.run("DELETE FROM meta WHERE key = 'audit.verified'");
  await store.run("UPDATE meta SET value = ? WHERE key = 'audit.head'", [JSON.stringify({ seq: h.seq, ts: h.ts, hash: h.hash, keyId: h.key_id, signature: h.signature })]);
  assert.equal((await verifyAuditLocal({ store, publicKey })).ok, true);
  const caught = await verifyAuditLocal({ store, publicKey, witnessPath: witness });
  assert.deepEqual([...new Set(caught.problems.map((p) => p.kind))], ['rolled_back']);
  assert.equal(caught.problems.length, 10);
});
