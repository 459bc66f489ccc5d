/**
 * `tessera dev` as a person (or a CI script) uses it: the real binary prints where it listens,
 * the admin token it was given, a join token and what to try next; it stops cleanly on SIGTERM;
 * and it restarts on the same data directory with the same --root-token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
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
  assert.match(first.out, /tsr_join_[A-Za-z0-9_-]{40,}/);
  assert.match(first.out, /tessera login --join-token/);
  const agents = await fetch(`${first.url}/v1/admin/agents`, { headers: { authorization: `Bearer ${ROOT}` } });
  assert.equal(agents.status, 200);
  assert.equal(await first.stop(), 0);

  const second = await runDev(dataDir);
  const again = await fetch(`${second.url}/v1/admin/agents`, { headers: { authorization: `Bearer ${ROOT}` } });
  assert.equal(again.status, 200);
  assert.equal(await second.stop(), 0);
});
