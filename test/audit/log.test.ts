import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Store } from '../../src/store/port.js';
import { TesseraError } from '../../src/shared/errors.js';
import { chainHash, GENESIS_HASH } from '../../src/audit/chain.js';
import { META_CHECKPOINT_KEY, META_HMAC_KEY, META_PUBLIC_KEY, createAuditLog } from '../../src/audit/log.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { appendSequential, ev, makeLog, openStore, tempDir, testSealer } from './setup.js';

const isCode = (code: string) => (e: unknown) => e instanceof TesseraError && e.code === code;

/** Counts transactions on a real store (no behaviour change): shows appends share commits. */
function countingStore(store: Store): { store: Store; count: () => number } {
  let n = 0;
  const wrapped = Object.create(store) as Store;
  wrapped.transaction = (fn) => {
    n++;
    return store.transaction(fn);
  };
  return { store: wrapped, count: () => n };
}

test('group commit: 1,000 concurrent appends get contiguous seqs in few transactions and a valid chain', async () => {
  const file = join(tempDir(), 'a.db');
  const { store, count } = countingStore(await openStore(file));
  const { log, metrics } = await makeLog({ store, checkpointEveryEvents: 300 });
  await Promise.all(Array.from({ length: 1000 }, (_, i) => log.append(ev(i))));
  const rows = await store.all<{ seq: number }>('SELECT seq FROM audit_events ORDER BY seq');
  assert.deepEqual(rows.map((r) => r.seq), Array.from({ length: 1000 }, (_, i) => i + 1));
  assert.ok(count() < 20, `expected few group commits, got ${count()}`);
  const progress: number[] = [];
  const r = await log.verify({ pageSize: 128, onProgress: (n) => progress.push(n) });
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  assert.equal(r.checked, 1000);
  assert.ok(r.checkpoints >= 1);
  assert.equal(progress.at(-1), 1000);
  assert.ok(progress.length >= 8);
  assert.equal(metrics.counter('tessera_audit_events_total', '').get(), 1000);
  assert.match(await metrics.render(), /tessera_audit_lag_seconds/);
});

test('fail closed: when the only sink (the store) cannot write, append rejects with TESSERA_AUDIT_UNAVAILABLE', async () => {
  const { log, store, metrics } = await makeLog();
  await log.append(ev(1));
  await store.close();
  await assert.rejects(log.append(ev(2)), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal(metrics.counter('tessera_audit_sink_errors_total', '').get({ sink: 'store' }), 1);
});

test('fail closed: an unwritable file sink as the only sink rejects every append of the batch', async () => {
  const dir = tempDir();
  const notADir = join(dir, 'plain-file');
  writeFileSync(notADir, 'x');
  const { log, metrics } = await makeLog({ sinks: [{ kind: 'file', path: join(notADir, 'audit.jsonl') }] });
  const results = await Promise.allSettled([log.append(ev(1)), log.append(ev(2)), log.append(ev(3))]);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.ok(isCode('TESSERA_AUDIT_UNAVAILABLE')((r as PromiseRejectedResult).reason));
    assert.equal(((r as PromiseRejectedResult).reason as TesseraError).status, 503);
  }
  assert.ok(metrics.counter('tessera_audit_sink_errors_total', '').get({ sink: 'file' }) >= 1);
});

test('partial sink failure: the store still records, the failing sink is counted, append resolves', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'f'), 'x');
  const { log, store, metrics } = await makeLog({ sinks: [{ kind: 'store' }, { kind: 'file', path: join(dir, 'f', 'audit.jsonl') }] });
  await log.append(ev(1));
  await log.append(ev(2));
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_events'))!.n, 2);
  assert.equal(metrics.counter('tessera_audit_sink_errors_total', '').get({ sink: 'file' }), 2);
  assert.equal(metrics.counter('tessera_audit_sink_errors_total', '').get({ sink: 'store' }), 0);
});

test('file and stdout sinks write the same JSONL records, linked by the hash chain', async () => {
  const path = join(tempDir(), 'logs', 'audit.jsonl');
  const out: string[] = [];
  const { log, store } = await makeLog({ sinks: [{ kind: 'file', path }, { kind: 'stdout' }], stdout: { write: (s: string) => out.push(s) } });
  await Promise.all([log.append(ev(1)), log.append(ev(2))]);
  await log.append(ev(3));
  const text = readFileSync(path, 'utf8');
  assert.equal(out.join(''), text);
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; ts: number; prev_hash: string; hash: string; event: AuditEvent });
  assert.deepEqual(lines.map((l) => l.seq), [1, 2, 3]);
  let prev = GENESIS_HASH;
  for (const l of lines) {
    assert.equal(l.prev_hash, prev);
    assert.equal(l.hash, chainHash(prev, l.seq, l.ts, l.event));
    prev = l.hash;
  }
  assert.equal(lines[0]!.event.actor.id, 'spiffe://tessera.local/agent/a1');
  assert.equal(lines[0]!.event.where?.replica, 'r1'); // filled in from replicaId
  // Not configured as a sink: nothing in the store.
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_events'))!.n, 0);
  await log.close();
});

test('hmac: deterministic hex, not the input, stable across restarts, different per installation', async () => {
  const store = await openStore();
  const sealer = testSealer(randomBytes(32));
  const { log } = await makeLog({ store, sealer });
  const h = log.hmac('jti-123');
  assert.match(h, /^[0-9a-f]{64}$/);
  assert.equal(log.hmac('jti-123'), h);
  assert.notEqual(log.hmac('jti-124'), h);
  assert.ok(!h.includes('jti-123'));
  const { log: again } = await makeLog({ store, sealer });
  assert.equal(again.hmac('jti-123'), h);
  assert.equal(again.publicKey, log.publicKey);
  const { log: other } = await makeLog();
  assert.notEqual(other.hmac('jti-123'), h);
  // Keys are sealed in meta with AAD = the meta key; the public key is in clear.
  const sealed = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_HMAC_KEY]);
  assert.equal(sealer.open(Buffer.from(sealed!.value, 'base64'), META_HMAC_KEY).length, 32);
  const cp = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_CHECKPOINT_KEY]);
  assert.ok(sealer.open(Buffer.from(cp!.value, 'base64'), META_CHECKPOINT_KEY).length > 32);
  assert.equal((await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_PUBLIC_KEY]))!.value, log.publicKey);
  // Another master key cannot open them.
  await assert.rejects(createAuditLog({ store, clock: new ManualClock(), sealer: testSealer(randomBytes(32)), replicaId: 'r', logger: silentLogger }), isCode('TESSERA_AUDIT_KEY_UNAVAILABLE'));
});

test('events with tokens or secrets, or malformed, are refused with TESSERA_AUDIT_EVENT_INVALID', async () => {
  const { log, store } = await makeLog();
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly94In0.c2lnbmF0dXJlc2lnbmF0dXJl';
  const bad: unknown[] = [
    ev(1, { resource: `bearer ${jwt}` }),
    ev(1, { reason: { message: 'token tsr_admin_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA rejected' } }),
    ev(1, { actor: { id: 'x', chain: [jwt] } }),
    { ...ev(1), details: { token: 'abc' } },
    { ...ev(1), details: { nested: { password: 'p' } } },
    { ...ev(1), details: { n: Number.NaN } },
    { ...ev(1), kind: 'Not A Kind' },
    { ...ev(1), actor: undefined },
    { ...ev(1), result: 'maybe' },
    { ...ev(1), unexpected: 1 },
    { ...ev(1), details: { big: 'x'.repeat(70_000) } },
  ];
  for (const e of bad) await assert.rejects(log.append(e as AuditEvent), isCode('TESSERA_AUDIT_EVENT_INVALID'), JSON.stringify(e).slice(0, 120));
  // HMAC'd identifiers are fine.
  await log.append(ev(1, { details: { principal: log.hmac(jwt), cached: true } } as Partial<AuditEvent>));
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_events'))!.n, 1);
});

test('tail filters by actor, txn and kind and pages forward with next_seq', async () => {
  const { log } = await makeLog();
  await appendSequential(log, 1, 12);
  await log.append({ kind: 'server.started', actor: { id: 'system' }, action: 'server.start', result: 'success', details: { version: '0.1.0', replica: 'r1' } });
  const all = await log.tail({ limit: 5 });
  assert.deepEqual(all.events.map((e) => e.seq), [1, 2, 3, 4, 5]);
  assert.equal(all.nextSeq, 5);
  const next = await log.tail({ afterSeq: all.nextSeq, limit: 100 });
  assert.equal(next.events[0]!.seq, 6);
  assert.equal(next.nextSeq, 13);
  const empty = await log.tail({ afterSeq: 13, limit: 10 });
  assert.deepEqual(empty, { events: [], nextSeq: 13 });
  const byActor = await log.tail({ actor: 'spiffe://tessera.local/agent/a1', limit: 100 });
  assert.deepEqual(byActor.events.map((e) => e.seq), [1, 4, 7, 10]);
  assert.ok(byActor.events.every((e) => e.event?.actor.id === 'spiffe://tessera.local/agent/a1'));
  const byTxn = await log.tail({ txn: 'txn-2', limit: 100 });
  assert.deepEqual(byTxn.events.map((e) => e.event?.txn), ['txn-2', 'txn-2', 'txn-2']);
  const byKind = await log.tail({ kind: 'server.started', limit: 100 });
  assert.deepEqual(byKind.events.map((e) => e.seq), [13]);
  assert.match(byKind.events[0]!.hash, /^[0-9a-f]{64}$/);
});

test('checkpoints by time, on demand and at close; appends after close are refused', async () => {
  const { log, store, clock } = await makeLog({ checkpointEveryEvents: 1000, checkpointEveryMs: 60_000 });
  await appendSequential(log, 1, 3); // first batch: no checkpoint yet → time since epoch 0 ≥ 60 s → checkpoint
  const cps = async () => (await store.all<{ seq: number }>('SELECT seq FROM audit_checkpoints ORDER BY seq')).map((r) => r.seq);
  assert.deepEqual(await cps(), [1]);
  clock.advance(61_000);
  await log.append(ev(4));
  assert.deepEqual(await cps(), [1, 4]);
  await log.append(ev(5));
  await log.checkpoint();
  assert.deepEqual(await cps(), [1, 4, 5]);
  await log.checkpoint(); // nothing new: no duplicate
  await log.append(ev(6));
  await log.close();
  assert.deepEqual(await cps(), [1, 4, 5, 6]);
  await assert.rejects(log.append(ev(7)), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal((await log.verify()).ok, true);
});

test('a restarted log continues the chain and verify stays valid while writes continue', async () => {
  const store = await openStore(join(tempDir(), 'r.db'));
  const sealer = testSealer();
  const { log } = await makeLog({ store, sealer, checkpointEveryEvents: 50 });
  await appendSequential(log, 1, 30);
  await log.close();
  const { log: log2 } = await makeLog({ store, sealer, checkpointEveryEvents: 50 });
  const writes = Promise.all(Array.from({ length: 200 }, (_, i) => log2.append(ev(i))));
  const during = await log2.verify({ pageSize: 16 });
  await writes;
  assert.equal(during.ok, true, JSON.stringify(during.problems));
  const after = await log2.verify();
  assert.deepEqual({ ok: after.ok, checked: after.checked }, { ok: true, checked: 230 });
});

test('verify with a pinned public key (base64 SPKI from meta) passes; with another key every signature fails', async () => {
  const { log } = await makeLog({ checkpointEveryEvents: 2 });
  await appendSequential(log, 1, 4);
  assert.equal((await log.verify({ publicKey: log.publicKey })).ok, true);
  const { log: other } = await makeLog();
  const r = await log.verify({ publicKey: other.publicKey });
  assert.deepEqual(r.problems.map((p) => [p.seq, p.kind]), [[2, 'bad_checkpoint_signature'], [4, 'bad_checkpoint_signature'], [4, 'bad_head_signature']]);
  assert.equal(r.checkpoints, 0);
});
