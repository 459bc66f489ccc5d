/**
 * bin/tessera.js chooses what to run (docs/adr/0081-cli-hardening.md): the compiled
 * dist/ when it is there and not older than src/, the TypeScript sources through tsx only when
 * asked (TESSERA_DEV_TS=1) or when dist/ is missing or stale. Exercised on a throwaway package
 * layout whose two entries say which one ran; the real bin file is copied in unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = process.cwd();

function layout(opts: { src?: boolean; dist?: boolean; nodeModules?: boolean } = {}): { root: string; touch(rel: string, secondsAgo: number): void; run(env?: Record<string, string>): { stdout: string; stderr: string; status: number | null } } {
  const root = mkdtempSync(join(tmpdir(), 'tessera-bin-'));
  mkdirSync(join(root, 'bin'));
  copyFileSync(join(REPO, 'bin', 'tessera.js'), join(root, 'bin', 'tessera.js'));
  writeFileSync(join(root, 'package.json'), '{"type":"module"}');
  if (opts.nodeModules !== false) symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  if (opts.src !== false) {
    mkdirSync(join(root, 'src', 'cli'), { recursive: true });
    writeFileSync(join(root, 'src', 'entry.ts'), "export async function main(argv: string[]): Promise<number> { console.log('src ' + argv.join(' ')); return 0; }\n");
    writeFileSync(join(root, 'src', 'cli', 'index.ts'), 'export const x: number = 1;\n');
  }
  if (opts.dist !== false) {
    mkdirSync(join(root, 'dist', 'src', 'cli'), { recursive: true });
    writeFileSync(join(root, 'dist', 'src', 'entry.js'), "export async function main(argv) { console.log('dist ' + argv.join(' ')); return 0; }\n");
    writeFileSync(join(root, 'dist', 'src', 'cli', 'index.js'), 'export const x = 1;\n');
  }
  const now = Date.now() / 1000;
  // Sources first, then the build: dist is current.
  const touch = (rel: string, secondsAgo: number): void => utimesSync(join(root, rel), now - secondsAgo, now - secondsAgo);
  if (opts.src !== false) for (const f of ['src/entry.ts', 'src/cli/index.ts']) touch(f, 100);
  if (opts.dist !== false) for (const f of ['dist/src/entry.js', 'dist/src/cli/index.js']) touch(f, 50);
  const run = (env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'tessera.js'), 'a', 'b'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  };
  return { root, touch, run };
}

test('a current dist/ runs the compiled code, with the arguments', () => {
  const l = layout();
  try {
    assert.deepEqual(l.run(), { stdout: 'dist a b\n', stderr: '', status: 0 });
  } finally {
    rmSync(l.root, { recursive: true, force: true });
  }
});

test('a source newer than its compiled file (nested too) runs the sources; no note when stderr is not a terminal', () => {
  const l = layout();
  try {
    l.touch('src/cli/index.ts', 10);
    assert.deepEqual(l.run(), { stdout: 'src a b\n', stderr: '', status: 0 });
  } finally {
    rmSync(l.root, { recursive: true, force: true });
  }
});

test('a source without a compiled file, or no dist/ at all, runs the sources', () => {
  const l = layout();
  try {
    writeFileSync(join(l.root, 'src', 'cli', 'new.ts'), 'export {};\n');
    l.touch('src/cli/new.ts', 200);
    assert.equal(l.run().stdout, 'src a b\n');
  } finally {
    rmSync(l.root, { recursive: true, force: true });
  }
  const none = layout({ dist: false });
  try {
    assert.equal(none.run().stdout, 'src a b\n');
  } finally {
    rmSync(none.root, { recursive: true, force: true });
  }
});

test('TESSERA_DEV_TS=1 runs the sources even with a current dist/', () => {
  const l = layout();
  try {
    assert.equal(l.run({ TESSERA_DEV_TS: '1' }).stdout, 'src a b\n');
    assert.equal(l.run({ TESSERA_DEV_TS: '0' }).stdout, 'dist a b\n');
  } finally {
    rmSync(l.root, { recursive: true, force: true });
  }
});

test('stale dist/ and no tsx loader: exit 1 and tells to build, runs nothing', () => {
  const l = layout({ nodeModules: false });
  try {
    l.touch('src/entry.ts', 10);
    const r = l.run();
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^tessera: dist\/ is older than src\/ and the tsx loader is not installed; run `npm run build` in .*\n$/);
  } finally {
    rmSync(l.root, { recursive: true, force: true });
  }
});

test('a published package (no src/) runs dist/ without looking further', () => {
  const l = layout({ src: false });
  try {
    assert.deepEqual(l.run({ TESSERA_DEV_TS: '1' }), { stdout: 'dist a b\n', stderr: '', status: 0 });
  } finally {
    rmSync(l.root, { recursive: true, force: true });
  }
});

test('the real bin in this checkout answers --help with the exit code of the CLI', () => {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'tessera.js'), '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: tessera/);
  const bad = spawnSync(process.execPath, [join(REPO, 'bin', 'tessera.js'), 'frobnicate'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
});
