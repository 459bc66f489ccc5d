// The compiled entry's lazy runtime (src/entry.ts) forwards every member of the composition
// root's runtime (src/main.ts). A member missing there made `tessera audit archive --offline`
// answer TESSERA_CLI_UNSUPPORTED from the real binary although main.ts implements it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lazyRuntime } from '../../src/entry.js';
import { runtime } from '../../src/main.js';

test('the lazy runtime forwards every member of the runtime main.ts wires', () => {
  const wired = Object.keys(runtime).filter((k) => typeof (runtime as unknown as Record<string, unknown>)[k] === 'function').sort();
  const lazy = Object.keys(lazyRuntime).filter((k) => typeof (lazyRuntime as unknown as Record<string, unknown>)[k] === 'function').sort();
  assert.deepEqual(lazy, wired);
});

/**
 * The packages a module loads through its static imports (`import … from`, `export … from`,
 * `import '…'`; not `import type`, not `await import()`), following the relative ones through src/.
 * Each entry is [package specifier, the chain of src/ files that imports it].
 */
function staticPackages(entry: string): Map<string, string[]> {
  const src = fileURLToPath(new URL('../../src/', import.meta.url));
  const parent = new Map<string, string | undefined>([[entry, undefined]]);
  const queue = [entry];
  const found = new Map<string, string[]>();
  const chain = (f: string | undefined): string[] => (f ? [f.slice(src.length), ...chain(parent.get(f))] : []);
  while (queue.length > 0) {
    const file = queue.shift()!;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(import|export)\s+(type\s)?[^;]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gms)) {
      if (m[2]) continue; // import type / export type: erased
      const spec = m[3] ?? m[4]!;
      if (spec.startsWith('.')) {
        const ts = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
        if (existsSync(ts) && !parent.has(ts)) {
          parent.set(ts, file);
          queue.push(ts);
        }
      } else if (!spec.startsWith('node:') && !found.has(spec)) found.set(spec, chain(file));
    }
  }
  return found;
}

// docs/adr/0290-server-memory-lazy-kubernetes-client.md: @kubernetes/client-node (≈ 14 MB of module
// source) and kubernetes-models (≈ 650 modules) cost the server ≈ 50 MB resident when imported at
// start; they load only for the features that use them (a tokenreview attestor or the pod watch;
// `tessera k8s manifests` / `k8s scan`).
test('neither the server nor the command line imports the Kubernetes client libraries at start', () => {
  for (const entry of ['main.ts', 'entry.ts']) {
    const packages = staticPackages(fileURLToPath(new URL(`../../src/${entry}`, import.meta.url)));
    assert.ok(packages.has('fastify') || entry === 'entry.ts', 'the walk follows the imports');
    assert.ok(packages.has('commander'), `the walk from ${entry} reaches the command line`);
    for (const [spec, via] of packages) {
      assert.ok(!/^(@kubernetes\/client-node|kubernetes-models|@kubernetes-models\/)/.test(spec), `src/${entry} imports ${spec} statically, through ${via.join(' <- ')}`);
    }
  }
});
