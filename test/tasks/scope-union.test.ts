/**
 * Union coverage of scope globs (src/policy/scope.ts unionCovers, kindsCoveredWhole): what Cedar
 * sees as `context.delegation.covers_all`. Checked against a brute-force enumeration of names,
 * so an equivalent glob can never pass for narrower than it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kindsCoveredWhole, scopeCovers, unionCovers } from '../../src/policy/scope.js';

test('unionCovers: patterns that cover a name only together, equivalent spellings, and near misses', () => {
  const cases: Array<[string[], string, boolean]> = [
    [['secret:**'], 'secret:**', true],
    [['secret:**/**'], 'secret:**', true],
    [['secret:**/*'], 'secret:**', true],
    [['secret:*/**', 'secret:*'], 'secret:**', true],
    [['secret:*/**'], 'secret:**', false],
    [['secret:*'], 'secret:**', false],
    [['secret:a/**', 'secret:*'], 'secret:**', false],
    [['secret:a/*', 'secret:a/*/**'], 'secret:a/**', true],
    [['secret:a/**/b'], 'secret:a/b', true],
    [['secret:a/**/b'], 'secret:a/**', false],
    [['secret:a/**'], 'secret:a', false],
    [['tool:a/*', 'tool:*/b'], 'tool:*/*', false],
    [['tool:*/*'], 'tool:*/*', true],
    [['cred:*/*'], 'secret:**', false],
  ];
  for (const [g, r, want] of cases) assert.equal(unionCovers(g, r), want, `${g.join(' ')} ⊇ ${r}`);
});

test('unionCovers agrees with brute force over every name of up to 6 segments, for every pair of short patterns', () => {
  const segs = ['a', 'b', '*', '**'];
  const patterns: string[] = [];
  const grow = (pre: string[]): void => {
    if (pre.length) patterns.push(`secret:${pre.join('/')}`);
    if (pre.length < 3) for (const s of segs) grow([...pre, s]);
  };
  grow([]);
  const names: string[] = [];
  const name = (pre: string[]): void => {
    if (pre.length) names.push(`secret:${pre.join('/')}`);
    if (pre.length < 6) for (const s of ['a', 'b', 'c']) name([...pre, s]);
  };
  name([]);
  const matches = new Map(patterns.map((p) => [p, new Set(names.filter((n) => scopeCovers([p], n)))]));
  let checked = 0;
  for (let i = 0; i < patterns.length; i += 3) {
    for (let j = i; j < patterns.length; j += 5) {
      const g = [patterns[i]!, patterns[j]!];
      for (let k = 0; k < patterns.length; k += 7) {
        const r = patterns[k]!;
        const brute = [...matches.get(r)!].every((n) => matches.get(g[0]!)!.has(n) || matches.get(g[1]!)!.has(n));
        assert.equal(unionCovers(g, r), brute, `${g.join(' ')} ⊇ ${r}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 1000);
});

test('kindsCoveredWhole: per kind, fast on ordinary scopes, and fail-closed (covering) past its work bound', () => {
  assert.deepEqual(kindsCoveredWhole(['secret:*/**', 'secret:*', 'tool:*/*', 'cred:mem/*']), ['tool', 'secret']);
  assert.deepEqual(kindsCoveredWhole(['secret:team/**', 'tool:records/query', 'not a scope']), []);
  assert.deepEqual(kindsCoveredWhole(['http:**/**']), ['http']);
  // 64 adversarial patterns: the exploration stops at its bound and answers "covered".
  const big = Array.from({ length: 64 }, (_, i) => `secret:${Array.from({ length: 32 }, (_, j) => (j % 3 === 0 ? '**' : j % 3 === 1 ? `s${i}x${j}` : '*')).join('/')}`);
  assert.equal(unionCovers(big, 'secret:**', { maxStates: 1000, onLimit: true }), true);
  assert.equal(unionCovers(big, 'secret:**', { maxStates: 1000, onLimit: false }), false);
});
