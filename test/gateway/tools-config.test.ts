import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDeclarativeTools, compileArgSchema } from '../../src/gateway/tools/index.js';
import { scanStatement } from '../../src/gateway/tools/sql.js';
import { TesseraError } from '../../src/shared/errors.js';

const weather = {
  server: 'weather',
  name: 'forecast',
  kind: 'http',
  url: 'https://api.example.com/v1/forecast/{city}?days={days}',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1, maximum: 14 } }, required: ['city'] },
  credential: { secret: 'weather/api-key', in: 'header', name: 'Authorization', prefix: 'Bearer ' },
};
const records = {
  server: 'records',
  name: 'query_patients',
  kind: 'postgres',
  credential: { engine: 'postgres', role: 'patient-reader' },
  statement: 'SELECT id, name FROM patients WHERE ward = $1 LIMIT $2',
  params: ['ward', 'limit'],
  input_schema: { type: 'object', properties: { ward: { type: 'string' }, limit: { type: 'integer' } }, required: ['ward', 'limit'] },
};

function refused(raw: unknown, pattern: RegExp): void {
  assert.throws(() => parseDeclarativeTools(raw), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_CONFIG_INVALID');
    assert.match(e.message, pattern);
    return true;
  });
}

test('valid http and postgres tools parse with defaults', () => {
  const [w, r] = parseDeclarativeTools([weather, records]);
  assert.ok(w && r);
  assert.equal(w.kind, 'http');
  if (w.kind !== 'http') return;
  assert.equal(w.method, 'GET');
  assert.equal(w.timeout, 10_000);
  assert.equal(w.max_response_bytes, 1024 * 1024);
  assert.equal(r.kind, 'postgres');
  if (r.kind !== 'postgres') return;
  assert.equal(r.max_rows, 100);
  assert.equal(r.timeout, 5000);
});

test('http: URL template must only reference declared scalar properties', () => {
  refused([{ ...weather, url: 'https://api.example.com/v1/{nope}' }], /\{nope\} is not a property/);
  refused([{ ...weather, url: 'https://api.example.com/v1/{city}', input_schema: { type: 'object', properties: { city: { type: 'object' } }, required: ['city'] } }], /scalar type/);
  // a path variable must be required
  refused([{ ...weather, url: 'https://api.example.com/v1/{days}/{city}' }], /\{days\} is in the path, so it must be listed/);
});

test('http: the destination cannot be templated and the url must be clean', () => {
  refused([{ ...weather, url: 'https://{city}.example.com/v1' }], /scheme, host or port/);
  refused([{ ...weather, url: 'https://api.example.com:{days}/v1/{city}' }], /scheme, host or port/);
  refused([{ ...weather, url: 'https://user:pw@api.example.com/v1/{city}' }], /user info/);
  refused([{ ...weather, url: 'ftp://api.example.com/{city}' }], /only http and https/);
  refused([{ ...weather, url: 'https://api.example.com/v1/{city}#frag' }], /fragment/);
  refused([{ ...weather, url: 'https://api.example.com/v1/{+city}' }], /level 1/);
  refused([{ ...weather, url: 'https://api.example.com/v1/../{city}' }], /normal form/);
  refused([{ ...weather, url: 'api.example.com/{city}' }], /absolute/);
});

test('http: credential placement is validated', () => {
  refused([{ ...weather, credential: { secret: 'weather/api-key', in: 'cookie', name: 'x' } }], /credential/);
  refused([{ ...weather, credential: { secret: 'weather/api-key', in: 'query' } }], /credential\.name/);
  refused([{ ...weather, credential: { in: 'basic' } }], /basic auth: set either/);
  refused([{ ...weather, credential: { in: 'basic', secret: 'a/b', password_secret: 'a/c' } }], /basic auth/);
  refused([{ ...weather, credential: { in: 'basic', password_secret: 'a/c' } }], /basic auth/);
  refused([{ ...weather, credential: { in: 'basic', username: 'a:b', password_secret: 'a/c' } }], /must not contain ":"/);
  refused([{ ...weather, credential: { in: 'header', secret: '../etc', name: 'X-Key' } }], /invalid secret path/);
  refused([{ ...weather, credential: { in: 'header', secret: 'a/b', name: 'Host' } }], /cannot carry a credential/);
  refused([{ ...weather, credential: { in: 'header', secret: 'a/b', name: 'Bad Header' } }], /header name/);
  refused([{ ...weather, headers: { authorization: 'x' } }], /where the credential goes/);
  refused([{ ...weather, headers: { 'Content-Length': '5' } }], /set by Tessera/);
  refused([{ ...weather, headers: { 'X-A': 'a\r\nX-B: b' } }], /CR, LF/);
  refused([{ ...weather, url: 'https://api.example.com/v1/{city}?key=1', credential: { secret: 'a/b', in: 'query', name: 'key' } }], /already in the url/);
  // accepted forms
  parseDeclarativeTools([{ ...weather, credential: { in: 'basic', secret: 'a/b' } }]);
  parseDeclarativeTools([{ ...weather, credential: { in: 'basic', username: 'svc', password_secret: 'a/c' } }]);
  parseDeclarativeTools([{ ...weather, credential: { in: 'query', secret: 'a/b', name: 'appid' } }]);
});

test('http: every argument is used (URL or body) and durations/limits are bounded', () => {
  refused([{ ...weather, input_schema: { type: 'object', properties: { city: { type: 'string' }, extra: { type: 'string' } }, required: ['city'] }, url: 'https://api.example.com/v1/{city}' }], /"extra" is not used/);
  parseDeclarativeTools([{ ...weather, method: 'POST', input_schema: { type: 'object', properties: { city: { type: 'string' }, extra: { type: 'string' } }, required: ['city'] }, url: 'https://api.example.com/v1/{city}' }]);
  refused([{ ...weather, timeout: '10 parsecs' }], /timeout/);
  refused([{ ...weather, timeout: '1h' }], /timeout/);
  refused([{ ...weather, max_response_bytes: 0 }], /max_response_bytes/);
  refused([{ ...weather, server: 'Bad/Server' }], /server/);
  refused([{ ...weather, name: 'a/b' }], /name/);
  refused([{ ...weather, surprise: true }], /surprise|Unrecognized/i);
  refused([weather, weather], /declared twice/);
});

test('input_schema: unsupported keywords and non-object roots are refused at load', () => {
  refused([{ ...weather, input_schema: { type: 'object', properties: { city: { type: 'string', oneOf: [] } }, required: ['city'] } }], /keyword "oneOf" is not supported/);
  refused([{ ...weather, input_schema: { type: 'string' } }], /root must be `type: object`/);
  refused([{ ...weather, input_schema: { type: 'object', properties: { city: { type: 'text' } } } }], /type: expected one of/);
  refused([{ ...weather, input_schema: { type: 'object', properties: { city: { type: 'string', pattern: '(' } }, required: ['city'] } }], /invalid regular expression/);
  refused([{ ...weather, input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['town'] } }], /"town" is not declared/);
});

test('postgres: one statement only, $n count matches params, params are declared', () => {
  refused([{ ...records, statement: 'SELECT 1 FROM patients WHERE ward = $1 LIMIT $2; DROP TABLE patients' }], /only one statement/);
  refused([{ ...records, statement: 'SELECT id FROM patients WHERE ward = $1' }], /uses \$1\.\.\$1 but params lists 2/);
  refused([{ ...records, statement: 'SELECT id FROM patients WHERE ward = $2 LIMIT $2' }], /\$1 is never used/);
  refused([{ ...records, params: ['ward', 'nope'] }], /"nope" is not a property/);
  refused([{ ...records, params: ['ward', 'ward'] }], /listed twice/);
  refused([{ ...records, statement: "SELECT 'unterminated" }], /unterminated string/);
  refused([{ ...records, input_schema: { type: 'object', properties: { ward: { type: 'string' }, limit: { type: 'integer' }, extra: { type: 'string' } } } }], /"extra" is not bound/);
  refused([{ ...records, max_rows: 0 }], /max_rows/);
  refused([{ ...records, credential: { engine: 'postgres' } }], /role/);
});

test('sql scan: semicolons and $n inside strings, identifiers, comments and dollar quotes are ignored', () => {
  assert.deepEqual([...scanStatement("SELECT ';$9' , \"a;$8\" -- ; $7\n /* ; /* $6 */ */ , $$ ; $5 $$, $tag$ ; $4 $tag$, E'\\'; $3' WHERE x = $1").params], [1]);
  assert.equal(scanStatement('SELECT $1;  -- trailing\n').maxParam, 1);
  assert.throws(() => scanStatement('SELECT 1; SELECT 2'), /only one statement/);
  assert.throws(() => scanStatement("SELECT 1 /* x"), /unterminated block comment/);
  assert.throws(() => scanStatement('  ;'), /empty/);
  assert.equal(scanStatement('SELECT a$1 FROM t').maxParam, 0); // identifier characters, not a parameter
});

test('argument validator: errors name the argument and carry TESSERA_TOOL_ARGS_INVALID', () => {
  const v = compileArgSchema({
    type: 'object',
    properties: {
      city: { type: 'string', minLength: 2, maxLength: 5, pattern: '^[a-z]+$' },
      days: { type: 'integer', minimum: 1, maximum: 14 },
      unit: { enum: ['C', 'F'] },
      tags: { type: 'array', items: { type: 'string' }, maxItems: 2 },
      where: { type: 'object', properties: { lat: { type: 'number' } }, required: ['lat'] },
    },
    required: ['city'],
  });
  assert.equal(v.schema.additionalProperties, false); // closed by default, and advertised so
  v.validate({ city: 'oslo', days: 3, unit: 'C', tags: ['a'], where: { lat: 1.5 } });
  const cases: [unknown, RegExp][] = [
    [{}, /argument "city": is required/],
    [{ city: 5 }, /argument "city": must be of type string/],
    [{ city: 'a' }, /argument "city": must be at least 2/],
    [{ city: 'abcdef' }, /argument "city": must be at most 5/],
    [{ city: 'Oslo' }, /argument "city": must match/],
    [{ city: 'oslo', days: 1.5 }, /argument "days": must be of type integer/],
    [{ city: 'oslo', days: 15 }, /argument "days": must be <= 14/],
    [{ city: 'oslo', days: 0 }, /argument "days": must be >= 1/],
    [{ city: 'oslo', unit: 'K' }, /argument "unit": must be one of/],
    [{ city: 'oslo', tags: ['a', 1] }, /argument "tags\[1\]": must be of type string/],
    [{ city: 'oslo', tags: ['a', 'b', 'c'] }, /argument "tags": must have at most 2/],
    [{ city: 'oslo', where: {} }, /argument "where.lat": is required/],
    [{ city: 'oslo', where: { lat: 1, lon: 2 } }, /argument "where.lon": is not allowed: the tool declares no such argument/],
    [{ city: 'oslo', admin: true }, /argument "admin": is not allowed: the tool declares no such argument/],
  ];
  for (const [args, re] of cases) {
    assert.throws(() => v.validate(args), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_TOOL_ARGS_INVALID' && re.test(e.message), `${JSON.stringify(args)} should fail with ${re}`);
  }
});
