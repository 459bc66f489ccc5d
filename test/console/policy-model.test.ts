/** The what-if form (console/src/lib/policy-model.ts): body of POST /v1/admin/policy/check and the explanation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRequestSchema } from '../../src/policy/check.js';
import { POLICY_ACTIONS as SERVER_ACTIONS } from '../../src/policy/types.js';
import { ATTESTOR_KINDS as SERVER_ATTESTOR_KINDS } from '../../src/shared/principal.js';
import { ATTESTOR_KINDS, EMPTY_WHAT_IF, POLICY_ACTIONS, buildCheckBody, explainDecision, parseAttributes } from '../../console/src/lib/policy-model.js';

test('the console offers exactly the server\'s actions', () => {
  assert.deepEqual([...POLICY_ACTIONS], [...SERVER_ACTIONS]);
  assert.deepEqual([...ATTESTOR_KINDS], [...SERVER_ATTESTOR_KINDS]);
});

test('a full form builds a body the server\'s schema accepts', () => {
  const built = buildCheckBody({
    ...EMPTY_WHAT_IF, spiffeId: ' spiffe://example.org/agent/reader ', attestor: ' k8s-prod ', attestorKind: 'kubernetes', action: 'tool.call', resource: 'Tool::github/create_issue',
    attributes: 'team=payments\n\n env = prod ', scope: 'tool:github__* secret:a/b, x', task: 'task_1', user: 'alice', purpose: 'triage', dpop: true, context: '{"args": {"repo": "x"}}',
  });
  assert.ok('body' in built);
  assert.deepEqual(built.body, {
    principal: { spiffe_id: 'spiffe://example.org/agent/reader', attributes: { team: 'payments', env: 'prod' }, attestor: 'k8s-prod', attestor_kind: 'kubernetes', scope: ['tool:github__*', 'secret:a/b', 'x'], task: 'task_1', user: 'alice', purpose: 'triage', dpop: true },
    action: 'tool.call', resource: 'Tool::github/create_issue', context: { args: { repo: 'x' } },
  });
  assert.ok(checkRequestSchema.safeParse(built.body).success);
  const minimal = buildCheckBody({ ...EMPTY_WHAT_IF, spiffeId: 'spiffe://example.org/a', resource: 'Secret::a/b' });
  assert.ok('body' in minimal);
  assert.deepEqual(minimal.body, { principal: { spiffe_id: 'spiffe://example.org/a' }, action: 'secret.read', resource: 'Secret::a/b' });
  assert.ok(checkRequestSchema.safeParse(minimal.body).success);
});

test('form problems name their field', () => {
  const base = { ...EMPTY_WHAT_IF, spiffeId: 'spiffe://example.org/a', resource: 'Secret::a/b' };
  const field = (f: typeof base) => {
    const b = buildCheckBody(f);
    return 'field' in b ? b.field : undefined;
  };
  assert.equal(field({ ...base, spiffeId: 'example.org/a' }), 'spiffeId');
  assert.equal(field({ ...base, resource: 'a/b' }), 'resource');
  assert.equal(field({ ...base, resource: 'Secret::' }), 'resource');
  assert.equal(field({ ...base, attributes: 'no-equals-sign' }), 'attributes');
  assert.equal(field({ ...base, attributes: '=v' }), 'attributes');
  assert.equal(field({ ...base, context: '{' }), 'context');
  assert.equal(field({ ...base, context: '[1]' }), 'context');
  assert.equal(field({ ...base, context: 'null' }), 'context');
  assert.equal(field(base), undefined);
  assert.deepEqual(parseAttributes('a=b=c'), { attributes: { a: 'b=c' } });
});

test('explanations', () => {
  const permit = { id: 'allow-readers', effect: 'permit' as const, file: 'main.cedar', line: 3 };
  const forbid = { id: 'no-prod', effect: 'forbid' as const, file: 'guard.cedar', line: 1 };
  assert.match(explainDecision({ decision: 'allow', policies: [permit], errors: [] }), /^Allowed: the permit policy allow-readers \(main\.cedar:3\) matched/);
  assert.match(explainDecision({ decision: 'deny', policies: [forbid], errors: [] }), /^Denied: the forbid policy no-prod \(guard\.cedar:1\) matched/);
  assert.match(explainDecision({ decision: 'deny', policies: [], errors: [] }), /^Denied by default: no permit policy matched/);
  assert.match(explainDecision({ decision: 'deny', policies: [], errors: ['e1', 'e2'] }), /2 policies failed to evaluate/);
});
