/**
 * Two rotation services (two "replicas") on one PostgreSQL store: only the holder of the leader
 * lock runs a pass; a rotation under way on one replica is seen by the other (intent row): its
 * writes and its own rotation of that secret are refused, and it does not take the intent over
 * while the owner is alive; an intent abandoned by a crashed replica is taken over after the
 * stale time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import type { Store } from '../../src/store/port.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { keyService, rotationHarness, type RotationHarness } from './helpers.js';

let db: TestDatabase;
let storeA: Store;
let storeB: Store;
let a: RotationHarness;
let b: RotationHarness;
let svc: Awaited<ReturnType<typeof keyService>>;
let delayMs = 0;

before(async () => {
  db = await createTestDatabase('rotation_leader');
  svc = await keyService((body, n) => (body.action === 'retire' ? { status: 204, body: '' } : { status: 200, body: { value: `k-${n}` }, delayMs }));
  storeA = openPostgresStore({ url: db.url });
  storeB = openPostgresStore({ url: db.url });
  await storeA.migrate();
  const sealer = masterSealer(randomBytes(32));
  const clock = new ManualClock(Date.now());
  const config = { http_rotators: { keys: { url: svc.url, auth_secret: 'rot/auth', allow_private: ['127.0.0.1/32'] } } };
  a = await rotationHarness({ store: storeA, sealer, clock, config });
  b = await rotationHarness({ store: storeB, sealer, clock, config, migrate: false });
  await a.call('PUT', '/v1/admin/secrets/rot/auth', { value: 'auth-credential' });
  for (let i = 0; i < 3; i++) await a.call('PUT', `/v1/admin/secrets/svc/k${i}`, { value: 'v1', rotation_period: '1h', rotator: { kind: 'http', endpoint: 'keys' } });
});
after(async () => {
  await a?.close();
  await b?.close();
  await storeA?.close();
  await storeB?.close();
  await svc?.close();
  await db?.drop();
});

test('only one replica runs a pass at a time (advisory lock); the other reports leader: false', async () => {
  a.clock.advance(3_600_000);
  delayMs = 400;
  const runA = a.rotation.runOnce();
  await new Promise((r) => setTimeout(r, 150));
  const runB = await b.rotation.runOnce();
  assert.deepEqual(runB, { leader: false });
  const ra = await runA;
  assert.equal(ra.leader, true);
  assert.equal(ra.leader && ra.value.rotated, 3);
  delayMs = 0;
  for (let i = 0; i < 3; i++) assert.equal((await a.kv.metadata(`svc/k${i}`)).currentVersion, 2);
  // Once released, the other replica can lead (nothing due now).
  const rb = await b.rotation.runOnce();
  assert.equal(rb.leader, true);
  assert.equal(rb.leader && rb.value.rotated, 0);
});

test('a rotation under way on replica A is respected by replica B', async () => {
  delayMs = 400;
  const rot = a.call('POST', '/v1/admin/rotation/svc/k0', {});
  await new Promise((r) => setTimeout(r, 150));
  assert.equal((await b.call('POST', '/v1/admin/rotation/svc/k0', {})).json.error?.code, 'TESSERA_ROTATION_IN_PROGRESS');
  assert.equal((await b.call('PUT', '/v1/admin/secrets/svc/k0', { value: 'x' })).json.error?.code, 'TESSERA_ROTATION_IN_PROGRESS');
  // B's pass does not take a live intent over.
  const pass = await b.rotation.pass();
  assert.equal(pass.rotated, 0);
  assert.equal((await rot).status, 200);
  delayMs = 0;
  assert.equal((await a.kv.metadata('svc/k0')).currentVersion, 3);
});

test('an intent abandoned by a crashed replica is taken over after the stale time', async () => {
  // A crash between the claim and the create call: the intent holds no value and a dead owner.
  const now = a.clock.now();
  await storeA.run('INSERT INTO rotation_intents (path, from_version, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?)', ['svc/k1', 2, 'dead-replica-run', now, now]);
  assert.equal((await b.call('PUT', '/v1/admin/secrets/svc/k1', { value: 'x' })).json.error?.code, 'TESSERA_ROTATION_IN_PROGRESS');
  assert.equal((await b.call('POST', '/v1/admin/rotation/svc/k1', {})).json.error?.code, 'TESSERA_ROTATION_IN_PROGRESS');
  b.clock.advance(5 * 60_000 + 1);
  const r = await b.call('POST', '/v1/admin/rotation/svc/k1', {});
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.from_version, 2);
  assert.equal(await storeA.get('SELECT path FROM rotation_intents'), undefined);
});
