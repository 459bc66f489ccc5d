import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CATALOGUE } from '../../src/shared/errors.js';

test('every error code is documented in docs/errors.md', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  const missing = Object.keys(ERROR_CATALOGUE).filter((c) => !doc.includes(`\`${c}\``));
  assert.deepEqual(missing, [], `run: npx tsx scripts/gen-errors-doc.ts`);
});

test('every TESSERA_ code used in src/ exists in the catalogue', () => {
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : n.endsWith('.ts') ? [join(d, n)] : []));
  const unknown = new Set<string>();
  // A quoted name Tessera reads from the environment (`env.TESSERA_TOKEN`) is a variable, not a code.
  const envVars = new Set<string>();
  for (const f of walk('src')) for (const m of readFileSync(f, 'utf8').matchAll(/\benv(?:\.|\[\s*['"`])(TESSERA_[A-Z0-9_]+)/g)) envVars.add(m[1]!);
  for (const f of walk('src')) {
    for (const m of readFileSync(f, 'utf8').matchAll(/'(TESSERA_[A-Z0-9_]+)'/g)) if (!(m[1]! in ERROR_CATALOGUE) && !m[1]!.endsWith('_') && !envVars.has(m[1]!)) unknown.add(`${m[1]} (${f})`);
  }
  assert.ok(envVars.has('TESSERA_TOKEN') && !envVars.has('TESSERA_INTERNAL'));
  assert.deepEqual([...unknown], []);
});

test('error codes follow TESSERA_<AREA>_<WHAT> and have actionable descriptions', () => {
  for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
    assert.match(code, /^TESSERA_[A-Z0-9]+(_[A-Z0-9]+)*$/);
    assert.ok((spec as { description: string }).description.length > 20, code);
  }
});
