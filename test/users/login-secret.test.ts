/**
 * The federated login's client secret (users.issuers[].login.client_secret_env / _file) is
 * resolved when Tessera starts: a missing, unreadable or empty one is TESSERA_CONFIG_INVALID
 * naming the key — never a 500 at the first person's login, never a silent public client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFederatedLogin } from '../../src/users/oauth/login.js';
import type { UserIssuerConfig } from '../../src/users/config.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-login-secret-'));
const base = { name: 'corp', issuer: 'https://login.example' } as const;
const make = (login: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
  createFederatedLogin({ issuer: { ...base, login: { client_id: 'tessera', ...login } } as unknown as UserIssuerConfig, redirectUri: 'https://tessera.example/v1/oauth/callback', hmac: (v) => v, env });

test('a bad client secret source is refused at start with the key named; a good one is accepted', () => {
  writeFileSync(join(dir, 'empty'), '  \n');
  writeFileSync(join(dir, 'good'), 'client-secret-value\n');
  const cases: [Record<string, unknown>, NodeJS.ProcessEnv, RegExp][] = [
    [{ client_secret_file: join(dir, 'missing') }, {}, /login\.client_secret_file: .*missing does not exist/],
    [{ client_secret_file: dir }, {}, /login\.client_secret_file: .* is a directory, not a file/],
    [{ client_secret_file: join(dir, 'empty') }, {}, /login\.client_secret_file: .*empty is empty/],
    [{ client_secret_env: 'TESSERA_TEST_UNSET' }, {}, /login\.client_secret_env: TESSERA_TEST_UNSET is not set or is empty/],
    [{ client_secret_env: 'TESSERA_TEST_BLANK' }, { TESSERA_TEST_BLANK: ' ' }, /is not set or is empty/],
  ];
  for (const [login, env, message] of cases) {
    assert.throws(() => make(login, env), (e: unknown) => {
      const err = e as { code?: string; message?: string };
      assert.equal(err.code, 'TESSERA_CONFIG_INVALID', JSON.stringify(login));
      assert.match(err.message ?? '', message);
      assert.ok(!(err.message ?? '').includes('client-secret-value'));
      return true;
    });
  }
  assert.doesNotThrow(() => make({ client_secret_file: join(dir, 'good') }));
  assert.doesNotThrow(() => make({ client_secret_env: 'S' }, { S: 'client-secret-value' }));
  assert.doesNotThrow(() => make({}), 'no secret: a public client');
});
