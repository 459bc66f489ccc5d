/**
 * `postgres-static` and `engine-root` against a real PostgreSQL (test/helpers/postgres.ts):
 * an application role keeps working across a rotation (re-reading the secret), sessions opened
 * with the old password go on through the grace period and are ended after it, the old password
 * is refused for new logins from the rotation on (PostgreSQL keeps one password per role; ADR
 * 0276); the engine's management password is rotated so only Tessera knows it, and the engine
 * keeps issuing leases with it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { loginAs, pgFixture, principal, type PgFixture } from '../engines/pg-setup.js';
import { rotationHarness, type RotationHarness } from './helpers.js';
import { registerSensitive } from '../helpers/leak-registry.js';
import { createLeaseService } from '../../src/leases/index.js';

let fx: PgFixture;
let h: RotationHarness;
let app: string;
const prefix = `r${randomBytes(2).toString('hex')}_`;
const initial = randomBytes(12).toString('hex');
registerSensitive(initial);

before(async () => {
  fx = await pgFixture('rotation');
  app = `app_${fx.tag}`;
  await fx.su(`CREATE ROLE ${app} LOGIN PASSWORD '${initial}'`);
  await fx.su(`GRANT ${fx.group} TO ${app}`);
  // Dates sessions of other roles (backend_start); without it every session of the role is ended after the grace period.
  await fx.su(`GRANT pg_read_all_stats TO ${fx.mgmtUser}`);
  h = await rotationHarness();
  const cfg = await h.call('PUT', '/v1/admin/engines/postgres/main', { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 2, connect_timeout: '3s', statement_timeout: '5s' });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.json));
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

const db = () => ({ host: fx.host, port: fx.port, database: fx.db.name, username: app });
/** The application: connects with whatever the secret holds now (it re-reads it, as gateway/proxy injection does). */
async function appConnect(): Promise<pg.Client> {
  return loginAs({ ...db(), password: (await h.kv.get('db/app')).value });
}
async function query(c: pg.Client): Promise<string> {
  return (await c.query<{ name: string }>('SELECT name FROM patients WHERE id = 1')).rows[0]!.name;
}

test('postgres-static: the app keeps working through the rotation and the grace period; old sessions end after it', async () => {
  const put = await h.call('PUT', '/v1/admin/secrets/db/app', { value: initial, mode: 'read', rotation_period: '30d', rotator: { kind: 'postgres-static', engine: 'main', role: app, grace_period: '10m' } });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  const old = await appConnect();
  assert.equal(await query(old), 'Ada');
  h.clock.set(Date.now());
  const r = await h.call('POST', '/v1/admin/rotation/db/app', {});
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.version, 2);
  const next = (await h.kv.get('db/app')).value;
  registerSensitive(next);
  assert.notEqual(next, initial);
  assert.match(next, /^[A-Za-z0-9_-]{43}$/);
  // PostgreSQL stored the verifier Tessera computed (RFC 5802/7677), never the password.
  const [auth] = await fx.su<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [app]);
  assert.match(auth!.rolpassword, /^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
  assert.ok(!auth!.rolpassword.includes(next));
  // The app re-reading the secret logs in with the new password; the session opened before goes on.
  const fresh = await appConnect();
  assert.equal(await query(fresh), 'Ada');
  assert.equal(await query(old), 'Ada', 'a session opened with the old password continues during the grace period');
  // New logins with the old password are refused at once: PostgreSQL keeps one password per role.
  await assert.rejects(loginAs({ ...db(), password: initial }), (e: Error & { code?: string }) => e.code === '28P01');
  assert.equal((await h.kv.get('db/app', { version: 1 })).value, initial, 'the previous version stays readable');
  // After the grace period the job ends the sessions opened before the rotation.
  h.clock.advance(10 * 60_000 + 1);
  const p = await h.rotation.pass();
  assert.equal(p.retired, 1, JSON.stringify(p));
  const retired = h.audit.events.find((e) => e.kind === 'rotation.retired' && e.resource === 'secret:db/app');
  assert.ok(retired && (retired.details as { sessions_ended: number }).sessions_ended >= 1);
  await assert.rejects(query(old), 'the old session was ended');
  assert.equal(await query(fresh), 'Ada', 'the session opened with the new password is untouched');
  await fresh.end();
  await old.end().catch(() => undefined);
  const again = await appConnect();
  assert.equal(await query(again), 'Ada');
  await again.end();
});

test('postgres-static: a failed ALTER stores no new version and keeps the working password', async () => {
  const before = await h.kv.metadata('db/app');
  const working = (await h.kv.get('db/app')).value;
  await fx.su(`ALTER ROLE ${fx.mgmtUser} NOCREATEROLE`);
  try {
    const r = await h.call('POST', '/v1/admin/rotation/db/app', {});
    assert.equal(r.status, 409, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'TESSERA_ROTATION_ROLE_INVALID');
  } finally {
    await fx.su(`ALTER ROLE ${fx.mgmtUser} CREATEROLE`);
  }
  assert.equal((await h.kv.metadata('db/app')).currentVersion, before.currentVersion);
  const c = await appConnect();
  assert.equal((await h.kv.get('db/app')).value, working);
  assert.equal(await query(c), 'Ada');
  await c.end();
  assert.equal(await h.store.get('SELECT path FROM rotation_intents WHERE path = ?', ['db/app']), undefined);
  const st = (await h.rotation.status()).find((s) => s.path === 'db/app')!;
  assert.equal(st.failures, 1);
  assert.equal(st.last_error_code, 'TESSERA_ROTATION_ROLE_INVALID');
});

test('postgres-static refuses roles it must not touch, with exact codes', async () => {
  await fx.su(`CREATE ROLE ${prefix}lease_like LOGIN`);
  for (const [role, why] of [[`nobody_${fx.tag}`, /does not exist/], [fx.mgmtUser, /management role/], ['tessera_admin', /superuser/], [`${prefix}lease_like`, /prefix/]] as const) {
    const path = `db/bad-${randomBytes(3).toString('hex')}`;
    assert.equal((await h.call('PUT', `/v1/admin/secrets/${path}`, { value: 'x', rotator: { kind: 'postgres-static', engine: 'main', role } })).status, 200);
    const r = await h.call('POST', `/v1/admin/rotation/${path}`, {});
    assert.equal(r.json.error?.code, 'TESSERA_ROTATION_ROLE_INVALID', `${role}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.error.message, why);
    assert.equal((await h.kv.metadata(path)).currentVersion, 1);
  }
});

test('engine-root: only Tessera knows the new management password; the engine keeps issuing leases', async () => {
  const leases = createLeaseService({ store: h.store, clock: h.clock, audit: h.audit, engines: [h.postgres.engine], engineTimeoutMs: 10_000 });
  const role = await h.call('PUT', '/v1/admin/engines/postgres/main/roles/reader', { groups: [fx.group], default_ttl: '5m', max_ttl: '1h' });
  assert.equal(role.status, 200, JSON.stringify(role.json));
  const agent = principal('ns/x/sa/reader');
  const first = await leases.issue({ engine: 'postgres', role: 'reader', principal: agent });
  registerSensitive(String(first.data.password));

  const oldPassword = decodeURIComponent(new URL(fx.mgmtUrl).password);
  assert.equal((await h.call('PUT', '/v1/admin/secrets/engines/main/root', { value: 'managed by tessera', rotation_period: '30d', rotator: { kind: 'engine-root', engine: 'main' } })).status, 200);
  const r = await h.call('POST', '/v1/admin/rotation/engines/main/root', {});
  assert.equal(r.status, 200, JSON.stringify(r.json));
  // The old management password no longer logs in; the kv version is a record, not the password.
  await assert.rejects(loginAs({ host: fx.host, port: fx.port, database: fx.db.name, username: fx.mgmtUser, password: oldPassword }), (e: Error & { code?: string }) => e.code === '28P01');
  const record = JSON.parse((await h.kv.get('engines/main/root')).value) as Record<string, unknown>;
  assert.equal(record.engine, 'main');
  assert.equal(record.username, fx.mgmtUser);
  assert.ok(!('password' in record));
  assert.ok(h.audit.events.some((e) => e.kind === 'engine.root_rotated'));
  // The engine reloaded its sealed URL: new leases work (a fresh management connection logs in).
  const second = await leases.issue({ engine: 'postgres', role: 'reader', principal: agent });
  registerSensitive(String(second.data.password));
  const c = await loginAs({ host: fx.host, port: fx.port, database: fx.db.name, username: String(second.data.username), password: String(second.data.password) });
  assert.equal(await query(c), 'Ada');
  await c.end();
  await leases.revoke(first.lease_id, 'test');
  await leases.revoke(second.lease_id, 'test');
  // A second rotation works from the rotated password (the engine's URL is the only copy).
  const r2 = await h.call('POST', '/v1/admin/rotation/engines/main/root', {});
  assert.equal(r2.status, 200, JSON.stringify(r2.json));
  const third = await leases.issue({ engine: 'postgres', role: 'reader', principal: agent });
  registerSensitive(String(third.data.password));
  await leases.revoke(third.lease_id, 'test');
  await leases.idle();
});

// Attack (atk-13): roles are cluster-wide, so engine "main" could rotate what another engine configuration manages.
test('postgres-static refuses the management role and lease users of ANOTHER engine configuration (TESSERA_ROTATION_ROLE_INVALID)', async () => {
  const other = `mgmt2_${fx.tag}`;
  const otherPw = randomBytes(12).toString('hex');
  registerSensitive(otherPw);
  const otherPrefix = `q${randomBytes(2).toString('hex')}_`;
  await fx.su(`CREATE ROLE ${other} LOGIN CREATEROLE PASSWORD '${otherPw}'`);
  await fx.su(`GRANT ALL ON DATABASE ${fx.db.name} TO ${other}`);
  await fx.su(`GRANT pg_signal_backend TO ${other}`);
  await fx.su(`CREATE ROLE ${otherPrefix}lease_like LOGIN`);
  const u = new URL(fx.mgmtUrl);
  u.username = other;
  u.password = otherPw;
  const cfg = await h.call('PUT', '/v1/admin/engines/postgres/second', { connection_url: u.toString(), username_prefix: otherPrefix, pool_size: 1, connect_timeout: '3s', statement_timeout: '5s' });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.json));
  try {
    for (const [role, why] of [[other, /management role of engine configuration "second"/], [`${otherPrefix}lease_like`, /prefix .* of engine configuration "second"/]] as const) {
      const path = `db/cross-${randomBytes(3).toString('hex')}`;
      assert.equal((await h.call('PUT', `/v1/admin/secrets/${path}`, { value: 'x', rotator: { kind: 'postgres-static', engine: 'main', role } })).status, 200);
      const r = await h.call('POST', `/v1/admin/rotation/${path}`, {});
      assert.equal(r.status, 409, JSON.stringify(r.json));
      assert.equal(r.json.error?.code, 'TESSERA_ROTATION_ROLE_INVALID', `${role}: ${JSON.stringify(r.json)}`);
      assert.match(r.json.error.message, why);
      assert.equal((await h.kv.metadata(path)).currentVersion, 1);
    }
    // The second engine still logs in with its own password.
    await (await loginAs({ host: fx.host, port: fx.port, database: fx.db.name, username: other, password: otherPw })).end();
  } finally {
    await h.call('DELETE', '/v1/admin/engines/postgres/second');
  }
});
