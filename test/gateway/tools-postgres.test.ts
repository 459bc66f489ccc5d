import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDeclarativeProviders, parseDeclarativeTools } from '../../src/gateway/tools/index.js';
import { compilePostgresTool } from '../../src/gateway/tools/postgres-tool.js';
import type { PostgresToolConfig } from '../../src/gateway/tools/config.js';
import type { ToolProvider } from '../../src/gateway/types.js';
import { systemClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { testContext } from './tools-helpers.js';

let db: TestDatabase;
let admin: pg.Client;
const leases = new Map<string, string>(); // lease id -> role name

before(async () => {
  db = await createTestDatabase('gateway_tools');
  admin = new pg.Client({ connectionString: db.adminUrl });
  await admin.connect();
  await admin.query('CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL, ward text NOT NULL)');
  await admin.query("INSERT INTO patients VALUES (1, 'Ada', 'cardiology'), (2, 'Bob', 'cardiology'), (3, 'Cy', 'oncology')");
  await admin.query('CREATE TABLE secrets_table (v text)');
  await admin.query('CREATE SEQUENCE fetched');
});

after(async () => {
  await admin.end();
  await db.drop();
});

/**
 * The dynamic PostgreSQL engine is being built in parallel (src/engines/postgres); until it is
 * wired, this issues what it will issue: a real LOGIN role with a random password and a
 * VALID UNTIL, granted SELECT on patients, and the data shape `{ username, password, host,
 * port, database, uri }`.
 */
async function issue(_engine: string, role: string, ttlMs?: number): Promise<{ leaseId: string; data: Record<string, unknown> }> {
  assert.equal(role, 'patient-reader');
  const leaseId = randomBytes(6).toString('hex');
  const username = `tsr_${leaseId}`;
  const password = randomBytes(18).toString('base64url');
  const until = new Date(Date.now() + (ttlMs ?? 60_000)).toISOString();
  await admin.query(`CREATE ROLE "${username}" LOGIN PASSWORD '${password}' VALID UNTIL '${until}'`);
  await admin.query(`GRANT SELECT ON patients TO "${username}"`);
  await admin.query(`GRANT USAGE ON SEQUENCE fetched TO "${username}"`);
  leases.set(leaseId, username);
  const u = new URL(db.url);
  const data = { username, password, host: u.hostname, port: Number(u.port), database: db.name, uri: '' };
  u.username = username;
  u.password = password;
  data.uri = u.toString();
  return { leaseId, data };
}

async function revoke(leaseId: string): Promise<void> {
  const username = leases.get(leaseId)!;
  await admin.query(`DROP OWNED BY "${username}"`);
  await admin.query(`DROP ROLE IF EXISTS "${username}"`);
}

async function roleExists(username: string): Promise<boolean> {
  return (await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [username])).rowCount === 1;
}

const queryPatients = {
  server: 'records',
  name: 'query_patients',
  kind: 'postgres',
  description: 'Patients of a ward',
  credential: { engine: 'postgres', role: 'patient-reader', ttl: '30s' },
  statement: 'SELECT id, name FROM patients WHERE ward = $1 ORDER BY id LIMIT $2',
  params: ['ward', 'limit'],
  input_schema: { type: 'object', properties: { ward: { type: 'string', maxLength: 64 }, limit: { type: 'integer', minimum: 1, maximum: 100 } }, required: ['ward'] },
};

function provider(tools: unknown[]): ToolProvider {
  return createDeclarativeProviders(parseDeclarativeTools(tools), { clock: systemClock, logger: silentLogger })[0]!;
}

const ctx = () => testContext({ issue, revoke });

test('runs the statement with a per-call credential, binds arguments, then revokes the lease', async () => {
  const p = provider([queryPatients, { ...queryPatients, name: 'whoami', statement: 'SELECT current_user AS u', params: [], input_schema: { type: 'object', properties: {} } }]);
  const c = ctx();
  const r = await p.callTool('query_patients', { ward: 'cardiology', limit: 10 }, c);
  assert.equal(r.isError, false);
  assert.deepEqual(r.structuredContent, { columns: ['id', 'name'], rows: [{ id: 1, name: 'Ada' }, { id: 2, name: 'Bob' }], row_count: 2, truncated: false, command: 'SELECT', affected_rows: 2 });
  assert.deepEqual(JSON.parse((r.content[0] as { text: string }).text), r.structuredContent);
  assert.equal(c.issued.length, 1);
  assert.deepEqual(c.revoked, c.issued);
  assert.equal(await roleExists(leases.get(c.issued[0]!)!), false, 'the per-call role is gone');
  // the statement really ran as the issued user
  const w = testContext({ issue, revoke });
  const who = await p.callTool('whoami', {}, w);
  assert.equal((who.structuredContent as { rows: { u: string }[] }).rows[0]!.u, leases.get(w.issued[0]!));
  // an absent optional argument binds as NULL (LIMIT NULL = no limit)
  const all = await p.callTool('query_patients', { ward: 'cardiology' }, ctx());
  assert.equal((all.structuredContent as { row_count: number }).row_count, 2);
});

test('arguments are bound as parameters, never interpolated', async () => {
  const p = provider([queryPatients]);
  for (const ward of ["x' OR '1'='1", "cardiology' --", "cardiology'; DROP TABLE patients; --", '$1']) {
    const r = await p.callTool('query_patients', { ward, limit: 10 }, ctx());
    assert.equal(r.isError, false, ward);
    assert.deepEqual((r.structuredContent as { rows: unknown[] }).rows, [], ward);
  }
  assert.equal((await admin.query('SELECT count(*)::int AS n FROM patients')).rows[0].n, 3, 'the table is intact');
});

test('max_rows caps the rows fetched and reports truncation', async () => {
  const p = provider([
    {
      server: 'records',
      name: 'series',
      kind: 'postgres',
      credential: { role: 'patient-reader' },
      statement: 'SELECT g FROM generate_series(1, $1::int) AS g',
      params: ['n'],
      input_schema: { type: 'object', properties: { n: { type: 'integer', minimum: 0 } }, required: ['n'] },
      max_rows: 5,
    },
  ]);
  const big = await p.callTool('series', { n: 100_000 }, ctx());
  const s = big.structuredContent as { rows: { g: number }[]; truncated: boolean; row_count: number };
  assert.deepEqual(s.rows.map((r) => r.g), [1, 2, 3, 4, 5]);
  assert.equal(s.truncated, true);
  assert.equal(s.row_count, 5);
  // The server stops after max_rows + 1 rows: a volatile per-row function proves how many
  // rows were produced (nextval is not rolled back).
  const counted = provider([
    {
      server: 'records',
      name: 'counted',
      kind: 'postgres',
      credential: { role: 'patient-reader' },
      statement: "SELECT g, nextval('fetched') AS seq FROM generate_series(1, $1::int) AS g",
      params: ['n'],
      input_schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
      max_rows: 5,
    },
  ]);
  const cr = await counted.callTool('counted', { n: 100_000 }, ctx());
  assert.equal((cr.structuredContent as { truncated: boolean }).truncated, true);
  const produced = Number((await admin.query('SELECT last_value FROM fetched')).rows[0].last_value);
  assert.ok(produced <= 6, `the server produced ${produced} rows; expected at most max_rows + 1`);
  const exact = await p.callTool('series', { n: 5 }, ctx());
  assert.equal((exact.structuredContent as { truncated: boolean }).truncated, false);
  assert.equal((exact.structuredContent as { row_count: number }).row_count, 5);
});

test('statement_timeout → TESSERA_TOOL_TIMEOUT, and the lease is still revoked', async () => {
  const p = provider([
    {
      server: 'records',
      name: 'sleep',
      kind: 'postgres',
      credential: { role: 'patient-reader' },
      statement: 'SELECT pg_sleep($1::float8)',
      params: ['s'],
      input_schema: { type: 'object', properties: { s: { type: 'number' } }, required: ['s'] },
      timeout: '300ms',
    },
  ]);
  const c = ctx();
  await assert.rejects(p.callTool('sleep', { s: 30 }, c), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_TOOL_TIMEOUT' && /statement_timeout/.test(e.message));
  assert.deepEqual(c.revoked, c.issued);
  assert.equal(await roleExists(leases.get(c.issued[0]!)!), false);
});

test('SQL errors come back as isError results the agent can act on', async () => {
  const p = provider([
    { server: 'records', name: 'cast', kind: 'postgres', credential: { role: 'patient-reader' }, statement: 'SELECT $1::int AS n', params: ['v'], input_schema: { type: 'object', properties: { v: { type: 'string' } }, required: ['v'] } },
    { server: 'records', name: 'forbidden', kind: 'postgres', credential: { role: 'patient-reader' }, statement: 'SELECT v FROM secrets_table' },
  ]);
  const bad = await p.callTool('cast', { v: 'abc' }, ctx());
  assert.equal(bad.isError, true);
  assert.match((bad.content[0] as { text: string }).text, /^PostgreSQL error 22P02: invalid input syntax for type integer/);
  const denied = await p.callTool('forbidden', {}, ctx());
  assert.equal(denied.isError, true);
  assert.match((denied.content[0] as { text: string }).text, /^PostgreSQL error 42501: permission denied/);
});

test('defence in depth: the extended protocol refuses two statements even if config checks were bypassed', async () => {
  const cfg = { ...parseDeclarativeTools([{ ...queryPatients, statement: 'SELECT 1', params: [], input_schema: { type: 'object', properties: {} } }])[0]!, statement: 'SELECT 1; DROP TABLE patients' } as PostgresToolConfig;
  const t = compilePostgresTool(cfg, { clock: systemClock, logger: silentLogger });
  const r = await t.call({}, ctx());
  assert.equal(r.isError, true);
  assert.match((r.content[0] as { text: string }).text, /42601: cannot insert multiple commands into a prepared statement/);
  assert.equal((await admin.query('SELECT count(*)::int AS n FROM patients')).rows[0].n, 3);
});

test('login failure → TESSERA_TOOL_UPSTREAM_FAILED without the credential in the message; lease revoked', async () => {
  const p = provider([queryPatients]);
  const c = testContext({
    issue: async (e, r, ttl) => {
      const cred = await issue(e, r, ttl);
      const u = new URL(cred.data.uri as string);
      u.password = 'wrong-password';
      return { leaseId: cred.leaseId, data: { ...cred.data, password: 'wrong-password', uri: u.toString() } };
    },
    revoke,
  });
  await assert.rejects(p.callTool('query_patients', { ward: 'cardiology' }, c), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_TOOL_UPSTREAM_FAILED');
    assert.match(e.message, /28P01/);
    assert.ok(!e.message.includes('wrong-password'));
    return true;
  });
  assert.deepEqual(c.revoked, c.issued);
});

test('connects from the discrete fields when the credential has no uri', async () => {
  const p = provider([queryPatients]);
  const c = testContext({
    issue: async (e, r, ttl) => {
      const cred = await issue(e, r, ttl);
      const { uri: _uri, ...fields } = cred.data;
      return { leaseId: cred.leaseId, data: fields };
    },
    revoke,
  });
  const r = await p.callTool('query_patients', { ward: 'oncology', limit: 5 }, c);
  assert.deepEqual((r.structuredContent as { rows: unknown[] }).rows, [{ id: 3, name: 'Cy' }]);
  assert.deepEqual(c.revoked, c.issued);
});

test('invalid arguments are refused before any credential is issued', async () => {
  const p = provider([queryPatients]);
  const c = ctx();
  await assert.rejects(p.callTool('query_patients', { ward: 'cardiology', limit: 0 }, c), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_TOOL_ARGS_INVALID' && /argument "limit"/.test(e.message));
  await assert.rejects(p.callTool('query_patients', { limit: 1 }, c), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_TOOL_ARGS_INVALID' && /argument "ward": is required/.test(e.message));
  assert.deepEqual(c.issued, []);
});
