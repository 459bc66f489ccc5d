import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { chainHash, GENESIS_HASH } from '../../src/audit/chain.js';
import { appendSequential, makeLog, openStore, tempDir } from './setup.js';

/**
 * Each test writes 20 events (checkpoint every 10) to a file-backed SQLite database, tampers
 * with it through a second, direct better-sqlite3 connection, and checks what verify reports.
 */
async function setup() {
  const file = join(tempDir(), 'audit.db');
  const store = await openStore(file);
  const { log } = await makeLog({ store, checkpointEveryEvents: 10 });
  await appendSequential(log, 1, 20);
  const before = await log.verify();
  assert.deepEqual(core(before), { ok: true, checked: 20, checkpoints: 2, problems: [] });
  const db = new Database(file);
  return { log, db, store };
}

const core = (r: { ok: boolean; checked: number; checkpoints: number; problems: unknown[] }) => ({ ok: r.ok, checked: r.checked, checkpoints: r.checkpoints, problems: r.problems });

type Row = { seq: number; ts: number; kind: string; actor: string; txn: string; body: string; prev_hash: string; hash: string; result: string | null };

function problems(r: { problems: { seq: number; kind: string }[] }): [number, string][] {
  return r.problems.map((p) => [p.seq, p.kind]);
}

test('a modified event body is reported as modified at its seq', async () => {
  const { log, db } = await setup();
  const row = db.prepare('SELECT body FROM audit_events WHERE seq = 5').get() as { body: string };
  db.prepare('UPDATE audit_events SET body = ? WHERE seq = 5').run(row.body.replace('"allow"', '"deny"'));
  const r = await log.verify();
  assert.equal(r.ok, false);
  assert.deepEqual(problems(r), [[5, 'modified']]);
  db.close();
});

test('a modified index column (actor) is reported as modified', async () => {
  const { log, db } = await setup();
  db.prepare("UPDATE audit_events SET actor = 'spiffe://x/other' WHERE seq = 8").run();
  assert.deepEqual(problems(await log.verify()), [[8, 'modified']]);
  db.close();
});

test('a modified result column (a deny turned into an allow for the console\'s filters) is reported as modified; a null one is not', async () => {
  const { log, db } = await setup();
  const r = db.prepare('SELECT result FROM audit_events WHERE seq = 8').get() as Row;
  assert.ok(typeof r.result === 'string' && r.result.length > 0, 'every event is written with its result');
  db.prepare("UPDATE audit_events SET result = CASE WHEN result = 'deny' THEN 'allow' ELSE 'deny' END WHERE seq = 8").run();
  assert.deepEqual(problems(await log.verify()), [[8, 'modified']]);
  // A row written before migration 339 (a replica not yet upgraded) has none: accepted.
  db.prepare('UPDATE audit_events SET result = NULL WHERE seq = 8').run();
  assert.deepEqual(problems(await log.verify()), []);
  db.close();
});

test('a deleted event is reported as deleted with its seq', async () => {
  const { log, db } = await setup();
  db.prepare('DELETE FROM audit_events WHERE seq = 7').run();
  assert.deepEqual(problems(await log.verify()), [[7, 'deleted']]);
  db.close();
});

test('two swapped events are reported as reordered', async () => {
  const { log, db } = await setup();
  const a = db.prepare('SELECT * FROM audit_events WHERE seq = 5').get() as Row;
  const b = db.prepare('SELECT * FROM audit_events WHERE seq = 6').get() as Row;
  // The whole rows, every column (the `result` column too, migration 339).
  const put = db.prepare('UPDATE audit_events SET ts = ?, kind = ?, actor = ?, txn = ?, result = ?, body = ?, prev_hash = ?, hash = ? WHERE seq = ?');
  put.run(b.ts, b.kind, b.actor, b.txn, b.result, b.body, b.prev_hash, b.hash, 5);
  put.run(a.ts, a.kind, a.actor, a.txn, a.result, a.body, a.prev_hash, a.hash, 6);
  assert.deepEqual(problems(await log.verify()), [[5, 'reordered']]);
  db.close();
});

test('a forged event spliced into the middle (later seqs shifted) is reported as inserted', async () => {
  const { log, db } = await setup();
  // Shift 5..20 up by one (via negative seqs to respect the primary key), then write a forged
  // event at 5 that links correctly to 4 and hashes correctly: only the chain after it betrays it.
  db.prepare('UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 5').run();
  db.prepare('UPDATE audit_events SET seq = -seq WHERE seq < 0').run();
  const prev = db.prepare('SELECT hash FROM audit_events WHERE seq = 4').get() as { hash: string };
  const event = { kind: 'secret.deleted', actor: { id: 'spiffe://tessera.local/agent/x' }, action: 'secret.delete', result: 'success', details: {} };
  const body = JSON.stringify(event);
  const hash = chainHash(prev.hash, 5, 1, JSON.parse(body));
  db.prepare('INSERT INTO audit_events (seq, ts, kind, actor, txn, body, prev_hash, hash) VALUES (5, 1, ?, ?, NULL, ?, ?, ?)').run(event.kind, event.actor.id, body, prev.hash, hash);
  assert.deepEqual(problems(await log.verify()), [[5, 'inserted']]);
  db.close();
});

test('a forged event appended after the signed head is reported as inserted', async () => {
  const { log, db } = await setup();
  const last = db.prepare('SELECT * FROM audit_events WHERE seq = 20').get() as Row;
  const event = JSON.parse(last.body);
  const hash = chainHash(last.hash, 21, last.ts, event);
  db.prepare('INSERT INTO audit_events (seq, ts, kind, actor, txn, body, prev_hash, hash) VALUES (21, ?, ?, ?, ?, ?, ?, ?)').run(last.ts, last.kind, last.actor, last.txn, last.body, last.hash, hash);
  assert.deepEqual(problems(await log.verify()), [[21, 'inserted']]);
  db.close();
});

test('truncating the tail is detected from the checkpoint, and after the last checkpoint from the signed head', async () => {
  const { log, db } = await setup();
  db.prepare('DELETE FROM audit_events WHERE seq > 15').run();
  let r = await log.verify();
  assert.deepEqual(problems(r), [[16, 'truncated']]);
  assert.match(r.problems[0]!.message, /up to 20/);
  // Truncation after the newest checkpoint (seq 20): only the signed head knows.
  db.close();
  const { log: log2, db: db2 } = await setup();
  await appendSequential(log2, 21, 25); // checkpoint at 20; head at 25
  db2.prepare('DELETE FROM audit_events WHERE seq > 22').run();
  r = await log2.verify();
  assert.deepEqual(problems(r), [[23, 'truncated']]);
  assert.match(r.problems[0]!.message, /signed head/);
  db2.close();
});

test('a forged checkpoint signature and a forged head are reported', async () => {
  const { log, db } = await setup();
  const cp = db.prepare('SELECT signature FROM audit_checkpoints WHERE seq = 20').get() as { signature: string };
  db.prepare('UPDATE audit_checkpoints SET signature = ? WHERE seq = 10').run(cp.signature);
  assert.deepEqual(problems(await log.verify()), [[10, 'bad_checkpoint_signature']]);
  const head = JSON.parse((db.prepare("SELECT value FROM meta WHERE key = 'audit.head'").get() as { value: string }).value);
  db.prepare("UPDATE meta SET value = ? WHERE key = 'audit.head'").run(JSON.stringify({ ...head, seq: 30 }));
  assert.deepEqual(problems(await log.verify()), [[10, 'bad_checkpoint_signature'], [30, 'bad_head_signature']]);
  db.prepare("DELETE FROM meta WHERE key = 'audit.head'").run();
  assert.deepEqual(problems(await log.verify()), [[10, 'bad_checkpoint_signature'], [20, 'head_missing']]);
  db.close();
});

test('a consistently rewritten chain (every hash recomputed, no key) is caught by the signed checkpoints', async () => {
  const { log, db } = await setup();
  const rows = db.prepare('SELECT * FROM audit_events ORDER BY seq').all() as Row[];
  let prev = GENESIS_HASH;
  const put = db.prepare('UPDATE audit_events SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?');
  for (const r of rows) {
    const body = r.seq === 3 ? r.body.replace('"secret:db/3"', '"secret:db/other"') : r.body;
    const hash = chainHash(prev, r.seq, r.ts, JSON.parse(body));
    put.run(body, prev, hash, r.seq);
    prev = hash;
  }
  const r = await log.verify();
  assert.deepEqual(problems(r), [[10, 'modified'], [20, 'modified']]);
  db.close();
});
