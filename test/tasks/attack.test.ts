/**
 * Findings of an outside attack on task tokens, delegation and DPoP (hostile agents and
 * sub-agents over real HTTP against the whole server), each fixed in kind:
 *   1. a forbid on a scope STRING (`secret:**`) passed by an equivalent glob — Cedar now sees
 *      `context.delegation.covers_all`, the kinds the scopes cover whole together;
 *   2. a child delegated with an actor_token outlived the sub-agent's own agent token, and was
 *      usable at audiences the sub-agent's token was not for;
 *   3. RFC 7009 revocation of a DPoP-bound token without its key ended the whole task tree;
 *   4. a task holder added, below the root, the fact that opens a fence (`ticket`) — Cedar now
 *      sees `context.delegation.added_facts`, and the documented fence comes with its pair.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ACCESS, ORCH, SUB, exchange, openTask, delegate, assertRefused, claimsOf, policyDir, tokenProof } from './helpers.js';
import { makeProof, proofKey } from '../helpers/dpop.js';

let h: Harness;
let orch: string;

before(async () => {
  h = await startHarness({ policyDir: policyDir(), config: { tokens: { delegation: { max_depth: 3 } } } });
  orch = await h.login(await h.joinToken(ORCH));
});
after(async () => {
  await h?.close();
});

/** A login for several audiences at once (RFC 8707 `audience` repeated). */
async function loginFor(spiffeId: string, audiences: string[]): Promise<string> {
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await h.joinToken(spiffeId), subject_token_type: 'urn:tessera:token-type:join-token' });
  for (const a of audiences) form.append('audience', a);
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  const body = (await res.json()) as { access_token: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  h.sensitive.add(body.access_token);
  return body.access_token;
}

/** POST /v1/oauth/revoke (RFC 7009) with an optional DPoP proof. */
async function revoke(token: string, dpop?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpop ? { dpop } : {}) }, body: new URLSearchParams({ token }) });
  return { status: res.status, body: await res.json() };
}

async function whoamiBound(token: string, key: ReturnType<typeof proofKey>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `DPoP ${token}`, dpop: makeProof(key, { htm: 'GET', htu: `${h.url}/v1/whoami`, token }) } });
  return { status: res.status, body: await res.json() };
}

test('a forbid on "a task on every secret" (context.delegation.covers_all) holds against every equivalent glob and union', async () => {
  for (const scope of ['secret:**', 'secret:**/**', 'secret:**/*', 'secret:**/**/**', 'secret:* secret:*/**', 'secret:team/** secret:*/** secret:*', 'secret:*/*/** secret:*/* secret:*', 'secret:*/** secret:* tool:records/query']) {
    const r = await exchange(h, { subject_token: orch, scope, purpose: 'everything, said differently' });
    assertRefused(r, 400, 'invalid_request', 'TESSERA_TASK_DELEGATION_DENIED');
    assert.deepEqual(r.body.details?.policies, ['no-task-on-every-secret'], scope);
  }
  // Wide, but not every secret (a one-segment name is not covered): not this forbid's business.
  for (const scope of ['secret:*/**', 'secret:team/** secret:*', 'secret:*/*']) await openTask(h, orch, { scope, purpose: 'wide but not whole' });
});

test('an actor_token child never outlives the sub-agent\'s own agent token, and is usable only where that token is', async () => {
  const sub = await h.login(await h.joinToken(SUB));
  const subExp = claimsOf(sub).exp as number;
  // The orchestrator logs in at least one second later, so its task outlives the sub-agent's token.
  await waitForSecond(claimsOf(sub).iat + 1);
  const orchLater = await h.login(await h.joinToken(ORCH));
  const root = await openTask(h, orchLater, { scope: 'secret:team/**', purpose: 'outlive probe' });
  assert.ok(claimsOf(root.token).exp > subExp, 'the parent must outlive the actor token for this test');
  const child = await delegate(h, root.token, { scope: 'secret:team/a', actor_token: sub, actor_token_type: ACCESS });
  assert.equal(claimsOf(child.token).exp, subExp, 'the default lifetime is cut to the actor token');
  const tooLong = await exchange(h, { subject_token: root.token, scope: 'secret:team/a', actor_token: sub, actor_token_type: ACCESS, requested_ttl: String(claimsOf(root.token).exp - Math.floor(Date.now() / 1000)) });
  assertRefused(tooLong, 400, 'invalid_request', 'TESSERA_TASK_LIFETIME_EXCEEDED');
  assert.match(tooLong.body.error_description, /actor_token/);

  // Audiences: the child's are the parent's that the actor token also has.
  const both = await loginFor(ORCH, [h.url, `${h.url}/mcp`]);
  const wideRoot = await openTask(h, both, { scope: 'secret:team/**', purpose: 'audience probe' });
  assert.deepEqual(claimsOf(wideRoot.token).aud, [h.url, `${h.url}/mcp`]);
  const mcpOnly = await h.login(await h.joinToken(SUB), `${h.url}/mcp`);
  const narrowed = await delegate(h, wideRoot.token, { scope: 'secret:team/a', actor_token: mcpOnly, actor_token_type: ACCESS });
  assert.equal(claimsOf(narrowed.token).aud, `${h.url}/mcp`);
  const apiRefused = await h.agent(narrowed.token, 'GET', '/v1/whoami');
  assert.equal(apiRefused.status, 401);
  assert.equal(apiRefused.body.error.code, 'TESSERA_TOKEN_AUDIENCE_INVALID');
  assertRefused(await exchange(h, { subject_token: wideRoot.token, scope: 'secret:team/a', actor_token: mcpOnly, actor_token_type: ACCESS, audience: h.url }), 400, 'invalid_target', 'TESSERA_TASK_AUDIENCE_WIDENED');
  // A parent only for the API and an actor only for /mcp have no audience in common.
  const apiRoot = await openTask(h, orch, { scope: 'secret:team/**', purpose: 'disjoint audiences' });
  assertRefused(await exchange(h, { subject_token: apiRoot.token, scope: 'secret:team/a', actor_token: mcpOnly, actor_token_type: ACCESS }), 400, 'invalid_target', 'TESSERA_TASK_AUDIENCE_WIDENED');
});

test('RFC 7009: a DPoP-bound token is revoked only with a proof by its key; without it the task tree lives on', async () => {
  const key = proofKey();
  const root = await openTask(h, orch, { scope: 'secret:team/**', purpose: 'bound tree' });
  const bound = await delegate(h, root.token, { label: 'keyed', scope: 'secret:team/**' }, key);
  const grandchild = await delegate(h, bound.token, { label: 'below', scope: 'secret:team/a' }, key);
  const endpoint = `${h.url}/v1/oauth/revoke`;

  const cases: Array<[string, string | undefined, string]> = [
    ['no proof', undefined, 'TESSERA_DPOP_PROOF_MISSING'],
    ['a proof by another key', makeProof(proofKey(), { htm: 'POST', htu: endpoint }), 'TESSERA_DPOP_KEY_MISMATCH'],
    ['a proof for the token endpoint', makeProof(key, { htm: 'POST', htu: `${h.url}/v1/oauth/token` }), 'TESSERA_DPOP_HTU_MISMATCH'],
    ['a proof for GET', makeProof(key, { htm: 'GET', htu: endpoint }), 'TESSERA_DPOP_HTM_MISMATCH'],
    ['a stale proof', makeProof(key, { htm: 'POST', htu: endpoint, iat: Math.floor(Date.now() / 1000) - 3600 }), 'TESSERA_DPOP_IAT_INVALID'],
    ['an unsigned proof', makeProof(key, { htm: 'POST', htu: endpoint, header: { alg: 'none' }, signature: '' }), 'TESSERA_DPOP_ALG_NOT_ALLOWED'],
  ];
  for (const [name, proof, code] of cases) {
    const r = await revoke(bound.token, proof);
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error, 'invalid_dpop_proof', name);
    assert.equal(r.body.code, code, name);
    assert.equal((await whoamiBound(grandchild.token, key)).status, 200, `${name}: the tree must live on`);
  }
  // With its key: the grandchild's holder ends the grandchild; its proof, replayed, ends nothing more.
  const used = makeProof(key, { htm: 'POST', htu: endpoint });
  assert.deepEqual(await revoke(grandchild.token, used), { status: 200, body: {} });
  assert.equal((await whoamiBound(grandchild.token, key)).body.error.code, 'TESSERA_TOKEN_REVOKED');
  assert.equal((await revoke(bound.token, used)).body.code, 'TESSERA_DPOP_REPLAYED');
  assert.equal((await whoamiBound(bound.token, key)).status, 200);
  assert.deepEqual(await revoke(bound.token, makeProof(key, { htm: 'POST', htu: endpoint })), { status: 200, body: {} });
  const after = await whoamiBound(bound.token, key);
  assert.equal(after.status, 401);
  assert.equal(after.body.error.code, 'TESSERA_TOKEN_REVOKED', 'the holder with its key ended its task');
  assert.equal((await h.agent(root.token, 'GET', '/v1/whoami')).status, 200, 'the parent is untouched');

  // A bound agent token, the same; unbound tokens and garbage stay RFC 7009's plain 200.
  const agentKey = proofKey();
  const login = await fetch(`${h.url}/v1/oauth/token`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: tokenProof(h, agentKey) },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: await h.joinToken(SUB), subject_token_type: 'urn:tessera:token-type:join-token' }),
  });
  const boundAgent = ((await login.json()) as { access_token: string }).access_token;
  h.sensitive.add(boundAgent);
  assert.equal((await revoke(boundAgent)).body.code, 'TESSERA_DPOP_PROOF_MISSING');
  assert.equal((await whoamiBound(boundAgent, agentKey)).status, 200);
  assert.equal((await revoke(boundAgent, makeProof(agentKey, { htm: 'POST', htu: endpoint }))).status, 200);
  assert.equal((await whoamiBound(boundAgent, agentKey)).body.error.code, 'TESSERA_TOKEN_REVOKED');
  assert.deepEqual(await revoke('not-a-token'), { status: 200, body: {} });
  assert.deepEqual(await revoke(root.token), { status: 200, body: {} });
});

/** Bounded polling until the clock reaches `second` (epoch seconds): a condition, not a race. */
async function waitForSecond(second: number): Promise<void> {
  for (let i = 0; i < 300 && Math.floor(Date.now() / 1000) < second; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(Math.floor(Date.now() / 1000) >= second);
}

test('a delegator cannot add the fact that opens a fence (context.delegation.added_facts); a ticket from the root is inherited', async () => {
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/team/tickets/t1', { value: 'value-ticket-attack', mode: 'read' })).status, 200);
  h.sensitive.add('value-ticket-attack');
  const none = await openTask(h, orch, { scope: 'secret:team/**', purpose: 'no ticket' });
  const read = async (token: string) => h.agent(token, 'GET', '/v1/secrets/team/tickets/t1');
  assert.equal((await read(none.token)).body.error.code, 'TESSERA_POLICY_DENIED');
  for (const extra of [{ label: 'helper' }, { label: 'helper', tctx: '{"step":"1"}' }] as Array<Record<string, string>>) {
    const child = await delegate(h, none.token, { ...extra, scope: 'secret:team/tickets/**' });
    assert.equal((await read(child.token)).body.error.code, 'TESSERA_POLICY_DENIED', 'a child without the fact stays fenced');
  }
  const sub = await h.login(await h.joinToken(SUB));
  for (const extra of [{ label: 'helper' }, { actor_token: sub, actor_token_type: ACCESS }] as Array<Record<string, string>>) {
    const r = await exchange(h, { subject_token: none.token, ...extra, scope: 'secret:team/tickets/**', tctx: '{"ticket":"INC-42"}' });
    assertRefused(r, 400, 'invalid_request', 'TESSERA_TASK_DELEGATION_DENIED');
    assert.deepEqual(r.body.details?.policies, ['ticket-only-from-the-root']);
  }
  // Declared at the root, the fact is inherited (not added) and the fence opens.
  const inc = await openTask(h, orch, { scope: 'secret:team/**', purpose: 'ticket', tctx: '{"ticket":"INC-42"}' });
  const child = await delegate(h, inc.token, { label: 'reader', scope: 'secret:team/tickets/**', tctx: '{"ticket":"INC-42","step":"2"}' });
  assert.equal((await read(child.token)).status, 200);
});
