/**
 * The real `tessera` process and its standard streams: a reader that goes away (EPIPE on stdout
 * or stderr) ends the command quietly with exit status 141 (128 + SIGPIPE, what a shell reports
 * for `cat big | head`), never a stack trace; every subcommand's help lists the global options.
 *
 * Deterministic without timing: each run reads its standard input to the end BEFORE it writes
 * anything (`token inspect -`), and the test closes its end of the output pipe before it ends
 * that input, so the first write finds no reader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeJwt } from '../sdk/peer.js';

const BIN = join(process.cwd(), 'bin', 'tessera.js');

function runWithClosed(which: 'stdout' | 'stderr', argv: string[], input: string): Promise<{ code: number | null; signal: string | null; other: string }> {
  const child = spawn(process.execPath, [BIN, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  let other = '';
  child[which].destroy();
  (which === 'stdout' ? child.stderr : child.stdout).on('data', (c: Buffer) => (other += c.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, other }));
    child.stdin.end(input);
  });
}

test('stdout closed by its reader: exit 141, nothing on stderr (no stack trace)', async () => {
  const token = makeJwt({ sub: 'spiffe://example.org/a', exp: 4_000_000_000, iat: 1_700_000_000 });
  const r = await runWithClosed('stdout', ['token', 'inspect', '-'], token);
  assert.equal(r.signal, null);
  assert.equal(r.code, 141, r.other);
  assert.equal(r.other, '');
});

test('stdout closed during --json output: exit 141, no trace', async () => {
  const token = makeJwt({ sub: 'spiffe://example.org/a', exp: 4_000_000_000 });
  const r = await runWithClosed('stdout', ['--json', 'token', 'inspect', '-'], token);
  assert.equal(r.code, 141, r.other);
  assert.equal(r.other, '');
});

test('stderr closed while an error is reported: exit 141, nothing on stdout', async () => {
  const r = await runWithClosed('stderr', ['token', 'inspect', '-'], 'not-a-token');
  assert.equal(r.code, 141);
  assert.equal(r.other, '');
});

test('every subcommand help lists the global options (--addr, --token, --json)', () => {
  for (const argv of [['mcp', '--help'], ['kv', 'put', '--help'], ['audit', 'verify', '--help'], ['revoke', 'agent', '--help']]) {
    const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    assert.equal(r.status, 0, r.stderr);
    const global = r.stdout.slice(r.stdout.indexOf('Global Options:'));
    assert.ok(r.stdout.includes('Global Options:'), `${argv.join(' ')}:\n${r.stdout}`);
    for (const o of ['--addr <url>', '--token <token>', '--json']) assert.ok(global.includes(o), `${argv.join(' ')} help lacks ${o}:\n${r.stdout}`);
  }
});
