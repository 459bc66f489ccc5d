/**
 * What an engine role may give its database users (pen-test F13, docs/adr/0064-engine-role-privileges.md).
 * A table of hostile creation/revocation statements and groups, refused when the role is saved
 * (400, stable code, naming the statement), on a real PostgreSQL; then the re-check at issuance:
 * a group role changed in the database after the role was saved, and a stored statement that an
 * older version accepted, issue nothing (409 TESSERA_ENGINE_USER_PRIVILEGED) and leave no user.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { checkStatementForm } from '../../src/engines/postgres/privilege.js';
import { TesseraError } from '../../src/shared/errors.js';
import { ADMIN, harness, pgFixture, type Harness, type PgFixture } from './pg-setup.js';

let fx: PgFixture;
let h: Harness;
const prefix = `v${Math.random().toString(36).slice(2, 7)}_`;
let esc: string; // a group role with CREATEROLE
let nested: string; // a plain group that is a member of `esc`
let dbc: string; // a group role with CREATEDB
let plain: string; // a plain group, later given CREATEROLE in the database

before(async () => {
  fx = await pgFixture('pgprivilege');
  h = await harness();
  esc = `esc_${fx.tag}`;
  nested = `nested_${fx.tag}`;
  dbc = `dbc_${fx.tag}`;
  plain = `plain_${fx.tag}`;
  await fx.su(`CREATE ROLE ${esc} NOLOGIN CREATEROLE`);
  await fx.su(`CREATE ROLE ${nested} NOLOGIN IN ROLE ${esc}`);
  await fx.su(`CREATE ROLE ${dbc} NOLOGIN CREATEDB`);
  await fx.su(`CREATE ROLE ${plain} NOLOGIN`);
  // The management role may grant them (PostgreSQL ≥ 16 asks for ADMIN OPTION).
  for (const r of [esc, nested, dbc, plain]) await fx.su(`GRANT ${r} TO ${fx.mgmtUser} WITH ADMIN OPTION`);
  const put = await h.call('PUT', '/v1/admin/engines/postgres/priv', ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 2 });
  assert.equal(put.status, 200, JSON.stringify(put.json));
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

const BASE = 'CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}';

/** [creation statement after BASE (or a whole first statement when it starts with CREATE), error code]. */
function hostileCreation(mgmt: string): (readonly [string, string])[] {
  const P = 'TESSERA_ENGINE_ROLE_PRIVILEGED';
  return [
    // Attributes, in every spelling the grammar takes.
    ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}} CREATEROLE', P],
    ['create role {{name}} with login superuser password {{password}}', P],
    ['CREATE ROLE {{name}} WITH/*x*/CreateDB LOGIN PASSWORD {{password}}', P],
    ['CREATE USER {{name}} WITH\n\tREPLICATION PASSWORD {{password}}', P],
    ['CREATE ROLE {{name}} LOGIN "bypassrls" PASSWORD {{password}}', P],
    ['CREATE ROLE {{name}} LOGIN CREATEUSER PASSWORD {{password}}', P],
    ['CREATE ROLE {{name}} LOGIN U&"\\0073uperuser" PASSWORD {{password}}', P],
    ['ALTER ROLE {{name}} CREATEROLE', P],
    ['alter user {{name}} with SUPERUSER', P],
    ['ALTER ROLE {{name}} WITH -- comment\n BypassRLS', P],
    ['ALTER ROLE {{name}} WITH "createdb"', P],
    ['ALTER ROLE {{name}} /* SUPERUSER? no: */ REPLICATION', P],
    // Built-in roles and the management role, as groups.
    ['GRANT pg_read_server_files TO {{name}}', P],
    ['grant "pg_write_server_files" to {{name}}', P],
    ['GRANT PG_EXECUTE_SERVER_PROGRAM TO {{name}}', P],
    [`GRANT ${fx.group}, pg_read_all_data TO {{name}}`, P],
    ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}} IN ROLE pg_read_server_files', P],
    [`CREATE ROLE {{name}} LOGIN PASSWORD {{password}} IN GROUP ${fx.group}, "pg_execute_server_program"`, P],
    [`GRANT ${mgmt} TO {{name}}`, P],
    [`GRANT "${mgmt}" TO {{name}}`, P],
    [`CREATE ROLE {{name}} LOGIN PASSWORD {{password}} IN ROLE ${mgmt}`, P],
    // Options that pass privileges on, members, other roles.
    [`GRANT ${fx.group} TO {{name}} WITH ADMIN OPTION`, P],
    [`GRANT ${fx.group} TO {{name}} WITH ADMIN TRUE`, P],
    [`GRANT ${fx.group} TO {{name}} WITH "admin" TRUE`, P],
    ['GRANT SELECT ON patients TO {{name}} WITH GRANT OPTION', P],
    [`CREATE ROLE {{name}} LOGIN PASSWORD {{password}} ADMIN ${fx.group}`, P],
    [`CREATE ROLE {{name}} LOGIN PASSWORD {{password}} ROLE ${fx.group}`, P],
    [`GRANT {{name}} TO ${mgmt}`, P],
    [`GRANT ${fx.group} TO {{name}}, ${fx.group}`, P],
    [`GRANT ${fx.group} TO {{name}} GRANTED BY ${mgmt}`, P],
    [`ALTER ROLE {{name}} SET role = ${mgmt}`, P],
    ['ALTER ROLE {{name}} RENAME TO someone_else', P],
    [`ALTER ROLE ${fx.group} CREATEDB`, P],
    [`ALTER ROLE ${fx.group} PASSWORD 'x'`, P],
    [`SET ROLE ${mgmt}`, P],
    ["DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' SUPERUSER'; END$$", P],
    ['DROP ROLE {{name}}', P],
    ['SELECT 1', P],
    // Two statements in one: refused as such, whatever the second does.
    ['GRANT SELECT ON patients TO {{name}}; ALTER ROLE {{name}} SUPERUSER', 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ["COMMENT ON ROLE {{name}} IS 'x';ALTER ROLE {{name}} CREATEROLE", 'TESSERA_ENGINE_TEMPLATE_INVALID'],
  ];
}

test('hostile creation statements are refused when the role is saved: 400, stable code, the statement named', async () => {
  for (const [t, code] of hostileCreation(fx.mgmtUser)) {
    const statements = /^create /i.test(t) ? [t] : [BASE, t];
    const index = statements.length - 1;
    const r = await h.call('PUT', '/v1/admin/engines/postgres/priv/roles/hostile', ADMIN, { creation_statements: statements });
    assert.deepEqual([r.status, r.json.error?.code], [400, code], `${t} → ${JSON.stringify(r.json)}`);
    assert.match(r.json.error?.message ?? '', new RegExp(`creation_statements\\[${index}\\]`), t);
    // The same verdict without a database: the pure privilege check refuses it.
    if (code === 'TESSERA_ENGINE_ROLE_PRIVILEGED') {
      assert.throws(() => checkStatementForm(t, index, 'creation_statements', { manager: fx.mgmtUser }), (e: unknown) => e instanceof TesseraError && e.code === code, t);
    }
  }
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/priv/roles/hostile', ADMIN)).status, 404, 'nothing was saved');
  assert.deepEqual(await fx.usersWithPrefix(prefix), []);
});

test('hostile revocation statements, groups and reassign targets are refused when saved', async () => {
  const su = `su_${fx.tag}`;
  await fx.su(`CREATE ROLE ${su} NOLOGIN SUPERUSER`).catch(() => undefined);
  const cases: (readonly [Record<string, unknown>, string, string])[] = [
    [{ revocation_statements: ['REASSIGN OWNED BY {{name}} TO pg_database_owner', 'DROP OWNED BY {{name}}'] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'revocation_statements'],
    [{ revocation_statements: [`REASSIGN OWNED BY {{name}} TO "${fx.mgmtUser}"`] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'revocation_statements'],
    [{ revocation_statements: ['ALTER ROLE {{name}} SUPERUSER'] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'revocation_statements'],
    [{ revocation_statements: ['DO $$ BEGIN NULL; END $$'] }, 'TESSERA_ENGINE_TEMPLATE_INVALID', ''], // does not act on {{name}}
    [{ revocation_statements: ['DROP ROLE {{name}}'] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'revocation_statements'],
    // Checked on the database (the dry run): a superuser as the new owner of the user's objects.
    [{ revocation_statements: [`REASSIGN OWNED BY {{name}} TO ${su}`] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'revocation_statements.0'],
    [{ revocation_statements: [`REASSIGN OWNED BY {{name}} TO ${su}`], allow_privileged_groups: true }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'revocation_statements.0'],
    [{ groups: ['pg_read_server_files'] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'groups'],
    [{ groups: ['PG_MONITOR'] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'groups'],
    [{ groups: [fx.mgmtUser] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'groups'],
    [{ owned_objects: 'reassign', reassign_to: fx.mgmtUser }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'reassign_to'],
    [{ owned_objects: 'reassign', reassign_to: 'pg_database_owner' }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'reassign_to'],
    [{ owned_objects: 'reassign', reassign_to: su, allow_privileged_groups: true }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'reassign_to'],
    // Checked on the database: what a group carries, directly or through its own groups.
    [{ groups: [esc] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'groups'],
    [{ groups: [esc], allow_privileged_groups: true }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'groups'],
    [{ groups: [nested] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'groups'],
    [{ groups: [dbc] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'groups'],
    [{ creation_statements: [BASE, `GRANT ${nested} TO {{name}}`] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED', 'creation_statements'],
  ];
  for (const [body, code, field] of cases) {
    const r = await h.call('PUT', '/v1/admin/engines/postgres/priv/roles/hostile', ADMIN, body);
    assert.deepEqual([r.status, r.json.error?.code], [400, code], `${JSON.stringify(body)} → ${JSON.stringify(r.json)}`);
    const details = (r.json.error as { details?: { field?: string } } | undefined)?.details;
    assert.ok(String(details?.field ?? '').startsWith(field), `${JSON.stringify(body)}: field ${JSON.stringify(details)}`);
  }
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/priv/roles/hostile', ADMIN)).status, 404);
  assert.deepEqual(await fx.usersWithPrefix(prefix), [], 'the dry runs leave no user behind');
});

test('allow_privileged_groups opens built-in and CREATEDB groups (never CREATEROLE, SUPERUSER or the manager); the user really gets them', async () => {
  const put = await h.call('PUT', '/v1/admin/engines/postgres/priv/roles/monitor', ADMIN, { groups: [dbc], allow_privileged_groups: true });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  assert.equal(put.json.allow_privileged_groups, true);
  const issued = await h.call('POST', '/v1/creds/postgres/monitor', 'agent-reader');
  assert.equal(issued.status, 201, JSON.stringify(issued.json));
  const user = (issued.json.data as { username: string }).username;
  const groups = await fx.su<{ rolname: string }>(`SELECT r.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles u ON u.oid = a.member WHERE u.rolname = $1`, [user]);
  assert.deepEqual(groups.map((g) => g.rolname), [dbc]);
  assert.equal((await h.call('DELETE', `/v1/leases/${issued.json.lease_id as string}`, 'agent-reader')).json.state, 'revoked');
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/priv/roles/monitor', ADMIN)).status, 200);
});

test('re-checked at issuance: a group given CREATEROLE after the role was saved issues nothing (409, rolled back, no user)', async () => {
  const put = await h.call('PUT', '/v1/admin/engines/postgres/priv/roles/later', ADMIN, { groups: [plain] });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  await fx.su(`ALTER ROLE ${plain} CREATEROLE`);
  try {
    const r = await h.call('POST', '/v1/creds/postgres/later', 'agent-reader');
    assert.deepEqual([r.status, r.json.error?.code], [409, 'TESSERA_ENGINE_USER_PRIVILEGED'], JSON.stringify(r.json));
    assert.match(r.json.error?.message ?? '', new RegExp(`${plain} \\(CREATEROLE\\)`));
    assert.deepEqual(await fx.usersWithPrefix(prefix), [], 'rolled back: no user exists');
    // pg_* built-in membership added to the group later: the same.
    await fx.su(`ALTER ROLE ${plain} NOCREATEROLE`);
    await fx.su(`GRANT pg_read_server_files TO ${plain}`);
    const r2 = await h.call('POST', '/v1/creds/postgres/later', 'agent-reader');
    assert.deepEqual([r2.status, r2.json.error?.code], [409, 'TESSERA_ENGINE_USER_PRIVILEGED'], JSON.stringify(r2.json));
    assert.match(r2.json.error?.message ?? '', /pg_read_server_files \(built-in\)/);
    await fx.su(`REVOKE pg_read_server_files FROM ${plain}`);
    const ok = await h.call('POST', '/v1/creds/postgres/later', 'agent-reader');
    assert.equal(ok.status, 201, 'fixed in the database: issuance works again');
    assert.equal((await h.call('DELETE', `/v1/leases/${ok.json.lease_id as string}`, 'agent-reader')).json.state, 'revoked');
  } finally {
    await fx.su(`ALTER ROLE ${plain} NOCREATEROLE`);
  }
});

test('re-checked at issuance: a stored creation statement an older version accepted issues nothing (409) and the role view says why', async () => {
  const put = await h.call('PUT', '/v1/admin/engines/postgres/priv/roles/old', ADMIN, { creation_statements: [BASE, 'COMMENT ON ROLE {{name}} IS $$x$$'] });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  // As an older, laxer validator would have stored it.
  await h.store.run(`UPDATE pg_engine_roles SET creation_statements = ? WHERE name = 'old'`, [JSON.stringify([BASE, 'ALTER ROLE {{name}} WITH CREATEROLE'])]);
  await h.postgres.reload();
  const r = await h.call('POST', '/v1/creds/postgres/old', 'agent-reader');
  assert.deepEqual([r.status, r.json.error?.code], [409, 'TESSERA_ENGINE_USER_PRIVILEGED'], JSON.stringify(r.json));
  assert.match(r.json.error?.message ?? '', /creation_statements\[1\].*CREATEROLE/);
  const view = await h.call('GET', '/v1/admin/engines/postgres/priv/roles/old', ADMIN);
  assert.match(String(view.json.invalid ?? ''), /no longer passes validation/);
  assert.deepEqual(await fx.usersWithPrefix(prefix), []);
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/priv/roles/old', ADMIN)).status, 200);
});

test('the pure check: object names that only look like options pass; each refusal is a TesseraError with the field', () => {
  for (const ok of [
    'GRANT SELECT ON "Admin" TO {{name}}',
    'GRANT SELECT ON pg_catalog.pg_class TO {{name}}',
    "COMMENT ON ROLE {{name}} IS 'superuser createrole admin'",
    'ALTER ROLE {{name}} NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS',
    'CREATE ROLE {{name}} LOGIN PASSWORD {{password}} IN ROLE readers',
    'GRANT readers TO {{name}} WITH INHERIT TRUE, SET FALSE',
    'REVOKE ALL ON patients FROM {{name}}',
  ]) {
    assert.doesNotThrow(() => checkStatementForm(ok, 0, 'creation_statements', { manager: 'mgmt' }), ok);
  }
  try {
    checkStatementForm('GRANT pg_read_server_files TO {{name}}', 2, 'creation_statements');
    assert.fail('must refuse');
  } catch (e) {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_ENGINE_ROLE_PRIVILEGED');
    assert.deepEqual(e.details, { field: 'creation_statements.2', position: 7 });
  }
  assert.doesNotThrow(() => checkStatementForm('GRANT pg_read_server_files TO {{name}}', 0, 'creation_statements', { allowBuiltin: true }));
});
