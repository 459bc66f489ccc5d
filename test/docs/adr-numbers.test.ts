/** docs/adr: one decision per number (NNNN-short-name.md), each with a title line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

test('ADR files are NNNN-name.md, one per number, each opening with a title', () => {
  const files = readdirSync('docs/adr').filter((f) => f.endsWith('.md') && f !== 'README.md');
  assert.ok(files.length > 10);
  const bad = files.filter((f) => !/^\d{4}-[a-z0-9-]+\.md$/.test(f));
  assert.deepEqual(bad, []);
  const numbers = files.map((f) => f.slice(0, 4));
  assert.deepEqual(numbers.filter((n, i) => numbers.indexOf(n) !== i), []);
  const untitled = files.filter((f) => !/^# /.test(readFileSync(`docs/adr/${f}`, 'utf8')));
  assert.deepEqual(untitled, []);
});
