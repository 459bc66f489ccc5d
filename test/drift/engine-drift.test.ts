/**
 * Engine drift on a real PostgreSQL (test/helpers/postgres.ts): the engine's group role is
 * pinned at the first check; grants and memberships altered by hand (GRANT on another table,
 * the group granted to a person's role, an engine user put into another role) are detected and
 * audited once; a role with the engine's prefix and no lease is reported; a missing or
 * privileged group is critical; an accepted change is quiet again. Real store (SQLite), real
 * engine and lease service (test/engines/pg-setup.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, harness, pgFixture, type Harness, type PgFixture } from '../engines/pg-setup.js';
import { createEngineDrift, type EngineDrift } from '../../src/drift/index.js';

let fx: PgFixture;
let h: Harness;
let drift: EngineDrift;
const prefix = `d${Math.random().toString(36).slice(2, 7)}_`;

before(async () => {
  fx = await pgFixture('drift-engine');
  h = await harness();
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main', ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 2 })).status, 200);
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/reader', ADMIN, { groups: [fx.group], default_ttl: '10m', max_ttl: '1h' })).status, 200);
  drift = createEngineDrift({ store: h.store, clock: h.clock, audit: h.audit, inspect: (s) => h.postgres.inspect(s) });
});

after(async () => {
  await h?.close();
  await fx?.drop();
});

const codes = async () => (await drift.findings()).map((f) => `${f.code} ${f.subject}`).sort();
const events = (kind: string) => h.audit.events.filter((e) => e.kind === kind);

test('the first check pins the group role and finds nothing', async () => {
  assert.deepEqual(await codes(), []);
  assert.equal(events('drift.engine_pinned').length, 1);
  // An issued lease's user is a declared member: still nothing.
  const r = await h.call('POST', '/v1/creds/postgres/reader', 'agent-reader');
  assert.equal(r.status, 201, String(r.json.error?.code));
  assert.deepEqual(await codes(), []);
  const inspected = (await h.postgres.inspect())[0]!;
  assert.deepEqual(inspected.groups[0]!.privileges, [`schema public: USAGE`, `table public.patients: SELECT`]);
});

test('a grant added by hand is detected and audited once', async () => {
  await fx.su(`GRANT SELECT, UPDATE ON billing TO ${fx.group}`);
  const subject = `main/${fx.group}`;
  assert.deepEqual(await codes(), [`engine_group_changed ${subject}`]);
  assert.deepEqual(await codes(), [`engine_group_changed ${subject}`]);
  const ev = events('drift.engine_changed');
  assert.equal(ev.length, 1);
  assert.deepEqual((ev[0]!.details as { fields: string[] }).fields, ['privileges']);
  const f = (await drift.findings())[0]!;
  assert.ok((f.details!['privileges'] as string[]).includes('table public.billing: UPDATE'));
});

test('memberships changed by hand: the group granted to a person, an engine user put in another role', async () => {
  const person = `alice_${fx.tag}`;
  const other = `ops_${fx.tag}`;
  await fx.su(`CREATE ROLE ${person} LOGIN`);
  await fx.su(`CREATE ROLE ${other} NOLOGIN`);
  await fx.su(`GRANT ${fx.group} TO ${person}`);
  const [user] = await fx.usersWithPrefix(prefix);
  await fx.su(`GRANT ${other} TO "${user}"`);
  const found = await drift.findings();
  const changed = found.find((f) => f.code === 'engine_group_changed')!;
  assert.deepEqual(changed.details!['fields'], ['members', 'privileges']);
  assert.deepEqual(changed.details!['members'], [person]);
  const undeclared = found.find((f) => f.code === 'engine_user_undeclared_membership')!;
  assert.equal(undeclared.subject, `main/${user}`);
  assert.deepEqual(undeclared.details!['member_of'], [other]);
  // A second distinct change of the same group: one more event.
  assert.equal(events('drift.engine_changed').length, 2);
});

test('a role that looks like the engine\'s with no lease is reported (the reconcile would drop it)', async () => {
  await fx.su(`CREATE ROLE "${prefix}orphan_${fx.tag}" LOGIN`);
  assert.ok((await codes()).includes(`engine_orphan_user main/${prefix}orphan_${fx.tag}`));
  await fx.su(`DROP ROLE "${prefix}orphan_${fx.tag}"`);
});

test('accepting the database as it is quiets the group finding; bad names get codes', async () => {
  const subject = `main/${fx.group}`;
  await drift.approve(subject, { actor: { id: 'admin:test' } });
  assert.ok(!(await codes()).some((c) => c.startsWith('engine_group_changed')));
  assert.equal(events('drift.engine_approved').length, 1);
  await assert.rejects(drift.approve(subject, { actor: { id: 'admin:test' } }), { code: 'TESSERA_DRIFT_NOTHING_PENDING' });
  await assert.rejects(drift.approve('main/nope', { actor: { id: 'admin:test' } }), { code: 'TESSERA_DRIFT_UNKNOWN_SUBJECT' });
  await assert.rejects(drift.approve('no-slash', { actor: { id: 'admin:test' } }), { code: 'TESSERA_DRIFT_REQUEST_INVALID' });
  await assert.rejects(drift.approve('main/a b', { actor: { id: 'admin:test' } }), { code: 'TESSERA_DRIFT_REQUEST_INVALID' });
});

test('a privileged group is critical; a dropped group is critical', async () => {
  await fx.su(`ALTER ROLE ${fx.group} CREATEDB`);
  const f = (await drift.findings()).find((x) => x.code === 'engine_group_privileged')!;
  assert.equal(f.severity, 'critical');
  assert.deepEqual(f.details!['attributes'], ['createdb']);
  await fx.su(`ALTER ROLE ${fx.group} NOCREATEDB`);
  // A second group the database does not have.
  const gone = `gone_${fx.tag}`;
  await fx.su(`CREATE ROLE ${gone} NOLOGIN`);
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/gone', ADMIN, { groups: [gone] })).status, 200);
  await fx.su(`DROP ROLE ${gone}`);
  const missing = (await drift.findings()).find((x) => x.code === 'engine_group_missing')!;
  assert.equal(missing.subject, `main/${gone}`);
  assert.equal(missing.severity, 'critical');
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/main/roles/gone', ADMIN)).status < 300, true);
});
