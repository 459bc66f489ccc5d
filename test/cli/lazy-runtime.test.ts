// The compiled entry's lazy runtime (src/entry.ts) forwards every member of the composition
// root's runtime (src/main.ts). A member missing there made `tessera audit archive --offline`
// answer TESSERA_CLI_UNSUPPORTED from the real binary although main.ts implements it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lazyRuntime } from '../../src/entry.js';
import { runtime } from '../../src/main.js';

test('the lazy runtime forwards every member of the runtime main.ts wires', () => {
  const wired = Object.keys(runtime).filter((k) => typeof (runtime as unknown as Record<string, unknown>)[k] === 'function').sort();
  const lazy = Object.keys(lazyRuntime).filter((k) => typeof (lazyRuntime as unknown as Record<string, unknown>)[k] === 'function').sort();
  assert.deepEqual(lazy, wired);
});
