#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner (Node 20's --test has no globs).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

const filters = process.argv.slice(2);
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
}
const files = walk('test').filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

// PostgreSQL: when a selected file uses test/helpers/postgres.ts and TESSERA_TEST_PG_URL is not
// already set (e.g. to an external server), start ONE throwaway cluster for the whole run and
// hand its superuser URL to every test file; each file then creates its own database in it.
// The cluster is stopped after the run, on failure, and on SIGINT/SIGTERM/SIGHUP (also when the
// signal arrives while it is still starting). Only SIGKILL can leave it behind.
const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
let cluster = null;
let child = null;
let starting = false;
let interrupted = null;
function finish(code) {
  cluster?.stopSync();
  process.exit(code);
}
for (const sig of Object.keys(SIGNALS)) {
  process.on(sig, () => {
    interrupted = sig;
    if (child) child.kill(sig); // its 'exit' handler stops the cluster
    else if (!starting) finish(128 + SIGNALS[sig]);
  });
}
const needsPg = filters.length === 0 || files.some((f) => /helpers\/postgres(\.js)?['"]/.test(readFileSync(f, 'utf8')));
if (needsPg && !process.env.TESSERA_TEST_PG_URL) {
  starting = true;
  const { register } = await import('tsx/esm/api');
  register();
  const { startPostgres } = await import('../test/helpers/postgres.ts');
  try {
    cluster = await startPostgres();
  } catch (e) {
    console.error(`cannot start PostgreSQL for the tests: ${e.message}`);
    process.exit(1);
  }
  starting = false;
  process.once('exit', () => cluster.stopSync());
  if (interrupted) finish(128 + SIGNALS[interrupted]);
  process.env.TESSERA_TEST_PG_URL = cluster.adminUrl;
}

// Suite-wide leak scan: tests append their audit events and the secrets/tokens they used here
// (test/helpers/leak-registry.ts); scripts/leak-scan.ts checks them after the run.
const leakDir = mkdtempSync(join(tmpdir(), 'tessera-leak-'));
process.env.TESSERA_TEST_LEAK_DIR = leakDir;
process.once('exit', () => rmSync(leakDir, { recursive: true, force: true }));

// --test-timeout bounds each test AND each test file as a whole (Node 20). 300 s: the heaviest
// files (gateway relay, console browser, e2e) take 60–95 s on a quiet 2-core machine, so 120 s
// failed them on a busy one; a hung test still ends the run within minutes.
child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...files], { stdio: ['inherit', 'pipe', 'inherit'] });
// Forward the TAP output as it comes, and keep the runner's totals for the closing line.
const totals = { pass: 0, fail: 0 };
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString('utf8')).slice(-4096);
  for (const m of tail.matchAll(/^# (pass|fail) (\d+)$/gm)) totals[m[1]] = Number(m[2]);
});
child.on('close', (code, signal) => {
  let status = code ?? (signal ? 128 + (SIGNALS[signal] ?? 0) : 1);
  if (status === 0) {
    const scan = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/leak-scan.ts', leakDir], { stdio: ['ignore', process.stderr, process.stderr] });
    if (scan.status !== 0) {
      status = 1;
      totals.fail += 1; // the leak scan counts as a failed check
    }
  }
  process.stdout.write(`${totals.pass} passed, ${totals.fail} failed\n`, () => finish(status));
});
