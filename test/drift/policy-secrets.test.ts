/**
 * Policy drift and secret hygiene through the whole of Tessera (real HTTP, real store, policy
 * directory in a real Git work tree — the `git` binary is used by the test to commit, and by
 * Tessera only for the dirty flag):
 *  - the loaded set's digest and Git commit in /readyz and the metrics; the configured expected
 *    digest (printed offline by `tessera drift policy-digest`) matches; an uncommitted edit is
 *    reloaded → `policy_digest_mismatch` (critical), `policy_dirty`, `drift.policy_changed`;
 *  - secrets past their rotation date, never read, and handed by policy to any agent at all.
 * Times in the past are made by back-dating rows in the store (the server runs on the system clock).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';
import { auditKinds, cli } from './helpers.js';

const POLICIES = `
@id("team-injects")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"team")
when { principal.hasTag("team") };

@id("anyone-injects-shared")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"shared");
`;

let h: GatewayHarness;
let repo: string;
let dir: string;
let env: { addr: string; token: string };
let expected: string;
let commit: string;

const git = (...args: string[]): string => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', GIT_CONFIG_NOSYSTEM: '1', HOME: repo } }).trim();

before(async () => {
  repo = mkdtempSync(join(tmpdir(), 'tessera-drift-repo-'));
  dir = join(repo, 'policies');
  mkdirSync(dir);
  writeFileSync(join(dir, 'main.cedar'), POLICIES);
  git('init', '-q', '-b', 'main');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.org', 'add', '.');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.org', 'commit', '-q', '-m', 'policies');
  commit = git('rev-parse', 'HEAD');
  const d = await cli(['drift', 'policy-digest', dir], { addr: 'http://127.0.0.1:1', token: 'unused' });
  assert.equal(d.code, 0, d.stderr);
  expected = d.stdout.trim();
  assert.match(expected, /^sha256:[0-9a-f]{64}$/);
  h = await startGatewayHarness({
    policies: '',
    gateway: {},
    config: { policy: { dir, watch: true }, drift: { policy: { expected_digest: expected }, secrets: { never_read_after: '1d' } } },
  });
  env = { addr: h.url, token: h.tessera.adminToken! };
});

after(async () => {
  await h?.close();
  rmSync(repo, { recursive: true, force: true });
});

test('the loaded set: digest, Git commit, expected digest in /readyz and the metrics', async () => {
  const r = (await (await fetch(`${h.url}/readyz`)).json()) as any;
  const src = r.checks?.policy_source ?? r.policy_source;
  assert.ok(src, JSON.stringify(r));
  assert.equal(src.detail.digest, expected);
  assert.equal(src.detail.matches_expected, true);
  assert.equal(src.detail.git.commit, commit);
  assert.equal(src.detail.git.branch, 'main');
  assert.equal(src.detail.git.dirty, false);
  const m = await (await fetch(`${h.url}/metrics`)).text();
  assert.ok(m.includes(`tessera_policy_set_info{digest="${expected}",git_commit="${commit}"} 1`), m.split('\n').filter((l) => l.includes('policy_set')).join('\n'));
  assert.match(m, /tessera_drift_policy_expected_match 1/);
  const ev = await auditKinds(h, 'drift.policy_changed');
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!.details.git_commit, commit);
  assert.equal(ev[0]!.details.matches_expected, true);
  const report = (await h.admin('GET', '/v1/admin/drift')).body;
  assert.deepEqual(report.findings.filter((f: any) => f.kind === 'policy'), []);
});

test('an uncommitted edit is loaded: mismatch (critical), dirty, audited with the previous digest', async () => {
  writeFileSync(join(dir, 'extra.cedar'), '@id("extra")\npermit (principal, action == Tessera::Action::"secret.inject", resource == Tessera::Secret::"team/x") when { principal.hasTag("x") };\n');
  for (let i = 0; i < 200; i++) {
    if ((await h.admin('GET', '/v1/admin/policy/status')).body.policies === 3) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const report = (await h.admin('GET', '/v1/admin/drift')).body;
  const pol = report.findings.filter((f: any) => f.kind === 'policy').map((f: any) => [f.code, f.severity]);
  assert.deepEqual(pol, [['policy_digest_mismatch', 'critical'], ['policy_dirty', 'warning']]);
  assert.notEqual(report.policy.digest, expected);
  assert.equal(report.policy.matches_expected, false);
  const ev = await auditKinds(h, 'drift.policy_changed');
  assert.equal(ev.length, 2);
  assert.equal(ev[1]!.details.previous_digest, expected);
  assert.equal(ev[1]!.details.matches_expected, false);
  assert.equal(ev[1]!.details.git_dirty, true);
  const r = (await (await fetch(`${h.url}/readyz`)).json()) as any;
  const src = r.checks?.policy_source ?? r.policy_source;
  assert.equal(src.detail.matches_expected, false);
  // Readiness is not taken away: it is a report.
  assert.equal(src.ok, true);
  const c = await cli(['drift', '--kind', 'policy'], env);
  assert.equal(c.code, 1);
  assert.match(c.stdout, /EXPECTED sha256:/);
});

test('secret hygiene: overdue rotation, never read, handed to any agent', async () => {
  const put = async (path: string, body: Record<string, unknown>) => assert.equal((await h.admin('PUT', `/v1/admin/secrets/${path}`, body)).status, 200);
  await put('shared/api-key', { value: 'v-shared-1' });
  await put('team/db', { value: 'v-team-1', rotation_period: '1h' });
  await put('team/fresh', { value: 'v-team-2', rotation_period: '30d' });
  const now = Date.now();
  // team/db's current version was written 3 h ago (1 h period: overdue by 2 h > one period: critical).
  await h.tessera.store.run('UPDATE secret_versions SET created_at = ? WHERE path = ?', [now - 3 * 3_600_000, 'team/db']);
  // shared/api-key was written 2 days ago and never read (never_read_after: 1d).
  await h.tessera.store.run('UPDATE secrets SET created_at = ? WHERE path = ?', [now - 2 * 86_400_000, 'shared/api-key']);
  const report = (await h.admin('GET', '/v1/admin/drift')).body;
  const sec = report.findings.filter((f: any) => f.kind === 'secret').map((f: any) => `${f.code} ${f.severity} ${f.subject}`).sort();
  assert.deepEqual(sec, [
    'secret_broadly_available warning shared/api-key',
    'secret_never_read info shared/api-key',
    'secret_rotation_overdue critical team/db',
  ]);
  const broad = report.findings.find((f: any) => f.code === 'secret_broadly_available');
  assert.deepEqual(broad.details.policies, ['anyone-injects-shared']);
  const m = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(m, /tessera_drift_findings\{kind="secret"\} 3/);
  // An auditor may read the report.
  const t = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'drift-auditor', role: 'auditor' });
  const byAuditor = await cli(['drift', '--json'], { addr: h.url, token: t.body.token });
  assert.equal(byAuditor.code, 1, byAuditor.stderr);
  assert.ok(JSON.parse(byAuditor.stdout).findings.length >= 5);
});
