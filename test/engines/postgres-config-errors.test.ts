/**
 * Every engine configuration error is the operator's input: 4xx with a stable code and a message
 * that says what to fix, never 5xx (pen-test F12a, docs/adr/0065-engine-error-classes.md).
 * Real PostgreSQL, real HTTP; each bad `connection_url` kind, a bad password, a role without
 * CREATEROLE, bad timeouts and bad templates. Nothing is saved by any of them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ADMIN, harness, pgFixture, type Harness, type PgFixture } from './pg-setup.js';

let fx: PgFixture;
let h: Harness;
const prefix = `c${Math.random().toString(36).slice(2, 7)}_`;

before(async () => {
  fx = await pgFixture('pgconfigerrors');
  h = await harness();
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

const closedPort = (): Promise<number> =>
  new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });

/** The management URL with changes. */
function url(change: (u: URL) => void): string {
  const u = new URL(fx.mgmtUrl);
  change(u);
  return u.toString();
}

test('configure: each kind of bad connection_url answers 4xx with its code and cause, never 5xx', async () => {
  const port = await closedPort();
  const cases: (readonly [string, Record<string, unknown>, number, string, RegExp, string?])[] = [
    ['not a URL', { connection_url: 'not a url' }, 400, 'TESSERA_REQUEST_INVALID', /connection_url/],
    ['other scheme', { connection_url: 'mysql://u:p@127.0.0.1/db' }, 400, 'TESSERA_REQUEST_INVALID', /postgres:\/\//],
    ['no user', { connection_url: `postgres://127.0.0.1:${fx.port}/db` }, 400, 'TESSERA_REQUEST_INVALID', /management user/],
    ['malformed %-escape in the password', { connection_url: `postgres://u:%zz@127.0.0.1:${fx.port}/db` }, 400, 'TESSERA_REQUEST_INVALID', /password has a malformed %-escape/],
    ['NUL in the user name', { connection_url: `postgres://u%00x:p@127.0.0.1:${fx.port}/db` }, 400, 'TESSERA_REQUEST_INVALID', /user name contains a control character/],
    ['newline in a parameter', { connection_url: url((u) => u.searchParams.set('application_name', 'a\nb')) }, 400, 'TESSERA_REQUEST_INVALID', /parameter "application_name" contains a control character/],
    ['host does not resolve', { connection_url: url((u) => (u.hostname = 'no-such-host.invalid')) }, 400, 'TESSERA_ENGINE_CONNECTION_INVALID', /host name does not resolve/, 'dns'],
    ['nothing listening', { connection_url: url((u) => (u.port = String(port))) }, 400, 'TESSERA_ENGINE_CONNECTION_INVALID', /nothing accepts connections there/, 'refused'],
    ['TLS asked, server without TLS', { connection_url: url((u) => u.searchParams.set('sslmode', 'require')) }, 400, 'TESSERA_ENGINE_CONNECTION_INVALID', /TLS/, 'tls'],
    ['unreadable sslrootcert', { connection_url: url((u) => u.searchParams.set('sslrootcert', '/nonexistent/ca.pem')) }, 400, 'TESSERA_ENGINE_CONNECTION_INVALID', /cannot be read/, 'file'],
    ['unknown database', { connection_url: url((u) => (u.pathname = '/no_such_database_xyz')) }, 400, 'TESSERA_ENGINE_CONNECTION_INVALID', /database does not exist/, 'database'],
    ['a parameter the server refuses', { connection_url: url((u) => u.searchParams.set('options', '-c no_such_setting_xyz=1')) }, 400, 'TESSERA_ENGINE_CONNECTION_INVALID', /refused a connection parameter/, 'parameter'],
    ['wrong password', { connection_url: url((u) => (u.password = 'wrong-password')) }, 400, 'TESSERA_ENGINE_AUTH_FAILED', /user and password in connection_url/],
    ['unknown user', { connection_url: url((u) => (u.username = 'no_such_user_xyz')) }, 400, 'TESSERA_ENGINE_AUTH_FAILED', /refused the management credentials/],
    ['a role without CREATEROLE', { connection_url: fx.ownerUrl }, 400, 'TESSERA_ENGINE_PRIVILEGE_MISSING', /CREATEROLE/],
    ['connect_timeout not a duration', { connection_url: fx.mgmtUrl, connect_timeout: 'soon' }, 400, 'TESSERA_REQUEST_INVALID', /connect_timeout/],
    ['statement_timeout too long', { connection_url: fx.mgmtUrl, statement_timeout: '10m' }, 400, 'TESSERA_REQUEST_INVALID', /at most 60 s/],
    ['pool_size out of range', { connection_url: fx.mgmtUrl, pool_size: 0 }, 400, 'TESSERA_REQUEST_INVALID', /pool_size/],
    ['bad prefix', { connection_url: fx.mgmtUrl, username_prefix: 'Bad-Prefix' }, 400, 'TESSERA_ENGINE_NAME_INVALID', /prefix/],
    ['connection_url not a string', { connection_url: 42 }, 400, 'TESSERA_REQUEST_INVALID', /connection_url/],
  ];
  for (const [what, body, status, code, message, reason] of cases) {
    const r = await h.call('PUT', '/v1/admin/engines/postgres/bad', ADMIN, { username_prefix: prefix, ...body });
    assert.deepEqual([r.status, r.json.error?.code], [status, code], `${what}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.error?.message ?? '', message, what);
    if (reason) assert.equal((r.json.error as { details?: { reason?: string } }).details?.reason, reason, what);
    // Never the password of the URL in the answer.
    assert.ok(!JSON.stringify(r.json).includes(new URL(fx.mgmtUrl).password), what);
  }
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/bad', ADMIN)).status, 404, 'nothing was saved');
});

test('role errors against a working configuration are 4xx too: bad templates, unknown groups, bad TTLs, a failing dry run', async () => {
  const put = await h.call('PUT', '/v1/admin/engines/postgres/good', ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  const cases: (readonly [string, Record<string, unknown>, string])[] = [
    ['two statements', { creation_statements: ['CREATE ROLE {{name}} LOGIN; SELECT 1'] }, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['unterminated quote', { creation_statements: ["CREATE ROLE {{name}} LOGIN PASSWORD 'x"] }, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['unknown placeholder', { creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{secret}}'] }, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['statement not a string', { creation_statements: [42] }, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['syntax error found by the dry run', { creation_statements: ['CREATE ROLE {{name}} LOGIN PASWORD {{password}}'] }, 'TESSERA_ENGINE_TEMPLATE_INVALID'],
    ['privileged attribute', { creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}} CREATEROLE'] }, 'TESSERA_ENGINE_ROLE_PRIVILEGED'],
    ['unknown group', { groups: ['no_such_group_xyz'] }, 'TESSERA_ENGINE_GROUP_NOT_FOUND'],
    ['bad group name', { groups: ['Bad Group'] }, 'TESSERA_ENGINE_NAME_INVALID'],
    ['default above max TTL', { default_ttl: '2h', max_ttl: '1h' }, 'TESSERA_ENGINE_TTL_INVALID'],
    ['TTL not a duration', { default_ttl: 'later' }, 'TESSERA_ENGINE_TTL_INVALID'],
    ['reassign without target', { owned_objects: 'reassign' }, 'TESSERA_REQUEST_INVALID'],
    ['unknown field', { grups: [] }, 'TESSERA_REQUEST_INVALID'],
  ];
  for (const [what, body, code] of cases) {
    const r = await h.call('PUT', '/v1/admin/engines/postgres/good/roles/r1', ADMIN, body);
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error?.code, code, `${what}: ${JSON.stringify(r.json)}`);
  }
  assert.deepEqual(await fx.usersWithPrefix(prefix), [], 'the dry runs leave no user behind');
});
