/**
 * One configuration path (issue 7, item 15): `tessera dev --config` and `tessera server --config`
 * read the same file to the same values. The file sets every key to a non-default value —
 * durations of every unit, sizes, attestor durations such as `max_token_age` and
 * `bundle_refresh` — and both real runtimes (src/main.ts) start from it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, loadConfigFile, parseConfig, type TesseraConfig } from '../../src/config/index.js';
import { devConfig, runtime, serverConfig, type RunningTessera } from '../../src/main.js';
import { TesseraError } from '../../src/shared/errors.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'every-key.yaml');
/**
 * Keys left at their default: `tokens.signing.alg` has one valid value; `store.kind` stays
 * sqlite so the test needs no database server (its `file` is set; the PostgreSQL store runs
 * from a config in test/e2e/postgres-store.test.ts).
 */
const SINGLE_VALUED = new Set(['tokens.signing.alg', 'store.kind']);

function writeFixture(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-one-path-'));
  const text = readFileSync(FIXTURE, 'utf8').replaceAll('${DIR}', dir).replaceAll('${POLICIES}', resolve('examples/policies'));
  const file = join(dir, 'tessera.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

/** Every leaf path of a parsed config (arrays are leaves: a list replaces the default list). */
function leaves(v: unknown, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) for (const [p, y] of leaves(x, prefix ? `${prefix}.${k}` : k)) out.set(p, y);
  } else out.set(prefix, v);
  return out;
}

test('the fixture sets every key that has a default to something else', () => {
  const { file } = writeFixture();
  const parsed = leaves(loadConfigFile(file));
  const defaults = leaves(parseConfig({}));
  const same = [...defaults].filter(([k, v]) => !SINGLE_VALUED.has(k) && JSON.stringify(parsed.get(k)) === JSON.stringify(v)).map(([k]) => k);
  assert.deepEqual(same, [], 'give these keys a non-default value in test/config/fixtures/every-key.yaml');
  // Optional keys (no default) are set too.
  for (const k of ['replica_id', 'server.public_url', 'store.file', 'master_key.file']) assert.ok(parsed.get(k) !== undefined, k);
});

test('dev and server parse the same file to the same values; durations are milliseconds once', () => {
  const { file } = writeFixture();
  const dev = devConfig({ configPath: file });
  const server = serverConfig({ configPath: file });
  assert.deepEqual(dev, server);
  assert.deepEqual(dev, loadConfigFile(file));
  const jwt = dev.attestors.find((a) => a.kind === 'jwt');
  const spiffe = dev.attestors.find((a) => a.kind === 'spiffe');
  assert.equal(jwt?.kind === 'jwt' && jwt.max_token_age, 90_000);
  assert.equal(spiffe?.kind === 'spiffe' && spiffe.bundle_refresh, 600_000);
  assert.equal(dev.attestors[0]?.kind === 'join_token' && dev.attestors[0].max_ttl, 1_800_000);
  assert.equal(dev.tokens.agent_ttl, 240_000);
  assert.equal(dev.tokens.clock_skew, 45_000);
  assert.equal(dev.tokens.signing.overlap, 5_400_000);
  assert.equal(dev.tokens.dpop.iat_window, 45_000);
  assert.equal(dev.tokens.dpop.nonce_lifetime, 120_000);
  assert.equal(dev.audit.checkpoint_every, 120_000);
  assert.equal(dev.leases.reaper_interval, 15_000);
  assert.equal(dev.gateway.idle_timeout, 420_000);
  assert.equal(dev.gateway.call_timeout, 45_000);
  const pgTool = dev.gateway.tools.find((t) => t.kind === 'postgres');
  assert.equal(pgTool?.kind === 'postgres' && pgTool.connect_timeout, 2500);
  assert.equal(pgTool?.kind === 'postgres' && pgTool.credential.ttl, 120_000);
  assert.equal(dev.server.body_limit_bytes, 131_072);
});

test('command-line overrides replace exactly their key, in dev and in server', () => {
  const { dir, file } = writeFixture();
  const base = loadConfigFile(file);
  const dev = devConfig({ configPath: file, listen: '127.0.0.1:9321', dataDir: join(dir, 'other') });
  assert.deepEqual(dev, { ...base, data_dir: join(dir, 'other'), server: { ...base.server, listen: '127.0.0.1:9321' } });
  assert.deepEqual(serverConfig({ configPath: file, dataDir: join(dir, 'other') }), { ...base, data_dir: join(dir, 'other') });
  // Without a file: the defaults, with the same overrides.
  assert.deepEqual(devConfig({ listen: '127.0.0.1:9321' }), parseConfig({ server: { listen: '127.0.0.1:9321' } }));
  // Overrides are validated like the file.
  assert.throws(() => devConfig({ configPath: file, listen: 'nope' }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && /server\.listen/.test(e.message));
});

test('a file that is not a mapping, or empty, is refused or means the defaults — with or without overrides', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-one-path-'));
  const list = join(dir, 'list.yaml');
  writeFileSync(list, '- a\n- b\n');
  for (const o of [{}, { dataDir: '/x' }]) assert.throws(() => loadConfig({ path: list, overrides: o }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID');
  const badServer = join(dir, 'server.yaml');
  writeFileSync(badServer, 'server: 8200\n');
  assert.throws(() => loadConfig({ path: badServer, overrides: { listen: '127.0.0.1:1' } }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && /server/.test(e.message));
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, '');
  assert.deepEqual(loadConfig({ path: empty, overrides: { dataDir: '/x' } }), parseConfig({ data_dir: '/x' }));
  assert.throws(() => loadConfig({ path: join(dir, 'missing.yaml') }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_NOT_FOUND');
});

async function loginExpiresIn(s: RunningTessera, adminToken: string): Promise<number> {
  const jt = await fetch(`${s.localUrl}/v1/admin/join-tokens`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ spiffe_id: 'spiffe://one-path.example/agent/x', ttl: '5m' }) });
  assert.equal(jt.status, 201, await jt.clone().text());
  const { token } = (await jt.json()) as { token: string };
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:tessera:token-type:join-token' });
  const r = await fetch(`${s.localUrl}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  assert.equal(r.status, 200, await r.clone().text());
  return ((await r.json()) as { expires_in: number }).expires_in;
}

test('the real dev and server runtimes start from the file with the same configuration', async () => {
  const { file } = writeFixture();
  const init = await runtime.init({ configPath: file });
  const dev = (await runtime.dev({ configPath: file })) as RunningTessera;
  let devCfg: TesseraConfig;
  try {
    devCfg = dev.config;
    // tokens.agent_ttl 4m: the login answer says 240 s (a 1000x error would say 240000).
    assert.equal(await loginExpiresIn(dev, dev.adminToken!), 240);
    // The demo join token respects the join_token attestor's max_ttl (30m < the usual 1h).
    assert.ok(dev.joinToken);
  } finally {
    await dev.close();
  }
  const server = (await runtime.server({ configPath: file })) as RunningTessera;
  try {
    assert.deepEqual(server.config, devCfg);
    assert.equal(await loginExpiresIn(server, init.adminToken), 240);
  } finally {
    await server.close();
  }
});
