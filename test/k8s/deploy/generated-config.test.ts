/**
 * The tessera.yaml that `tessera k8s manifests` puts in the ConfigMap, run for real: `tessera
 * config validate` accepts it, and with PostgreSQL (a real throwaway cluster, test/helpers/postgres.ts)
 * `tessera init` and two `tessera server` replicas start from it with the database URL taken from
 * the environment variable the Secret `tessera-database` becomes (`store.url_env`), and both answer
 * /healthz and /readyz. The file's mount paths (/etc/tessera, /var/lib/tessera) are moved under a
 * temporary directory: no Kubernetes node runs here (no API server, no kubelet), so the volumes
 * are plain directories.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { manifestObjects, parseManifestOptions, plainObjects, type ManifestInput } from '../../../src/k8s/manifests/index.js';
import { parseConfig } from '../../../src/config/load.js';
import { postgresUrl } from '../../../src/config/index.js';
import { runCli } from '../../../src/cli/index.js';
import { runtime, serverConfig, startTessera, type RunningTessera } from '../../../src/main.js';
import { VERSION } from '../../../src/shared/package.js';
import { createLogger } from '../../../src/shared/logger.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/postgres.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-k8s-config-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** The ConfigMap's tessera.yaml for `input`, its volume paths moved under a new directory; returns the file. */
function generatedConfig(input: ManifestInput, name: string): { file: string; config: Record<string, any> } {
  const cm = plainObjects(manifestObjects(parseManifestOptions(input, VERSION))).find((o) => o.kind === 'ConfigMap') as { data: Record<string, string> };
  const config = parseYaml(cm.data['tessera.yaml']!) as Record<string, any>;
  const dir = join(root, name);
  const etc = join(dir, 'etc-tessera');
  const data = join(dir, 'var-lib-tessera');
  mkdirSync(etc, { recursive: true });
  mkdirSync(data, { recursive: true, mode: 0o700 });
  config.data_dir = data;
  config.policy.dir = etc;
  config.server.listen = '127.0.0.1:0';
  if (config.proxy) config.proxy.listen = '127.0.0.1:0';
  const file = join(etc, 'tessera.yaml');
  writeFileSync(file, stringify(config));
  return { file, config };
}

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, runtime, { stdout: { write: (s: string) => void (stdout += s) }, stderr: { write: (s: string) => void (stderr += s) }, env: process.env });
  return { code, stdout, stderr };
}

test('store.url_env: exactly one of url and url_env; a variable name; the URL read from the environment, never echoed', () => {
  assert.deepEqual(parseConfig({ store: { kind: 'postgres', url_env: 'TESSERA_DATABASE_URL' } }).store, { kind: 'postgres', url_env: 'TESSERA_DATABASE_URL' });
  for (const store of [{ kind: 'postgres' }, { kind: 'postgres', url: 'postgres://x@h/db', url_env: 'DB' }, { kind: 'postgres', url_env: 'lower-case' }, { kind: 'postgres', url_env: '' }]) {
    assert.throws(() => parseConfig({ store }), { code: 'TESSERA_CONFIG_INVALID' }, JSON.stringify(store));
  }
  assert.throws(() => parseConfig({ store: { kind: 'sqlite', url_env: 'DB' } }), { code: 'TESSERA_CONFIG_INVALID' });
  assert.equal(postgresUrl({ url_env: 'DB' }, { DB: 'postgres://u:pw@h/db' }), 'postgres://u:pw@h/db');
  assert.equal(postgresUrl({ url: 'postgres://h/db' }, {}), 'postgres://h/db');
  for (const env of [{}, { DB: '' }, { DB: '  ' }]) {
    assert.throws(() => postgresUrl({ url_env: 'DB' }, env), (e: { code?: string; message: string }) => e.code === 'TESSERA_CONFIG_INVALID' && e.message.includes('DB'));
  }
});

test('`tessera config validate` accepts the generated configuration, SQLite and PostgreSQL, with the Secrets as environment', async () => {
  process.env.TESSERA_MASTER_KEY = randomBytes(32).toString('base64');
  process.env.TESSERA_DATABASE_URL = 'postgres://tessera@db.example:5432/tessera';
  try {
    for (const [input, name] of [[{ store: 'sqlite' }, 'validate-sqlite'], [{ store: 'postgres', watchPods: false }, 'validate-pg'], [{ store: 'sqlite', proxy: false, saIssuer: 'https://issuer.example', saJwksUrl: 'https://issuer.example/keys' }, 'validate-attestor'], [{ store: 'postgres', tokenreview: true, watchPods: true, saIssuer: 'https://oidc.example' }, 'validate-tokenreview']] as const) {
      const { file } = generatedConfig(input, name);
      const r = await cli(['config', 'validate', '--config', file, '--json']);
      assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
      const report = JSON.parse(r.stdout) as { ok: boolean; problems: unknown[] };
      assert.deepEqual(report.problems, []);
      assert.equal(report.ok, true);
    }
    // `--tokenreview --watch-pods`, through the command itself: its ConfigMap's tessera.yaml names
    // the attestor in TokenReview mode (no key set) and the API connection with in-cluster defaults.
    const out = await cli(['k8s', 'manifests', '--json', '--store', 'sqlite', '--tokenreview', '--watch-pods']);
    assert.equal(out.code, 0, out.stderr);
    const cm = (JSON.parse(out.stdout) as { items: { kind: string; data?: Record<string, string> }[] }).items.find((o) => o.kind === 'ConfigMap')!;
    const raw = parseYaml(cm.data!['tessera.yaml']!) as Record<string, any>;
    assert.deepEqual(raw.attestors, [{ kind: 'join_token' }, { kind: 'jwt', name: 'kubernetes', issuer: 'https://kubernetes.default.svc.cluster.local', audience: 'tessera', template: 'kubernetes', mode: 'tokenreview' }]);
    assert.deepEqual(raw.kubernetes, { watch_pods: true, api: {} });
    const dir = join(root, 'validate-tokenreview-cli');
    mkdirSync(join(dir, 'data'), { recursive: true, mode: 0o700 });
    Object.assign(raw, { data_dir: join(dir, 'data'), policy: { dir }, server: { ...raw.server, listen: '127.0.0.1:0' }, proxy: { listen: '127.0.0.1:0' } });
    writeFileSync(join(dir, 'tessera.yaml'), stringify(raw));
    const tr = await cli(['config', 'validate', '--config', join(dir, 'tessera.yaml'), '--json']);
    assert.equal(tr.code, 0, `${tr.stdout}${tr.stderr}`);
    assert.deepEqual((JSON.parse(tr.stdout) as { problems: unknown[] }).problems, []);
    const parsed = parseConfig(raw);
    assert.equal(parsed.attestors.find((a) => a.name === 'kubernetes')?.kind === 'jwt' && (parsed.attestors.find((a) => a.name === 'kubernetes') as { mode: string }).mode, 'tokenreview');
    assert.equal(parsed.kubernetes.watch_pods, true);
    // Without the Secret's variable, the check names the key (the value is never shown).
    delete process.env.TESSERA_DATABASE_URL;
    const { file } = generatedConfig({ store: 'postgres' }, 'validate-pg-no-url');
    const r = await cli(['config', 'validate', '--config', file, '--json']);
    assert.equal(r.code, 1);
    assert.deepEqual((JSON.parse(r.stdout) as { problems: { key: string }[] }).problems.map((p) => p.key), ['store.url_env']);
  } finally {
    delete process.env.TESSERA_MASTER_KEY;
    delete process.env.TESSERA_DATABASE_URL;
  }
});

test('PostgreSQL: init once, then two replicas start from the same generated configuration; both healthy and ready', { timeout: 240_000 }, async () => {
  let db: TestDatabase | undefined;
  const servers: RunningTessera[] = [];
  process.env.TESSERA_MASTER_KEY = randomBytes(32).toString('base64');
  try {
    db = await createTestDatabase('k8s_manifests');
    process.env.TESSERA_DATABASE_URL = db.url;
    const { file } = generatedConfig({ store: 'postgres' }, 'pg-run');
    const init = await cli(['init', '--config', file, '--json']);
    assert.equal(init.code, 0, init.stderr);
    assert.doesNotMatch(init.stdout + init.stderr, new RegExp(db.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the URL is never printed');
    // A second init is refused: the init Pod is run once (docs/kubernetes.md).
    const again = await cli(['init', '--config', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\[TESSERA_ALREADY_INITIALIZED\]/);
    for (let i = 0; i < 2; i++) {
      servers.push(await startTessera({ config: { ...serverConfig({ configPath: file }), replica_id: `tessera-${i}` }, mode: 'server', env: process.env, logger: createLogger({ level: 'silent' }) }));
    }
    for (const s of servers) {
      for (const path of ['/healthz', '/readyz']) {
        const r = await fetch(s.localUrl + path);
        assert.equal(r.status, 200, `${s.localUrl}${path}`);
      }
    }
  } finally {
    for (const s of servers) await s.close();
    await db?.drop();
    delete process.env.TESSERA_MASTER_KEY;
    delete process.env.TESSERA_DATABASE_URL;
  }
});
