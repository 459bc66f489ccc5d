import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createKvService } from '../../src/secrets/kv.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { rotateMasterKey, SIGNING_KEY_AAD } from '../../src/secrets/rotate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { admin, principal, GlobAuthorizer } from './helpers.js';

// The kv engine's SQL (MAX+1 in a transaction, substr() prefix match, LIMIT ?, BYTEA blobs)
// against the real PostgreSQL adapter.
let db: TestDatabase;
let store: Store;
before(async () => {
  db = await createTestDatabase('secrets');
  store = openPostgresStore({ url: db.url, poolSize: 5 });
  await store.migrate();
});
after(async () => {
  await store.close();
  await db.drop();
});

test('postgres: versions, concurrency, prefix listing, agent read, delete and rotation', async () => {
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const sealer = masterSealer(randomBytes(32));
  const kv = createKvService({ store, sealer, clock, audit });

  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => kv.put('pg/conc', `value-${i}`, undefined, admin)));
  assert.deepEqual(results.map((r) => r.version).sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i + 1));
  const latest = await kv.get('pg/conc');
  assert.equal(latest.version, 10);
  assert.equal(typeof latest.metadata.createdAt, 'number');

  for (const p of ['pg/a_b/x', 'pg/aXb/y', 'pg/a_b']) await kv.put(p, 'v', { mode: 'read' }, admin);
  assert.deepEqual((await kv.list('pg/a_b')).secrets.map((s) => s.path), ['pg/a_b', 'pg/a_b/x']);

  const authz = new GlobAuthorizer([{ action: 'secret.read', glob: 'pg/**' }]);
  assert.equal((await kv.readForAgent(principal(), 'pg/a_b/x', authz.pipeline)).value, 'v');
  await assert.rejects(kv.readForAgent(principal(), 'pg/conc', authz.pipeline), { code: 'TESSERA_SECRET_NOT_READABLE' });

  // AAD binding holds on BYTEA too.
  type Blobs = { ciphertext: Buffer; wrapped_key: Buffer };
  const v1 = await store.get<Blobs>('SELECT ciphertext, wrapped_key FROM secret_versions WHERE path = ? AND version = 1', ['pg/conc']);
  const own = await store.get<Blobs>('SELECT ciphertext, wrapped_key FROM secret_versions WHERE path = ? AND version = 1', ['pg/a_b']);
  assert.ok(Buffer.isBuffer(v1!.ciphertext));
  await store.run('UPDATE secret_versions SET ciphertext = ?, wrapped_key = ? WHERE path = ? AND version = 1', [v1!.ciphertext, v1!.wrapped_key, 'pg/a_b']);
  await assert.rejects(kv.get('pg/a_b'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
  // Rotation refuses to re-wrap a moved data key, naming the row.
  await assert.rejects(rotateMasterKey({ store, oldSealer: sealer, newSealer: masterSealer(randomBytes(32)), clock }), /pg\/a_b version 1/);
  await store.run('UPDATE secret_versions SET ciphertext = ?, wrapped_key = ? WHERE path = ? AND version = 1', [own!.ciphertext, own!.wrapped_key, 'pg/a_b']);

  assert.equal((await kv.delete('pg/a_b/x', admin)).versionsDestroyed, 1);
  assert.equal((await kv.put('pg/a_b/x', 'again', undefined, admin)).version, 2);

  await store.run(
    'INSERT INTO signing_keys (kid, alg, use_, public_jwk, sealed_private, created_at, activates_at, retires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ['pgk', 'ES256', 'sig', '{}', sealer.seal(Buffer.from('jwk'), SIGNING_KEY_AAD('pgk')), 0, 0, 1, 2],
  );
  await store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['sealed:x', sealer.seal(Buffer.from('k'), 'sealed:x').toString('base64')]);
  const newSealer = masterSealer(randomBytes(32));
  const report = await rotateMasterKey({ store, oldSealer: sealer, newSealer, clock, batchSize: 4 });
  assert.equal(report.secretVersions, 10 + 3 + 1 - 1, 'pg/conc ×10, pg/a_b, pg/aXb/y, pg/a_b/x v2 (v1 destroyed)');
  const kv2 = createKvService({ store, sealer: newSealer, clock, audit });
  assert.equal((await kv2.get('pg/conc')).value, latest.value);
  assert.equal((await kv2.get('pg/a_b')).value, 'v');
  assert.equal((await kv2.get('pg/a_b/x')).value, 'again');
});
