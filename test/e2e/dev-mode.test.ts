/**
 * `tessera dev` as a person (or a CI script) uses it: the real binary prints where it listens,
 * the admin token it was given, where its join token is and what to try next; it stops cleanly on SIGTERM;
 * and it restarts on the same data directory with the same --root-token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(process.cwd(), 'bin', 'tessera.js');
const ROOT = 'dev-root-token-for-tests-0123456789';

async function runDev(dataDir: string): Promise<{ out: string; url: string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'dev', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--root-token', ROOT], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (out += String(d)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tessera dev did not start:\n${out}`)), 30_000);
    child.stdout.on('data', () => {
      const m = /Ctrl-C to stop/.test(out) && /running at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tessera dev exited ${code}:\n${out}`));
    });
  });
  return {
    out,
    url,
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

test('tessera dev: prints what to try, restarts on the same data dir with the same root token', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-dev-'));
  const first = await runDev(dataDir);
  assert.match(first.out, new RegExp(`TESSERA_TOKEN=${ROOT}`));
  // The demo join token is in a 0600 file of the data dir, which the banner logs in with: never printed.
  const joinFile = join(dataDir, 'demo-join-token');
  assert.match(first.out, new RegExp(`AGENT_TOKEN=\\$\\(tessera login --join-token-file ${joinFile}\\)`));
  assert.doesNotMatch(first.out, /tsr_join_/);
  assert.equal(statSync(joinFile).mode & 0o777, 0o600);
  const firstJoin = readFileSync(joinFile, 'utf8').trim();
  assert.match(firstJoin, /^tsr_join_[A-Za-z0-9_-]{40,}$/);
  // A fixed --root-token is the same at every start: the banner does not call it new.
  assert.doesNotMatch(first.out, /new admin token at every start/);
  const agents = await fetch(`${first.url}/v1/admin/agents`, { headers: { authorization: `Bearer ${ROOT}` } });
  assert.equal(agents.status, 200);
  assert.equal(await first.stop(), 0);

  const second = await runDev(dataDir);
  const secondJoin = readFileSync(joinFile, 'utf8').trim();
  assert.notEqual(secondJoin, firstJoin, 'a new demo join token replaces the file at every start');
  const again = await fetch(`${second.url}/v1/admin/agents`, { headers: { authorization: `Bearer ${ROOT}` } });
  assert.equal(again.status, 200);
  assert.equal(await second.stop(), 0);
});

test('tessera dev without --root-token: a new admin token at every start (the previous one revoked), and the banner says so', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-dev-'));
  const child = spawn(process.execPath, [BIN, 'dev', '--listen', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (out += String(d)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tessera dev did not start:\n${out}`)), 30_000);
      child.stdout.on('data', () => {
        if (/Ctrl-C to stop/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    assert.match(out, /export TESSERA_TOKEN=tsr_admin_\S+\n {2}# a new admin token at every start \(the previous start's stops working\); --root-token <value> keeps one\n/);
  } finally {
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGTERM');
    });
  }
});
