/**
 * Template validation reads statements the way PostgreSQL's lexer does (issue 7, item 17).
 * One table of tricky templates; for each, the validator's verdict is compared with what a real
 * PostgreSQL server does with the same text: every accepted template runs as ONE statement
 * (extended protocol, in a transaction that is rolled back), every refused one indeed would not.
 * Then the same table through the admin API: refused at save time with a stable code and the
 * position, and what only the server can judge (grammar, unknown objects) refused by the
 * save-time dry run instead of at every issuance.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { parseTemplate } from '../../src/engines/postgres/sql.js';
import { TesseraError } from '../../src/shared/errors.js';
import { ADMIN, harness, pgFixture, type Harness, type PgFixture } from './pg-setup.js';

let fx: PgFixture;
let h: Harness;
const prefix = `q${Math.random().toString(36).slice(2, 7)}_`;

before(async () => {
  fx = await pgFixture('pgtemplates');
  h = await harness();
  const put = await h.call('PUT', '/v1/admin/engines/postgres/tpl', ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 2 });
  assert.equal(put.status, 200, JSON.stringify(put.json));
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

/** Statements acting on an existing user {{name}}; PostgreSQL reads every one as exactly one statement. */
const ACCEPTED: readonly string[] = [
  'COMMENT ON ROLE {{name}} IS $a$x;y$a$',
  'COMMENT ON ROLE {{name}} IS $$a;b$$',
  'COMMENT ON ROLE {{name}} IS $_t1$ $a$ ; $b$ $_t1$', // other tags inside do not close it
  'COMMENT ON ROLE {{name}} IS $a$ 1;x$a$', // `x$a$` inside the body: the body ends at the first exact $a$
  'COMMENT ON ROLE {{name}} IS $é$ x; $é$', // a non-ASCII tag is a tag
  "COMMENT ON ROLE {{name}} IS E'it\\'s; fine'", // E'' escapes: \' does not close
  "COMMENT ON ROLE {{name}} IS E'back\\\\' -- ; a comment", // \\ then the closing quote
  "COMMENT ON ROLE {{name}} IS 'C:\\path\\' -- ; standard strings keep backslashes",
  "COMMENT ON ROLE {{name}} IS 'a''b;c'",
  'COMMENT ON ROLE {{name}} /* a /* nested; */ still; */ IS \'z\'', // block comments nest
  "COMMENT ON ROLE {{name}} IS 'a'\n  -- joined; \n 'b;c'", // string continuation across a newline
  "COMMENT ON ROLE {{name}} IS 'x'; -- done\n;", // trailing `;`, comments, empty statements
  "COMMENT ON ROLE {{name}} IS U&'d\\0061t;a'",
  'ALTER ROLE {{name}} SET search_path = "a;b", "c""d"',
  'DO $d$ BEGIN PERFORM 1; END $d$',
  'DO $$ BEGIN EXECUTE $x$SELECT 1$x$; END $$', // a different tag nested in $$
];

/** Refused by the validator, with the 1-based position it names; none runs as one statement on PostgreSQL. */
const REFUSED: readonly (readonly [string, number, RegExp])[] = [
  // The case: PostgreSQL reads `x$a$` as ONE identifier (a `$` continues a name), so
  // the `;` is outside any quote. A lexer that takes `$a$` for a dollar quote sees one statement.
  ['ALTER ROLE {{name}} SET application_name = x$a$; SELECT 1 --$a$', 50, /second statement/],
  ["COMMENT ON ROLE {{name}} IS 'it\\'s; SELECT 1 --'", 37, /second statement/], // \ does not escape in a standard string
  ["COMMENT ON ROLE {{name}} IS E'a\\\\'; SELECT 1 --'", 37, /second statement/],
  ["COMMENT ON ROLE {{name}} IS 'x' /* a */ ; SELECT 1 /* ; */", 43, /second statement/],
  ["COMMENT ON ROLE {{name}} IS 'x' -- c ;\n; SELECT 1", 42, /second statement/],
  ['COMMENT ON ROLE {{name}} IS $$a$$; SELECT $$b$$', 36, /second statement/],
  ['SELECT 1; SELECT 2', 11, /second statement/],
  ['COMMENT ON ROLE {{name}} IS $a$x$b$; SELECT 1', 29, /unterminated dollar-quoted/],
  ["COMMENT ON ROLE {{name}} IS 'x", 29, /unterminated quoted string/],
  ["COMMENT ON ROLE {{name}} IS E'x\\'", 29, /unterminated quoted string/],
  ['COMMENT ON ROLE {{name}} IS "x', 29, /unterminated quoted identifier/],
  ["COMMENT ON ROLE {{name}} IS 'x' /* a /* b */", 33, /unterminated \/\* comment/],
  ['ALTER ROLE {{name}} PASSWORD $1$', 30, /\$n. parameter/],
  ['ALTER ROLE {{name}} SET search_path = ""', 39, /zero-length quoted identifier/],
  ['COMMENT ON ROLE {{name}} IS 1$a$ ; $a$', 30, /right after a number/],
];

/** Refused for substitution safety (they would run, with the placeholder quoted wrongly). */
const UNSAFE: readonly (readonly [string, number])[] = [
  ["COMMENT ON ROLE {{name}} IS '{{password}}'", 29],
  ['COMMENT ON ROLE {{name}} IS $a${{password}}$a$', 29],
  ['COMMENT ON ROLE {{name}} /* {{password}} */ IS null', 26],
  ['COMMENT ON ROLE x{{name}} IS null', 18],
  ['COMMENT ON ROLE {{name}}{{name}} IS null', 17],
  ["COMMENT ON ROLE {{name}} IS 'x'\n{{password}}", 33],
  ['COMMENT ON ROLE {{name}} IS {{nope}}', 29],
];

const code = (c: string) => (e: unknown) => e instanceof TesseraError && e.code === c;

test('the validator refuses with a stable code and the position; accepts what PostgreSQL reads as one statement', () => {
  for (const t of ACCEPTED) assert.doesNotThrow(() => parseTemplate(t), t);
  for (const [t, position, why] of [...REFUSED, ...UNSAFE.map(([t, p]) => [t, p, /./] as const)]) {
    assert.throws(
      () => parseTemplate(t, 1, 'creation_statements'),
      (e: unknown) => {
        assert.ok(code('TESSERA_ENGINE_TEMPLATE_INVALID')(e), `${t}: ${String(e)}`);
        const err = e as TesseraError;
        assert.deepEqual(err.details, { field: 'creation_statements.1', position }, t);
        assert.match(err.message, why, t);
        assert.match(err.message, new RegExp(`^creation_statements\\[1\\] at position ${position}:`), t);
        return true;
      },
      t,
    );
  }
});

/** Naive substitution (no validation), for the oracle. */
function substitute(t: string, name: string): string {
  return t.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, p: string) => (p === 'name' ? `"${name}"` : p === 'groups' ? `"${fx.group}"` : `'x'`));
}

/** What PostgreSQL does with the text: run as the engine runs it, rolled back. */
async function oracle(t: string): Promise<{ ok: true } | { ok: false; code: string; message: string }> {
  const c = new pg.Client({ connectionString: fx.mgmtUrl });
  await c.connect();
  const name = `${prefix}oracle`;
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL standard_conforming_strings = on');
    await c.query(`CREATE ROLE "${name}"`);
    await c.query({ text: substitute(t, name), values: [], queryMode: 'extended' } as pg.QueryConfig);
    return { ok: true };
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { ok: false, code: err.code ?? '', message: err.message };
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
    await c.end();
  }
}

test('real PostgreSQL agrees: every accepted template runs as one statement, every refused one does not', async () => {
  for (const t of ACCEPTED) {
    const r = await oracle(t);
    assert.deepEqual(r, { ok: true }, `accepted, so PostgreSQL must run it: ${t}`);
  }
  for (const [t, , why] of REFUSED) {
    const r = await oracle(t);
    assert.equal(r.ok, false, `refused, so PostgreSQL must not run it as one statement: ${t}`);
    // A second statement: refused as such, or the server's parser already fails in the first one.
    if (!r.ok && why.source.includes('second statement')) assert.match(r.message, /cannot insert multiple commands|syntax error/, t);
  }
});

const BASE = 'CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}';

test('through the API: refused when saved (stable code, position), accepted ones issue and revoke', async () => {
  for (const [t, position] of [...REFUSED.map(([t, p]) => [t, p] as const), ...UNSAFE]) {
    const r = await h.call('PUT', '/v1/admin/engines/postgres/tpl/roles/tricky', ADMIN, { creation_statements: [BASE, t] });
    assert.deepEqual([r.status, r.json.error?.code], [400, 'TESSERA_ENGINE_TEMPLATE_INVALID'], `${t} → ${JSON.stringify(r.json)}`);
    assert.deepEqual(r.json.error && (r.json.error as { details?: unknown }).details, { field: 'creation_statements.1', position }, t);
  }
  for (const t of ACCEPTED) {
    if (/^DO /.test(t)) {
      // Lexically one statement, but a DO block runs code Tessera cannot check (ADR 0064).
      const r = await h.call('PUT', '/v1/admin/engines/postgres/tpl/roles/tricky', ADMIN, { creation_statements: [BASE, t] });
      assert.deepEqual([r.status, r.json.error?.code], [400, 'TESSERA_ENGINE_ROLE_PRIVILEGED'], t);
      continue;
    }
    const put = await h.call('PUT', '/v1/admin/engines/postgres/tpl/roles/tricky', ADMIN, { creation_statements: [BASE, t] });
    assert.equal(put.status, 200, `${t} → ${JSON.stringify(put.json)}`);
    const issued = await h.call('POST', '/v1/creds/postgres/tricky', 'agent-reader');
    assert.equal(issued.status, 201, `${t} → ${JSON.stringify(issued.json)}`);
    const del = await h.call('DELETE', `/v1/leases/${issued.json.lease_id as string}`, 'agent-reader');
    assert.equal(del.json.state, 'revoked', t);
  }
  assert.deepEqual(await fx.usersWithPrefix(prefix), []);
});

test('what only the server can judge is refused by the dry run at save time, not at every issuance', async () => {
  const cases: [unknown, string, RegExp][] = [
    // Lexically one statement (two adjacent dollar strings), but not valid SQL.
    [{ creation_statements: [BASE, 'COMMENT ON ROLE {{name}} IS $$a$$ $$b$$'] }, 'TESSERA_ENGINE_TEMPLATE_INVALID', /creation_statements\[1\] failed in a dry run.*\[42601\]/],
    [{ creation_statements: [BASE, 'GRANT no_such_group_xyz TO {{name}}'] }, 'TESSERA_ENGINE_TEMPLATE_INVALID', /creation_statements\[1\].*\[42704\]/],
    [{ creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}} CONNECTION LIMIT 1', `GRANT ${'no_such_object_xyz'} TO {{name}}`] }, 'TESSERA_ENGINE_TEMPLATE_INVALID', /creation_statements\[1\].*\[42704\]/],
    [{ revocation_statements: ['REASSIGN OWNED BY {{name}} TO no_such_role_xyz'] }, 'TESSERA_ENGINE_TEMPLATE_INVALID', /revocation_statements\[0\].*\[42704\]/],
  ];
  for (const [body, errCode, message] of cases) {
    const r = await h.call('PUT', '/v1/admin/engines/postgres/tpl/roles/dry', ADMIN, body);
    assert.deepEqual([r.status, r.json.error?.code], [400, errCode], `${JSON.stringify(body)} → ${JSON.stringify(r.json)}`);
    assert.match(r.json.error?.message ?? '', message);
    assert.match(r.json.error?.message ?? '', /rolled back/);
  }
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/tpl/roles/dry', ADMIN)).status, 404, 'nothing was saved');
  assert.deepEqual(await fx.usersWithPrefix(prefix), [], 'the dry run leaves no user behind');
});
