/**
 * Drift's pure core and small adapters: tool digests (canonical, per field, `_meta` left out,
 * bounded depth), the secret hygiene rules at exact boundaries, the last-read recorder on a real
 * SQLite store, the Git reader on hand-made `.git` directories (packed refs, worktree `gitdir:`),
 * and a drift check whose engine part fails (a `check_failed` finding, never a failed report).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonical, toolDigest } from '../../src/drift/digest.js';
import { changedFields } from '../../src/drift/digest.js';
import { secretFindings } from '../../src/drift/findings.js';
import { createReadRecorder } from '../../src/drift/reads.js';
import { findGitDir, readHead } from '../../src/drift/git.js';
import { createDriftService, createPolicyDrift, driftConfigSchema, parseToolRef } from '../../src/drift/index.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { TesseraError } from '../../src/shared/errors.js';
import { MemoryAuditWriter } from '../helpers/audit.js';

const echo = { name: 'echo', description: 'Echoes', inputSchema: { type: 'object', properties: { a: { type: 'string' }, b: { type: 'number' } } } };

test('tool digests: key order does not matter, every pinned field does, _meta does not', () => {
  const d = toolDigest(echo);
  assert.match(d.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(toolDigest({ inputSchema: { properties: { b: { type: 'number' }, a: { type: 'string' } }, type: 'object' }, description: 'Echoes', name: 'echo' }).digest, d.digest);
  assert.equal(toolDigest({ ...echo, _meta: { x: 1 } } as typeof echo).digest, d.digest);
  for (const [field, v] of [['description', 'Echoes!'], ['title', 'Echo'], ['outputSchema', { type: 'object' }], ['annotations', { destructiveHint: true }], ['inputSchema', { type: 'object' }]] as const) {
    const other = toolDigest({ ...echo, [field]: v });
    assert.notEqual(other.digest, d.digest, field);
    assert.deepEqual(changedFields(d.parts, other.parts), [field]);
  }
  assert.equal(canonical({ b: [1, { d: 2, c: undefined }], a: 'x' }), '{"a":"x","b":[1,{"d":2}]}');
  // Nested past the bound: a digest of its own, never a throw.
  let deep: Record<string, unknown> = {};
  for (let i = 0; i < 100; i++) deep = { x: deep };
  const dd = toolDigest({ ...echo, inputSchema: deep });
  assert.notEqual(dd.digest, d.digest);
});

test('tool names for approval: <server>/<tool>, exact code for anything else', () => {
  assert.deepEqual(parseToolRef('github/create_issue'), { server: 'github', tool: 'create_issue' });
  for (const bad of ['github', 'github/', '/x', 'a/b/c', 'Git/x', 'g/has space', `g/${'x'.repeat(129)}`, '', 7, null]) {
    assert.throws(() => parseToolRef(bad), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_DRIFT_TOOL_NAME_INVALID', String(bad));
  }
});

test('secret hygiene rules at their boundaries', () => {
  const H = 3_600_000;
  const base = { path: 'p', mode: 'inject' as const, createdAt: 0, currentAt: 0, lastReadAt: 1 };
  assert.deepEqual(secretFindings([{ ...base, rotationPeriodMs: H }], H, 10 * H), []);
  assert.equal(secretFindings([{ ...base, rotationPeriodMs: H }], H + 1, 10 * H)[0]!.severity, 'warning');
  assert.equal(secretFindings([{ ...base, rotationPeriodMs: H }], 2 * H + 1, 10 * H)[0]!.severity, 'critical');
  assert.deepEqual(secretFindings([{ ...base, rotationPeriodMs: null, lastReadAt: null }], 10 * H, 10 * H), []);
  assert.deepEqual(secretFindings([{ ...base, rotationPeriodMs: null, lastReadAt: null }], 10 * H + 1, 10 * H).map((f) => f.code), ['secret_never_read']);
});

test('config: defaults, and every bad value refused', () => {
  const c = driftConfigSchema.parse({});
  assert.deepEqual([c.tools.first_sight, c.tools.on_change, c.fail_on, c.secrets.never_read_after, c.check_interval], ['pin', 'block', 'warning', 30 * 86_400_000, 300_000]);
  for (const bad of [{ tools: { first_sight: 'trust' } }, { tools: { on_change: 'ignore' } }, { policy: { expected_digest: 'abc' } }, { policy: { expected_digest: `sha256:${'A'.repeat(64)}` } }, { fail_on: 'error' }, { check_interval: '1s' }, { secrets: { never_read_after: '1m' } }, { extra: 1 }]) {
    assert.equal(driftConfigSchema.safeParse(bad).success, false, JSON.stringify(bad));
  }
});

test('last reads are recorded off the request path, once per resolution, only forward', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  await store.run("INSERT INTO secrets (path, current_version, mode, created_at, updated_at) VALUES ('a/b', 1, 'inject', 0, 0)");
  const clock = new ManualClock(1_000_000);
  const rec = createReadRecorder({ store, clock, logger: silentLogger, resolutionMs: 1000, flushMs: 60_000 });
  rec.note('a/b');
  assert.equal((await store.get<{ last_read_at: number | null }>("SELECT last_read_at FROM secrets WHERE path = 'a/b'"))!.last_read_at, null);
  await rec.flush();
  assert.equal(Number((await store.get<{ last_read_at: number }>("SELECT last_read_at FROM secrets WHERE path = 'a/b'"))!.last_read_at), 1_000_000);
  clock.advance(500);
  rec.note('a/b'); // within the resolution: not queued
  await rec.flush();
  assert.equal(Number((await store.get<{ last_read_at: number }>("SELECT last_read_at FROM secrets WHERE path = 'a/b'"))!.last_read_at), 1_000_000);
  clock.advance(600);
  rec.note('a/b');
  rec.note('no/such'); // a path without a row changes nothing
  await rec.close();
  assert.equal(Number((await store.get<{ last_read_at: number }>("SELECT last_read_at FROM secrets WHERE path = 'a/b'"))!.last_read_at), 1_001_100);
  await store.close();
});

test('the Git reader: loose ref, packed ref, detached HEAD, worktree gitdir file, no repository', () => {
  const root = mkdtempSync(join(tmpdir(), 'drift-git-'));
  try {
    const sha = 'a'.repeat(40);
    const g = join(root, 'repo', '.git');
    mkdirSync(join(g, 'refs', 'heads'), { recursive: true });
    mkdirSync(join(root, 'repo', 'policies', 'sub'), { recursive: true });
    writeFileSync(join(g, 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(join(g, 'refs', 'heads', 'main'), `${sha}\n`);
    const found = findGitDir(join(root, 'repo', 'policies', 'sub'))!;
    assert.equal(found.root, join(root, 'repo'));
    assert.deepEqual(readHead(found.gitDir), { commit: sha, branch: 'main' });
    rmSync(join(g, 'refs', 'heads', 'main'));
    writeFileSync(join(g, 'packed-refs'), `# pack-refs with: peeled\n${'b'.repeat(40)} refs/heads/main\n`);
    assert.deepEqual(readHead(g), { commit: 'b'.repeat(40), branch: 'main' });
    writeFileSync(join(g, 'HEAD'), `${'c'.repeat(40)}\n`);
    assert.deepEqual(readHead(g), { commit: 'c'.repeat(40) });
    // A worktree: `.git` is a file naming its gitdir, whose commondir holds the refs.
    const wt = join(g, 'worktrees', 'wt');
    mkdirSync(wt, { recursive: true });
    writeFileSync(join(wt, 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(join(wt, 'commondir'), '../..\n');
    mkdirSync(join(root, 'wt'));
    writeFileSync(join(root, 'wt', '.git'), `gitdir: ${wt}\n`);
    const w = findGitDir(join(root, 'wt'))!;
    assert.deepEqual(readHead(w.gitDir), { commit: 'b'.repeat(40), branch: 'main' });
    writeFileSync(join(g, 'HEAD'), 'garbage');
    assert.deepEqual(readHead(g), {});
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a drift check whose engine part fails reports check_failed and the rest', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const audit = new MemoryAuditWriter();
  const config = driftConfigSchema.parse({});
  const policy = createPolicyDrift({ status: () => ({ ready: true, dir: '/nonexistent-policies', digest: `sha256:${'1'.repeat(64)}` }), store, clock, audit, logger: silentLogger, gitDirty: false });
  const drift = createDriftService({
    store, clock, audit, logger: silentLogger, config, policy,
    engine: { findings: async () => { throw new TesseraError('TESSERA_ENGINE_UNAVAILABLE', 'db down'); }, approve: async () => undefined },
    secrets: { store, trustDomain: 'example.org' },
  });
  const r = await drift.checkAndAudit();
  assert.deepEqual(r.findings.map((f) => [f.code, f.subject, f.details?.['code']]), [['check_failed', 'engines', 'TESSERA_ENGINE_UNAVAILABLE']]);
  assert.equal(r.worst, 'warning');
  const ev = audit.events.filter((e) => e.kind === 'drift.findings_changed');
  assert.equal(ev.length, 1);
  assert.deepEqual((ev[0]!.details as { added: readonly string[] }).added, ['check_failed:engines']);
  // Unchanged findings: no second event.
  await drift.checkAndAudit();
  assert.equal(audit.events.filter((e) => e.kind === 'drift.findings_changed').length, 1);
  await store.close();
});

test('tessera drift exits 2 when there is no report; policy-digest refuses an invalid directory with exit 2', async () => {
  const { cli } = await import('./helpers.js');
  const down = await cli(['drift'], { addr: 'http://127.0.0.1:1', token: 'tsr_admin_unused0000000000000000000000000000' });
  assert.equal(down.code, 2, down.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'drift-bad-policy-'));
  try {
    writeFileSync(join(dir, 'bad.cedar'), 'permit (principal, action, resource) when { nonsense };');
    const r = await cli(['drift', 'policy-digest', dir], { addr: 'http://127.0.0.1:1', token: 'unused' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /TESSERA_POLICY_INVALID/);
    const bad = await cli(['drift', '--fail-on', 'severe'], { addr: 'http://127.0.0.1:1', token: 'unused' });
    assert.equal(bad.code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
