import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import pg from 'pg';
import { ADMIN, harness, loginAs, pgFixture, principal, type Harness, type PgFixture } from './pg-setup.js';
import { Command } from 'commander';
import { urlMetaKey } from '../../src/engines/postgres/index.js';
import { registerEngineCommand } from '../../src/cli/engine.js';
import type { CliIo } from '../../src/cli/io.js';

let fx: PgFixture;
let h: Harness;
const prefix = `t${Math.random().toString(36).slice(2, 7)}_`;

before(async () => {
  fx = await pgFixture('pgengine');
  h = await harness();
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

type Cred = { username: string; password: string; host: string; port: number; database: string; uri: string };

async function configure(name = 'main', extra: Record<string, unknown> = {}) {
  return h.call('PUT', `/v1/admin/engines/postgres/${name}`, ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 4, connect_timeout: '2s', statement_timeout: '5s', ...extra });
}

async function issue(role: string, token = 'agent-reader', body: unknown = {}) {
  return h.call('POST', `/v1/creds/postgres/${role}`, token, body);
}

async function cannotLogin(cred: Cred): Promise<void> {
  await assert.rejects(loginAs(cred), (e: Error & { code?: string }) => e.code === '28P01' || /authentication|does not exist/i.test(e.message));
}

/** Waits (bounded) for a killed session to notice; returns the error of a query on it. */
async function sessionError(c: pg.Client): Promise<unknown> {
  try {
    await c.query('SELECT 1');
    return undefined;
  } catch (e) {
    return e;
  }
}

test('configure: URL stored sealed, never returned; roles; bad inputs get stable codes', async () => {
  const put = await configure();
  assert.equal(put.status, 200, JSON.stringify(put.json));
  assert.equal(put.json.username, fx.mgmtUser);
  assert.equal(put.json.username_prefix, prefix);
  assert.equal(put.json.host, fx.host);
  const got = await h.call('GET', '/v1/admin/engines/postgres/main', ADMIN);
  const all = JSON.stringify(got.json) + JSON.stringify((await h.call('GET', '/v1/admin/engines/postgres', ADMIN)).json);
  assert.ok(!all.includes(new URL(fx.mgmtUrl).password), 'the management password is never returned');
  assert.ok(!all.includes('connection_url'));
  // At rest: sealed in meta (not in clear anywhere in the store).
  const meta = await h.store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [urlMetaKey('main')]);
  assert.ok(meta && !Buffer.from(meta.value, 'base64').toString('latin1').includes(new URL(fx.mgmtUrl).password));
  const dump = JSON.stringify(await h.store.all('SELECT * FROM pg_engine_configs'));
  assert.ok(!dump.includes(new URL(fx.mgmtUrl).password));

  const role = await h.call('PUT', '/v1/admin/engines/postgres/main/roles/patient-reader', ADMIN, { groups: [fx.group], default_ttl: '5m', max_ttl: '1h' });
  assert.equal(role.status, 200, JSON.stringify(role.json));
  assert.equal(role.json.path, 'postgres/patient-reader');
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/main/roles', ADMIN)).json.roles instanceof Array, true);

  const closedPort = await new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
  const badPwd = new URL(fx.mgmtUrl);
  badPwd.password = 'wrong';
  const cases: [string, string, unknown, number, string][] = [
    ['PUT', '/v1/admin/engines/postgres/Bad%20Name', { connection_url: fx.mgmtUrl }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: fx.mgmtUrl, username_prefix: 'tsr";drop' }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: fx.mgmtUrl, username_prefix: 'pg_x' }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: 'mysql://a@b/c' }, 400, 'TESSERA_REQUEST_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: fx.mgmtUrl, extra: 1 }, 400, 'TESSERA_REQUEST_INVALID'],
    // A URL being saved that does not work is that input's fault (ADR 0065): 400, never 5xx.
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: `postgres://u:p@127.0.0.1:${closedPort}/db` }, 400, 'TESSERA_ENGINE_CONNECTION_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: fx.ownerUrl, username_prefix: prefix }, 400, 'TESSERA_ENGINE_PRIVILEGE_MISSING'],
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: badPwd.toString() }, 400, 'TESSERA_ENGINE_AUTH_FAILED'],
    ['PUT', '/v1/admin/engines/postgres/x', { connection_url: fx.mgmtUrl, username_prefix: 'mgmt_' }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['GET', '/v1/admin/engines/postgres/nope', undefined, 404, 'TESSERA_ENGINE_NOT_FOUND'],
    ['PUT', '/v1/admin/engines/postgres/nope/roles/r', { groups: [fx.group] }, 404, 'TESSERA_ENGINE_NOT_FOUND'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { groups: ['x"; DROP ROLE postgres; --'] }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { groups: ["o'neil"] }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { groups: ['no_such_group_xyz'] }, 400, 'TESSERA_ENGINE_GROUP_NOT_FOUND'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { groups: [`${prefix}grp`] }, 400, 'TESSERA_ENGINE_GROUP_NOT_FOUND'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { default_ttl: '2h', max_ttl: '1h' }, 400, 'TESSERA_ENGINE_TTL_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { default_ttl: 'soon' }, 400, 'TESSERA_ENGINE_TTL_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}}; DROP TABLE patients'] }, 400, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { creation_statements: ["CREATE ROLE {{name}} LOGIN PASSWORD '{{password}}'"] }, 400, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { creation_statements: ["CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL 'x\\'; DROP'"] }, 400, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}} IN ROLE g$a$; DROP TABLE patients --$a$'] }, 400, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}} /* ; */ ; DROP TABLE patients'] }, 400, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { owned_objects: 'reassign' }, 400, 'TESSERA_REQUEST_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { owned_objects: 'keep' }, 400, 'TESSERA_REQUEST_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { reassign_to: fx.group }, 400, 'TESSERA_REQUEST_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { owned_objects: 'reassign', reassign_to: 'x"; --' }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { owned_objects: 'reassign', reassign_to: 'no_such_role_xyz' }, 400, 'TESSERA_ENGINE_GROUP_NOT_FOUND'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { owned_objects: 'reassign', reassign_to: `${prefix}keeper` }, 400, 'TESSERA_ENGINE_GROUP_NOT_FOUND'],
    // The management role is not a member of the group: REASSIGN OWNED ... TO it fails in the dry run.
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { owned_objects: 'reassign', reassign_to: fx.group }, 400, 'TESSERA_ENGINE_PRIVILEGE_MISSING'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { creation_statements: ['CREATE ROLE {{user}} LOGIN PASSWORD {{password}}'] }, 400, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { revocation_statements: ['DROP OWNED BY CURRENT_USER'] }, 400, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/Bad', { groups: [fx.group] }, 400, 'TESSERA_ENGINE_NAME_INVALID'],
    ['PUT', '/v1/admin/engines/postgres/main/roles/r', { groups: 'x' }, 400, 'TESSERA_REQUEST_INVALID'],
    ['DELETE', '/v1/admin/engines/postgres/main', undefined, 409, 'TESSERA_ENGINE_IN_USE'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await h.call(method, path, ADMIN, body);
    assert.equal(r.json.error?.code, code, `${method} ${path} ${JSON.stringify(body)} → ${JSON.stringify(r.json)}`);
    assert.equal(r.status, status, `${method} ${path}`);
    assert.ok(!JSON.stringify(r.json).includes(new URL(fx.mgmtUrl).password), 'no error echoes the management password');
  }
  // Role names are global across configurations.
  assert.equal((await configure('second')).status, 200);
  const clash = await h.call('PUT', '/v1/admin/engines/postgres/second/roles/patient-reader', ADMIN, { groups: [fx.group] });
  assert.equal(clash.json.error?.code, 'TESSERA_ENGINE_ROLE_CONFLICT');
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/second', ADMIN)).status, 200);
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main', undefined, { connection_url: fx.mgmtUrl })).json.error?.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  assert.ok(h.audit.events.some((e) => e.kind === 'engine.configured' && e.details?.role === 'patient-reader'));
});

test('issued credential logs in with SCRAM and can do exactly what its group allows', async () => {
  const r = await issue('patient-reader', 'agent-reader', { ttl: '2m' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const cred = r.json.data as Cred;
  assert.equal(r.json.renewable, true);
  assert.ok(cred.username.startsWith(prefix));
  assert.equal(Buffer.from(cred.password, 'base64url').length, 32);
  assert.equal(cred.database, fx.db.name);
  assert.ok(cred.uri.startsWith(`postgresql://${cred.username}:`));
  // The server stored exactly our verifier: SCRAM, our iteration count, never the password.
  const [row] = await fx.su<{ rolpassword: string; rolvaliduntil: Date }>('SELECT rolpassword, rolvaliduntil FROM pg_authid WHERE rolname = $1', [cred.username]);
  assert.match(row!.rolpassword, /^SCRAM-SHA-256\$1:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
  assert.ok(!row!.rolpassword.includes(cred.password));
  assert.equal(row!.rolvaliduntil.getTime(), Date.parse(r.json.expires_at as string));

  const c = await loginAs(cred); // pg_hba.conf: scram-sha-256 for this user
  try {
    const rows = await c.query('SELECT name FROM patients ORDER BY id');
    assert.deepEqual(rows.rows.map((x) => x.name), ['Ada', 'Grace']);
    await assert.rejects(c.query(`INSERT INTO patients VALUES (3, 'Eve')`), (e: Error & { code?: string }) => e.code === '42501');
    await assert.rejects(c.query('SELECT * FROM billing'), (e: Error & { code?: string }) => e.code === '42501');
    await assert.rejects(c.query('CREATE TABLE t (x int)'), (e: Error & { code?: string }) => e.code === '42501');
  } finally {
    await c.end();
  }
  // Also via the URI.
  const viaUri = new pg.Client({ connectionString: cred.uri });
  await viaUri.connect();
  await viaUri.end();

  // Renew extends VALID UNTIL, capped by max TTL.
  h.clock.advance(10_000);
  const renewed = await h.call('POST', `/v1/leases/${r.json.lease_id as string}/renew`, 'agent-reader', { increment: '10m' });
  assert.equal(renewed.status, 200, JSON.stringify(renewed.json));
  const [after] = await fx.su<{ rolvaliduntil: Date }>('SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1', [cred.username]);
  assert.equal(after!.rolvaliduntil.getTime(), Date.parse(renewed.json.expires_at as string));
  assert.equal((await issue('patient-reader', 'agent-reader', { ttl: '2h' })).json.error?.code, 'TESSERA_LEASE_TTL_INVALID');
  assert.equal((await issue('no-such-role')).json.error?.code, 'TESSERA_ENGINE_NOT_FOUND');

  // Revoke: open session terminated, login refused, idempotent.
  const open = await loginAs(cred);
  const del = await h.call('DELETE', `/v1/leases/${r.json.lease_id as string}`, 'agent-reader');
  assert.deepEqual(del.json, { lease_id: r.json.lease_id, state: 'revoked' });
  assert.ok(await sessionError(open), 'the open session is gone');
  await open.end().catch(() => undefined);
  await cannotLogin(cred);
  assert.deepEqual(await fx.usersWithPrefix(cred.username), []);
  await h.postgres.engine.revoke({ config: 'main', role: 'patient-reader', username: cred.username }, new AbortController().signal); // idempotent
});

test('expiry: the reaper drops the user and ends its session', async () => {
  const r = await issue('patient-reader', 'agent-reader', { ttl: 30 });
  const cred = r.json.data as Cred;
  const open = await loginAs(cred);
  h.clock.advance(31_000);
  const reaped = await h.leases.reapOnce();
  assert.equal(reaped.expired, 1);
  assert.ok(await sessionError(open));
  await open.end().catch(() => undefined);
  await cannotLogin(cred);
});

test('kill switch: revoking the agent drops every user and session within a measured bound', async () => {
  const creds: Cred[] = [];
  for (let i = 0; i < 5; i++) creds.push((await issue('patient-reader', 'agent-reader')).json.data as Cred);
  const other = (await issue('patient-reader', 'agent-other')).json.data as Cred;
  const sessions = await Promise.all(creds.map(loginAs));
  const t0 = performance.now();
  const rev = await h.call('POST', '/v1/admin/revocations', ADMIN, { kind: 'agent', target: principal('ns/healthcare/sa/patient-reader').spiffeId, reason: 'test' });
  const elapsedMs = performance.now() - t0;
  assert.equal(rev.status, 201, JSON.stringify(rev.json));
  // When the kill switch returns, every session is already gone (pg_terminate_backend waits).
  for (const s of sessions) {
    assert.ok(await sessionError(s));
    await s.end().catch(() => undefined);
  }
  for (const c of creds) await cannotLogin(c);
  const still = await loginAs(other); // another agent is untouched
  await still.end();
  console.log(`kill switch: 5 database users dropped and sessions ended in ${elapsedMs.toFixed(1)} ms`);
  assert.equal((await issue('patient-reader', 'agent-reader')).json.error?.code, 'TESSERA_TOKEN_REVOKED');
  await h.revocations.lift(String(rev.json.id));
});

test('reconcile both ways: orphaned users are dropped, leases whose user is gone are closed', async () => {
  const keep = await issue('patient-reader');
  const lost = await issue('patient-reader');
  const lostCred = lost.json.data as Cred;
  // An orphan: a user with the prefix that no lease accounts for (e.g. a crash between CREATE ROLE and the store).
  await fx.su(`CREATE ROLE "${prefix}orphan1" LOGIN IN ROLE ${fx.group}`);
  // A user dropped behind Tessera's back.
  await fx.su(`DROP ROLE "${lostCred.username}"`);
  const result = await h.leases.reconcile();
  assert.equal(result.orphansDropped, 1);
  assert.equal(result.missing, 1);
  assert.equal((await h.leases.get(lost.json.lease_id as string))?.state, 'revoked');
  assert.equal((await h.leases.get(keep.json.lease_id as string))?.state, 'active');
  const active = (await h.leases.list({ state: 'active' })).length;
  const users = await fx.usersWithPrefix(prefix);
  assert.equal(users.length, active, 'exactly one user per active lease');
  assert.ok(users.includes((keep.json.data as Cred).username));
  assert.ok(!users.includes(`${prefix}orphan1`));
});

test('database down: issuance fails fast, revocation queues and retries, nothing hangs', async () => {
  const r = await issue('patient-reader');
  assert.equal(r.status, 201);
  const cred = r.json.data as Cred;
  // An outage as the engine sees it: the management role can no longer connect.
  // Simulate the outage by blocking connections for the management role, then restore.
  await fx.su(`ALTER ROLE ${fx.mgmtUser} CONNECTION LIMIT 0`);
  await fx.su(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [fx.mgmtUser]);
  try {
    const t0 = performance.now();
    const failed = await issue('patient-reader');
    const ms = performance.now() - t0;
    assert.equal(failed.json.error?.code, 'TESSERA_ENGINE_UNAVAILABLE', JSON.stringify(failed.json));
    assert.equal(failed.status, 503);
    assert.ok(ms < 10_000, `issuance failed within its bound (${ms.toFixed(0)} ms)`);
    const rev = await h.call('DELETE', `/v1/admin/leases/${r.json.lease_id as string}`, ADMIN);
    assert.equal(rev.json.state, 'revoking', JSON.stringify(rev.json));
    const lease = await h.leases.get(r.json.lease_id as string);
    assert.match(lease!.lastError ?? '', /TESSERA_ENGINE_UNAVAILABLE/);
  } finally {
    await fx.su(`ALTER ROLE ${fx.mgmtUser} CONNECTION LIMIT -1`);
  }
  // Back up: the retry (after backoff) drops the user.
  h.clock.advance(5_000);
  const reaped = await h.leases.reapOnce();
  assert.ok(reaped.retried >= 1);
  assert.equal((await h.leases.get(r.json.lease_id as string))?.state, 'revoked');
  await cannotLogin(cred);
});

test('a privilege granted by another role blocks the cleanup: the user stays disabled (no login), visible, then fixed', async () => {
  const r = await issue('patient-reader');
  const cred = r.json.data as Cred;
  // Granted by the schema owner: the management role cannot revoke it (DROP OWNED warns, DROP ROLE refuses with 2BP01).
  await fx.su(`GRANT CREATE ON SCHEMA public TO "${cred.username}"`);
  const rev = await h.call('DELETE', `/v1/admin/leases/${r.json.lease_id as string}`, ADMIN);
  assert.equal(rev.json.state, 'disabled');
  await cannotLogin(cred);
  for (let i = 0; i < 5; i++) {
    h.clock.advance(10_000);
    await h.leases.reapOnce();
  }
  const list = await h.call('GET', '/v1/admin/leases?state=disabled', ADMIN);
  const mine = (list.json.leases as { lease_id: string; last_error: string; next_attempt_at: string | null }[]).find((l) => l.lease_id === r.json.lease_id);
  assert.ok(mine);
  assert.match(mine.last_error, /2BP01|cannot be dropped/);
  assert.equal(mine.next_attempt_at, null, 'retries exhausted: an operator acts');
  assert.equal((await h.call('GET', '/v1/admin/leases?irrevocable=true', ADMIN)).json.leases instanceof Array, true);
  assert.ok(h.audit.events.some((e) => e.kind === 'lease.revoke_failed' && e.details?.disabled === true && e.details?.stage === 'cleanup'));
  assert.match(await h.metrics.render(), /^tessera_leases_disabled 1$/m);
  assert.match(await h.metrics.render(), /^tessera_pg_engine_users_created_total\{config="main"\} \d+$/m);
  await cannotLogin(cred);
  // Operator fixes it; the revocation then succeeds.
  await fx.su(`REVOKE CREATE ON SCHEMA public FROM "${cred.username}"`);
  const again = await h.call('DELETE', `/v1/admin/leases/${r.json.lease_id as string}`, ADMIN);
  assert.equal(again.json.state, 'revoked', JSON.stringify(again.json));
  assert.match(await h.metrics.render(), /^tessera_leases_disabled 0$/m);
});

test('custom creation and revocation statements with safe placeholders', async () => {
  const put = await h.call('PUT', '/v1/admin/engines/postgres/main/roles/custom-reader', ADMIN, {
    groups: [fx.group],
    default_ttl: '5m',
    max_ttl: '10m',
    creation_statements: [
      'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}} CONNECTION LIMIT 2;',
      'GRANT {{groups}} TO {{name}}',
      // (`GRANT {{name}} TO <manager>` is refused now — no role may become a member of the
      // user — and unneeded: the cleanup takes the user's privileges itself.)
    ],
    revocation_statements: ['DROP OWNED BY {{name}}'],
  });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  const r = await issue('custom-reader');
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const cred = r.json.data as Cred;
  const c = await loginAs(cred);
  assert.equal((await c.query('SELECT count(*)::int AS n FROM patients')).rows[0].n, 2);
  await c.end();
  const [row] = await fx.su<{ rolconnlimit: number }>('SELECT rolconnlimit FROM pg_roles WHERE rolname = $1', [cred.username]);
  assert.equal(row!.rolconnlimit, 2);
  const del = await h.call('DELETE', `/v1/leases/${r.json.lease_id as string}`, 'agent-reader');
  assert.equal(del.json.state, 'revoked', JSON.stringify(await h.leases.get(r.json.lease_id as string)));
  await cannotLogin(cred);
  // Deleting a role with open leases is refused; without, allowed.
  const open = await issue('custom-reader');
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/main/roles/custom-reader', ADMIN)).json.error?.code, 'TESSERA_ENGINE_IN_USE');
  await h.call('DELETE', `/v1/leases/${open.json.lease_id as string}`, 'agent-reader');
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/main/roles/custom-reader', ADMIN)).status, 200);
});

test('revokeMany drops a batch in one transaction and is idempotent', async () => {
  const leases = [];
  for (let i = 0; i < 20; i++) leases.push(await h.leases.issue({ engine: 'postgres', role: 'patient-reader', principal: principal('batch') }));
  const datas = leases.map((l) => ({ config: 'main', role: 'patient-reader', username: (l.data as Cred).username }));
  const res = await h.postgres.engine.revokeMany(datas);
  assert.deepEqual(res.failed, []);
  for (const d of datas) assert.deepEqual(await fx.usersWithPrefix(d.username), []);
  assert.deepEqual((await h.postgres.engine.revokeMany(datas)).failed, []);
  await h.leases.revokeByOwner(principal('batch').spiffeId);
});

test('CLI: tessera engine postgres configure / role / show / list / delete', async () => {
  const lines: string[] = [];
  const cli = async (args: string[], stdin?: string) => {
    lines.length = 0;
    const program = new Command().exitOverride().option('--addr <url>').option('--token <token>').option('--json');
    const io: CliIo = { stdout: { write: (s: string) => lines.push(s) }, stderr: { write: () => true }, env: { TESSERA_TOKEN: ADMIN } };
    if (stdin !== undefined) io.stdin = (async function* () { yield stdin; })();
    registerEngineCommand(program, { io, addrOf: () => h.base });
    await program.parseAsync(['node', 'tessera', ...args]);
    return lines.join('');
  };
  const conf = await cli(['engine', 'postgres', 'configure', 'clitest', '--url', '-', '--prefix', `${prefix}c_`, '--pool-size', '2'], fx.mgmtUrl);
  assert.match(conf, /username_prefix: t.*_c_/);
  assert.ok(!conf.includes(new URL(fx.mgmtUrl).password));
  const role = await cli(['engine', 'postgres', 'role', 'clitest', 'cli-reader', '--group', fx.group, '--ttl', '5m', '--max-ttl', '1h', '--owned-objects', 'drop']);
  assert.match(role, /owned_objects: drop/);
  // A rule outside the set is refused locally (the server's set, test/cli/enums.test.ts), before any request.
  await assert.rejects(cli(['engine', 'postgres', 'role', 'clitest', 'cli-bad', '--owned-objects', 'keep']), (e: Error & { code?: string }) => e.code === 'commander.invalidArgument');
  await assert.rejects(cli(['engine', 'postgres', 'role', 'clitest', 'cli-bad', '--owned-objects', 'reassign']), (e: Error & { code?: string }) => e.code === 'TESSERA_REQUEST_INVALID');
  assert.match(role, /path: postgres\/cli-reader/);
  assert.match(await cli(['engine', 'postgres', 'list', 'clitest']), /cli-reader {2}groups=reader_/);
  assert.match(await cli(['engine', 'postgres', 'show', 'clitest']), /host: 127.0.0.1/);
  const issued = await issue('cli-reader');
  assert.equal(issued.status, 201);
  await assert.rejects(cli(['engine', 'postgres', 'delete', 'clitest', 'cli-reader']), (e: Error & { code?: string }) => e.code === 'TESSERA_ENGINE_IN_USE');
  await h.call('DELETE', `/v1/leases/${issued.json.lease_id as string}`, 'agent-reader');
  await cli(['engine', 'postgres', 'delete', 'clitest', 'cli-reader']);
  await cli(['engine', 'postgres', 'delete', 'clitest']);
  await assert.rejects(cli(['engine', 'postgres', 'configure', 'clitest']), (e: Error & { code?: string }) => e.code === 'TESSERA_CLI_USAGE');
});

test('a silent database (accepts TCP, never answers): configure and issuance end at connect_timeout, never hang', async () => {
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((sock) => void sockets.push(sock));
  await new Promise<void>((res) => silent.listen(0, '127.0.0.1', () => res()));
  const port = (silent.address() as { port: number }).port;
  const url = `postgres://u:p@127.0.0.1:${port}/db`;
  try {
    const t0 = performance.now();
    const conf = await h.call('PUT', '/v1/admin/engines/postgres/silent', ADMIN, { connection_url: url, connect_timeout: '300ms' });
    // Saving: the URL given does not work (400); using a saved one that stopped answering: 503.
    assert.deepEqual([conf.status, conf.json.error?.code], [400, 'TESSERA_ENGINE_CONNECTION_INVALID'], JSON.stringify(conf.json));
    assert.match(conf.json.error?.message ?? '', /no answer within connect_timeout/);
    console.log(`configure against a silent server failed after ${(performance.now() - t0).toFixed(0)} ms (connect_timeout 300 ms)`);
    // An outage of an existing configuration: point "main" at the silent server (as a replica
    // would see it after a network partition) by re-sealing its URL in place, then reload.
    const key = urlMetaKey('main');
    const original = await h.store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key]);
    await h.store.run('UPDATE meta SET value = ? WHERE key = ?', [h.sealer.seal(Buffer.from(url), key).toString('base64'), key]);
    await h.store.run('UPDATE pg_engine_configs SET updated_at = updated_at + 1, connect_timeout_ms = 300 WHERE name = ?', ['main']);
    await h.postgres.reload();
    try {
      const t1 = performance.now();
      const r = await issue('patient-reader');
      assert.equal(r.json.error?.code, 'TESSERA_ENGINE_UNAVAILABLE', JSON.stringify(r.json));
      console.log(`issuance against a silent server failed after ${(performance.now() - t1).toFixed(0)} ms (connect_timeout 300 ms)`);
      await h.leases.idle(); // its clean-up ran in the background, against the same silent server
    } finally {
      await h.store.run('UPDATE meta SET value = ? WHERE key = ?', [original!.value, key]);
      await h.store.run('UPDATE pg_engine_configs SET updated_at = updated_at + 1, connect_timeout_ms = 2000 WHERE name = ?', ['main']);
      await h.postgres.reload();
    }
    // The failed issuance left a revoking lease; once the database answers again it is dropped.
    h.clock.advance(10_000);
    await h.leases.reapOnce();
    assert.equal((await h.leases.list({ state: 'revoking' })).length, 0);
    assert.equal((await issue('patient-reader')).status, 201);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((res) => silent.close(() => res()));
  }
});

test('master-key rotation re-wraps the sealed management URL (runs last: it changes the key)', async () => {
  const { rotateMasterKey } = await import('../../src/secrets/rotate.js');
  const { createKeySealer } = await import('../../src/secrets/sealer.js');
  const { createPostgresEngine } = await import('../../src/engines/postgres/index.js');
  const { silentLogger } = await import('../../src/shared/logger.js');
  const { randomBytes } = await import('node:crypto');
  const next = createKeySealer(randomBytes(32), 'next-key');
  const report = await rotateMasterKey({ store: h.store, oldSealer: h.sealer, newSealer: next, clock: h.clock });
  assert.ok(report.metaRows >= 1, JSON.stringify(report));
  const again = createPostgresEngine({ store: h.store, sealer: next, clock: h.clock, logger: silentLogger, audit: h.audit });
  await again.start();
  try {
    assert.equal(again.getConfig('main').username, fx.mgmtUser);
    // And the re-wrapped URL really works: a user is created and dropped with it.
    const lease = { id: 'lease_rotation_check', engine: 'postgres', role: 'patient-reader', ownerAgent: 'spiffe://example.org/x', createdAt: h.clock.now(), expiresAt: h.clock.now() + 60_000, maxExpiresAt: h.clock.now() + 60_000 };
    const data = again.engine.prepare(lease);
    const created = await again.engine.create(lease, data, new AbortController().signal);
    const c = await loginAs(created.data as Cred);
    await c.end();
    await again.engine.revoke(data, new AbortController().signal);
    await cannotLogin(created.data as Cred);
  } finally {
    await again.stop();
  }
  // The old key no longer opens it.
  await assert.rejects(h.postgres.reload(), (e: Error & { code?: string }) => e.code === 'TESSERA_SECRET_DECRYPT_FAILED');
});
