/**
 * Attack (issue 12, security review) on `tessera agent --token-file`: the path is a FIFO (a
 * misplaced path, or a file replaced on the node) or a huge file. Before the fix the login's
 * readFile blocked on the FIFO for ever (the keeper's renewal never settled, so it never retried
 * even once the file was right again) or read the whole file into memory. Now each attempt fails
 * with TESSERA_SDK_TOKEN_FILE_UNREADABLE and is retried, and the sidecar recovers as soon as the
 * file is a token again. Real Tessera, real sidecar (test/k8s/agent/harness.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, until, type Stack } from '../agent/harness.js';
import { sidecar, JWT_SHAPE } from '../agent/clients.js';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

for (const [what, make] of [
  ['a FIFO', (p: string) => execFileSync('mkfifo', [p])],
  ['a 2 MiB file', (p: string) => writeFileSync(p, 'x'.repeat(2 * 1024 * 1024))],
] as const) {
  test(`--token-file is ${what}: TESSERA_SDK_TOKEN_FILE_UNREADABLE, retried; recovers once the file is a token`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-atk-tf-'));
    const path = join(dir, 'token');
    make(path);
    const t = await sidecar({ addr: stack.addr, tokenFile: path });
    try {
      await until(() => t.keeper.lastError?.code === 'TESSERA_SDK_TOKEN_FILE_UNREADABLE', 'the refusal');
      assert.match(t.keeper.lastError!.message, what === 'a FIFO' ? /is not a regular file/ : /is larger than 65536 bytes/);
      assert.equal(t.keeper.state, 'retrying');
      writeFileSync(`${path}.new`, readFileSync(stack.kube.tokenFile));
      renameSync(`${path}.new`, path); // what the kubelet does (atomic swap)
      await until(() => t.keeper.current() !== undefined, 'the login after the file was fixed');
      assert.doesNotMatch(t.stderr(), JWT_SHAPE);
    } finally {
      await t.close();
    }
  });
}
