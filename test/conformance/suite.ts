/**
 * Drives the official MCP conformance suite (@modelcontextprotocol/conformance, a devDependency)
 * through its own CLI, in a child process with ./node20-fs.mjs imported first (ADR 0180): the
 * list of server scenarios, and a run of all of them against a URL, read back from the
 * `checks.json` files the CLI writes (`-o <dir>`: `server-<scenario>-<timestamp>/checks.json`).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const PACKAGE_DIR = dirname(require.resolve('@modelcontextprotocol/conformance/package.json'));
export const SUITE_VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string }).version;
const CLI = join(PACKAGE_DIR, 'dist', 'index.js');
const NODE20_FS = join(dirname(fileURLToPath(import.meta.url)), 'node20-fs.mjs');
/** Bound on one CLI run (every scenario has its own, shorter, timeouts inside). */
const RUN_TIMEOUT_MS = 90_000;

export type CheckStatus = 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED';
export interface Check {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly status: CheckStatus;
  readonly errorMessage?: string;
  readonly details?: unknown;
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', NODE20_FS, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every server scenario the installed suite knows (`conformance list --server`), in its order. */
export async function listServerScenarios(): Promise<string[]> {
  const r = await cli(['list', '--server']);
  if (r.code !== 0) throw new Error(`conformance list failed (${r.code}): ${r.stderr}`);
  return [...r.stdout.matchAll(/^ {2}- (\S+)/gm)].map((m) => m[1]!);
}

/**
 * Runs every server scenario (`--suite all`, pending ones included) against `url` and returns
 * each scenario's checks. A scenario that left no checks.json maps to one FAILURE check that
 * carries the CLI's output, so it cannot pass unnoticed.
 */
export async function runServerScenarios(url: string, scenarios: readonly string[]): Promise<Map<string, Check[]>> {
  const out = mkdtempSync(join(tmpdir(), 'tessera-conformance-'));
  try {
    const r = await cli(['server', '--url', url, '--suite', 'all', '-o', out]);
    const results = new Map<string, Check[]>();
    for (const dir of readdirSync(out)) {
      const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(dir);
      if (m) results.set(m[1]!, JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8')) as Check[]);
    }
    for (const s of scenarios) {
      if (!results.has(s)) results.set(s, [{ id: s, name: s, description: 'the scenario wrote no results', status: 'FAILURE', errorMessage: `exit ${r.code}; ${r.stderr.slice(-2000)}` }]);
    }
    return results;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The checks that did not pass: FAILURE, or WARNING/SKIPPED (listed, never silently accepted). */
export function notPassed(checks: readonly Check[]): Check[] {
  return checks.filter((c) => c.status !== 'SUCCESS' && c.status !== 'INFO');
}

/** One line per check, for failure messages: `scenario / check-id: STATUS description — error`. */
export function describe(scenario: string, checks: readonly Check[]): string {
  return checks.map((c) => `${scenario} / ${c.id}: ${c.status} ${c.description}${c.errorMessage ? ` — ${c.errorMessage}` : ''}`).join('\n');
}
