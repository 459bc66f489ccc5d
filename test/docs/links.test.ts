/**
 * Every relative link in README.md, the other top-level *.md files and docs/**: the target is a
 * file or folder inside the repository that a fresh clone has (not outside it, not git-ignored),
 * and a `#fragment` names a heading of the target page.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve, sep } from 'node:path';
import { anchorsOf, docFiles, readDoc, type MarkdownDoc } from './markdown.js';

const ROOT = process.cwd();
const files = docFiles();
const docs = new Map<string, MarkdownDoc>(files.map((f) => [f, readDoc(f)]));

/** Files git tracks (and their folders); undefined when git or the repository is not available. */
const TRACKED = ((): Set<string> | undefined => {
  const r = spawnSync('git', ['ls-files', '-z'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) return undefined;
  const out = new Set<string>();
  for (const f of r.stdout.split('\0').filter(Boolean)) {
    const parts = f.split('/');
    for (let i = 1; i <= parts.length; i++) out.add(parts.slice(0, i).join('/'));
  }
  return out;
})();

/** Of `paths`, those git would not put in a clone: not tracked, and ignored (`.gitignore`). */
function ignored(paths: string[]): Set<string> {
  const untracked = paths.filter((p) => !TRACKED?.has(p.split(sep).join('/')));
  if (!TRACKED || untracked.length === 0) return new Set();
  const out = new Set<string>();
  for (const p of untracked) {
    const r = spawnSync('git', ['check-ignore', '-q', p], { encoding: 'utf8' });
    if (r.status === 0) out.add(p);
  }
  return out;
}

test('the docs are found', () => {
  assert.ok(files.includes('README.md') && files.includes('docs/configuration.md'), files.join(', '));
});

for (const file of files) {
  test(`relative links in ${file} resolve in a fresh clone`, () => {
    const doc = docs.get(file)!;
    const problems: string[] = [];
    const candidates: { at: string; path: string }[] = [];
    for (const link of doc.links) {
      const at = `${file}:${link.line}: [${link.text}](${link.target})`;
      if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) continue; // http:, https:, mailto: …
      const hash = link.target.indexOf('#');
      const pathPart = decodeURI(hash >= 0 ? link.target.slice(0, hash) : link.target);
      const fragment = hash >= 0 ? decodeURIComponent(link.target.slice(hash + 1)) : '';
      const abs = pathPart ? resolve(ROOT, dirname(file), pathPart) : resolve(ROOT, file);
      const rel = relative(ROOT, abs);
      if (rel.startsWith('..') || rel.split(sep)[0] === '..' || normalize(rel) !== rel) {
        problems.push(`${at} — points outside the repository: the link is dead in a fresh clone`);
        continue;
      }
      if (!existsSync(abs)) {
        problems.push(`${at} — ${rel} does not exist`);
        continue;
      }
      candidates.push({ at, path: rel });
      if (fragment) {
        if (statSync(abs).isDirectory() || !rel.endsWith('.md')) {
          problems.push(`${at} — a #fragment on something that is not a Markdown page`);
          continue;
        }
        const target = docs.get(rel.split(sep).join('/')) ?? readDoc(rel);
        const anchors = anchorsOf(target);
        if (!anchors.has(fragment)) problems.push(`${at} — ${rel} has no heading with anchor #${fragment} (anchors: ${[...anchors].join(', ')})`);
      }
    }
    const gone = ignored(candidates.map((c) => c.path));
    for (const c of candidates) if (gone.has(c.path)) problems.push(`${c.at} — ${c.path} is git-ignored: a fresh clone does not have it`);
    assert.deepEqual(problems, []);
  });
}

test('the link checker itself: outside, missing, ignored and bad anchors are caught', async () => {
  const { parseMarkdown } = await import('./markdown.js');
  const doc = parseMarkdown('docs/x.md', '# Title\n\n## Two words\n\nSee [a](../README.md#tessera), [b](#two-words), `[not](a-link.md)`.\n\n```\n[code](nope.md)\n```\n');
  assert.deepEqual(doc.links.map((l) => l.target), ['../README.md#tessera', '#two-words']);
  assert.ok(anchorsOf(doc).has('two-words'));
  assert.ok(anchorsOf(readDoc('README.md')).has('tessera'));
  assert.deepEqual([...ignored(['dist/src/main.js', 'docs/cli.md', '.tessera/tessera.db', 'README.md'])].sort(), ['.tessera/tessera.db', 'dist/src/main.js']);
  assert.ok(!existsSync(join(ROOT, '..', 'shared-not-here', 'DESIGN.md')));
});
