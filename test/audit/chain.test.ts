import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { canonicalize, chainHash, checkpointKeyId, GENESIS_HASH, makeRecord, signCheckpoint, signHead, signPositionAsync, verifyChain, verifyCheckpoint, verifyHead, type StoredRecord } from '../../src/audit/chain.js';
import { ev } from './setup.js';

test('canonical JSON sorts keys, drops undefined, has no whitespace and refuses non-finite numbers', () => {
  assert.equal(canonicalize({ b: 1, a: [true, null, 'x'], c: { z: 1.5, y: undefined, 'é': 'é' } }), '{"a":[true,null,"x"],"b":1,"c":{"z":1.5,"é":"é"}}');
  assert.equal(canonicalize({ b: 1, a: 2 }), canonicalize({ a: 2, b: 1 }));
  assert.equal(canonicalize(1e21), '1e+21');
  assert.throws(() => canonicalize({ x: Number.NaN }), /non-finite/);
  assert.throws(() => canonicalize({ x: Infinity }), /non-finite/);
  assert.throws(() => canonicalize({ x: 1n }), /bigint/);
});

function chain(n: number): StoredRecord[] {
  const out: StoredRecord[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const r = makeRecord(prev, i, 1000 + i, ev(i));
    out.push(r);
    prev = r.hash;
  }
  return out;
}

test('chain round trip: records link, checkpoints and head verify', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = checkpointKeyId(publicKey);
  const recs = chain(10);
  assert.equal(recs[0]!.prevHash, GENESIS_HASH);
  assert.equal(recs[0]!.hash, chainHash(GENESIS_HASH, 1, 1001, ev(1)));
  assert.match(recs[9]!.hash, /^[0-9a-f]{64}$/);
  const cp = signCheckpoint(privateKey, { seq: 5, ts: 1005, hash: recs[4]!.hash, keyId });
  const head = signHead(privateKey, { seq: 10, ts: 1010, hash: recs[9]!.hash, keyId });
  assert.ok(verifyCheckpoint(publicKey, cp));
  assert.equal(verifyCheckpoint(publicKey, { ...cp, seq: 6 }), false);
  const r = verifyChain(recs, [cp], publicKey, head);
  assert.deepEqual(r, { ok: true, checked: 10, checkpoints: 1, problems: [] });
});

test('heads and checkpoints signed off the event loop are the same Ed25519 signatures, each verifying only in its own context', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const position = { seq: 42, ts: 1_780_000_000_000, hash: 'ab'.repeat(32), keyId: checkpointKeyId(publicKey) };
  const head = await signPositionAsync(privateKey, 'head', position);
  const cp = await signPositionAsync(privateKey, 'checkpoint', position);
  assert.deepEqual(head, signHead(privateKey, position)); // Ed25519 is deterministic (RFC 8032 §5.1.6)
  assert.deepEqual(cp, signCheckpoint(privateKey, position));
  assert.ok(verifyHead(publicKey, head));
  assert.ok(verifyCheckpoint(publicKey, cp));
  assert.ok(!verifyHead(publicKey, cp), 'a checkpoint never stands in for a head');
  assert.ok(!verifyHead(publicKey, { ...head, seq: 43 }));
});

test('in-memory input out of order is reported as reordered; a missing head is reported', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = checkpointKeyId(publicKey);
  const recs = chain(6);
  const head = signHead(privateKey, { seq: 6, ts: 1006, hash: recs[5]!.hash, keyId });
  const swapped = [recs[0]!, recs[1]!, recs[3]!, recs[2]!, recs[4]!, recs[5]!];
  const r = verifyChain(swapped, [], publicKey, head);
  assert.equal(r.ok, false);
  assert.ok(r.problems.some((p) => p.kind === 'reordered' && p.seq === 3), JSON.stringify(r.problems));
  const noHead = verifyChain(recs, [], publicKey, null);
  assert.deepEqual(noHead.problems.map((p) => [p.seq, p.kind]), [[6, 'head_missing']]);
  // The signature of another key does not verify.
  const other = generateKeyPairSync('ed25519');
  const forged = signHead(other.privateKey, { seq: 6, ts: 1006, hash: recs[5]!.hash, keyId });
  assert.deepEqual(verifyChain(recs, [], publicKey, forged).problems.map((p) => [p.seq, p.kind]), [[6, 'bad_head_signature']]);
});
