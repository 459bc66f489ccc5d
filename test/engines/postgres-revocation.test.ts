/**
 * The kill switch never leaves a usable credential (issue 7, item 6), on a real PostgreSQL:
 * revocation disables the user first (NOLOGIN, expired, sessions ended, memberships revoked)
 * and only then cleans up under the role's owned-object rule. The issue's exact scenario — a
 * dynamic user that created a table and keeps a session open — and the variants where the
 * cleanup cannot complete.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { ADMIN, harness, loginAs, pgFixture, principal, type Harness, type PgFixture } from './pg-setup.js';
import { withDatabase } from '../helpers/postgres.js';

let fx: PgFixture;
let h: Harness;
const prefix = `r${Math.random().toString(36).slice(2, 7)}_`;
let writer: string;
let keeper: string;

type Cred = { username: string; password: string; host: string; port: number; database: string; uri: string };

before(async () => {
  fx = await pgFixture('pgrevoke');
  h = await harness({ maxRevokeAttempts: 3 });
  // A group whose members may create tables (the issue's dynamic user did), and a role that
  // receives the objects of revoked users under owned_objects "reassign".
  writer = `writer_${fx.tag}`;
  keeper = `keeper_${fx.tag}`;
  await fx.su(`CREATE ROLE ${writer} NOLOGIN`);
  await fx.su(`GRANT USAGE, CREATE ON SCHEMA public TO ${writer}`);
  await fx.su(`CREATE ROLE ${keeper} NOLOGIN`);
  await fx.su(`GRANT ${keeper} TO ${fx.mgmtUser}`); // REASSIGN OWNED needs the privileges of the target
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main', ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 4 })).status, 200);
  for (const [role, extra] of [
    ['writer-drop', {}],
    ['writer-keep', { owned_objects: 'reassign', reassign_to: keeper }],
  ] as const) {
    const put = await h.call('PUT', `/v1/admin/engines/postgres/main/roles/${role}`, ADMIN, { groups: [writer], default_ttl: '10m', max_ttl: '1h', ...extra });
    assert.equal(put.status, 200, JSON.stringify(put.json));
  }
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

async function issue(role: string): Promise<{ id: string; cred: Cred }> {
  const r = await h.call('POST', `/v1/creds/postgres/${role}`, 'agent-reader');
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return { id: r.json.lease_id as string, cred: r.json.data as Cred };
}

async function cannotLogin(cred: Cred, database = cred.database): Promise<void> {
  await assert.rejects(loginAs({ ...cred, database }), (e: Error & { code?: string }) => e.code === '28P01' || e.code === '28000' || /authentication|does not exist|not permitted to log in/i.test(e.message));
}

/** The error of a query on a session that must have been ended (pg_terminate_backend). */
async function ended(c: pg.Client): Promise<void> {
  await assert.rejects(c.query('SELECT 1'), (e: Error & { code?: string }) => e.code === '57P01' || /terminat|Connection terminated|not queryable/i.test(e.message));
  await c.end().catch(() => undefined);
}

/** The user's oid: sessions are counted by it, so they still count once the role is dropped. */
async function oidOf(username: string): Promise<string> {
  const [row] = await fx.su<{ oid: string }>(`SELECT oid::text AS oid FROM pg_roles WHERE rolname = $1`, [username]);
  assert.ok(row, `no user ${username}`);
  return row.oid;
}

async function sessionsOf(oid: string): Promise<number> {
  const [row] = await fx.su<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usesysid = $1::oid`, [oid]);
  return row!.n;
}

test("the issue's scenario: a user that created a table, with an open session and one inside a transaction; revoke ends both, refuses logins, drops the table", async () => {
  const { id, cred } = await issue('writer-drop');
  const open = await loginAs(cred);
  await open.query('CREATE TABLE agent_notes (id int PRIMARY KEY, note text)');
  await open.query(`INSERT INTO agent_notes VALUES (1, 'kept?')`);
  const inTx = await loginAs(cred);
  await inTx.query('BEGIN');
  await inTx.query(`INSERT INTO agent_notes VALUES (2, 'uncommitted')`); // holds a lock on the table
  const oid = await oidOf(cred.username);
  assert.equal(await sessionsOf(oid), 2);

  const del = await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader');
  assert.deepEqual(del.json, { lease_id: id, state: 'revoked' });
  await ended(open);
  await ended(inTx);
  await cannotLogin(cred);
  assert.equal(await sessionsOf(oid), 0);
  assert.deepEqual(await fx.usersWithPrefix(cred.username), []);
  // owned_objects "drop" (the default): the table died with the lease.
  assert.deepEqual(await fx.su(`SELECT 1 FROM pg_class WHERE relname = 'agent_notes'`), []);
  const lease = await h.leases.get(id);
  assert.deepEqual([lease?.state, lease?.lastError], ['revoked', null]);
});

test('owned_objects "reassign": the table and its rows survive, owned by the named role; the user is gone', async () => {
  const { id, cred } = await issue('writer-keep');
  const c = await loginAs(cred);
  await c.query('CREATE TABLE kept_results (id int)');
  await c.query('INSERT INTO kept_results VALUES (42)');
  const rev = await h.call('POST', '/v1/admin/revocations', ADMIN, { kind: 'lease', target: id });
  assert.equal(rev.status, 201, JSON.stringify(rev.json));
  assert.deepEqual([rev.json.leases_revoked, rev.json.leases_disabled, rev.json.leases_irrevocable], [1, 0, 0]);
  await ended(c);
  await cannotLogin(cred);
  const [owner] = await fx.su<{ owner: string }>(`SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'kept_results'`);
  assert.equal(owner?.owner, keeper);
  assert.deepEqual(await fx.su('SELECT id FROM kept_results'), [{ id: 42 }]);
  assert.deepEqual(await fx.usersWithPrefix(cred.username), []);
  await fx.su('DROP TABLE kept_results');
});

test('cleanup cannot complete (objects in another database): the user is still disabled everywhere — no login, no session — and the lease says so', async () => {
  const other = `t_other_${fx.tag}`;
  await fx.su(`CREATE DATABASE ${other}`);
  const otherAdmin = withDatabase(fx.db.clusterAdminUrl, other);
  const su2 = async (sql: string) => {
    const c = new pg.Client({ connectionString: otherAdmin });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  };
  try {
    await su2(`GRANT USAGE, CREATE ON SCHEMA public TO ${writer}`);
    const { id, cred } = await issue('writer-drop');
    const here = await loginAs(cred);
    const there = await loginAs({ ...cred, database: other });
    await there.query('CREATE TABLE elsewhere (x int)'); // REASSIGN/DROP OWNED act per database: out of reach
    await there.query('BEGIN');
    await there.query('INSERT INTO elsewhere VALUES (1)');
    const oid = await oidOf(cred.username);
    assert.equal(await sessionsOf(oid), 2);

    const del = await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN);
    assert.equal(del.json.state, 'disabled', JSON.stringify(del.json));
    await ended(here);
    await ended(there);
    await cannotLogin(cred);
    await cannotLogin(cred, other);
    assert.equal(await sessionsOf(oid), 0);
    const [role] = await fx.su<{ rolcanlogin: boolean; expired: boolean; groups: number }>(
      `SELECT rolcanlogin, rolvaliduntil < now() AS expired, (SELECT count(*)::int FROM pg_auth_members WHERE member = r.oid) AS groups FROM pg_roles r WHERE rolname = $1`,
      [cred.username],
    );
    assert.deepEqual(role, { rolcanlogin: false, expired: true, groups: 0 }, 'NOLOGIN, expired, member of nothing');
    let lease = await h.leases.get(id);
    assert.equal(lease?.state, 'disabled');
    assert.match(lease?.lastError ?? '', new RegExp(`still owns objects or holds privileges in another database: ${other} \\(1\\)`));
    assert.ok(h.audit.events.some((e) => e.kind === 'lease.revoke_failed' && e.details?.stage === 'cleanup' && e.details?.disabled === true && e.details?.irrevocable === false));
    assert.match(await h.metrics.render(), /^tessera_leases_disabled 1$/m);
    assert.deepEqual(await h.leases.health(), { revoking: 0, disabled: 1, irrevocable: 0 });
    // The reaper retries; still disabled, still unusable.
    h.clock.advance(10_000);
    assert.equal((await h.leases.reapOnce()).retried, 1);
    assert.equal((await h.leases.get(id))?.state, 'disabled');
    await cannotLogin(cred);
    // The operator does what the message says in the other database; the next retry completes.
    await su2(`DROP OWNED BY "${cred.username}"`);
    h.clock.advance(10_000);
    await h.leases.reapOnce();
    lease = await h.leases.get(id);
    assert.equal(lease?.state, 'revoked', lease?.lastError ?? '');
    assert.deepEqual(await fx.usersWithPrefix(cred.username), []);
  } finally {
    await fx.su(`DROP DATABASE IF EXISTS ${other} WITH (FORCE)`);
  }
});

test('the owned-object rule cannot apply (reassign target gone): disabled, never usable; fixed by saving the role again', async () => {
  const gone = `gone_${fx.tag}`;
  await fx.su(`CREATE ROLE ${gone} NOLOGIN`);
  await fx.su(`GRANT ${gone} TO ${fx.mgmtUser}`);
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/writer-gone', ADMIN, { groups: [writer], owned_objects: 'reassign', reassign_to: gone })).status, 200);
  const { id, cred } = await issue('writer-gone');
  const c = await loginAs(cred);
  await c.query('CREATE TABLE orphaned_work (x int)');
  await fx.su(`DROP ROLE ${gone}`); // after the role was saved
  const del = await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader');
  assert.equal(del.json.state, 'disabled');
  await ended(c);
  await cannotLogin(cred);
  assert.match((await h.leases.get(id))?.lastError ?? '', /does not exist/);
  // Saving the role again with another rule; the operator retries the revocation.
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/writer-gone', ADMIN, { groups: [writer] })).status, 200);
  assert.equal((await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN)).json.state, 'revoked');
  assert.deepEqual(await fx.su(`SELECT 1 FROM pg_class WHERE relname = 'orphaned_work'`), []);
});

test('logins racing the revocation: once it answers, no session of the user exists and none can start', async () => {
  const { id, cred } = await issue('writer-drop');
  const oid = await oidOf(cred.username);
  let stop = false;
  const opened: pg.Client[] = [];
  // Four clients log in again and again (bounded) while the lease is revoked.
  const racers = Array.from({ length: 4 }, async () => {
    for (let i = 0; i < 200 && !stop; i++) {
      try {
        opened.push(await loginAs(cred));
      } catch {
        // refused: the revocation is in effect
      }
    }
  });
  for (let i = 0; i < 400 && opened.length < 2; i++) await new Promise((r) => setTimeout(r, 25));
  const del = await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader');
  assert.equal(del.json.state, 'revoked', (await h.leases.get(id))?.lastError ?? '');
  assert.equal(await sessionsOf(oid), 0, 'no session survived the revocation');
  await cannotLogin(cred);
  stop = true;
  await Promise.all(racers);
  for (const c of opened) await c.end().catch(() => undefined);
  assert.ok(opened.length >= 2, 'logins were racing');
});

test('memberships granted to others on the user are revoked at disable, so nobody can SET ROLE to it', async () => {
  const { id, cred } = await issue('writer-drop');
  const friend = `friend_${fx.tag}`;
  await fx.su(`CREATE ROLE ${friend} NOLOGIN`);
  await fx.su(`GRANT "${cred.username}" TO ${friend}`);
  const c = await loginAs(cred);
  await c.query('CREATE TABLE blocks_cleanup (x int)');
  // Granted by the schema owner: the cleanup will fail, so what disable did is what remains.
  await fx.su(`GRANT CREATE ON SCHEMA public TO "${cred.username}"`);
  assert.equal((await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader')).json.state, 'disabled');
  await ended(c);
  assert.deepEqual(await fx.su(`SELECT 1 FROM pg_auth_members WHERE roleid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND member = (SELECT oid FROM pg_roles WHERE rolname = $2)`, [cred.username, friend]), []);
  await cannotLogin(cred);
  await fx.su(`REVOKE CREATE ON SCHEMA public FROM "${cred.username}"`);
  assert.equal((await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN)).json.state, 'revoked');
});

test('disable takes the group privileges away from what the user left behind (a SECURITY DEFINER function), even when the cleanup fails', async () => {
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/writer-reader', ADMIN, { groups: [writer, fx.group] })).status, 200);
  const { id, cred } = await issue('writer-reader');
  const c = await loginAs(cred);
  await c.query(`CREATE FUNCTION peek_patients() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = public AS 'SELECT count(*) FROM patients'`);
  await c.end();
  // Another role (no privilege on patients) reads them through the function: EXECUTE is granted to PUBLIC by default.
  const bystander = new pg.Client({ connectionString: fx.ownerUrl });
  await bystander.connect();
  try {
    assert.deepEqual((await bystander.query('SELECT public.peek_patients() AS n')).rows, [{ n: '2' }]);
    await fx.su(`GRANT CREATE ON SCHEMA public TO "${cred.username}"`); // granted by the schema owner: the cleanup cannot finish
    assert.equal((await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader')).json.state, 'disabled');
    await assert.rejects(bystander.query('SELECT public.peek_patients() AS n'), (e: Error & { code?: string }) => e.code === '42501');
  } finally {
    await bystander.end();
  }
  await fx.su(`REVOKE CREATE ON SCHEMA public FROM "${cred.username}"`);
  assert.equal((await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN)).json.state, 'revoked');
  assert.deepEqual(await fx.su(`SELECT 1 FROM pg_proc WHERE proname = 'peek_patients'`), [], 'owned_objects "drop": the function is gone too');
});

test('a role stored under laxer rules whose statement no longer validates: kept, issuance refused, its leases still disabled at revocation', async () => {
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/legacy', ADMIN, { groups: [writer], revocation_statements: ['DROP OWNED BY {{name}}'] })).status, 200);
  const { id, cred } = await issue('legacy');
  // As an older Tessera could have stored it: the issue's dollar-tag case, accepted back then.
  await h.store.run(`UPDATE pg_engine_roles SET revocation_statements = ? WHERE name = ?`, [JSON.stringify(['REASSIGN OWNED BY {{name}} TO x$a$; SELECT 1 --$a$']), 'legacy']);
  await h.postgres.reload();
  const shown = await h.call('GET', '/v1/admin/engines/postgres/main/roles/legacy', ADMIN);
  assert.match(String(shown.json.invalid), /no longer passes validation.*second statement/);
  const refused = await h.call('POST', '/v1/creds/postgres/legacy', 'agent-reader');
  assert.deepEqual([refused.status, refused.json.error?.code], [502, 'TESSERA_ENGINE_FAILED']);
  assert.match(refused.json.error?.message ?? '', /save the role again/);
  const c = await loginAs(cred);
  assert.equal((await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader')).json.state, 'disabled', 'the cleanup refuses, the disable does not need the templates');
  await ended(c);
  await cannotLogin(cred);
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/legacy', ADMIN, { groups: [writer] })).status, 200);
  assert.equal((await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN)).json.state, 'revoked');
  await h.leases.idle();
});

test('a database that refuses every attempt to disable: irrevocable after the bounded retries, visible, and the credential was never reported disabled', async () => {
  const { id, cred } = await issue('writer-drop');
  await fx.su(`ALTER ROLE ${fx.mgmtUser} CONNECTION LIMIT 0`);
  await fx.su(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [fx.mgmtUser]);
  try {
    assert.equal((await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader')).json.state, 'revoking');
    for (let i = 0; i < 3; i++) {
      h.clock.advance(10_000);
      await h.leases.reapOnce();
    }
    const lease = await h.leases.get(id);
    assert.equal(lease?.state, 'irrevocable');
    assert.match(await h.metrics.render(), /^tessera_leases_irrevocable 1$/m);
    assert.ok(h.audit.events.some((e) => e.kind === 'lease.revoke_failed' && e.details?.irrevocable === true && e.details?.disabled === false && e.details?.stage === 'disable'));
  } finally {
    await fx.su(`ALTER ROLE ${fx.mgmtUser} CONNECTION LIMIT -1`);
  }
  assert.equal((await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN)).json.state, 'revoked');
  await cannotLogin(cred);
  void principal;
});
