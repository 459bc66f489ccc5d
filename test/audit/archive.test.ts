/**
 * Item 25 of issue 7: sealed segments are archived to files and pruned from the store with a
 * signed statement; verification proves the whole history given the archives, and without them
 * proves the rest and says what was pruned.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { archiveAudit, type RetentionPolicy } from '../../src/audit/archive.js';
import { checkpointPublicKey } from '../../src/audit/log.js';
import { verifyAuditLocal } from '../../src/audit/offline.js';
import { appendSequential, makeLog, openStore, tempDir, testSealer } from './setup.js';

const kinds = (r: { problems: { seq: number; kind: string }[] }): [number, string][] => r.problems.map((p) => [p.seq, p.kind]);
const isCode = (code: string) => (e: unknown) => e instanceof TesseraError && e.code === code;

async function setup(n = 95) {
  const dir = tempDir();
  const file = join(dir, 'audit.db');
  const archiveDir = join(dir, 'archive');
  const witness = join(dir, 'witness.jsonl');
  const sealer = testSealer();
  const store = await openStore(file);
  const made = await makeLog({ store, sealer, checkpointEveryEvents: 10, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  await appendSequential(made.log, 1, n);
  const publicKey = await checkpointPublicKey(store, sealer);
  const policy: RetentionPolicy = { archiveDir, keepEvents: 20, keepForMs: 0, segmentEvents: 30 };
  const archive = (p: Partial<RetentionPolicy> = {}) =>
    archiveAudit({ store, publicKey, keyId: made.log.keyId, sign: (type, payload) => made.log.signStatement(type, payload), clock: made.clock, policy: { ...policy, ...p }, logger: silentLogger, pageSize: 7 });
  const verify = (o: { archives?: boolean; witness?: boolean } = {}) => verifyAuditLocal({ store, publicKey, pageSize: 7, ...(o.archives ? { archiveDir } : {}), ...(o.witness ? { witnessPath: witness } : {}) });
  const db = new Database(file);
  return { ...made, dir, archiveDir, witness, store, sealer, publicKey, archive, verify, db };
}

const count = (db: Database.Database, sql: string): number => (db.prepare(sql).get() as { n: number }).n;

test('archive: sealed segments up to a checkpoint go to files, leave the store with a signed statement, and verify with or without the archives', async () => {
  const { archive, verify, db, archiveDir, log, publicKey } = await setup();
  const r = await archive();
  // Keep 20 of 95 → up to seq 75 → the newest checkpoint at or below, in segments of at most 30 events.
  assert.deepEqual(r.segments.map((s) => [s.from_seq, s.to_seq, s.records]), [[1, 30, 30], [31, 60, 30], [61, 70, 10]]);
  assert.equal(r.pruned_events, 70);
  assert.equal(r.boundary, 70);
  assert.equal(count(db, 'SELECT MIN(seq) AS n FROM audit_events'), 71);
  assert.equal(count(db, 'SELECT COUNT(*) AS n FROM audit_checkpoints WHERE seq <= 70'), 0);
  assert.equal(count(db, 'SELECT COUNT(*) AS n FROM audit_prunes'), 3);
  const files = readdirSync(archiveDir).sort();
  assert.deepEqual(files, r.segments.flatMap((s) => [s.file, `${s.file}.prune.json`]).sort());
  assert.match(r.segments[0]!.file, new RegExp(`^tessera-audit-${log.keyId}-0000000000000001-0000000000000030\\.jsonl$`));
  const lines = readFileSync(join(archiveDir, r.segments[1]!.file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type?: string; seq?: number });
  assert.equal(lines[0]!.type, 'tessera.audit.archive');
  assert.deepEqual(lines.filter((l) => !l.type).map((l) => l.seq), Array.from({ length: 30 }, (_, i) => 31 + i));
  assert.deepEqual(lines.filter((l) => l.type === 'tessera.audit.checkpoint').map((l) => l.seq), [40, 50, 60]);

  const without = await verify();
  assert.equal(without.ok, true, JSON.stringify(without.problems));
  assert.equal(without.checked, 25);
  assert.deepEqual(without.pruned, { segments: 3, to_seq: 70, archives: 'not_checked' });
  assert.ok(without.notes.some((n) => /events 1\.\.70 were archived and removed from the store \(3 segments\); their archives were not checked: verify with `tessera audit verify --offline --archive-dir DIR`/.test(n)), without.notes.join('\n'));
  // Through the server (the log's own verify: a verify job) the note names the online option, not an offline-only one.
  const online = await log.verify({ publicKey, pageSize: 7 });
  const note = online.notes.find((n) => /were archived/.test(n)) ?? '';
  assert.match(note, /verify with `tessera audit verify --archives` \(API: "archives": true\)/);
  assert.doesNotMatch(note, /--archive-dir/);
  const withArchives = await verify({ archives: true });
  assert.equal(withArchives.ok, true, JSON.stringify(withArchives.problems));
  assert.equal(withArchives.checked, 95);
  assert.deepEqual(withArchives.pruned, { segments: 3, to_seq: 70, archives: 'verified' });

  // Nothing more is eligible; new events make more eligible and the chain of statements continues.
  assert.deepEqual((await archive()).segments, []);
  await appendSequential(log, 96, 130);
  const r2 = await archive();
  assert.deepEqual(r2.segments.map((s) => [s.from_seq, s.to_seq]), [[71, 100], [101, 110]]);
  const all = await verify({ archives: true });
  assert.deepEqual({ ok: all.ok, checked: all.checked }, { ok: true, checked: 130 });
  // The witness still proves the store holds everything it saw; heads in pruned segments are compared at segment ends only.
  const w = await verify({ witness: true });
  assert.equal(w.ok, true, JSON.stringify(w.problems));
  assert.equal(w.witness!.not_checked_pruned, 110 - 5);
  db.close();
});

test('archive by age: only segments whose checkpoint is older than keep_for', async () => {
  const { archive, log, clock, db } = await setup(40);
  clock.advance(2 * 3_600_000);
  await appendSequential(log, 41, 60);
  const r = await archive({ keepEvents: 0, keepForMs: 3_600_000, segmentEvents: 1000 });
  assert.deepEqual(r.segments.map((s) => [s.from_seq, s.to_seq]), [[1, 40]]);
  assert.equal(count(db, 'SELECT MIN(seq) AS n FROM audit_events'), 41);
  db.close();
});

test('tampered archives and prune statements are reported with their own kinds', async () => {
  const { archive, verify, db, archiveDir } = await setup();
  const r = await archive();
  const [a, b] = r.segments;
  // One archived event altered in its file: the digest and the chain both say so.
  const pathB = join(archiveDir, b!.file);
  writeFileSync(pathB, readFileSync(pathB, 'utf8').replace('"secret:db/40"', '"secret:db/41"'));
  let v = await verify({ archives: true });
  assert.deepEqual(kinds(v), [[31, 'archive_modified'], [40, 'modified']]);
  // A missing archive: reported, and the rest (including later segments and the store) still verified.
  rmSync(join(archiveDir, a!.file));
  v = await verify({ archives: true });
  assert.deepEqual(kinds(v), [[1, 'archive_missing'], [31, 'archive_modified'], [40, 'modified']]);
  assert.equal(v.checked, 30 + 10 + 25);

  // Prune statements: an altered one fails its signature; a removed one leaves a gap.
  const row = db.prepare('SELECT statement FROM audit_prunes WHERE to_seq = 60').get() as { statement: string };
  db.prepare('UPDATE audit_prunes SET statement = ? WHERE to_seq = 60').run(row.statement.replace('"records":30', '"records":29'));
  v = await verify();
  assert.deepEqual(kinds(v), [[31, 'bad_prune_signature'], [31, 'prune_gap']]);
  db.prepare('UPDATE audit_prunes SET statement = ? WHERE to_seq = 60').run(row.statement);
  db.prepare('DELETE FROM audit_prunes WHERE to_seq = 30').run();
  v = await verify();
  assert.deepEqual(kinds(v), [[1, 'prune_gap']]);
  // Every prune statement removed: the store's chain has no anchor and its start is missing.
  db.prepare('DELETE FROM audit_prunes').run();
  v = await verify();
  assert.deepEqual(kinds(v), [[1, 'deleted']]);
  assert.match(v.problems[0]!.message, /events 1\.\.70 \(the first\) are missing/);
  db.close();
});

test('archive refuses a segment that fails verification, or that it cannot write: nothing is pruned', async () => {
  const { archive, db, archiveDir, dir } = await setup(40);
  db.prepare("UPDATE audit_events SET body = replace(body, 'secret:db/5', 'secret:db/x') WHERE seq = 5").run();
  await assert.rejects(archive(), isCode('TESSERA_AUDIT_ARCHIVE_UNVERIFIED'));
  assert.equal(count(db, 'SELECT COUNT(*) AS n FROM audit_events'), 40);
  assert.equal(count(db, 'SELECT COUNT(*) AS n FROM audit_prunes'), 0);
  assert.deepEqual(existsSync(archiveDir) ? readdirSync(archiveDir) : [], [], 'no archive file or temporary file is left');

  const { archive: archive2, db: db2 } = await setup(40);
  const notADir = join(dir, 'plain-file');
  writeFileSync(notADir, 'x');
  await assert.rejects(archive2({ archiveDir: notADir }), isCode('TESSERA_AUDIT_ARCHIVE_WRITE_FAILED'));
  assert.equal(count(db2, 'SELECT COUNT(*) AS n FROM audit_events'), 40);
  db.close();
  db2.close();
});

test('an interrupted prune (events left below the boundary) is reported as a note and finished by the next run', async () => {
  const { archive, verify, db } = await setup();
  // Deletion runs in pages from the low end: an interrupted prune leaves the END of a segment.
  const saved = db.prepare('SELECT * FROM audit_events WHERE seq BETWEEN 41 AND 70').all() as Record<string, unknown>[];
  await archive({ segmentEvents: 1000 });
  const put = db.prepare('INSERT INTO audit_events (seq, ts, kind, actor, txn, body, prev_hash, hash) VALUES (@seq, @ts, @kind, @actor, @txn, @body, @prev_hash, @hash)');
  for (const r of saved) put.run(r);
  const v = await verify();
  assert.equal(v.ok, true, JSON.stringify(v.problems));
  assert.ok(v.notes.some((n) => /30 events at or below the pruned boundary.*proven against the signed prune statement/.test(n)), JSON.stringify(v.notes));
  const again = await archive({ segmentEvents: 1000 });
  assert.equal(again.pruned_events, 30);
  assert.equal(count(db, 'SELECT COUNT(*) AS n FROM audit_events WHERE seq <= 70'), 0);
  db.close();
});

test('events below the pruned boundary that no prune statement proves are reported pruned_unverifiable, never trusted (pen-test F6)', async () => {
  const { archive, verify, db } = await setup();
  const rows = db.prepare('SELECT * FROM audit_events WHERE seq BETWEEN 1 AND 70 ORDER BY seq').all() as Record<string, unknown>[];
  await archive({ segmentEvents: 1000 }); // one segment 1..70
  const put = db.prepare('INSERT INTO audit_events (seq, ts, kind, actor, txn, body, prev_hash, hash) VALUES (@seq, @ts, @kind, @actor, @txn, @body, @prev_hash, @hash)');
  const reset = (): void => void db.prepare('DELETE FROM audit_events WHERE seq <= 70').run();
  const cases: [string, () => void, number][] = [
    // Genuine events, but not what an interrupted prune leaves (they do not reach the segment's end).
    ['a genuine prefix put back', () => rows.slice(0, 30).forEach((r) => put.run(r)), 1],
    ['one genuine event in the middle', () => put.run(rows[34]!), 35],
    // A genuine suffix with one event altered: its chain no longer ends in the signed hash.
    ['a suffix with an altered event', () => rows.slice(40).forEach((r) => put.run(r.seq === 50 ? { ...r, body: String(r.body).replace(/"kind":"[^"]*"/, '"kind":"forged"') } : r)), 41],
    // A suffix with a gap.
    ['a suffix with a gap', () => rows.slice(40).filter((r) => r.seq !== 60).forEach((r) => put.run(r)), 41],
    // A forged event with a made-up hash below the boundary.
    ['a forged event', () => put.run({ ...rows[69]!, body: '{"kind":"secret.read"}', hash: 'f'.repeat(64) }), 70],
  ];
  for (const [what, tamper, seq] of cases) {
    reset();
    tamper();
    const v = await verify();
    assert.equal(v.ok, false, what);
    assert.deepEqual(kinds(v).filter(([, k]) => k === 'pruned_unverifiable'), [[seq, 'pruned_unverifiable']], `${what}: ${JSON.stringify(v.problems)}`);
    assert.match(v.problems.find((p) => p.kind === 'pruned_unverifiable')!.message, /cannot be proven by the signed prune statement for 1\.\.70/, what);
  }
  reset();
  assert.equal((await verify()).ok, true, 'once they are gone the store verifies again');
  db.close();
});

test('a store whose prune statements verify with another key is refused by archive (forged statements)', async () => {
  const { archive, db } = await setup(40);
  await archive();
  const other = await makeLog({ store: await openStore() });
  // Replace the signature with one from another key: archive refuses to continue the chain.
  const row = db.prepare('SELECT statement FROM audit_prunes').get() as { statement: string };
  db.prepare('UPDATE audit_prunes SET signature = ?').run(other.log.signStatement('prune', JSON.parse(row.statement) as Record<string, unknown>));
  await assert.rejects(archive(), isCode('TESSERA_AUDIT_ARCHIVE_UNVERIFIED'));
  db.close();
});

test('the newest event always stays in the store, so a restarted writer continues the chain', async () => {
  const { archive, verify, db, log, store, sealer, witness } = await setup(40);
  await log.close(); // a final checkpoint on the newest event (seq 40)
  const r = await archive({ keepEvents: 0, segmentEvents: 1000 });
  assert.deepEqual(r.segments.map((s) => [s.from_seq, s.to_seq]), [[1, 30]]);
  assert.equal(count(db, 'SELECT MAX(seq) AS n FROM audit_events'), 40);
  const { log: again } = await makeLog({ store, sealer, checkpointEveryEvents: 10, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  await appendSequential(again, 41, 45);
  assert.deepEqual(db.prepare('SELECT seq FROM audit_events ORDER BY seq').all().map((x) => (x as { seq: number }).seq), Array.from({ length: 15 }, (_, i) => 31 + i));
  const v = await verify({ archives: true, witness: true });
  assert.equal(v.ok, true, JSON.stringify(v.problems));
  assert.equal(v.checked, 45);
  db.close();
});
