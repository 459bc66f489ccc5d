/**
 * Every documented example runs (issue 7, item 19): the README's "A first session", the
 * copy-paste commands `tessera dev` prints, and each docs/examples/*.md, block by block in the
 * order written, through the real `tessera` binary against a real `tessera dev` process (and a
 * real PostgreSQL for the healthcare example). The blocks are read from the documents at test
 * time: change a document and this test runs the change.
 *
 * Runs each `sh` block in bash (variables carry from one block to the next, as in one shell);
 * `npx tessera` and `tessera` are the checkout's bin/tessera.js. The only edits made to a block
 * are the declared substitutions of placeholders (`<admin token>`, the default address and
 * port); a placeholder without a substitution fails the test. No jq is needed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { findPostgresBinaries, testClusterAdminUrl } from '../helpers/postgres.js';

const REPO = process.cwd();
const ROOT_TOKEN = 'documented-examples-root-token-0123456789';
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// --- reading documents ---------------------------------------------------------------

interface Block {
  readonly lang: string;
  readonly code: string;
  /** The prose between the previous block and this one. */
  readonly before: string;
}

function blocksOf(markdown: string): Block[] {
  const out: Block[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  let last = 0;
  for (const m of markdown.matchAll(re)) {
    out.push({ lang: m[1] ?? '', code: m[2] ?? '', before: markdown.slice(last, m.index) });
    last = (m.index ?? 0) + m[0].length;
  }
  return out;
}

/** The text of one `## ` section. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `section "${heading}" not found`);
  const end = markdown.indexOf('\n## ', start + 4);
  return markdown.slice(start, end < 0 ? undefined : end);
}

/** Replaces placeholders; refuses a block that still has one (outside comments). */
function substitute(code: string, subs: Readonly<Record<string, string>>): string {
  let out = code;
  for (const [k, v] of Object.entries(subs)) out = out.replaceAll(k, v);
  for (const line of out.split('\n')) {
    const codePart = line.trimStart().startsWith('#') ? '' : line.replace(/\s#\s.*$/, '');
    const left = /<[a-z][^<>\n]*>/.exec(codePart);
    assert.equal(left, null, `unsubstituted placeholder ${left?.[0]} in: ${line}`);
  }
  return out;
}

// --- a workspace: a directory, the `tessera` command, a `tessera dev` process --------------

interface Workspace {
  readonly dir: string;
  readonly env: Record<string, string>;
  readonly url: string;
  readonly joinToken: string;
  readonly banner: string;
  sh(script: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
  dev: ChildProcess;
}

function psqlDir(): string | undefined {
  for (const d of [findPostgresBinaries().binDir, ...(process.env.PATH ?? '').split(delimiter)]) if (d && existsSync(join(d, 'psql'))) return d;
  return undefined;
}

async function workspace(name: string): Promise<Workspace> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-doc-${name}-`));
  const bin = join(dir, '.bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'tessera'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO, 'bin', 'tessera.js')}" "$@"\n`);
  chmodSync(join(bin, 'tessera'), 0o755);
  const pgDir = psqlDir();
  const env: Record<string, string> = { PATH: [bin, ...(pgDir ? [pgDir] : []), process.env.PATH ?? ''].join(delimiter), HOME: dir, PSQLRC: '/dev/null', LC_ALL: 'C' };

  const dev = spawn(process.execPath, [join(REPO, 'bin', 'tessera.js'), 'dev', '--listen', '127.0.0.1:0', '--data-dir', join(dir, '.tessera'), '--root-token', ROOT_TOKEN], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        if (dev.exitCode !== null) return resolve();
        dev.once('exit', () => resolve());
        dev.kill('SIGTERM');
      }),
  );
  let banner = '';
  dev.stdout!.on('data', (c: Buffer) => (banner += c.toString('utf8')));
  dev.stderr!.on('data', (c: Buffer) => (banner += c.toString('utf8')));
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (/Press Ctrl-C to stop/.test(banner)) resolve();
    };
    dev.stdout!.on('data', check);
    dev.once('exit', (code) => reject(new Error(`tessera dev exited ${code}: ${banner}`)));
  });
  const url = /running at (http:\/\/127\.0\.0\.1:\d+)/.exec(banner)![1]!;
  // The banner logs in from the 0600 file dev mode writes (never a token on a command line).
  const joinTokenFile = /--join-token-file (\S+)\)/.exec(banner)![1]!;
  assert.equal(joinTokenFile, join(dir, '.tessera', 'demo-join-token'));
  assert.equal(statSync(joinTokenFile).mode & 0o777, 0o600);
  const joinToken = readFileSync(joinTokenFile, 'utf8').trim();
  assert.match(joinToken, /^tsr_join_[A-Za-z0-9_-]+$/);
  assert.doesNotMatch(banner, /tsr_join_/, 'the join token is not printed');
  // Nothing but Tessera's own output: no runtime or library warnings at start (FSTDEP…, ExperimentalWarning).
  assert.doesNotMatch(banner, /Warning|DEP\d{3}/, banner);

  const state = join(dir, '.shell-state');
  const sh = (script: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      // As one interactive shell across blocks: every variable is kept for the next block.
      const prelude = [
        'set -a',
        `[ -f '${state}' ] && . '${state}'`,
        'npx() { if [ "$1" = tessera ]; then shift; tessera "$@"; else echo "npx $1: not part of this test" >&2; return 127; fi; }',
      ].join('\n');
      const child = spawn('bash', ['-c', `${prelude}\n${script}\nexport -p > '${state}'`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  return { dir, env, url, joinToken, banner, sh, dev };
}

function expectAll(out: string, expected: readonly (string | RegExp)[], what: string): void {
  for (const e of expected) assert.ok(typeof e === 'string' ? out.includes(e) : e.test(out), `${what}: expected ${String(e)} in:\n${out}`);
}

/** No `tessera` command failed: its errors start a line with "error:". */
function noCliErrors(stderr: string, what: string): void {
  assert.doesNotMatch(stderr, /^error: /m, `${what}:\n${stderr}`);
}

// --- README "A first session" and the dev banner ------------------------------------------

test('`tessera dev` banner commands and the README\'s "A first session" run as written', async () => {
  const ws = await workspace('readme');
  assert.match(ws.banner, /Policies: .*examples\/policies \(the demo policies\) — until .*\/policies exists/);

  // The copy-paste lines of the banner (indented, between "Copy-paste" and "Press Ctrl-C").
  const lines = ws.banner.slice(ws.banner.indexOf('Copy-paste'), ws.banner.indexOf('Press Ctrl-C')).split('\n').slice(1).filter((l) => l.startsWith('  ')).map((l) => l.slice(2));
  assert.ok(lines.length >= 5, ws.banner);
  const banner = await ws.sh(lines.join('\n'));
  noCliErrors(banner.stderr, 'banner commands');
  expectAll(banner.stdout, ['stored healthcare/prod/agents/patient-reader/greeting', 'hello from tessera', 'claims:', 'server.started'], 'banner commands');

  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const blocks = blocksOf(section(readme, 'A first session')).filter((b) => b.lang === 'sh');
  assert.equal(blocks.length, 1);
  // `<revocation id>` is the one the `revoked agent` line names: the agent's revocation in force.
  const revocationId = `"$(tessera --json revoke list --kind agent --active | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).revocations[0].id')"`;
  const script = substitute(blocks[0]!.code, { 'http://127.0.0.1:8200': ws.url, '<admin token printed by tessera dev>': ROOT_TOKEN, '<revocation id>': revocationId });
  // Twice: the session ends by lifting its revocation, so a newcomer can run it again.
  for (const round of [1, 2]) {
    const r = await ws.sh(`set -e\n${script}`);
    assert.equal(r.code, 0, `README round ${round}:\n${r.stdout}\n${r.stderr}`);
    noCliErrors(r.stderr, `README round ${round}`);
    expectAll(r.stdout, ['postgres://db.internal/clinic', 'TESSERA_TOKEN_REVOKED', 'audit log verified', /revoked agent spiffe:\/\/\S+ \(revocation rev_\S+; lift with: tessera revoke lift rev_/, /^lifted revocation rev_/m], `README round ${round}`);
    assert.ok(!existsSync(join(ws.dir, 'agent.jwt')));
  }
});

// --- docs/examples/*.md ---------------------------------------------------------------------

test('every docs/examples/*.md has a runner here', () => {
  assert.deepEqual(readdirSync(join(REPO, 'docs', 'examples')).filter((f) => f.endsWith('.md')).sort(), ['healthcare.md']);
});

test('docs/examples/healthcare.md runs as written: database, engine, a policy file dev mode picks up, credential, revocation', async () => {
  const psql = psqlDir();
  assert.ok(psql, 'psql (the PostgreSQL client) is needed to run docs/examples/healthcare.md');
  const adminUrl = await testClusterAdminUrl();
  const su = async (sql: string): Promise<void> => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  // The document's names are fixed (clinic, tessera_mgmt, patient_reader): start clean, end clean.
  const clean = async (): Promise<void> => {
    await su('DROP DATABASE IF EXISTS clinic WITH (FORCE)');
    await su('DROP ROLE IF EXISTS patient_reader');
    await su('DROP ROLE IF EXISTS tessera_mgmt');
  };
  await clean();
  cleanups.push(clean);
  const { hostname, port } = new URL(adminUrl);

  const ws = await workspace('healthcare');
  assert.ok(!existsSync(join(ws.dir, 'policies')));
  assert.match(ws.banner, /Policies: .*\(the demo policies\)/);
  const doc = readFileSync(join(REPO, 'docs', 'examples', 'healthcare.md'), 'utf8');
  const blocks = blocksOf(doc);
  assert.deepEqual(blocks.map((b) => b.lang), ['sql', 'sh', 'cedar', 'sh', 'sh', 'sh', 'sh'], 'the runner below follows the document block by block');
  const subs = { 'http://127.0.0.1:8200': ws.url, '<admin token>': ROOT_TOKEN, '<join token printed by tessera dev>': ws.joinToken, '127.0.0.1:5432': `${hostname}:${port}` };
  const [sql, engine, cedar, check, login, psqlChecks, revoke] = blocks as [Block, Block, Block, Block, Block, Block, Block];

  // 1. The database, as a superuser.
  writeFileSync(join(ws.dir, 'setup.sql'), sql.code);
  const db = spawnSync(join(psql!, 'psql'), ['-v', 'ON_ERROR_STOP=1', '-q', '-d', adminUrl, '-f', join(ws.dir, 'setup.sql')], { encoding: 'utf8', env: ws.env });
  assert.equal(db.status, 0, db.stderr);

  // 2. Engine and role. `tessera dev` itself is the process started above.
  const e = await ws.sh(substitute(engine.code.replace(/^tessera dev\b.*$/m, ':'), subs));
  noCliErrors(e.stderr, 'engine');
  expectAll(e.stdout, ['username_prefix: tsr_', 'path: postgres/patient-reader', 'host: 127.0.0.1', 'database: clinic'], 'engine');
  assert.ok(!(e.stdout + e.stderr).includes('change-me-long-random'), 'the management password is never shown');

  // 3. The policy file, where the document says, as a person would create it.
  const file = /`(policies\/[\w.-]+\.cedar)`/.exec(cedar.before)?.[1];
  assert.ok(file, 'the prose before the cedar block names its file');
  mkdirSync(join(ws.dir, 'policies'));
  writeFileSync(join(ws.dir, file), cedar.code);
  // Dev mode serves the new directory within a second or so: wait for it (bounded), as a person would.
  for (let i = 0; ; i++) {
    const s = await ws.sh(`TESSERA_ADDR=${ws.url} TESSERA_TOKEN=${ROOT_TOKEN} tessera --json policy status`);
    if (s.code === 0 && (JSON.parse(s.stdout) as { policy_ids: string[] }).policy_ids.includes('healthcare-db-patient-reader')) break;
    assert.ok(i < 300, `dev mode never served ${file}: ${s.stdout}${s.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const c = await ws.sh(substitute(check.code, subs));
  noCliErrors(c.stderr, 'policy check');
  expectAll(c.stdout, [`directory: ${join(ws.dir, 'policies')}`, '  healthcare-db-patient-reader', 'decision: ALLOW', 'decision: DENY', 'no policy matched: default deny'], 'policy check');

  // 4. The agent's credential, then the database as that user.
  const l = await ws.sh(substitute(login.code, subs));
  noCliErrors(l.stderr, 'login + creds');
  expectAll(l.stdout, [/^lease_id: lease_/m, /^username: tsr_/m, /^uri: postgresql:\/\/tsr_/m], 'login + creds');
  const q = await ws.sh(substitute(psqlChecks.code, subs));
  expectAll(q.stdout, ['Ada', 'Grace'], 'psql as the issued user');
  expectAll(q.stderr, ['permission denied for table patients', 'permission denied for table billing'], 'psql as the issued user');

  // 5. Revocation: the user is gone.
  const r = await ws.sh(substitute(revoke.code, subs));
  noCliErrors(r.stderr, 'revoke');
  expectAll(r.stdout, ['revoked lease lease_', 'revoked agent spiffe://tessera.local/ns/healthcare/sa/patient-reader', 'revoked'], 'revoke');
  expectAll(r.stderr, ['password authentication failed'], 'revoke: the user can no longer log in');
});
