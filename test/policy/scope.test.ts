import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authorizeWithScope, isSubset, parseScope, requiredScopeFor, scopeCovers } from '../../src/policy/scope.js';
import type { Authorizer, Decision, PolicyRequest } from '../../src/policy/types.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { agent } from './helpers.js';

const COVERS: [string[], string, boolean][] = [
  [['secret:healthcare/prod/db'], 'secret:healthcare/prod/db', true],
  [['secret:healthcare/prod/db'], 'secret:healthcare/prod/db2', false],
  [['secret:healthcare/*/db'], 'secret:healthcare/prod/db', true],
  [['secret:healthcare/*/db'], 'secret:healthcare/prod/x/db', false],
  [['secret:healthcare/*'], 'secret:healthcare/prod', true],
  [['secret:healthcare/*'], 'secret:healthcare/prod/db', false],
  [['secret:healthcare/**'], 'secret:healthcare/prod/db', true],
  [['secret:healthcare/**'], 'secret:healthcare/prod', true],
  [['secret:healthcare/**'], 'secret:healthcare', false], // trailing ** = one or more
  [['secret:healthcare/**/db'], 'secret:healthcare/db', true], // middle ** = zero or more
  [['secret:healthcare/**/db'], 'secret:healthcare/a/b/db', true],
  [['secret:healthcare/**/db'], 'secret:healthcare/a/b/dbx', false],
  [['secret:**'], 'secret:anything/at/all', true],
  [['secret:**'], 'tool:a/b', false], // kinds never cross
  [['tool:records/*'], 'tool:records/query', true],
  [['tool:*/query'], 'tool:records/query', true],
  [['tool:records/query'], 'tool:records/*', false], // a pattern is only covered by a wider one
  [['tool:records/*'], 'tool:records/*', true],
  [['tool:records/*', 'cred:postgres/readonly'], 'cred:postgres/readonly', true],
  [['cred:postgres/*'], 'cred:mysql/readonly', false],
  [['http:github'], 'http:github', true],
  [['http:*'], 'http:api.github.com', true],
  [['secret:a/*'], 'secret:a/**', false],
  [['secret:a/**'], 'secret:a/*/b/**', true],
  [[], 'secret:a', false],
];

test('scopeCovers table', () => {
  for (const [granted, requested, want] of COVERS) assert.equal(scopeCovers(granted, requested), want, `${JSON.stringify(granted)} covers ${requested}`);
});

test('isSubset: a child scope may only narrow', () => {
  assert.equal(isSubset(['secret:healthcare/prod/db', 'tool:records/query'], ['secret:healthcare/**', 'tool:records/*']), true);
  assert.equal(isSubset(['secret:healthcare/**'], ['secret:healthcare/prod/*']), false);
  assert.equal(isSubset([], ['secret:x']), true);
  assert.equal(isSubset(['tool:records/query'], ['secret:**']), false);
});

test('invalid scopes are refused with TESSERA_OAUTH_INVALID_SCOPE', () => {
  for (const bad of ['', 'secret', 'files:a', 'secret:', 'secret:a//b', 'secret:a/../b', 'secret:a*', 'tool:records', 'tool:a/b/c', 'cred:pg', 'secret:a b']) {
    assert.throws(() => parseScope(bad), (e) => isTesseraError(e) && e.code === 'TESSERA_OAUTH_INVALID_SCOPE', bad);
  }
});

test('requiredScopeFor maps each resource type', () => {
  assert.equal(requiredScopeFor({ type: 'Secret', path: 'a/b' }), 'secret:a/b');
  assert.equal(requiredScopeFor({ type: 'Role', engine: 'postgres', role: 'ro' }), 'cred:postgres/ro');
  assert.equal(requiredScopeFor({ type: 'Tool', server: 'r', tool: 'q' }), 'tool:r/q');
  assert.equal(requiredScopeFor({ type: 'Route', route: 'github' }), 'http:github');
  assert.equal(requiredScopeFor({ type: 'Agent', spiffeId: 'spiffe://x/y' }), undefined);
});

test('authorizeWithScope: Cedar permits AND (no scope OR scope covers)', () => {
  let calls = 0;
  const permitAll: Authorizer = { authorize: (): Decision => (calls++, { allowed: true, policies: ['p'], errors: [], cached: false }) };
  const denyAll: Authorizer = { authorize: (): Decision => ({ allowed: false, policies: [], errors: [], cached: false }) };
  const req = (scope?: string[]): PolicyRequest => ({ principal: agent('spiffe://example.org/a', scope ? { scope } : {}), action: 'secret.read', resource: { type: 'Secret', path: 'healthcare/prod/db' } });
  assert.equal(authorizeWithScope(permitAll, req()).allowed, true);
  assert.equal(authorizeWithScope(permitAll, req(['secret:healthcare/**'])).allowed, true);
  const narrow = authorizeWithScope(permitAll, req(['secret:billing/**']));
  assert.equal(narrow.allowed, false);
  assert.equal(narrow.scopeDenied, true);
  assert.equal(authorizeWithScope(permitAll, req([])).allowed, false);
  assert.equal(authorizeWithScope(denyAll, req(['secret:**'])).allowed, false);
  assert.equal(authorizeWithScope(denyAll, req()).allowed, false);
  // a resource name that is not a valid scope segment cannot be covered
  assert.equal(authorizeWithScope(permitAll, { ...req(['secret:**']), resource: { type: 'Secret', path: 'a b' } }).allowed, false);
  assert.ok(calls >= 2);
});
