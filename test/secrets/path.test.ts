import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSecretPath, parseSecretPrefix, folderAncestors, isUnderPrefix, matchesPathGlob, SECRET_PATH_LIMITS } from '../../src/secrets/path.js';
import { TesseraError } from '../../src/shared/errors.js';

const good = [
  'a',
  'healthcare/prod/agents/patient-reader/openai-api-key',
  'A.b_c-D/0123',
  '.hidden/x',
  'x/...',
  'a'.repeat(SECRET_PATH_LIMITS.maxSegmentLength),
  Array.from({ length: SECRET_PATH_LIMITS.maxDepth }, () => 'a').join('/'),
];

const bad: [string, unknown, RegExp][] = [
  ['empty', '', /empty/],
  ['not a string', 42, /string/],
  ['leading slash', '/a/b', /start with/],
  ['trailing slash', 'a/b/', /end with/],
  ['empty segment', 'a//b', /empty/],
  ['dot-dot', 'a/../b', /relative/],
  ['dot-dot alone', '..', /relative/],
  ['dot', 'a/./b', /relative/],
  ['leading dot-dot', '../etc/passwd', /relative/],
  ['space', 'a/b c', /contains " "/],
  ['percent', 'a/%2e%2e', /contains "%"/],
  ['backslash', 'a\\..\\b', /contains "\\\\"/],
  ['unicode', 'a/ключ', /contains/],
  ['nul', 'a/\u0000', /contains/],
  ['colon', 'a:b', /contains ":"/],
  ['question', 'a?b', /contains/],
  ['tilde', '~/a', /contains "~"/],
  ['star', 'a/*', /contains/],
  ['segment too long', `a/${'b'.repeat(SECRET_PATH_LIMITS.maxSegmentLength + 1)}`, /segment 2 is longer/],
  ['too deep', Array.from({ length: SECRET_PATH_LIMITS.maxDepth + 1 }, () => 'a').join('/'), /more than/],
  ['too long', Array.from({ length: 5 }, () => 'b'.repeat(120)).join('/'), /longer than 512/],
];

test('valid paths are accepted unchanged', () => {
  for (const p of good) assert.equal(parseSecretPath(p), p);
});

for (const [name, input, message] of bad) {
  test(`invalid path: ${name}`, () => {
    assert.throws(() => parseSecretPath(input), (e: unknown) => {
      assert.ok(e instanceof TesseraError);
      assert.equal(e.code, 'TESSERA_SECRET_PATH_INVALID');
      assert.match(e.message, message);
      return true;
    });
  });
}

test('prefix: empty means all, otherwise a valid path', () => {
  assert.equal(parseSecretPrefix(''), '');
  assert.equal(parseSecretPrefix(undefined), '');
  assert.equal(parseSecretPrefix('a/b'), 'a/b');
  assert.throws(() => parseSecretPrefix('a/'), { code: 'TESSERA_SECRET_PATH_INVALID' });
});

test('folderAncestors lists every enclosing folder, outermost first', () => {
  assert.deepEqual(folderAncestors('healthcare/prod/agents/patient-reader/openai-api-key'), [
    'healthcare',
    'healthcare/prod',
    'healthcare/prod/agents',
    'healthcare/prod/agents/patient-reader',
  ]);
  assert.deepEqual(folderAncestors('top'), []);
});

test('isUnderPrefix is segment-wise', () => {
  assert.ok(isUnderPrefix('a/b/c', 'a/b'));
  assert.ok(isUnderPrefix('a/b', 'a/b'));
  assert.ok(isUnderPrefix('a/b', ''));
  assert.ok(!isUnderPrefix('a/bc', 'a/b'));
});

test('matchesPathGlob: * is one segment, ** any number', () => {
  const cases: [string, string, boolean][] = [
    ['a/*/c', 'a/b/c', true],
    ['a/*/c', 'a/b/x/c', false],
    ['a/**', 'a/b/x/c', true],
    ['a/**', 'a', true],
    ['a/**/c', 'a/c', true],
    ['a/**/c', 'a/b/d/c', true],
    ['a/**/c', 'a/b/d/e', false],
    ['a/openai-*', 'a/openai-key', true],
    ['a/openai-*', 'a/anthropic-key', false],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['a.b/*', 'axb/c', false],
    ['**', 'x/y/z', true],
  ];
  for (const [g, p, want] of cases) assert.equal(matchesPathGlob(g, p), want, `${g} vs ${p}`);
});
