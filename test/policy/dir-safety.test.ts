/**
 * The policy directory is read without blocking, looping or leaving it (pen-test F10,
 * docs/adr/0066-policy-dir-safety.md): real symlink loops, links to an outside directory, a FIFO
 * (mkfifo) and other refused entries fail the load with TESSERA_POLICY_FILE_REFUSED naming the
 * entry, the last good set stays active on reload, and Kubernetes-style links inside the
 * directory keep working. Bounds (depth, files, entries, bytes) are tested with small limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicyDir, scanPolicyDir, POLICY_DIR_LIMITS } from '../../src/policy/loader.js';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { tempDir } from './helpers.js';

const PERMIT = '@id("p") permit (principal, action == Tessera::Action::"tool.call", resource);';
const FORBID = '@id("f") forbid (principal, action == Tessera::Action::"tool.call", resource);';

/** The refusals of a load, as [entry, message] pairs; asserts every one carries the code. */
function refusals(dir: string): [string, string][] {
  const r = loadPolicyDir(dir);
  assert.equal(r.ok, false, 'the load must fail');
  if (r.ok) return [];
  for (const e of r.errors) assert.equal(e.code, 'TESSERA_POLICY_FILE_REFUSED', JSON.stringify(e));
  return r.errors.map((e) => [e.file, e.message]);
}

test('hostile entries are refused, unread, with TESSERA_POLICY_FILE_REFUSED naming each one', (t) => {
  const cases: [string, (dir: string, outside: string) => void, string, RegExp][] = [
    ['a link to the directory itself', (d) => symlinkSync('.', join(d, 'loop')), 'loop', /symlink loop: it leads back/],
    ['a link to an ancestor, deeper down', (d) => (mkdirSync(join(d, 'a/b'), { recursive: true }), symlinkSync('../..', join(d, 'a/b/up'))), 'a/b/up', /symlink loop: it leads back/],
    ['two links to each other', (d) => (symlinkSync('y.cedar', join(d, 'x.cedar')), symlinkSync('x.cedar', join(d, 'y.cedar'))), 'x.cedar', /symlink loop \(the link resolves to itself\)/],
    ['a link to a file outside', (d, o) => (writeFileSync(join(o, 'evil.cedar'), PERMIT), symlinkSync(join(o, 'evil.cedar'), join(d, 'evil.cedar'))), 'evil.cedar', /leads outside the policy directory/],
    ['a link to a directory outside', (d, o) => (writeFileSync(join(o, 'evil.cedar'), PERMIT), symlinkSync(o, join(d, 'ext'))), 'ext', /leads outside the policy directory/],
    ['a link to /', (d) => symlinkSync('/', join(d, 'root')), 'root', /leads outside the policy directory/],
    ['a FIFO', (d) => execFileSync('mkfifo', [join(d, 'pipe.cedar')]), 'pipe.cedar', /not a regular file \(a FIFO\)/],
    ['a link to a FIFO inside', (d) => (execFileSync('mkfifo', [join(d, 'pipe')]), symlinkSync('pipe', join(d, 'pipe.cedar'))), 'pipe.cedar', /not a regular file \(a FIFO\)/],
    ['a device', (d) => symlinkSync('/dev/zero', join(d, 'zero.cedar')), 'zero.cedar', /leads outside the policy directory/],
    ['a dangling link', (d) => symlinkSync('missing.cedar', join(d, 'gone.cedar')), 'gone.cedar', /leads nowhere \(ENOENT\)/],
    ['a file over 1 MiB', (d) => writeFileSync(join(d, 'big.cedar'), `// ${'x'.repeat(POLICY_DIR_LIMITS.maxFileBytes)}\n`), 'big.cedar', /larger than 1048576 bytes/],
  ];
  for (const [what, make, entry, message] of cases) {
    const dir = tempDir(t);
    const outside = tempDir(t);
    writeFileSync(join(dir, 'ok.cedar'), PERMIT);
    make(dir, outside);
    const got = refusals(dir);
    assert.ok(got.some(([f, m]) => f === entry && message.test(m)), `${what}: ${JSON.stringify(got)}`);
    assert.ok(got.every(([, m]) => m.startsWith('TESSERA_POLICY_FILE_REFUSED: ')), what);
  }
});

test('many loop links do not multiply the walk: each real directory is read once', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ok.cedar'), PERMIT);
  // 8 links to the root in each of 3 nested directories: a naive walk would visit 8^16 paths.
  let d = dir;
  for (let level = 0; level < 3; level++) {
    for (let i = 0; i < 8; i++) symlinkSync(dir, join(d, `l${i}`));
    d = join(d, `sub${level}`);
    mkdirSync(d);
  }
  const r = scanPolicyDir(dir);
  assert.equal(r.problems.length, 24);
  assert.deepEqual(r.dirs.length, 4);
  assert.deepEqual(r.files.map((f) => f.file), ['ok.cedar']);
});

test('links inside the directory are followed (Kubernetes ConfigMap layout); dot entries are skipped', (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, '..2026_01_01_00_00_00.1'));
  writeFileSync(join(dir, '..2026_01_01_00_00_00.1', 'main.cedar'), PERMIT);
  symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data'));
  symlinkSync('..data/main.cedar', join(dir, 'main.cedar'));
  mkdirSync(join(dir, 'team'));
  writeFileSync(join(dir, 'team', 'forbid.cedar'), FORBID);
  symlinkSync('team', join(dir, 'alias')); // the same directory twice: read once
  const r = loadPolicyDir(dir);
  assert.equal(r.ok, false, 'a second path to an already read directory is a loop');
  rmSync(join(dir, 'alias'));
  const ok = loadPolicyDir(dir);
  assert.equal(ok.ok, true, JSON.stringify(!ok.ok && ok.errors));
  if (ok.ok) assert.deepEqual(ok.set.files, ['main.cedar', 'team/forbid.cedar']);
});

test('bounds: depth, file count and entry count', (t) => {
  const dir = tempDir(t);
  let d = dir;
  for (let i = 0; i < 4; i++) {
    d = join(d, `d${i}`);
    mkdirSync(d);
    writeFileSync(join(d, `p${i}.cedar`), PERMIT);
  }
  const deep = scanPolicyDir(dir, { ...POLICY_DIR_LIMITS, maxDepth: 2 });
  assert.deepEqual(deep.problems.map((p) => [p.file, /nested more than 2/.test(p.message)]), [['d0/d1/d2', true]]);
  const many = scanPolicyDir(dir, { ...POLICY_DIR_LIMITS, maxFiles: 2 });
  assert.match(many.problems[0]!.message, /more than 2 policy files/);
  const entries = scanPolicyDir(dir, { ...POLICY_DIR_LIMITS, maxEntries: 3 });
  assert.match(entries.problems[0]!.message, /more than 3 entries/);
});

test('the engine: a FIFO or loop appearing at reload fails the reload, keeps the last good set, reports the code; never blocks', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'p.cedar'), PERMIT);
  const e = createPolicyEngine({ dir, clock: new ManualClock(), logger: silentLogger, audit: new MemoryAuditWriter(), watch: false });
  assert.equal((await e.load()).ok, true);
  execFileSync('mkfifo', [join(dir, 'forbid.cedar')]);
  symlinkSync('.', join(dir, 'loop'));
  const r = await e.load();
  assert.equal(r.ok, false);
  assert.deepEqual(r.errors.map((x) => [x.file, x.code]), [['forbid.cedar', 'TESSERA_POLICY_FILE_REFUSED'], ['loop', 'TESSERA_POLICY_FILE_REFUSED']]);
  const s = e.status();
  assert.equal(s.policies, 1, 'the last good set stays active');
  assert.equal(s.errors.length, 2);
  const call = { principal: { spiffeId: 'spiffe://example.org/a', trustDomain: 'example.org', path: '/a', attributes: {}, jti: 'j', expiresAt: 0 }, action: 'tool.call' as const, resource: { type: 'Tool' as const, server: 's', tool: 't' }, context: {} };
  assert.equal(e.authorize(call).allowed, true);
  rmSync(join(dir, 'forbid.cedar'));
  rmSync(join(dir, 'loop'));
  assert.equal((await e.load()).ok, true, 'fixed: the next reload applies');
  e.stop();
});

test('a FIFO or loop in the directory at start with watching on: start() returns and watching is bounded', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'p.cedar'), PERMIT);
  execFileSync('mkfifo', [join(dir, 'fifo.cedar')]);
  symlinkSync('.', join(dir, 'loop'));
  const e = createPolicyEngine({ dir, clock: new ManualClock(), logger: silentLogger, audit: new MemoryAuditWriter(), pollIntervalMs: 50 });
  await e.start();
  t.after(() => e.stop());
  assert.equal(e.status().ready, false, 'no set was ever good');
  assert.deepEqual(e.status().errors.map((x) => x.file), ['fifo.cedar', 'loop']);
});
