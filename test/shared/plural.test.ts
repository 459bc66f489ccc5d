/**
 * Counts are spelled right everywhere ("1 signed checkpoint", not "1 signed checkpoints" or
 * "1 checkpoint(s)"): one helper (src/shared/plural.ts), and no "(s)" plural left in a message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { count, noun, verb } from '../../src/shared/plural.js';

test('count, noun and verb agree with the number', () => {
  assert.equal(count(0, 'event'), '0 events');
  assert.equal(count(1, 'signed checkpoint'), '1 signed checkpoint');
  assert.equal(count(2, 'signed checkpoint'), '2 signed checkpoints');
  assert.equal(count(1, 'policy', 'policies'), '1 policy');
  assert.equal(count(9, 'policy', 'policies'), '9 policies');
  assert.equal(noun(1, 'role'), 'role');
  assert.equal(noun(3, 'role'), 'roles');
  assert.equal(verb(1, 'is', 'are'), 'is');
  assert.equal(verb(2, 'is', 'are'), 'are');
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('no message in src/ writes a plural as "(s)"', () => {
  const found: string[] = [];
  for (const file of walk('src')) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      const code = line.trimStart();
      if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*')) return;
      // Inside string and template literals only; "http(s)" names two URL schemes, not a count.
      for (const lit of line.matchAll(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`/g)) {
        for (const m of lit[0].replace(/\$\{[^}]*\}/g, '').matchAll(/\b([a-z]+)\(s\)/g)) if (m[1] !== 'http') found.push(`${file}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(found, []);
});
