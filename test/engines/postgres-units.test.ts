import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { scramSha256Verifier, encodePassword } from '../../src/engines/postgres/scram.js';
import { parseTemplate, quoteIdent, quoteLiteral, renderTemplate } from '../../src/engines/postgres/sql.js';
import { parseConfigBody, parseRoleBody, checkPrefix, checkName } from '../../src/engines/postgres/config.js';
import { TesseraError } from '../../src/shared/errors.js';

const code = (c: string) => (e: unknown) => e instanceof TesseraError && e.code === c;

test('SCRAM-SHA-256 verifier matches the RFC 7677 §3 exchange', () => {
  // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i = 4096.
  const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
  const v = scramSha256Verifier('pencil', salt, 4096);
  const m = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(v);
  assert.ok(m, v);
  assert.equal(m[1], 'W22ZaJ0SNY7soEsUEjb6gQ==');
  const storedKey = Buffer.from(m[2]!, 'base64');
  const serverKey = Buffer.from(m[3]!, 'base64');
  const authMessage =
    'n=user,r=rOprNGfwEbeRWgbNEkqO,' +
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,' +
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  // ServerSignature = HMAC(ServerKey, AuthMessage) = the RFC's v=...
  assert.equal(createHmac('sha256', serverKey).update(authMessage).digest('base64'), '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) must be StoredKey.
  const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
  const sig = createHmac('sha256', storedKey).update(authMessage).digest();
  const clientKey = Buffer.from(proof.map((b, i) => b ^ sig[i]!));
  assert.deepEqual(createHash('sha256').update(clientKey).digest(), storedKey);
  // A different password gives a different verifier.
  assert.notEqual(scramSha256Verifier('pencil2', salt, 4096), v);
  assert.throws(() => scramSha256Verifier('x', salt, 0), RangeError);
  assert.throws(() => scramSha256Verifier('naïve', salt, 1), RangeError);
});

test('passwords are 32 random bytes, base64url', () => {
  const p = encodePassword(Buffer.alloc(32, 7));
  assert.equal(p.length, 43);
  assert.match(p, /^[A-Za-z0-9_-]+$/);
  assert.throws(() => encodePassword(Buffer.alloc(16)), RangeError);
});

test('quoting: identifiers and literals cannot break out', () => {
  assert.equal(quoteIdent('a"b'), '"a""b"');
  assert.equal(quoteIdent('x"; DROP ROLE postgres; --'), '"x""; DROP ROLE postgres; --"');
  assert.equal(quoteLiteral("o'neil"), "'o''neil'");
  assert.equal(quoteLiteral('a\\b'), " E'a\\\\b'");
  assert.throws(() => quoteIdent(''), code('TESSERA_ENGINE_NAME_INVALID'));
  assert.throws(() => quoteLiteral('a\0b'), code('TESSERA_ENGINE_NAME_INVALID'));
});

test('templates: one statement, placeholders outside quotes, substituted safely', () => {
  const parts = parseTemplate("CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}} IN ROLE {{groups}} -- comment ; here\n;");
  const sql = renderTemplate(parts, { name: 'u"1', password: "v'x", expiration: '2030-01-01T00:00:00.000Z', groups: ['g1', 'g"2'] });
  assert.equal(sql, `CREATE ROLE "u""1" LOGIN PASSWORD 'v''x' VALID UNTIL '2030-01-01T00:00:00.000Z' IN ROLE "g1", "g""2" -- comment ; here`);
  // Quoted text, quoted identifiers and dollar quotes may hold `;` and stay untouched.
  assert.doesNotThrow(() => parseTemplate(`COMMENT ON ROLE {{name}} IS 'a;b'`));
  assert.doesNotThrow(() => parseTemplate(`GRANT "odd;name" TO {{name}}`));
  assert.doesNotThrow(() => parseTemplate(`DO $x$ BEGIN PERFORM 1; END $x$`));
  const bad = [
    'CREATE ROLE {{name}}; DROP TABLE t',
    "CREATE ROLE {{name}} PASSWORD '{{password}}'",
    'CREATE ROLE "{{name}}"',
    'CREATE ROLE {{name}} -- {{password}}',
    "CREATE ROLE {{name}} PASSWORD E'\\\\'; DROP TABLE t --'",
    'CREATE ROLE {{name}} /* x ',
    'CREATE ROLE {{name}} PASSWORD $1',
    'CREATE ROLE {{nam}}',
    "CREATE ROLE {{name}} PASSWORD 'unterminated",
    'DO $x$ {{name}} $x$',
    '   ',
    'x'.repeat(5000),
  ];
  for (const t of bad) assert.throws(() => parseTemplate(t), code('TESSERA_ENGINE_TEMPLATE_INVALID'), t);
  assert.throws(() => renderTemplate(parseTemplate('GRANT {{groups}} TO {{name}}'), { name: 'u', password: '', expiration: '', groups: [] }), code('TESSERA_ENGINE_TEMPLATE_INVALID'));
});

test('config and role validation', () => {
  const c = parseConfigBody({ connection_url: 'postgresql://mgr:p%40ss@db.example:6543/app' });
  assert.deepEqual([c.host, c.port, c.database, c.user, c.prefix, c.poolSize, c.scramIterations], ['db.example', 6543, 'app', 'mgr', 'tsr_', 8, 1]);
  assert.throws(() => parseConfigBody({ connection_url: 'postgres://db.example/app' }), code('TESSERA_REQUEST_INVALID'));
  assert.throws(() => parseConfigBody({ connection_url: 'postgres://u@h/db', statement_timeout: '2h' }), code('TESSERA_REQUEST_INVALID'));
  assert.throws(() => checkPrefix('Tsr_'), code('TESSERA_ENGINE_NAME_INVALID'));
  assert.throws(() => checkPrefix('a'.repeat(31)), code('TESSERA_ENGINE_NAME_INVALID'));
  assert.throws(() => checkName('a.b', 'role'), code('TESSERA_ENGINE_NAME_INVALID'));
  const r = parseRoleBody({ groups: ['readers'], default_ttl: '5m', max_ttl: 3600 });
  assert.deepEqual([r.defaultTtlMs, r.maxTtlMs, r.renewable], [300_000, 3_600_000, true]);
  assert.throws(() => parseRoleBody({ groups: ['a', 'a'] }), code('TESSERA_REQUEST_INVALID'));
  assert.throws(() => parseRoleBody({ creation_statements: ['CREATE ROLE {{name}} LOGIN'] }), code('TESSERA_ENGINE_TEMPLATE_INVALID'));
  assert.throws(() => parseRoleBody({ creation_statements: [42] }), code('TESSERA_ENGINE_TEMPLATE_INVALID'));
});
