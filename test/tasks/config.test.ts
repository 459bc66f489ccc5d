/**
 * `tokens.delegation` settings over real HTTP: the per-agent task rate (429 with Retry-After, one
 * audit event per window) and binding required for sub-agents without an identity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from '../e2e/harness.js';
import { ORCH, SUB, ACCESS, exchange, openTask, assertRefused, policyDir, claimsOf, tokenProof } from './helpers.js';
import { proofKey, thumbprint } from '../helpers/dpop.js';

test('tokens.delegation.rate_limit: an agent opening tasks too fast is refused with TESSERA_TASK_RATE_LIMITED and Retry-After', async (t) => {
  const h = await startHarness({ policyDir: policyDir(), config: { tokens: { delegation: { rate_limit: { per_second: 0.01, burst: 2 } } } } });
  t.after(() => h.close());
  const orch = await h.login(await h.joinToken(ORCH));
  await openTask(h, orch);
  await openTask(h, orch);
  const r = await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'one too many' });
  assertRefused(r, 429, 'temporarily_unavailable', 'TESSERA_TASK_RATE_LIMITED');
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  await h.tessera.audit.flush();
  const limits = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'limit.exceeded'");
  assert.equal(JSON.parse(limits.at(-1)!.body).details.limit, 'task.per_agent');
});

test('tokens.delegation.require_dpop_for_labels: a label sub-agent gets only a bound token', async (t) => {
  const h = await startHarness({ policyDir: policyDir(), config: { tokens: { delegation: { require_dpop_for_labels: true, max_depth: 1 } } } });
  t.after(() => h.close());
  const orch = await h.login(await h.joinToken(ORCH));
  const root = await openTask(h, orch);
  assert.equal(claimsOf(root.token).max_depth, 1, 'tokens.delegation.max_depth bounds a root task by default');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'loose', scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_BINDING_REQUIRED');
  // The sub-agent's key signs the proof; the child is bound to it.
  const key = proofKey();
  const bound = await exchange(h, { subject_token: root.token, label: 'keyed', scope: 'secret:team/a' }, { dpop: tokenProof(h, key) });
  assert.equal(bound.status, 200, JSON.stringify(bound.body));
  assert.equal(bound.body.token_type, 'DPoP');
  assert.deepEqual(claimsOf(bound.body.access_token).cnf, { jkt: await thumbprint(key) });
  // A sub-agent with an identity (actor_token) is not a label: the setting does not apply to it.
  const sub = await h.login(await h.joinToken(SUB));
  const withIdentity = await exchange(h, { subject_token: root.token, actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/a' });
  assert.equal(withIdentity.status, 200, JSON.stringify(withIdentity.body));
  assert.equal(withIdentity.body.token_type, 'Bearer');
});
