/**
 * Attack (issue 12, security review) on `tessera agent --token-out`: the path's directory is
 * checked to be tmpfs once at start; a symlink in that path swapped afterwards (to a directory
 * on a disk) must not make a later renewal write the token there, and a symlink planted AT the
 * file's name must be replaced, never followed. Real Tessera and a real sidecar
 * (test/k8s/agent/harness.ts); /dev/shm is the tmpfs, the OS temp dir the disk.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, until, type Stack } from '../agent/harness.js';
import { sidecar } from '../agent/clients.js';
import { filesystemOf, parseMounts } from '../../../src/agent/index.js';

let stack: Stack;
const skip = existsSync('/dev/shm') ? undefined : 'no /dev/shm here';

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

test('a symlinked directory swapped to a disk after start: renewals still write to the tmpfs checked at start', { skip }, async () => {
  const mem = mkdtempSync('/dev/shm/tessera-atk-');
  const disk = mkdtempSync(join(tmpdir(), 'tessera-atk-disk-'));
  assert.notEqual(filesystemOf(disk, parseMounts(readFileSync('/proc/self/mounts', 'utf8'))), 'tmpfs', 'the test needs a disk directory');
  const links = mkdtempSync(join(tmpdir(), 'tessera-atk-links-'));
  const link = join(links, 'run');
  symlinkSync(mem, link);
  const t = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, tokenOut: join(link, 'token') });
  try {
    await until(() => existsSync(join(mem, 'token')), 'the token file on tmpfs');
    rmSync(link);
    symlinkSync(disk, link); // the swap
    const first = readFileSync(join(mem, 'token'), 'utf8');
    await t.keeper.renewNow();
    await until(() => readFileSync(join(mem, 'token'), 'utf8') !== first, 'the renewed token on tmpfs');
    assert.equal(existsSync(join(disk, 'token')), false, 'nothing written to the disk directory');
  } finally {
    await t.close();
  }
  assert.equal(existsSync(join(mem, 'token')), false, 'removed at stop from where it was written');
});

test('a symlink planted at the token file name (to a disk file) is replaced, not followed', { skip }, async () => {
  const mem = mkdtempSync('/dev/shm/tessera-atk-');
  const disk = mkdtempSync(join(tmpdir(), 'tessera-atk-disk-'));
  const victim = join(disk, 'victim');
  writeFileSync(victim, 'untouched');
  symlinkSync(victim, join(mem, 'token'));
  const t = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, tokenOut: join(mem, 'token') });
  try {
    await until(() => !lstatSync(join(mem, 'token')).isSymbolicLink(), 'the token file replacing the link');
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.equal(lstatSync(join(mem, 'token')).mode & 0o777, 0o600);
  } finally {
    await t.close();
  }
});
