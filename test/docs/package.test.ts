/**
 * What `npm publish` would ship, and that it works once installed (README "Install"): the
 * package is `tessera-broker` (the npm name `tessera` is another project), it installs the
 * `tessera` command, it carries LICENSE/CHANGELOG/SECURITY, the docs and the demo policies, and
 * never the sources or tests.
 *
 * The install is laid out as `npm install -g --prefix <tmp> <tarball>` lays it out
 * (`<prefix>/lib/node_modules/<name>`, `<prefix>/bin/tessera` → its bin), from the files
 * `npm pack` selects, with a fresh build of dist/ and only the runtime `dependencies` (linked
 * from this checkout: the test machine has no registry access). Then the command runs from
 * another directory, as an MCP client or a shell would run it, and the SDK is imported by name.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

interface PackFile { path: string; mode: number }
interface Manifest { name: string; version: string; bin: Record<string, string>; dependencies: Record<string, string>; devDependencies: Record<string, string>; exports: Record<string, unknown>; files: string[]; license: string }

const ROOT = process.cwd();
const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as Manifest;
let packed: PackFile[] = [];
let work = '';

before(() => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const info = (JSON.parse(out) as { name: string; files: PackFile[] }[])[0]!;
  assert.equal(info.name, manifest.name);
  packed = info.files;
  work = mkdtempSync(join(tmpdir(), 'tessera-pkg-'));
});
after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the package name is not the unrelated `tessera` package, and the command is still `tessera`', () => {
  assert.equal(manifest.name, 'tessera-broker');
  assert.deepEqual(manifest.bin, { tessera: 'bin/tessera.js' });
  assert.equal(manifest.license, 'Apache-2.0');
  assert.ok('./sdk' in manifest.exports, 'the SDK is exported as tessera-broker/sdk');
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { name: string; packages: Record<string, { name?: string }> };
  assert.equal(lock.name, manifest.name, 'package-lock.json still carries the old name: run npm install --package-lock-only');
  assert.equal(lock.packages['']?.name, manifest.name);
});

test('npm pack ships the command, the licence and project files, docs and demo policies, and no sources or tests', () => {
  const paths = new Set(packed.map((f) => f.path));
  for (const required of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'SECURITY.md', 'bin/tessera.js', 'examples/policies/healthcare.cedar', 'examples/tessera.yaml']) {
    assert.ok(paths.has(required), `${required} is not in the package (package.json "files")`);
  }
  // Every doc page in the repository ships (README links into docs/ resolve in the package too).
  const docs = (dir: string): string[] => readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? docs(join(dir, n)) : n.endsWith('.md') ? [join(dir, n)] : []));
  for (const d of docs('docs')) assert.ok(paths.has(d), `${d} is not in the package`);
  const bin = packed.find((f) => f.path === 'bin/tessera.js')!;
  assert.equal(bin.mode & 0o111, 0o111, 'bin/tessera.js must be executable');
  assert.match(readFileSync('bin/tessera.js', 'utf8'), /^#!\/usr\/bin\/env node\n/);
  const leaked = [...paths].filter((p) => /^(src|test|bench|scripts|node_modules|\.ci|\.tessera)\//.test(p) || /\.test\.|(^|\/)\.env$/.test(p));
  assert.deepEqual(leaked, [], 'sources, tests and local state must not ship');
  if (existsSync('dist/src')) {
    for (const f of ['dist/src/main.js', 'dist/src/sdk/index.js', 'dist/src/sdk/index.d.ts']) assert.ok(paths.has(f), `${f} is not in the package`);
  }
});

/** Whether every src/**\/*.ts has a compiled dist/src/**\/*.js at least as new. */
function distIsCurrent(src = 'src', out = 'dist/src'): boolean {
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const p = join(src, e.name);
    if (e.isDirectory()) {
      if (!distIsCurrent(p, join(out, e.name))) return false;
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
      const built = join(out, e.name.replace(/\.ts$/, '.js'));
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(p).mtimeMs) return false;
    }
  }
  return true;
}

test('installed from the packed files, `tessera` runs from any directory: --version, --help, policy validate, dev', { timeout: 600_000 }, async () => {
  // 1. Lay the package out as a global install does: the packed files, with dist/ as packed when
  //    it is up to date with src/ (CI: `npm ci` just built it), else a fresh build of src/.
  const prefix = join(work, 'prefix');
  const pkgDir = join(prefix, 'lib', 'node_modules', manifest.name);
  mkdirSync(pkgDir, { recursive: true });
  const fresh = !existsSync('dist/src') || !distIsCurrent();
  for (const f of packed) {
    if (fresh && f.path.startsWith('dist/')) continue;
    mkdirSync(dirname(join(pkgDir, f.path)), { recursive: true });
    cpSync(f.path, join(pkgDir, f.path));
  }
  if (fresh) {
    const build = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', join(pkgDir, 'dist'), '--sourceMap', 'false', '--declaration', 'false'], { encoding: 'utf8' });
    assert.equal(build.status, 0, `build failed:\n${build.stdout}${build.stderr}`);
  }
  // Only the runtime dependencies: a devDependency (tsx, typescript) the command needs fails here.
  for (const dep of Object.keys(manifest.dependencies)) {
    const link = join(pkgDir, 'node_modules', dep);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(resolve(ROOT, 'node_modules', dep), link, 'dir');
  }
  mkdirSync(join(prefix, 'bin'));
  symlinkSync(join('..', 'lib', 'node_modules', manifest.name, manifest.bin.tessera!), join(prefix, 'bin', 'tessera'));

  // 2. Run it as a shell would: by name on PATH, from an unrelated directory.
  const elsewhere = join(work, 'elsewhere');
  mkdirSync(elsewhere);
  const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, TESSERA_ADDR: '', TESSERA_TOKEN: '' };
  const run = (args: string[]) => spawnSync('tessera', args, { cwd: elsewhere, env, encoding: 'utf8', timeout: 60_000 });
  const version = run(['--version']);
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout, `${manifest.version}\n`);
  const help = run(['--help']);
  assert.equal(help.status, 0, help.stderr);
  for (const cmd of ['dev', 'server', 'init', 'kv', 'mcp', 'revoke', 'audit']) assert.match(help.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `--help lists ${cmd}`);
  const validate = run(['policy', 'validate', join(pkgDir, 'examples', 'policies')]);
  assert.equal(validate.status, 0, validate.stderr);
  assert.match(validate.stdout, /^ok: \d+ policies/);

  // 3. `tessera dev` with no --data-dir keeps its data in ./.tessera of the directory it runs in
  //    (README, docs/cli.md) and serves the demo policies shipped in the package.
  const child = spawn('tessera', ['--json', 'dev', '--listen', '127.0.0.1:0'], { cwd: elsewhere, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (err += String(d)));
  try {
    const banner = await new Promise<{ url: string; admin_token: string }>((resolveBanner, reject) => {
      const timer = setTimeout(() => reject(new Error(`tessera dev did not start:\n${out}${err}`)), 60_000);
      child.stdout.on('data', () => {
        // The banner is the JSON line with `url` (log lines are JSON too).
        const line = out.split('\n').find((l) => l.startsWith('{"url"'));
        if (line) {
          clearTimeout(timer);
          resolveBanner(JSON.parse(line) as { url: string; admin_token: string });
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tessera dev exited ${code}:\n${out}${err}`));
      });
    });
    assert.ok(existsSync(join(elsewhere, '.tessera', 'tessera.db')), 'the default data directory is ./.tessera');
    const status = await fetch(`${banner.url}/v1/admin/policy/status`, { headers: { authorization: `Bearer ${banner.admin_token}` } });
    assert.equal(status.status, 200);
    assert.match(JSON.stringify(await status.json()), /healthcare/, 'the demo policies come from the installed package');
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

test('installed as a dependency, the SDK imports as tessera-broker/sdk', () => {
  const app = join(work, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  const pkgDir = join(work, 'prefix', 'lib', 'node_modules', manifest.name);
  assert.ok(existsSync(join(pkgDir, 'dist', 'src', 'sdk', 'index.js')), 'run the install test first (same file)');
  symlinkSync(pkgDir, join(app, 'node_modules', manifest.name), 'dir');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const sdk = await import('${manifest.name}/sdk'); console.log(typeof sdk.TesseraClient, typeof sdk.TesseraApiError);`], { cwd: app, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'function function');
});
