/**
 * The console shows secret metadata only (issue 11; docs/console.md): no source file of the
 * console names a route that returns a secret value — `GET /v1/admin/secrets/<path>` (operator)
 * or `GET /v1/secrets/<path>` (agent) — and no page renders a `value` field of a secret.
 * A static check over every file in console/src, so a new page cannot add such a call unnoticed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../console/src', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|tsx)$/.test(n) ? [p] : [];
  });
}

/** Every place a source text names the secrets routes, with what follows the route prefix. */
export function secretRouteUses(text: string): { route: string; next: string }[] {
  const out: { route: string; next: string }[] = [];
  for (const m of text.matchAll(/\/v1\/(admin\/)?secrets(.?)/g)) out.push({ route: m[0], next: m[2] ?? '' });
  return out;
}

/** Drops block and line comments (docstrings may name the route to say it is never called). */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

test('the checker finds value-reading routes in any spelling', () => {
  assert.deepEqual(secretRouteUses("api.get(`/v1/admin/secrets/${p}`)").map((u) => u.next), ['/']);
  assert.deepEqual(secretRouteUses("api.get('/v1/secrets/' + p)").map((u) => u.next), ['/']);
  assert.deepEqual(secretRouteUses("api.get(`/v1/admin/secrets${qs({ prefix })}`)").map((u) => u.next), ['$']);
});

test('no console source calls a route that returns a secret value', () => {
  const all = files(SRC);
  assert.ok(all.some((f) => f.endsWith('secrets.tsx')), 'the secrets page is scanned');
  const offenders: string[] = [];
  for (const f of all) {
    const text = stripComments(readFileSync(f, 'utf8'));
    for (const u of secretRouteUses(text)) {
      // Only the metadata list may be named: `/v1/admin/secrets` followed by a query or the end of the string.
      const isList = u.route.startsWith('/v1/admin/secrets') && ['?', '$', "'", '"', '`', ''].includes(u.next);
      if (!isList) offenders.push(`${f}: ${u.route}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('comments may name the route, code may not', () => {
  assert.equal(secretRouteUses(stripComments('// GET /v1/admin/secrets/<path> is never called\n/* also /v1/secrets/x */ const a = 1;')).length, 0);
  assert.equal(secretRouteUses(stripComments("const u = 'https://h/v1/admin/secrets/x'; // note")).length, 1, 'a URL in a string is not a comment');
});

test('the secrets page renders metadata fields only (no `value` of a secret row)', () => {
  const page = stripComments(readFileSync(join(SRC, 'pages', 'secrets.tsx'), 'utf8'));
  assert.doesNotMatch(page, /\b(s|secret|meta|row)\.value\b/);
  assert.doesNotMatch(page, /\bvalue:\s*string/);
});
