/**
 * Durations in messages are for people: "2h", "1h 30m", "1s 500ms" — one helper
 * (src/shared/duration.ts), and no message in src/ shows a bare "<n>ms" / "<n> ms" count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describeDuration } from '../../src/shared/duration.js';

test('describeDuration: exact, largest units first; maxParts keeps the largest', () => {
  assert.equal(describeDuration(0), '0s');
  assert.equal(describeDuration(250), '250ms');
  assert.equal(describeDuration(1500), '1s 500ms');
  assert.equal(describeDuration(90_000), '1m 30s');
  assert.equal(describeDuration(3_600_000), '1h');
  assert.equal(describeDuration(7_200_000), '2h');
  assert.equal(describeDuration(5_400_000), '1h 30m');
  assert.equal(describeDuration(90_061_001), '1d 1h 1m 1s 1ms');
  assert.equal(describeDuration(90_061_001, 2), '1d 1h');
  assert.equal(describeDuration(-60_000), '-1m');
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('no message in src/ shows a duration as a bare millisecond count', () => {
  const found: string[] = [];
  for (const file of walk('src')) {
    if (file.endsWith(join('config', 'duration.ts'))) continue; // formatDuration's own "250ms"
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      for (const m of line.matchAll(/`[^`]*`/g)) if (/\$\{[^}]+\} ?ms\b/.test(m[0])) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});
