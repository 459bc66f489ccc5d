/**
 * The kill switch is not stopped by a lock the leased user holds (pen-test finding F1, on a real
 * PostgreSQL). Any role may change its own password, and an uncommitted
 * `ALTER ROLE CURRENT_USER PASSWORD …` holds the row lock on its pg_authid row that the disable
 * step's `ALTER ROLE … NOLOGIN` needs. The exact reproduction and the others of its kind: the
 * lock in an open session, in a prepared transaction (which outlives its session) in this and in
 * another database, a user that logs in again and again to re-take the lock, a lock held by a
 * role that is NOT the user (named, the user is still stripped of sessions and groups, retried
 * until it succeeds — never left without a next attempt), and a renew blocked by the user's own
 * lock (409, not 5xx).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { ADMIN, harness, loginAs, pgFixture, principal, type Harness, type PgFixture } from './pg-setup.js';
import { withDatabase } from '../helpers/postgres.js';

let fx: PgFixture;
let h: Harness;
const prefix = `k${Math.random().toString(36).slice(2, 7)}_`;

type Cred = { username: string; password: string; host: string; port: number; database: string; uri: string };

before(async () => {
  fx = await pgFixture('pglocks');
  h = await harness({ maxRevokeAttempts: 2 });
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main', ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 2, statement_timeout: '3s' })).status, 200);
  const put = await h.call('PUT', '/v1/admin/engines/postgres/main/roles/reader', ADMIN, { groups: [fx.group], default_ttl: '10m', max_ttl: '1h' });
  assert.equal(put.status, 200, JSON.stringify(put.json));
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

async function issue(agent = 'agent-reader'): Promise<{ id: string; cred: Cred }> {
  const r = await h.call('POST', '/v1/creds/postgres/reader', agent);
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return { id: r.json.lease_id as string, cred: r.json.data as Cred };
}

async function cannotLogin(cred: Cred, database = cred.database): Promise<void> {
  await assert.rejects(loginAs({ ...cred, database }), (e: Error & { code?: string }) => e.code === '28P01' || e.code === '28000' || /authentication|does not exist|not permitted to log in/i.test(e.message));
}

async function ended(c: pg.Client): Promise<void> {
  await assert.rejects(c.query('SELECT 1'), (e: Error & { code?: string }) => e.code === '57P01' || /terminat|Connection terminated|not queryable/i.test(e.message));
  await c.end().catch(() => undefined);
}

/** The exact attack: the user's own row of pg_authid locked by an uncommitted password change. */
async function holdOwnRowLock(cred: Cred, database = cred.database): Promise<pg.Client> {
  const c = await loginAs({ ...cred, database });
  await c.query('BEGIN');
  await c.query(`ALTER ROLE CURRENT_USER PASSWORD 'whatever-123'`);
  return c;
}

async function roleFacts(username: string): Promise<{ canLogin: boolean; validUntil: string | null; groups: string[] } | undefined> {
  const [r] = await fx.su<{ rolcanlogin: boolean; until: string | null }>(`SELECT rolcanlogin, rolvaliduntil::text AS until FROM pg_roles WHERE rolname = $1`, [username]);
  if (!r) return undefined;
  const groups = await fx.su<{ g: string }>(`SELECT g.rolname AS g FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = $1`, [username]);
  return { canLogin: r.rolcanlogin, validUntil: r.until, groups: groups.map((x) => x.g) };
}

test("the tester's reproduction: an uncommitted ALTER ROLE CURRENT_USER PASSWORD does not stop the kill switch", async () => {
  const { id, cred } = await issue();
  const holder = await holdOwnRowLock(cred);
  const reader = await loginAs(cred);
  assert.deepEqual(await reader.query('SELECT count(*)::int AS n FROM patients').then((r) => r.rows), [{ n: 2 }]);
  const rev = await h.call('POST', '/v1/admin/revocations', ADMIN, { kind: 'agent', target: principal('ns/healthcare/sa/patient-reader').spiffeId, reason: 'F1' });
  assert.equal(rev.status, 201, JSON.stringify(rev.json));
  assert.deepEqual([rev.json.leases_revoked, rev.json.leases_retrying, rev.json.leases_irrevocable], [1, 0, 0], JSON.stringify(rev.json));
  await ended(holder);
  await ended(reader);
  await cannotLogin(cred);
  assert.equal(await roleFacts(cred.username), undefined, 'the user is gone');
  const lease = await h.leases.get(id);
  assert.deepEqual([lease?.state, lease?.lastError], ['revoked', null]);
  await h.revocations.lift(String(rev.json.id));
});

test('a prepared transaction holding the row lock (it outlives every session) is rolled back, here and in another database', async () => {
  const other = `t_px_${fx.tag}`;
  await fx.su(`CREATE DATABASE ${other}`);
  try {
    for (const database of [undefined, other]) {
      const { id, cred } = await issue();
      const c = await holdOwnRowLock(cred, database);
      const gid = `px_${database ?? 'here'}_${fx.tag}`;
      await c.query(`PREPARE TRANSACTION '${gid}'`);
      await c.end(); // the session is gone; the lock is not
      assert.equal((await fx.su(`SELECT 1 FROM pg_prepared_xacts WHERE gid = $1`, [gid])).length, 1);
      const del = await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN);
      assert.equal(del.json.state, 'revoked', `${database ?? 'this database'}: ${JSON.stringify(del.json)} ${(await h.leases.get(id))?.lastError}`);
      assert.deepEqual(await fx.su(`SELECT 1 FROM pg_prepared_xacts WHERE gid = $1`, [gid]), [], 'rolled back');
      await cannotLogin(cred);
      assert.equal(await roleFacts(cred.username), undefined);
    }
  } finally {
    const c = new pg.Client({ connectionString: fx.db.clusterAdminUrl });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${other}`).catch(() => undefined);
    await c.end();
  }
});

test('a user that logs in again and again to re-take the lock loses: the disable queues for the lock and wins it', async () => {
  const { id, cred } = await issue();
  let stop = false;
  let takes = 0;
  // Bounded: it ends when the user can no longer log in, or after 200 rounds.
  const attacker = (async () => {
    for (let i = 0; i < 200 && !stop; i++) {
      let c: pg.Client | undefined;
      try {
        c = await holdOwnRowLock(cred);
        takes++;
        await c.query('SELECT pg_sleep(0.2)').catch(() => undefined);
      } catch (e) {
        if (/not permitted to log in|authentication|does not exist/i.test((e as Error).message)) return;
      } finally {
        await c?.end().catch(() => undefined);
      }
    }
  })();
  // The attacker holds the lock before the revocation starts.
  for (let i = 0; i < 200 && takes === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(takes > 0);
  const del = await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN);
  stop = true;
  await attacker;
  assert.equal(del.json.state, 'revoked', `${JSON.stringify(del.json)} ${(await h.leases.get(id))?.lastError}`);
  await cannotLogin(cred);
});

test('a lock held by another role is named, not killed; the user loses sessions and groups at once, and the retries (never stopping) finish the disable once it is released', async () => {
  const { id, cred } = await issue();
  const session = await loginAs(cred);
  // An operator's open transaction on the same row: not Tessera's to end.
  const dba = new pg.Client({ connectionString: fx.db.adminUrl });
  await dba.connect();
  await dba.query('BEGIN');
  await dba.query(`ALTER ROLE "${cred.username}" CONNECTION LIMIT 5`);
  try {
    const del = await h.call('DELETE', `/v1/admin/leases/${id}`, ADMIN);
    assert.equal(del.json.state, 'revoking', JSON.stringify(del.json));
    let lease = await h.leases.get(id);
    assert.match(lease?.lastError ?? '', /^TESSERA_ENGINE_LOCK_TIMEOUT: NOLOGIN not applied yet \(sessions ended, groups revoked; the user can still log in\): a lock is held by session \d+ of role "tessera_admin", not a revoked user/);
    assert.doesNotMatch(lease?.lastError ?? '', /unreachable|too slow/);
    await ended(session);
    const facts = await roleFacts(cred.username);
    assert.deepEqual(facts?.groups, [], 'no group: the credential reads nothing even if it logs in');
    const again = await loginAs(cred);
    await assert.rejects(again.query('SELECT * FROM patients'), (e: Error & { code?: string }) => e.code === '42501');
    await again.end();
    // Attempts exhausted (maxRevokeAttempts 2): irrevocable, but never without a next attempt.
    h.clock.advance(10_000);
    await h.leases.reapOnce();
    lease = await h.leases.get(id);
    assert.equal(lease?.state, 'irrevocable');
    assert.ok((lease?.nextAttemptAt ?? 0) > h.clock.now(), 'a next attempt is scheduled');
    assert.ok(h.audit.events.some((e) => e.kind === 'lease.revoke_failed' && e.reason?.code === 'TESSERA_ENGINE_LOCK_TIMEOUT' && e.details?.irrevocable === true));
  } finally {
    await dba.query('ROLLBACK');
    await dba.end();
  }
  h.clock.advance(10_000);
  await h.leases.reapOnce();
  assert.equal((await h.leases.get(id))?.state, 'revoked');
  await cannotLogin(cred);
});

test('renewing while the user holds its own row lock: 409 TESSERA_ENGINE_USER_BUSY (its own doing), never a 5xx', async () => {
  const { id, cred } = await issue();
  const holder = await holdOwnRowLock(cred);
  const r = await h.call('POST', `/v1/leases/${id}/renew`, 'agent-reader', { increment: 60 });
  assert.deepEqual([r.status, r.json.error?.code], [409, 'TESSERA_ENGINE_USER_BUSY'], JSON.stringify(r.json));
  await holder.query('ROLLBACK');
  const ok = await h.call('POST', `/v1/leases/${id}/renew`, 'agent-reader', { increment: 60 });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  await holder.end();
  assert.equal((await h.call('DELETE', `/v1/leases/${id}`, 'agent-reader')).json.state, 'revoked');
});

test('the reproduction as the expiry reaper sees it: a lease that expires while its user holds the lock is revoked, the session does not outlive it', async () => {
  const r = await h.call('POST', '/v1/creds/postgres/reader', 'agent-reader', { ttl: 30 });
  assert.equal(r.status, 201);
  const cred = r.json.data as Cred;
  const holder = await holdOwnRowLock(cred);
  h.clock.advance(31_000);
  const reaped = await h.leases.reapOnce();
  assert.equal(reaped.expired, 1);
  assert.equal((await h.leases.get(r.json.lease_id as string))?.state, 'revoked');
  await ended(holder);
  await cannotLogin(cred);
  void withDatabase;
});
