/**
 * engine-root never loses the management password (real PostgreSQL): the store fails right
 * after the database accepted the new password (the engine's sealed URL cannot be written).
 * The new password stays sealed in the intent; the next attempt finds that it logs in, commits
 * it without changing it again, and the engine works with it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { loginAs, pgFixture, principal, type PgFixture } from '../engines/pg-setup.js';
import { rotationHarness, storeFailingOnce, type RotationHarness } from './helpers.js';
import { registerSensitive } from '../helpers/leak-registry.js';
import { createLeaseService } from '../../src/leases/index.js';

let fx: PgFixture;
let h: RotationHarness;
let failing: ReturnType<typeof storeFailingOnce>;

before(async () => {
  fx = await pgFixture('rotation_root');
  failing = storeFailingOnce(/^UPDATE meta SET value/);
  h = await rotationHarness({ store: failing.store });
  const cfg = await h.call('PUT', '/v1/admin/engines/postgres/main', { connection_url: fx.mgmtUrl, username_prefix: `q${randomBytes(2).toString('hex')}_`, pool_size: 2, connect_timeout: '3s', statement_timeout: '5s' });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.json));
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/reader', { groups: [fx.group], default_ttl: '5m', max_ttl: '1h' })).status, 200);
});
after(async () => {
  await h?.close();
  await failing?.real.close();
  await fx?.drop();
});

test('engine-root: a store failure after the ALTER keeps the new password sealed; the retry commits it without a second change', async () => {
  const oldPassword = decodeURIComponent(new URL(fx.mgmtUrl).password);
  await h.call('PUT', '/v1/admin/secrets/engines/main/root', { value: 'managed', rotation_period: '30d', rotator: { kind: 'engine-root', engine: 'main' } });
  failing.arm();
  const r = await h.call('POST', '/v1/admin/rotation/engines/main/root', {});
  assert.equal(r.status, 500, JSON.stringify(r.json));
  // The database already has the new password; the old one is refused.
  await assert.rejects(loginAs({ host: fx.host, port: fx.port, database: fx.db.name, username: fx.mgmtUser, password: oldPassword }), (e: Error & { code?: string }) => e.code === '28P01');
  const intent = await failing.real.get<{ sealed: Buffer; owner: string }>('SELECT sealed, owner FROM rotation_intents WHERE path = ?', ['engines/main/root']);
  assert.ok(intent?.sealed && intent.sealed.length > 0, 'the new password is kept, sealed');
  assert.equal(intent.owner, '');
  assert.equal((await h.kv.metadata('engines/main/root')).currentVersion, 1);
  const before = (await fx.su<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [fx.mgmtUser]))[0]!.rolpassword;
  // The retry (after the backoff) resumes: the sealed password logs in, so it is committed as is.
  h.clock.advance(30_000);
  const p = await h.rotation.pass();
  assert.equal(p.rotated, 1, JSON.stringify(p));
  const after = (await fx.su<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [fx.mgmtUser]))[0]!.rolpassword;
  assert.equal(after, before, 'no second ALTER: the verifier (salt included) is unchanged');
  assert.equal(await failing.real.get('SELECT path FROM rotation_intents'), undefined);
  assert.ok(h.audit.events.some((e) => e.kind === 'rotation.succeeded' && (e.details as { recovered?: boolean }).recovered === true));
  // The engine works with the committed password (its pool was rebuilt from the new URL).
  const leases = createLeaseService({ store: h.store, clock: h.clock, audit: h.audit, engines: [h.postgres.engine], engineTimeoutMs: 10_000 });
  const lease = await leases.issue({ engine: 'postgres', role: 'reader', principal: principal('ns/x/sa/reader') });
  registerSensitive(String(lease.data.password));
  await leases.revoke(lease.lease_id, 'test');
  await leases.idle();
});
