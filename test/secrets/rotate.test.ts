import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createKvService } from '../../src/secrets/kv.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { rotateMasterKey, SIGNING_KEY_AAD, type RotationProgress } from '../../src/secrets/rotate.js';
import { fixture, admin } from './helpers.js';

async function seeded() {
  const f = await fixture();
  for (let i = 0; i < 7; i++) await f.kv.put(`r/s${i}`, `value-${i}`, undefined, admin);
  await f.kv.put('r/s0', 'value-0-v2', undefined, admin);
  await f.kv.put('r/gone', 'deleted', undefined, admin);
  await f.kv.delete('r/gone', admin);
  // A signing key row sealed exactly as the tokens module does.
  const privateJwk = Buffer.from(JSON.stringify({ kty: 'EC', d: 'private-part' }));
  for (const kid of ['k1', 'k2']) {
    await f.store.run(
      'INSERT INTO signing_keys (kid, alg, use_, public_jwk, sealed_private, created_at, activates_at, retires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [kid, 'ES256', 'sig', '{}', f.sealer.seal(privateJwk, SIGNING_KEY_AAD(kid)), 0, 0, 1, 2],
    );
  }
  // A `sealed:` meta row (audit HMAC key) and an ordinary meta row that must be left alone.
  const hmacKey = randomBytes(32);
  await f.store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['sealed:audit.hmac_key', f.sealer.seal(hmacKey, 'sealed:audit.hmac_key').toString('base64')]);
  await f.store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['schema.note', 'plain']);
  return { ...f, privateJwk, hmacKey };
}

test('rotate-master-key re-wraps secrets, signing keys and sealed meta rows', async () => {
  const f = await seeded();
  const newSealer = masterSealer(randomBytes(32));
  const progress: RotationProgress[] = [];
  const report = await rotateMasterKey({ store: f.store, oldSealer: f.sealer, newSealer, clock: f.clock, audit: f.audit, batchSize: 3, onProgress: (p) => progress.push(p) });
  assert.equal(report.secretVersions, 8, 'destroyed versions have nothing to re-wrap');
  assert.equal(report.signingKeys, 2);
  assert.equal(report.metaRows, 1);
  assert.equal(report.rewrapped, 11);
  assert.equal(report.masterKeyId, newSealer.keyId);
  assert.ok(progress.some((p) => p.phase === 'secret_versions' && p.done === 3), 'progress is reported per batch');

  // Everything opens with the new key...
  const kvNew = createKvService({ store: f.store, sealer: newSealer, clock: f.clock, audit: f.audit });
  assert.equal((await kvNew.get('r/s0')).value, 'value-0-v2');
  assert.equal((await kvNew.get('r/s0', { version: 1 })).value, 'value-0');
  for (let i = 1; i < 7; i++) assert.equal((await kvNew.get(`r/s${i}`)).value, `value-${i}`);
  const sk = await f.store.get<{ sealed_private: Buffer }>('SELECT sealed_private FROM signing_keys WHERE kid = ?', ['k1']);
  assert.deepEqual(newSealer.open(sk!.sealed_private, SIGNING_KEY_AAD('k1')), f.privateJwk);
  const meta = await f.store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', ['sealed:audit.hmac_key']);
  assert.deepEqual(newSealer.open(Buffer.from(meta!.value, 'base64'), 'sealed:audit.hmac_key'), f.hmacKey);
  assert.equal((await f.store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', ['schema.note']))!.value, 'plain');

  // ...and nothing opens with the old one any more.
  await assert.rejects(f.kv.get('r/s1'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
  assert.throws(() => f.sealer.open(sk!.sealed_private, SIGNING_KEY_AAD('k1')), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
  assert.throws(() => f.sealer.open(Buffer.from(meta!.value, 'base64'), 'sealed:audit.hmac_key'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
  const ids = await f.store.all<{ master_key_id: string }>('SELECT DISTINCT master_key_id FROM secret_versions WHERE destroyed_at IS NULL');
  assert.deepEqual(ids.map((r) => r.master_key_id), [newSealer.keyId]);

  const ev = f.audit.events.find((e) => e.kind === 'secret.master_key_rotated');
  assert.deepEqual(ev?.details, { rewrapped: 11, master_key_id: newSealer.keyId });

  // A second run is a no-op (idempotent).
  const again = await rotateMasterKey({ store: f.store, oldSealer: f.sealer, newSealer, clock: f.clock });
  assert.equal(again.rewrapped, 0);
  assert.equal(again.alreadyRotated, 3);
});

test('rotation resumes after an interruption', async () => {
  const f = await seeded();
  const newSealer = masterSealer(randomBytes(32));
  // Simulate a crash part-way: first batch of secret versions and one signing key re-wrapped.
  const firstBatch = await f.store.all<{ path: string; version: number; wrapped_key: Buffer }>('SELECT path, version, wrapped_key FROM secret_versions WHERE destroyed_at IS NULL ORDER BY path, version LIMIT 3');
  for (const r of firstBatch) {
    const aad = `dek|${r.path}|${r.version}`;
    await f.store.run('UPDATE secret_versions SET wrapped_key = ?, master_key_id = ? WHERE path = ? AND version = ?', [newSealer.seal(f.sealer.open(r.wrapped_key, aad), aad), newSealer.keyId, r.path, r.version]);
  }
  const k1 = await f.store.get<{ sealed_private: Buffer }>('SELECT sealed_private FROM signing_keys WHERE kid = ?', ['k1']);
  await f.store.run('UPDATE signing_keys SET sealed_private = ? WHERE kid = ?', [newSealer.seal(f.sealer.open(k1!.sealed_private, SIGNING_KEY_AAD('k1')), SIGNING_KEY_AAD('k1')), 'k1']);

  const report = await rotateMasterKey({ store: f.store, oldSealer: f.sealer, newSealer, clock: f.clock, batchSize: 2 });
  assert.equal(report.secretVersions, 5);
  assert.equal(report.signingKeys, 1);
  assert.equal(report.alreadyRotated, 1);
  const kvNew = createKvService({ store: f.store, sealer: newSealer, clock: f.clock, audit: f.audit });
  for (let i = 1; i < 7; i++) assert.equal((await kvNew.get(`r/s${i}`)).value, `value-${i}`);
});

test('rotation refuses the same key, and stops on a row neither key opens', async () => {
  const f = await seeded();
  await assert.rejects(rotateMasterKey({ store: f.store, oldSealer: f.sealer, newSealer: f.sealer, clock: f.clock }), { code: 'TESSERA_MASTER_KEY_INVALID' });
  // A wrong "old" key: the secret versions record a different key id.
  await assert.rejects(
    rotateMasterKey({ store: f.store, oldSealer: masterSealer(randomBytes(32)), newSealer: masterSealer(randomBytes(32)), clock: f.clock }),
    { code: 'TESSERA_MASTER_KEY_INVALID' },
  );
  // A signing key sealed by an unknown key: rotation stops with a decrypt error naming the row.
  const g = await fixture();
  await g.store.run(
    'INSERT INTO signing_keys (kid, alg, use_, public_jwk, sealed_private, created_at, activates_at, retires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ['kx', 'ES256', 'sig', '{}', masterSealer(randomBytes(32)).seal(Buffer.from('x'), SIGNING_KEY_AAD('kx')), 0, 0, 1, 2],
  );
  await assert.rejects(rotateMasterKey({ store: g.store, oldSealer: g.sealer, newSealer: masterSealer(randomBytes(32)), clock: g.clock }), /signing key kx/);
});
