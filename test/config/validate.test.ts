/**
 * `tessera config validate --config FILE` (docs/cli.md): the schema, every file and directory the
 * configuration names, the master key and the policies — and no side effect: nothing is started,
 * created or written (examples/tessera.yaml once said "validate with: tessera server", which
 * started a server and created a database). Runs the real runtime (src/main.ts) through the CLI,
 * on real files in a temporary directory, and the real binary on the shipped example.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { runtime } from '../../src/main.js';

const REPO = process.cwd();

async function validate(configPath: string, env: Record<string, string | undefined> = {}, json = false): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env };
  const code = await runCli([...(json ? ['--json'] : []), 'config', 'validate', '--config', configPath], runtime, io);
  return { code, stdout, stderr };
}

/** Every entry under `dir` with its size and mtime: what "nothing written" compares. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = statSync(p);
      out.push(`${p} ${st.isDirectory() ? 'dir' : st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

function workspace(): { root: string; write(yaml: string): string } {
  const root = mkdtempSync(join(tmpdir(), 'tessera-validate-'));
  return {
    root,
    write(yaml: string): string {
      const f = join(root, 'tessera.yaml');
      writeFileSync(f, yaml);
      return f;
    },
  };
}

test('a valid configuration on an initialised data directory: ok, exit 0, nothing created or written', async () => {
  const ws = workspace();
  const dataDir = join(ws.root, 'data');
  mkdirSync(join(ws.root, 'logs'));
  const config = ws.write([
    `data_dir: ${dataDir}`,
    'server:',
    '  listen: 0.0.0.0:8200',
    'policy:',
    `  dir: ${join(REPO, 'examples', 'policies')}`,
    'audit:',
    '  sinks:',
    '    - kind: store',
    '    - kind: file',
    `      path: ${join(ws.root, 'logs', 'audit.jsonl')}`,
    'log:',
    '  level: silent',
    '',
  ].join('\n'));
  await runtime.init({ configPath: config });
  const before = snapshot(ws.root);
  const r = await validate(config);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^ok: ${config} is valid \\(nothing was started, created or written\\)\\n`));
  assert.match(r.stdout, /note: policy\.dir: 14 policies in 5 files, valid/);
  assert.deepEqual(snapshot(ws.root), before, 'nothing was created or written');
  const j = await validate(config, {}, true);
  const report = JSON.parse(j.stdout) as { ok: boolean; problems: unknown[]; checked: string[] };
  assert.equal(report.ok, true);
  assert.deepEqual(report.problems, []);
  for (const k of ['data_dir', 'store.file', 'policy.dir', 'audit.sinks[1].path', 'master_key']) assert.ok(report.checked.includes(k), k);
});

test('before `tessera init`: what init creates is a note, not a problem; nothing is created', async () => {
  const ws = workspace();
  const config = ws.write(`data_dir: ${join(ws.root, 'data')}\npolicy:\n  dir: ${join(REPO, 'examples', 'policies')}\n`);
  const r = await validate(config);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /note: data_dir: .*data does not exist yet; `tessera init` creates it/);
  assert.match(r.stdout, /note: data_dir: no database at .*tessera\.db yet/);
  assert.match(r.stdout, /note: data_dir: no master key at .*master\.key yet; `tessera init` generates one/);
  assert.deepEqual(readdirSync(ws.root), ['tessera.yaml']);
});

test('a policy pinning a trust domain the configuration does not serve is a warning (it can never match), not a problem', async () => {
  const ws = workspace();
  // The demo policies pin tessera.local; this configuration serves example.org only.
  const config = ws.write(`trust_domain: example.org\ndata_dir: ${join(ws.root, 'data')}\npolicy:\n  dir: ${join(REPO, 'examples', 'policies')}\n`);
  const r = await validate(config);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /note: policy\.dir: warning: healthcare\.cedar:\d+: policy "healthcare-reader" pins trust domain "tessera\.local", which this Tessera does not serve \(it serves 1 trust domain: example\.org\): it can never match/);
  // Served (the default trust domain): no warning.
  const served = ws.write(`data_dir: ${join(ws.root, 'data')}\npolicy:\n  dir: ${join(REPO, 'examples', 'policies')}\n`);
  const ok = await validate(served);
  assert.doesNotMatch(ok.stdout, /does not serve/);
});

test('every kind of problem is named by its key, and exits 1 with TESSERA_CONFIG_INVALID', async () => {
  const ws = workspace();
  const fileAsDir = join(ws.root, 'a-file');
  writeFileSync(fileAsDir, 'x');
  const looseKey = join(ws.root, 'loose.key');
  writeFileSync(looseKey, randomBytes(32).toString('base64'));
  chmodSync(looseKey, 0o644);
  const badPolicies = join(ws.root, 'policies');
  mkdirSync(badPolicies);
  writeFileSync(join(badPolicies, 'bad.cedar'), 'permit (principal, action, resource) when { nonsense');
  const config = ws.write([
    `data_dir: ${fileAsDir}`,
    'master_key:',
    `  file: ${looseKey}`,
    'policy:',
    `  dir: ${badPolicies}`,
    'attestors:',
    '  - name: ci',
    '    kind: jwt',
    '    issuer: https://ci.example.org',
    `    jwks_file: ${join(ws.root, 'missing-jwks.json')}`,
    '    audience: tessera',
    '    template: "spiffe://{trust_domain}/ci/{claims.sub}"',
    'audit:',
    '  sinks:',
    '    - kind: store',
    '    - kind: file',
    `      path: ${join(ws.root, 'no-such-dir', 'audit.jsonl')}`,
    '    - kind: http',
    '      url: https://collector.example.org/ingest',
    '      auth:',
    '        env: TESSERA_TEST_UNSET_COLLECTOR_TOKEN',
    'gateway:',
    '  servers:',
    '    - name: tool',
    '      transport: stdio',
    '      command: definitely-not-a-command-xyz',
    `      cwd: ${join(ws.root, 'no-cwd')}`,
    '',
  ].join('\n'));
  const before = snapshot(ws.root);
  const r = await validate(config, { PATH: '/nonexistent' });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const expected = [
    new RegExp(`data_dir: ${fileAsDir} is a file, not a directory`),
    /master_key\.file: master key file .*loose\.key is readable by group or others \(mode 644\); run chmod 600/,
    /policy\.dir: .*bad\.cedar:\d+:\d+: /,
    /attestors\[0\]\.jwks_file: .*missing-jwks\.json does not exist/,
    /audit\.sinks\[1\]\.path: .*audit\.jsonl cannot be created: its directory .*no-such-dir does not exist/,
    /audit\.sinks\[2\]\.auth\.env: the environment variable TESSERA_TEST_UNSET_COLLECTOR_TOKEN is not set here/,
    /gateway\.servers\[0\]\.cwd: .*no-cwd does not exist/,
    /gateway\.servers\[0\]\.command: server "tool": "definitely-not-a-command-xyz" is not found on PATH/,
  ];
  for (const re of expected) assert.match(r.stdout, re);
  assert.match(r.stdout, new RegExp(`^${config}: ${expected.length} problems`));
  assert.match(r.stderr, /\[TESSERA_CONFIG_INVALID\]/);
  assert.deepEqual(snapshot(ws.root), before, 'nothing was created or written');
});

test('a schema error is TESSERA_CONFIG_INVALID naming the key; a missing --config file is a usage error', async () => {
  const ws = workspace();
  const r = await validate(ws.write('server:\n  listen: nowhere\n'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /server\.listen: .*\[TESSERA_CONFIG_INVALID\]/s);
  const missing = await validate(join(ws.root, 'nope.yaml'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--config .*nope\.yaml does not exist \[TESSERA_CLI_USAGE\]/);
});

test('examples/tessera.yaml names the validation command, and the real binary runs it without creating anything', () => {
  const first = readFileSync(join(REPO, 'examples', 'tessera.yaml'), 'utf8').split('\n')[0]!;
  assert.match(first, /Validate with: tessera config validate --config examples\/tessera\.yaml/);
  const dataDir = join(mkdtempSync(join(tmpdir(), 'tessera-validate-example-')), 'data');
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'tessera.js'), 'config', 'validate', '--config', 'examples/tessera.yaml', '--data-dir', dataDir], { encoding: 'utf8', cwd: REPO });
  // The example names /etc and /var paths this machine does not have: problems, reported.
  assert.ok(r.status === 0 || r.status === 1, r.stderr);
  assert.match(r.stdout, /nothing was started, created or written/);
  assert.match(r.stdout, /note: data_dir: .*data does not exist yet/);
  assert.doesNotMatch(r.stdout + r.stderr, /listening/);
  assert.equal(statSync(join(dataDir, '..')).isDirectory(), true);
  assert.deepEqual(readdirSync(join(dataDir, '..')), [], 'no data directory, no database');
});
