/**
 * docs/security-model.md names each threat by an id (`| T22 | …`) that other docs cite
 * ("see security-model.md (T74)"): every id names one row, and every cited id exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const MODEL = readFileSync('docs/security-model.md', 'utf8');
const ROW_IDS = [...MODEL.matchAll(/^\| (T\d+[a-z]?) \|/gm)].map((m) => m[1]!);

test('every threat id in the security model names exactly one row', () => {
  assert.ok(ROW_IDS.length > 20, `only ${ROW_IDS.length} threat rows found`);
  const seen = new Map<string, number>();
  for (const id of ROW_IDS) seen.set(id, (seen.get(id) ?? 0) + 1);
  assert.deepEqual([...seen].filter(([, n]) => n > 1).map(([id]) => id), []);
});

test('every threat id another doc cites next to security-model.md exists', () => {
  const ids = new Set(ROW_IDS);
  const missing: string[] = [];
  const docs = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
  for (const file of docs) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/security-model\.md[^\n]{0,40}?\((T\d+[a-z]?)\)/g)) if (!ids.has(m[1]!)) missing.push(`${file}: ${m[1]}`);
  }
  assert.deepEqual(missing, []);
});
