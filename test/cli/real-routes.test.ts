/**
 * The CLI against the REAL route modules it wraps (secrets, policy check) behind the real
 * HTTP core and the real admin-token service, on a real in-memory SQLite store — checks
 * the wire contract the CLI assumes matches what the features serve. Full end-to-end runs
 * (main.ts composition, token exchange) are in the lead's suite.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/server/app.js';
import { silentLogger } from '../../src/shared/logger.js';
import { TesseraError } from '../../src/shared/errors.js';
import { ManualClock } from '../../src/shared/clock.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { createAdminTokenService } from '../../src/admin/index.js';
import { createKvService } from '../../src/secrets/kv.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { registerSecretRoutes } from '../../src/secrets/routes.js';
import { createPolicyEngine, registerPolicyRoutes } from '../../src/policy/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import { createRequestAuthorizer } from '../../src/pipeline/authorize.js';

const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };

let app: FastifyInstance;
let store: Store;
let url: string;
let adminToken: string;
let policy: ReturnType<typeof createPolicyEngine>;

before(async () => {
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const admins = createAdminTokenService({ store, clock, audit });
  adminToken = (await admins.create({ name: "test", expiresAt: null })).token;
  app = createApp({
    logger: silentLogger,
    replicaId: 'r1',
    bodyLimit: 1024 * 1024,
    admin: admins,
    agents: { authenticate: async () => Promise.reject(new TesseraError('TESSERA_TOKEN_MISSING', 'no agents in this test')) },
  });
  const kv = createKvService({ store, sealer: masterSealer(randomBytes(32)), clock, audit });
  // Agent reads are not exercised here (no token service in this test): deny them all.
  registerSecretRoutes(app, { kv, authorizer: createRequestAuthorizer({ authorize: () => ({ allowed: false, policies: [], errors: [], cached: false }) }) });
  policy = createPolicyEngine({ dir: 'examples/policies', clock, logger: silentLogger, audit, cacheSize: 0, watch: false });
  await policy.load();
  registerPolicyRoutes(app, { policy });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

after(async () => {
  await app.close();
  policy.stop();
  await store.close();
});

async function cli(argv: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s) },
    env: { TESSERA_ADDR: url, TESSERA_TOKEN: adminToken },
    ...(stdin !== undefined ? { stdin: (async function* () { yield stdin; })() } : {}),
  };
  return { code: await runCli(argv, runtime, io), stdout, stderr };
}

test('kv put/get/list/rm against the real secrets routes', async () => {
  const put = await cli(['kv', 'put', 'team/app/db-password', '-', '--mode', 'read', '--description', 'orders db'], 'hunter2\n');
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /stored team\/app\/db-password \(version 1\)/);
  assert.equal((await cli(['kv', 'put', 'team/app/db-password', 'v2'])).code, 0);
  assert.equal((await cli(['kv', 'get', 'team/app/db-password'])).stdout, 'v2');
  assert.equal((await cli(['kv', 'get', 'team/app/db-password', '--version', '1'])).stdout, 'hunter2');
  const list = await cli(['kv', 'list', 'team/']);
  assert.match(list.stdout, /team\/app\/db-password\s+2\s+read\s+-\s+orders db/);
  assert.doesNotMatch(list.stdout, /hunter2/);
  const rm = await cli(['kv', 'rm', 'team/app/db-password']);
  assert.equal(rm.code, 0, rm.stderr);
  const gone = await cli(['kv', 'get', 'team/app/db-password']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /TESSERA_SECRET_NOT_FOUND/);
});

test('bad inputs surface the features’ stable codes', async () => {
  const badPath = await cli(['kv', 'put', 'a/../b', 'x']);
  assert.equal(badPath.code, 1);
  assert.match(badPath.stderr, /TESSERA_SECRET_PATH_INVALID/);
  const badCheck = await cli(['policy', 'check', '--principal', 'not-spiffe', '--action', 'secret.read', '--resource', 'Secret::a/b']);
  assert.equal(badCheck.code, 1);
  assert.match(badCheck.stderr, /TESSERA_POLICY_REQUEST_INVALID/);
  const wrongAdmin = await runCli(['kv', 'list'], runtime, { stdout: { write: () => true }, stderr: { write: () => true }, env: { TESSERA_ADDR: url, TESSERA_TOKEN: 'tsr_admin_not_the_right_one_000' } });
  assert.equal(wrongAdmin, 1);
});

test('policy check against the real policy route shows the decision and deciding policies', async () => {
  const r = await cli(['--json', 'policy', 'check', '--principal', 'spiffe://example.org/agent/x', '--action', 'secret.read', '--resource', 'Secret::nothing/here']);
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as { decision: string; policies: unknown[] };
  assert.ok(['allow', 'deny'].includes(body.decision));
  assert.ok(Array.isArray(body.policies));
  const human = await cli(['policy', 'check', '--principal', 'spiffe://example.org/agent/x', '--action', 'secret.read', '--resource', 'Secret::nothing/here']);
  assert.match(human.stdout, new RegExp(`decision: ${body.decision.toUpperCase()}`));
});

test('kv put: - and --from-file read alike (UTF-8 text, exactly one trailing line break dropped unless --keep-newline); an argument is kept as is', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-kvput-'));
  const cases: [string, string[], string][] = [
    ['key\n', [], 'key'],
    ['key\r\n', [], 'key'],
    ['key\n\n', [], 'key\n'],
    ['key', [], 'key'],
    ['-----BEGIN X-----\nabc\n-----END X-----\n', [], '-----BEGIN X-----\nabc\n-----END X-----'],
    ['key\n', ['--keep-newline'], 'key\n'],
    ['ünïcode ✓\n', [], 'ünïcode ✓'],
  ];
  for (const [i, [input, flags, stored]] of cases.entries()) {
    const file = join(dir, `v${i}.txt`);
    writeFileSync(file, input);
    for (const [how, argv, stdin] of [['file', ['--from-file', file], undefined], ['stdin', ['-'], input]] as const) {
      const put = await cli(['kv', 'put', `nl/case-${i}-${how}`, ...argv, ...flags], stdin);
      assert.equal(put.code, 0, put.stderr);
      assert.equal((await cli(['kv', 'get', `nl/case-${i}-${how}`])).stdout, stored, `${how} ${JSON.stringify(input)} ${flags.join(' ')}`);
    }
  }
  const arg = await cli(['kv', 'put', 'nl/arg', 'value\n']);
  assert.equal(arg.code, 0, arg.stderr);
  assert.equal((await cli(['kv', 'get', 'nl/arg'])).stdout, 'value\n');
  const bad = await cli(['kv', 'put', 'nl/arg', 'value', '--keep-newline']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--keep-newline applies to a value read with - or --from-file/);
});

test('kv put refuses bytes that are not UTF-8 (exit 2, nothing stored) instead of storing them changed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-kvbin-'));
  const der = join(dir, 'key.der');
  writeFileSync(der, Buffer.from([0x30, 0x82, 0xff, 0xfe, 0x00, 0x01]));
  const r = await cli(['kv', 'put', 'bin/key', '--from-file', der]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`the value from --from-file ${der.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not UTF-8 text \\(byte 0x82 at offset 1 starts no valid character\\).*base64 -w0 FILE \\| tessera kv put PATH -`));
  assert.match(r.stderr, /\[TESSERA_CLI_USAGE\]/);
  const viaStdin = await runCli(['kv', 'put', 'bin/key', '-'], runtime, {
    stdout: { write: () => true }, stderr: { write: () => true }, env: { TESSERA_ADDR: url, TESSERA_TOKEN: adminToken },
    stdin: (async function* () { yield Buffer.from([0x61, 0xc3, 0x28]); })(),
  });
  assert.equal(viaStdin, 2);
  const gone = await cli(['kv', 'get', 'bin/key']);
  assert.match(gone.stderr, /TESSERA_SECRET_NOT_FOUND/, 'nothing was stored');
  // Encoded, the same bytes are text, and come back exactly.
  const b64 = Buffer.from([0x30, 0x82, 0xff, 0xfe, 0x00, 0x01]).toString('base64');
  assert.equal((await cli(['kv', 'put', 'bin/key-b64', '-'], `${b64}\n`)).code, 0);
  assert.equal(Buffer.from((await cli(['kv', 'get', 'bin/key-b64'])).stdout, 'base64').toString('hex'), '3082fffe0001');
});

test('a path with a character outside the set: the message names the character (not percent-encoding)', async () => {
  const r = await cli(['kv', 'put', 'bad path/x', 'v']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid secret path \\?"bad path\/x\\?": segment 1 contains \\?" \\?"; allowed characters are A-Z a-z 0-9 \. _ -/);
  assert.doesNotMatch(r.stderr, /percent/);
});
