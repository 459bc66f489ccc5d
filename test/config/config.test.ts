import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile, parseConfig, parseDuration } from '../../src/config/index.js';
import { TesseraError } from '../../src/shared/errors.js';

const bad = (raw: unknown, key: RegExp) => () =>
  assert.throws(() => parseConfig(raw), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && key.test(e.message));

test('defaults are safe: loopback listen, 5 min agent tokens, store audit sink, join tokens ≤ 1 h', () => {
  const c = parseConfig({});
  assert.equal(c.server.listen, '127.0.0.1:8200');
  assert.equal(c.tokens.agent_ttl, 300_000);
  assert.equal(c.tokens.task_ttl, 900_000);
  assert.deepEqual(c.audit.sinks, [{ kind: 'store' }]);
  assert.equal(c.attestors[0]?.kind, 'join_token');
});

test('durations accept seconds and units', () => {
  assert.equal(parseDuration(90), 90_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('7d'), 604_800_000);
  assert.equal(parseDuration('5 minutes'), null);
  assert.equal(parseDuration(-1), null);
  assert.equal(parseConfig({ tokens: { agent_ttl: '2m' } }).tokens.agent_ttl, 120_000);
});

test('every config error names the key and what is expected', () => {
  bad({ foo: 1 }, /\(top level\): Unrecognized key: "foo"/)();
  bad({ server: { listen: 'nope' } }, /server\.listen: expected host:port/)();
  bad({ server: { bogus: true } }, /server: Unrecognized key/)();
  bad({ tokens: { agent_ttl: 'soon' } }, /tokens\.agent_ttl: expected a duration/)();
  bad({ trust_domain: 'Example.ORG' }, /trust_domain: expected a SPIFFE trust domain/)();
  bad({ store: { kind: 'mysql' } }, /store/)();
  bad({ store: { kind: 'postgres' } }, /store: set exactly one of url or url_env/)();
  bad({ master_key: { file: '/a', env: 'B' } }, /master_key: set at most one of file or env/)();
  bad({ master_key: { env: 'lower-case' } }, /master_key\.env: expected an environment variable name/)();
  bad({ attestors: [{ kind: 'join_token', max_ttl: '2h' }] }, /attestors\.0\.max_ttl: join tokens live at most 1h/)();
  bad({ attestors: [{ kind: 'jwt', name: 'k8s', issuer: 'x', audience: 'a', template: 'kubernetes' }] }, /attestors\.0: set exactly one of jwks_url or jwks_file/)();
  bad({ attestors: [{ kind: 'spiffe', name: 's', trust_domain: 'td', audience: 'a', bundle_file: 'f', bundle_url: 'https://x' }] }, /attestors\.0: set exactly one of bundle_url or bundle_file/)();
  bad({ attestors: [{ kind: 'ldap' }] }, /attestors\.0\.kind/)();
  bad({ audit: { sinks: [] } }, /audit\.sinks/)();
  bad({ audit: { sinks: [{ kind: 'kafka' }] } }, /audit\.sinks\.0\.kind/)();
  bad({ audit: { sinks: [{ kind: 'syslog' }] } }, /audit\.sinks: include at least one of store, file or stdout/)();
  bad({ server: { body_limit_bytes: 10 } }, /server\.body_limit_bytes/)();
  bad({ log: { level: 'loud' } }, /log\.level/)();
});

test('config files: missing file, bad YAML, and the shipped example validates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-cfg-'));
  assert.throws(() => loadConfigFile(join(dir, 'nope.yaml')), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_NOT_FOUND');
  writeFileSync(join(dir, 'bad.yaml'), 'server: [unclosed');
  assert.throws(() => loadConfigFile(join(dir, 'bad.yaml')), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && /not valid YAML/.test(e.message));
  const example = loadConfigFile('examples/tessera.yaml');
  assert.equal(example.trust_domain, 'example.org');
  assert.equal(example.attestors.length, 4);
});
