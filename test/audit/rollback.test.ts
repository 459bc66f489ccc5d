/**
 * Item 3 of issue 7: rolling the audit log back must be detectable. Each test writes a real log
 * (file-backed SQLite, checkpoint every 10 events) whose file sink is the witness, tampers with
 * the database through a second connection as someone with write access but no key would, and
 * checks what verification reports — from the store alone and with the witness.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync, sign } from 'node:crypto';
import Database from 'better-sqlite3';
import { TesseraError } from '../../src/shared/errors.js';
import { checkpointPublicKey, META_CHECKPOINT_KEY } from '../../src/audit/log.js';
import { verifyAuditLocal } from '../../src/audit/offline.js';
import { legacyCheckpointMessage, signStatement, STATEMENT_CONTEXTS, statementMessage, verifyStatement, type StatementType } from '../../src/audit/statements.js';
import { privateKeyFromDer, signCheckpoint, verifyCheckpoint, verifyHead } from '../../src/audit/chain.js';
import { NOTE_NO_WITNESS } from '../../src/audit/verify.js';
import type { Sealer } from '../../src/secrets/sealer.js';
import type { Store } from '../../src/store/port.js';
import { appendSequential, ev, makeLog, openStore, tempDir, testSealer } from './setup.js';

type Head = { seq: number; ts: number; hash: string; keyId: string; signature: string };

async function setup(n = 35) {
  const dir = tempDir();
  const file = join(dir, 'audit.db');
  const witness = join(dir, 'witness.jsonl');
  const sealer = testSealer();
  const store = await openStore(file);
  const { log } = await makeLog({ store, sealer, checkpointEveryEvents: 10, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  await appendSequential(log, 1, n); // checkpoints at 10, 20, 30; head at n
  const db = new Database(file);
  const verify = async (o: { witness?: string } = {}) => verifyAuditLocal({ store, publicKey: await checkpointPublicKey(store, sealer), ...(o.witness ? { witnessPath: o.witness } : {}) });
  return { dir, file, witness, sealer, store, log, db, verify };
}

const kinds = (r: { problems: { seq: number; kind: string }[] }): [number, string][] => r.problems.map((p) => [p.seq, p.kind]);

function headSlot(db: Database.Database): Head {
  return JSON.parse((db.prepare("SELECT value FROM meta WHERE key = 'audit.head'").get() as { value: string }).value) as Head;
}
function setHead(db: Database.Database, h: Head): void {
  db.prepare("UPDATE meta SET value = ? WHERE key = 'audit.head'").run(JSON.stringify(h));
}
function checkpointRow(db: Database.Database, seq: number): Head {
  const r = db.prepare('SELECT seq, ts, hash, key_id, signature FROM audit_checkpoints WHERE seq = ?').get(seq) as { seq: number; ts: number; hash: string; key_id: string; signature: string };
  return { seq: r.seq, ts: r.ts, hash: r.hash, keyId: r.key_id, signature: r.signature };
}
/** The signed heads the witness (file sink) saw, by seq. */
function witnessedHeads(path: string): Map<number, Head> {
  const out = new Map<number, Head>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.startsWith('{"type":"tessera.audit.head"') || !line.endsWith('}')) continue;
    const o = JSON.parse(line) as { seq: number; ts: number; hash: string; key_id: string; signature: string };
    out.set(o.seq, { seq: o.seq, ts: o.ts, hash: o.hash, keyId: o.key_id, signature: o.signature });
  }
  return out;
}
async function checkpointPrivateKey(store: Store, sealer: Sealer) {
  const row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_CHECKPOINT_KEY]);
  return privateKeyFromDer(sealer.open(Buffer.from(row!.value, 'base64'), META_CHECKPOINT_KEY));
}

test('signed statements are domain-separated: no statement of one type verifies as another', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const payload = { hash: 'a'.repeat(64), key_id: 'ack_x', seq: 7, ts: 1 };
  const types = Object.keys(STATEMENT_CONTEXTS) as StatementType[];
  assert.equal(new Set(Object.values(STATEMENT_CONTEXTS)).size, types.length, 'contexts are distinct');
  for (const a of types) {
    const sig = signStatement(privateKey, a, payload);
    for (const b of types) assert.equal(verifyStatement(publicKey, b, payload, sig), a === b, `${a} signature verified as ${b}`);
    assert.ok(statementMessage(a, payload).toString('utf8').startsWith(`${STATEMENT_CONTEXTS[a]}\n{`));
  }
  // The head and checkpoint functions: each refuses the other's signature; the legacy form
  // (shared by old checkpoints and heads) is accepted for checkpoints only.
  const cp = signCheckpoint(privateKey, { seq: 7, ts: 1, hash: 'a'.repeat(64), keyId: 'ack_x' });
  assert.equal(verifyCheckpoint(publicKey, cp), true);
  assert.equal(verifyHead(publicKey, cp), false);
  const legacy = { ...cp, signature: sign(null, legacyCheckpointMessage(cp), privateKey).toString('base64url') };
  assert.equal(verifyCheckpoint(publicKey, legacy), true);
  assert.equal(verifyHead(publicKey, legacy), false);
});

test('the issue 7 attack: tail and later checkpoints deleted, an earlier checkpoint in the head slot → bad_head_signature', async () => {
  const { db, verify } = await setup();
  assert.equal((await verify()).ok, true);
  db.prepare('DELETE FROM audit_events WHERE seq > 20').run();
  db.prepare('DELETE FROM audit_checkpoints WHERE seq > 20').run();
  setHead(db, checkpointRow(db, 20));
  const r = await verify();
  assert.equal(r.ok, false);
  assert.deepEqual(kinds(r), [[20, 'bad_head_signature']]);
  assert.match(r.problems[0]!.message, /does not verify as a head of this log.*checkpoint/);
  db.close();
});

test('the attack with the head removed instead → head_missing; with the head of another log → bad_head_signature', async () => {
  const { db, verify } = await setup();
  db.prepare('DELETE FROM audit_events WHERE seq > 20').run();
  db.prepare('DELETE FROM audit_checkpoints WHERE seq > 20').run();
  db.prepare("DELETE FROM meta WHERE key = 'audit.head'").run();
  assert.deepEqual(kinds(await verify()), [[20, 'head_missing']]);

  // Another installation (its own key) with the same events: its head for seq 20 is genuine,
  // names the same hash, and still does not verify here.
  const other = await makeLog({ checkpointEveryEvents: 10 });
  await appendSequential(other.log, 1, 20);
  const foreign = JSON.parse((await other.store.get<{ value: string }>("SELECT value FROM meta WHERE key = 'audit.head'"))!.value) as Head;
  const ours = db.prepare('SELECT hash FROM audit_events WHERE seq = 20').get() as { hash: string };
  assert.equal(foreign.hash, ours.hash, 'same chain, different key');
  db.prepare("INSERT INTO meta (key, value) VALUES ('audit.head', ?)").run(JSON.stringify(foreign));
  assert.deepEqual(kinds(await verify()), [[20, 'bad_head_signature']]);
  db.close();
});

test('other statements in the head slot, and a head in the checkpoint table, are refused', async () => {
  const { db, verify, store, sealer } = await setup();
  const key = await checkpointPrivateKey(store, sealer);
  const h = headSlot(db);
  const payload = { hash: h.hash, key_id: h.keyId, seq: h.seq, ts: h.ts };
  for (const type of ['checkpoint', 'prune', 'verified'] as const) {
    setHead(db, { ...h, signature: signStatement(key, type, payload) });
    assert.deepEqual(kinds(await verify()), [[35, 'bad_head_signature']], type);
  }
  setHead(db, h);
  assert.equal((await verify()).ok, true);
  // A genuine head (seq 35) written into the checkpoint table is not a checkpoint.
  db.prepare('INSERT INTO audit_checkpoints (seq, ts, hash, key_id, signature) VALUES (?, ?, ?, ?, ?)').run(h.seq, h.ts, h.hash, h.keyId, h.signature);
  assert.deepEqual(kinds(await verify()), [[35, 'bad_checkpoint_signature']]);
  db.close();
});

test('a genuine older head in the slot while a newer checkpoint remains → rolled_back', async () => {
  const { db, verify, witness } = await setup();
  const old = witnessedHeads(witness).get(25)!;
  setHead(db, old);
  const r = await verify();
  assert.ok(kinds(r).some(([s, k]) => s === 26 && k === 'rolled_back'), JSON.stringify(r.problems));
  assert.match(r.problems.find((p) => p.kind === 'rolled_back')!.message, /older than the signed checkpoint at seq 30/);
  // And with the rows after it gone too (the rollback an attacker would attempt): still caught.
  db.prepare('DELETE FROM audit_events WHERE seq > 25').run();
  const r2 = await verify();
  assert.deepEqual(kinds(r2), [[26, 'rolled_back'], [26, 'truncated']]);
  db.close();
});

test('tail truncated past the last checkpoint with a genuine older head: the store alone cannot tell (and says so); the witness catches it', async () => {
  const { db, verify, witness } = await setup();
  db.prepare('DELETE FROM audit_events WHERE seq > 32').run();
  setHead(db, witnessedHeads(witness).get(32)!);
  const plain = await verify();
  assert.equal(plain.ok, true, 'a consistent earlier state verifies from the store alone');
  assert.ok(plain.notes.includes(NOTE_NO_WITNESS), 'plain verify says it cannot rule out a rollback');
  const w = await verify({ witness });
  assert.equal(w.ok, false);
  assert.deepEqual(kinds(w), [[33, 'rolled_back'], [34, 'rolled_back'], [35, 'rolled_back']]);
  assert.match(w.problems[0]!.message, /witness saw a signed head at seq 33 .* store ends at seq 32/);
  assert.ok(!w.notes.includes(NOTE_NO_WITNESS));
  assert.equal(w.witness!.max_seq, 35);
  db.close();
});

test('the whole store rolled back to a backup and continued (a fork): plain verify passes, the witness reports forked', async () => {
  const { file, witness, sealer, db, log, store } = await setup(20);
  db.close();
  await log.close();
  await store.close(); // checkpoints the WAL into the main file
  const backup = `${file}.bak`;
  copyFileSync(file, backup);
  // The original continues to 35 and the witness sees it.
  const store1 = await openStore(file);
  const { log: log1 } = await makeLog({ store: store1, sealer, checkpointEveryEvents: 10, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  await appendSequential(log1, 21, 35);
  await log1.close();
  await store1.close();
  // Someone restores the backup (seq 20) and the server writes different events from there.
  copyFileSync(backup, file);
  for (const f of [`${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  const store2 = await openStore(file);
  const { log: log2 } = await makeLog({ store: store2, sealer, checkpointEveryEvents: 10 });
  for (let i = 21; i <= 40; i++) await log2.append(ev(i + 1000));
  const publicKey = await checkpointPublicKey(store2, sealer);
  const plain = await verifyAuditLocal({ store: store2, publicKey });
  assert.equal(plain.ok, true);
  const w = await verifyAuditLocal({ store: store2, publicKey, witnessPath: witness });
  assert.equal(w.ok, false);
  assert.ok(w.problems.length >= 15 && w.problems.every((p) => p.kind === 'forked' && p.seq >= 21 && p.seq <= 35), JSON.stringify(kinds(w)));
  assert.match(w.problems[0]!.message, /different history/);
});

test('the whole log deleted (back to genesis): the store says so only as a note; the witness reports rolled_back', async () => {
  const { db, verify, witness } = await setup(12);
  db.prepare('DELETE FROM audit_events').run();
  db.prepare('DELETE FROM audit_checkpoints').run();
  db.prepare("DELETE FROM meta WHERE key = 'audit.head'").run();
  const plain = await verify();
  assert.deepEqual({ ok: plain.ok, checked: plain.checked }, { ok: true, checked: 0 });
  assert.ok(plain.notes.includes(NOTE_NO_WITNESS));
  const w = await verify({ witness });
  assert.equal(w.ok, false);
  assert.equal(w.problems.length, 12);
  assert.ok(w.problems.every((p) => p.kind === 'rolled_back'));
  db.close();
});

test('witness input: tampered heads, other logs, torn lines, empty and unreadable witnesses', async () => {
  const { dir, db, verify, witness } = await setup(12);
  // Another installation's sink output in the same collector file: skipped, not an error.
  const other = await makeLog({ sinks: [{ kind: 'store' }, { kind: 'file', path: join(dir, 'other.jsonl') }] });
  await appendSequential(other.log, 1, 3);
  appendFileSync(witness, readFileSync(join(dir, 'other.jsonl')));
  appendFileSync(witness, '{"type":"tessera.audit.head","seq":13,"ts"'); // torn last line
  let r = await verify({ witness });
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  assert.equal(r.witness!.other_logs, 3);
  assert.equal(r.witness!.unreadable_lines, 1);
  assert.equal(r.witness!.heads, 12);

  // A head in the witness whose signature does not verify (altered seq): witness_bad_signature.
  const h = witnessedHeads(witness).get(12)!;
  appendFileSync(witness, `\n${JSON.stringify({ type: 'tessera.audit.head', seq: 99, ts: h.ts, hash: h.hash, key_id: h.keyId, signature: h.signature })}\n`);
  r = await verify({ witness });
  assert.deepEqual(kinds(r), [[99, 'witness_bad_signature']]);

  // No head of this log at all: refused, not "ok".
  const empty = join(dir, 'empty.jsonl');
  writeFileSync(empty, readFileSync(join(dir, 'other.jsonl')));
  await assert.rejects(verify({ witness: empty }), (e) => e instanceof TesseraError && e.code === 'TESSERA_AUDIT_WITNESS_EMPTY');
  await assert.rejects(verify({ witness: join(dir, 'missing.jsonl') }), (e) => e instanceof TesseraError && e.code === 'TESSERA_AUDIT_WITNESS_UNREADABLE');
  await assert.rejects(verify({ witness: dir }), (e) => e instanceof TesseraError && e.code === 'TESSERA_AUDIT_WITNESS_UNREADABLE');
  db.close();
});

test('legacy stores: old checkpoints still verify as checkpoints; an old head is head_legacy until the next commit re-signs it', async () => {
  const { db, verify, store, sealer, log } = await setup(20);
  const key = await checkpointPrivateKey(store, sealer);
  const legacy = (c: Head): Head => ({ ...c, signature: sign(null, legacyCheckpointMessage(c), key).toString('base64url') });
  // Rewrite every signature in the pre-0031 form, as an old version wrote them.
  for (const seq of [10, 20]) db.prepare('UPDATE audit_checkpoints SET signature = ? WHERE seq = ?').run(legacy(checkpointRow(db, seq)).signature, seq);
  setHead(db, legacy(headSlot(db)));
  let r = await verify();
  assert.deepEqual(kinds(r), [[20, 'head_legacy']]);
  assert.equal(r.checkpoints, 2, 'legacy checkpoints are accepted');
  // The first commit of the new version signs a proper head.
  await log.append(ev(21));
  r = await verify();
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  // An old checkpoint in the head slot stays refused: the legacy form is never a head.
  db.prepare('DELETE FROM audit_events WHERE seq > 10').run();
  db.prepare('DELETE FROM audit_checkpoints WHERE seq > 10').run();
  setHead(db, checkpointRow(db, 10));
  assert.deepEqual(kinds(await verify()), [[10, 'head_legacy']]);
  db.close();
});
