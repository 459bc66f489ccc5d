import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runPolicyTests } from '../../src/policy/test-runner.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { tempDir } from './helpers.js';

test('the shipped example table passes', async () => {
  const r = await runPolicyTests({ testFile: 'examples/policies/tests.yaml' });
  assert.equal(r.ok, true, JSON.stringify(r.cases.filter((c) => !c.pass)));
  assert.equal(r.failed, 0);
  assert.ok(r.passed >= 7);
});

test('a failing table reports each failing case with a reason', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'p.cedar'), '@id("read-a") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"a");');
  writeFileSync(
    join(dir, 'tests.yaml'),
    `cases:
  - name: reads a
    principal: { spiffe_id: "spiffe://example.org/x" }
    action: secret.read
    resource: Secret::a/b
    expect: allow
    policies: [read-a]
  - name: wrongly expects b
    principal: { spiffe_id: "spiffe://example.org/x" }
    action: secret.read
    resource: Secret::b/c
    expect: allow
  - name: wrong deciding policy
    principal: { spiffe_id: "spiffe://example.org/x" }
    action: secret.read
    resource: Secret::a/c
    expect: allow
    policies: [other]
  - name: malformed
    principal: { spiffe_id: "not-spiffe" }
    action: secret.read
    resource: Secret::a/c
    expect: allow
  - name: bad resource
    principal: { spiffe_id: "spiffe://example.org/x" }
    action: secret.read
    resource: Bucket::a
    expect: deny
`,
  );
  const r = await runPolicyTests({ testFile: join(dir, 'tests.yaml') });
  assert.equal(r.ok, false);
  assert.equal(r.passed, 1);
  assert.equal(r.failed, 4);
  assert.match(r.cases[1]!.reason!, /expected allow, got deny.*default deny/);
  assert.match(r.cases[2]!.reason!, /expected policies other/);
  assert.match(r.cases[3]!.reason!, /malformed case: principal.spiffe_id/);
  assert.match(r.cases[4]!.reason!, /TESSERA_POLICY_REQUEST_INVALID/);
});

test('policies that do not load, and a malformed table, have stable codes', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'p.cedar'), 'permit(principal, action, resource');
  writeFileSync(join(dir, 't.yaml'), 'cases:\n  - name: x\n');
  await assert.rejects(runPolicyTests({ testFile: join(dir, 't.yaml') }), (e) => isTesseraError(e) && e.code === 'TESSERA_POLICY_INVALID' && /p\.cedar:1/.test(e.message));
  writeFileSync(join(dir, 'bad.yaml'), 'nope: 1\n');
  await assert.rejects(runPolicyTests({ testFile: join(dir, 'bad.yaml') }), (e) => isTesseraError(e) && e.code === 'TESSERA_REQUEST_INVALID');
  await assert.rejects(runPolicyTests({ testFile: join(dir, 'missing.yaml') }), (e) => isTesseraError(e) && e.code === 'TESSERA_REQUEST_INVALID');
});
