/**
 * The files and variables the authorization server for people reads at start
 * (`users.issuers[].login.client_secret_file` / `client_secret_env`,
 * `users.authorization_server.client_metadata.ca_file`): `tessera config validate` checks each
 * (missing, a directory, empty, not set, not PEM) and names the key; `tessera server` refuses the
 * same faults at start with TESSERA_CONFIG_INVALID naming the key — never a raw ENOENT, never the
 * secret in the message. Real CLI (src/cli) with the real runtime (src/main.ts) on real files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { runtime, startTessera } from '../../src/main.js';
import { parseConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/shared/logger.js';

const SECRET = 'login-secret-value-do-not-print';
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

async function validate(configPath: string, env: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env };
  const code = await runCli(['config', 'validate', '--config', configPath], runtime, io);
  return { code, stdout, stderr };
}

async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
  }
}

function workspace(): { root: string; policies: string } {
  const root = mkdtempSync(join(tmpdir(), 'tessera-users-files-'));
  const policies = join(root, 'policies');
  mkdirSync(policies);
  return { root, policies };
}

/** A people section: two login issuers (file and env secrets) and the authorization server with a CA file. */
function users(secretFile: string, secretEnv: string, caFile: string): Record<string, unknown> {
  return {
    issuers: [
      { name: 'corp', issuer: 'https://login.corp.example', audience: 'tessera', discovery: true, user_id_prefix: 'corp:', login: { client_id: 'tessera', client_secret_file: secretFile } },
      { name: 'partner', issuer: 'https://login.partner.example', audience: 'tessera', jwks_url: 'https://login.partner.example/jwks', user_id_prefix: 'partner:', login: { client_id: 'tessera', client_secret_env: secretEnv } },
    ],
    authorization_server: { enabled: true, login_issuer: 'corp', client_metadata: { ca_file: caFile } },
  };
}

test('config validate: a missing, empty or directory client_secret_file, an unset or blank client_secret_env, a missing or non-PEM ca_file: each a problem naming its key; exit 1 TESSERA_CONFIG_INVALID', async () => {
  const ws = workspace();
  writeFileSync(join(ws.root, 'empty'), ' \n');
  writeFileSync(join(ws.root, 'not-pem'), 'just text\n');
  writeFileSync(join(ws.root, 'secret'), `${SECRET}\n`);
  writeFileSync(join(ws.root, 'ca.pem'), PEM);
  const cases: { secretFile: string; env: Record<string, string>; ca: string; problems: RegExp[] }[] = [
    {
      secretFile: join(ws.root, 'missing-secret'), env: {}, ca: join(ws.root, 'missing-ca.pem'),
      problems: [
        /users\.issuers\[0\]\.login\.client_secret_file: .*missing-secret does not exist/,
        /users\.issuers\[1\]\.login\.client_secret_env: the environment variable TESSERA_TEST_PARTNER_SECRET is not set here/,
        /users\.authorization_server\.client_metadata\.ca_file: .*missing-ca\.pem does not exist/,
      ],
    },
    {
      secretFile: join(ws.root, 'empty'), env: { TESSERA_TEST_PARTNER_SECRET: '  ' }, ca: join(ws.root, 'not-pem'),
      problems: [
        /users\.issuers\[0\]\.login\.client_secret_file: .*empty is empty/,
        /users\.issuers\[1\]\.login\.client_secret_env: the environment variable TESSERA_TEST_PARTNER_SECRET is not set here \(or is empty\)/,
        /users\.authorization_server\.client_metadata\.ca_file: .*not-pem holds no PEM certificate/,
      ],
    },
    {
      secretFile: ws.root, env: { TESSERA_TEST_PARTNER_SECRET: SECRET }, ca: ws.root,
      problems: [
        /users\.issuers\[0\]\.login\.client_secret_file: .* is a directory, not a file/,
        /users\.authorization_server\.client_metadata\.ca_file: .* is a directory, not a file/,
      ],
    },
  ];
  for (const c of cases) {
    const file = join(ws.root, 'tessera.yaml');
    writeFileSync(file, JSON.stringify({ data_dir: join(ws.root, 'data'), policy: { dir: ws.policies }, users: users(c.secretFile, 'TESSERA_TEST_PARTNER_SECRET', c.ca) }));
    // `tessera config validate` looks the variables up in its own environment.
    const r = await withEnv(c.env, () => validate(file, {}));
    assert.equal(r.code, 1, r.stdout + r.stderr);
    for (const re of c.problems) assert.match(r.stdout, re);
    assert.match(r.stdout, new RegExp(`: ${c.problems.length} problems?`), r.stdout);
    assert.match(r.stderr, /\[TESSERA_CONFIG_INVALID\]/);
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), 'never the secret');
  }
  // All good: none of these keys is a problem.
  const file = join(ws.root, 'tessera.yaml');
  writeFileSync(file, JSON.stringify({ data_dir: join(ws.root, 'data'), policy: { dir: ws.policies }, users: users(join(ws.root, 'secret'), 'TESSERA_TEST_PARTNER_SECRET', join(ws.root, 'ca.pem')) }));
  const ok = await withEnv({ TESSERA_TEST_PARTNER_SECRET: SECRET }, () => validate(file, {}));
  assert.doesNotMatch(ok.stdout, /users\./, ok.stdout);
  assert.ok(!(ok.stdout + ok.stderr).includes(SECRET));
});

test('at start: a missing, empty or non-PEM client_metadata.ca_file, or a missing client_secret_file, is TESSERA_CONFIG_INVALID naming the key (no raw ENOENT)', async () => {
  const ws = workspace();
  writeFileSync(join(ws.root, 'secret'), `${SECRET}\n`);
  writeFileSync(join(ws.root, 'empty'), '');
  writeFileSync(join(ws.root, 'not-pem'), 'text');
  writeFileSync(join(ws.root, 'ca.pem'), PEM);
  const cases: [string, string, RegExp][] = [
    [join(ws.root, 'secret'), join(ws.root, 'missing-ca.pem'), /^users\.authorization_server\.client_metadata\.ca_file: .*missing-ca\.pem does not exist/],
    [join(ws.root, 'secret'), join(ws.root, 'empty'), /^users\.authorization_server\.client_metadata\.ca_file: .*empty is empty/],
    [join(ws.root, 'secret'), join(ws.root, 'not-pem'), /^users\.authorization_server\.client_metadata\.ca_file: .*not-pem holds no PEM certificate/],
    [join(ws.root, 'missing-secret'), join(ws.root, 'ca.pem'), /^users\.issuers "corp"\.login\.client_secret_file: .*missing-secret does not exist/],
  ];
  for (const [secretFile, ca, message] of cases) {
    const config = parseConfig({
      data_dir: join(ws.root, `data-${Math.random().toString(36).slice(2)}`), server: { listen: '127.0.0.1:0' }, policy: { dir: ws.policies, watch: false }, log: { level: 'silent' },
      users: users(secretFile, 'TESSERA_TEST_PARTNER_SECRET', ca),
    });
    await assert.rejects(startTessera({ config, mode: 'dev', logger: silentLogger }), (e: unknown) => {
      const err = e as { code?: string; message?: string; details?: { key?: string } };
      assert.equal(err.code, 'TESSERA_CONFIG_INVALID', String(err.message));
      assert.match(err.message ?? '', message);
      assert.doesNotMatch(err.message ?? '', /ENOENT/);
      assert.ok(!(err.message ?? '').includes(SECRET));
      return true;
    });
  }
});
