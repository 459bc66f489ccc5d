/**
 * Task tokens and delegation through RFC 8693 token exchange over real HTTP, against the whole
 * server (src/main.ts): root tasks, delegation by actor token and by label, every narrowing rule,
 * token confusion, forged chains, revoked parents, RFC 7009 and RFC 7662 — each refusal with its
 * exact code — and what is stored and audited (never a token).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ACCESS, JWT, ORCH, SUB, INTRUDER, exchange, openTask, delegate, assertRefused, claimsOf, headerOf, tamper, policyDir, tokenProof } from './helpers.js';
import { proofKey, thumbprint } from '../helpers/dpop.js';

let h: Harness;
let orch: string;
let sub: string;
let intruder: string;

before(async () => {
  h = await startHarness({ policyDir: policyDir(), config: { tokens: { delegation: { max_depth: 3 } } } });
  orch = await h.login(await h.joinToken(ORCH));
  sub = await h.login(await h.joinToken(SUB));
  intruder = await h.login(await h.joinToken(INTRUDER));
});
after(async () => {
  await h?.close();
});

test('root task: RFC 8693 response, typ tessera-task+jwt, the claims of DESIGN.md, a stored node and one task.created event', async () => {
  const r = await exchange(h, { subject_token: orch, scope: 'secret:team/** cred:mem/reader', purpose: 'triage INC-42', tctx: '{"ticket":"INC-42"}', requested_ttl: '120' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.body.issued_token_type, ACCESS);
  assert.equal(r.body.token_type, 'Bearer');
  assert.equal(r.body.scope, 'secret:team/** cred:mem/reader');
  assert.match(r.body.txn, /^task_[A-Za-z0-9_-]{22}$/);
  assert.ok(r.body.expires_in > 100 && r.body.expires_in <= 120);
  const token = r.body.access_token as string;
  assert.deepEqual({ alg: headerOf(token).alg, typ: headerOf(token).typ }, { alg: 'ES256', typ: 'tessera-task+jwt' });
  const c = claimsOf(token);
  assert.equal(c.iss, h.url);
  assert.equal(c.sub, ORCH);
  assert.deepEqual(c.act, { sub: ORCH });
  assert.equal(c.txn, r.body.txn);
  assert.equal(c.rtxn, c.txn);
  assert.equal(c.ptxn, undefined);
  assert.deepEqual(c.anc, []);
  assert.equal(c.depth, 0);
  assert.equal(c.max_depth, 3);
  assert.equal(c.scope, 'secret:team/** cred:mem/reader');
  assert.equal(c.purpose, 'triage INC-42');
  assert.deepEqual(c.tctx, { ticket: 'INC-42' });
  assert.equal(c.tessera.attestor, 'join_token');
  assert.equal(c.aud, h.url, 'a root task gets its agent token\'s audiences by default');
  assert.equal(c.cnf, undefined);

  const row = await h.tessera.store.get<{ txn: string; parent: string | null; root: string; actor: string; scope: string; jti_hmac: string }>('SELECT txn, parent, root, actor, scope, jti_hmac FROM tasks WHERE txn = ?', [c.txn]);
  assert.deepEqual({ ...row, jti_hmac: undefined }, { txn: c.txn, parent: null, root: c.txn, actor: ORCH, scope: c.scope, jti_hmac: undefined });
  assert.equal(row!.jti_hmac, h.tessera.audit.hmac(c.jti), 'the token is stored only as the HMAC of its jti');
  await h.tessera.audit.flush();
  const events = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'task.created' AND txn = ?", [c.txn]);
  assert.equal(events.length, 1);
  const e = JSON.parse(events[0]!.body);
  assert.equal(e.actor.id, ORCH);
  assert.equal(e.purpose, 'triage INC-42');
  assert.equal(e.details.jti_hmac, row!.jti_hmac);
  assert.equal(e.details.depth, 0);
  assert.ok(!events[0]!.body.includes(token.split('.')[2]!), 'never the token');
});

test('root task refusals: scope and purpose required, no sub-agent from an agent token, audience, lifetime, depth, claims, policy', async () => {
  assertRefused(await exchange(h, { subject_token: orch, purpose: 'p' }), 400, 'invalid_scope', 'TESSERA_OAUTH_INVALID_SCOPE');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_PARAMETER_INVALID');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', label: 'helper' }), 400, 'invalid_request', 'TESSERA_TASK_PARENT_REQUIRED');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', actor_token: sub, actor_token_type: ACCESS }), 400, 'invalid_request', 'TESSERA_TASK_PARENT_REQUIRED');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', audience: `${h.url}/mcp` }), 400, 'invalid_target', 'TESSERA_TASK_AUDIENCE_WIDENED');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', audience: 'https://elsewhere.example' }), 400, 'invalid_target', 'TESSERA_OAUTH_INVALID_TARGET');
  // The agent token lives 5 minutes: a 10-minute task would outlive it; 20 minutes exceeds tokens.task_ttl too.
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', requested_ttl: '600' }), 400, 'invalid_request', 'TESSERA_TASK_LIFETIME_EXCEEDED');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', requested_ttl: '1200' }), 400, 'invalid_request', 'TESSERA_TASK_LIFETIME_EXCEEDED');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', max_depth: '4' }), 400, 'invalid_request', 'TESSERA_TASK_MAX_DEPTH_RAISED');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', max_depth: '-1' }), 400, 'invalid_request', 'TESSERA_TASK_PARAMETER_INVALID');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', max_depth: '99999999999999' }), 400, 'invalid_request', 'TESSERA_TASK_PARAMETER_INVALID');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', max_depth: '9'.repeat(40) }), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'x'.repeat(3000) }), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', act: JSON.stringify({ sub: SUB }) }), 400, 'invalid_request', 'TESSERA_TASK_CLAIM_PARAMETER');
  assertRefused(await exchange(h, { subject_token: orch, scope: 'secret:team/a', purpose: 'p', depth: '0' }), 400, 'invalid_request', 'TESSERA_TASK_CLAIM_PARAMETER');
  // Cedar token.delegate: a task on every secret is forbidden by policy.
  const denied = await exchange(h, { subject_token: orch, scope: 'secret:**', purpose: 'everything' });
  assertRefused(denied, 400, 'invalid_request', 'TESSERA_TASK_DELEGATION_DENIED');
  await h.tessera.audit.flush();
  const refused = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'task.refused'");
  const last = JSON.parse(refused.at(-1)!.body);
  assert.equal(last.actor.id, ORCH);
  assert.equal(last.reason.code, 'TESSERA_TASK_DELEGATION_DENIED');
  assert.deepEqual(last.reason.policies, ['no-task-on-every-secret']);
});

test('delegation to a sub-agent with its own identity: act chain, acting principal, its own attestation facts', async () => {
  const root = await openTask(h, orch, { scope: 'secret:team/** cred:mem/reader', purpose: 'triage', tctx: '{"ticket":"INC-42"}' });
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/tickets/**', purpose: 'summarize the ticket' });
  const c = claimsOf(child.token);
  assert.equal(c.sub, ORCH, 'sub stays the original principal');
  assert.deepEqual(c.act, { sub: SUB, act: { sub: ORCH } }, 'RFC 8693 §4.1: the newest actor outermost');
  assert.equal(c.ptxn, root.txn);
  assert.equal(c.rtxn, root.txn);
  assert.deepEqual(c.anc, [root.txn]);
  assert.equal(c.depth, 1);
  assert.deepEqual(c.tctx, { ticket: 'INC-42' }, 'task facts are inherited');
  assert.ok(c.exp <= claimsOf(root.token).exp);
  const who = await h.agent(child.token, 'GET', '/v1/whoami');
  assert.equal(who.status, 200, JSON.stringify(who.body));
  assert.equal(who.body.spiffe_id, SUB, 'the acting agent is the sub-agent');
  assert.equal(who.body.token_type, 'task');
  assert.deepEqual(who.body.task.chain, [ORCH]);
  assert.equal(who.body.task.depth, 1);
  assert.equal(who.body.task.label, null);
  // Cedar token.delegate may refuse a delegatee.
  assertRefused(await exchange(h, { subject_token: root.token, actor_token: intruder, actor_token_type: ACCESS, scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_DELEGATION_DENIED');
});

test('delegation to a sub-agent without an identity (label): it acts as its delegator, named by the label', async () => {
  const root = await openTask(h, orch, { scope: 'secret:team/**' });
  const child = await delegate(h, root.token, { label: 'researcher', scope: 'secret:team/docs/**' });
  assert.deepEqual(claimsOf(child.token).act, { sub: ORCH, label: 'researcher', act: { sub: ORCH } });
  assert.equal(claimsOf(child.token).purpose, 'test task', 'the purpose is inherited unless given');
  const who = await h.agent(child.token, 'GET', '/v1/whoami');
  assert.equal(who.body.spiffe_id, ORCH);
  assert.equal(who.body.task.label, 'researcher');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'shell', scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_DELEGATION_DENIED');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'bad\u001b[31mlabel', scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_PARAMETER_INVALID');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'x', actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_PARAMETER_INVALID');
  assertRefused(await exchange(h, { subject_token: root.token, scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_PARAMETER_INVALID');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'x' }), 400, 'invalid_scope', 'TESSERA_OAUTH_INVALID_SCOPE');
});

test('narrowing over HTTP: scope, trim on request, lifetime, depth, max_depth, audience, task facts', async () => {
  const root = await openTask(h, orch, { scope: 'secret:team/a/* tool:records/query', max_depth: '2', tctx: '{"ticket":"INC-42"}' });
  for (const wider of ['secret:team/a/**', 'secret:team/a/x/y', 'secret:team/ab', 'secret:team/*/x', 'tool:records/*', 'tool:*/query']) {
    assertRefused(await exchange(h, { subject_token: root.token, label: 'w', scope: wider }), 400, 'invalid_scope', 'TESSERA_TASK_SCOPE_WIDENED');
  }
  assertRefused(await exchange(h, { subject_token: root.token, label: 'w', scope: 'secret:team/a%2Fx' }), 400, 'invalid_scope', 'TESSERA_OAUTH_INVALID_SCOPE');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'w', scope: 'file:/etc/passwd' }), 400, 'invalid_scope', 'TESSERA_OAUTH_INVALID_SCOPE');
  const trimmed = await delegate(h, root.token, { label: 'w', scope: 'secret:team/** tool:records/query', scope_mode: 'trim' });
  assert.equal(trimmed.body.scope, 'tool:records/query secret:team/a/*', 'trimmed to what the parent holds, and said so');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'w', scope: 'secret:team/a/x', requested_ttl: '800' }), 400, 'invalid_request', 'TESSERA_TASK_LIFETIME_EXCEEDED');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'w', scope: 'secret:team/a/x', max_depth: '3' }), 400, 'invalid_request', 'TESSERA_TASK_MAX_DEPTH_RAISED');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'w', scope: 'secret:team/a/x', audience: `${h.url}/mcp` }), 400, 'invalid_target', 'TESSERA_TASK_AUDIENCE_WIDENED');
  assertRefused(await exchange(h, { subject_token: root.token, label: 'w', scope: 'secret:team/a/x', tctx: '{"ticket":"INC-43"}' }), 400, 'invalid_request', 'TESSERA_TASK_CONTEXT_CHANGED');
  const c1 = await delegate(h, root.token, { label: 'one', scope: 'secret:team/a/x', tctx: '{"ticket":"INC-42","step":"1"}' });
  assert.deepEqual(claimsOf(c1.token).tctx, { ticket: 'INC-42', step: '1' });
  const c2 = await delegate(h, c1.token, { label: 'two', scope: 'secret:team/a/x' });
  assert.equal(claimsOf(c2.token).depth, 2);
  assert.deepEqual(claimsOf(c2.token).anc, [root.txn, c1.txn]);
  assertRefused(await exchange(h, { subject_token: c2.token, label: 'three', scope: 'secret:team/a/x' }), 400, 'invalid_request', 'TESSERA_TASK_DEPTH_EXCEEDED');
  // A child that lowers max_depth bounds its own subtree.
  const low = await delegate(h, root.token, { label: 'low', scope: 'secret:team/a/x', max_depth: '1' });
  assertRefused(await exchange(h, { subject_token: low.token, label: 'deeper', scope: 'secret:team/a/x' }), 400, 'invalid_request', 'TESSERA_TASK_DEPTH_EXCEEDED');
});

test('agent and task tokens are never interchangeable, and each refusal says why', async () => {
  const root = await openTask(h, orch);
  // A task token is not an attestation: no login with it (nor with an agent token).
  const asLogin = await exchange(h, { subject_token: root.token, subject_token_type: JWT });
  assertRefused(asLogin, 400, 'invalid_grant', 'TESSERA_OAUTH_NOT_ATTESTATION');
  assert.match(asLogin.body.error_description, /task token is not an attestation/);
  const agentLogin = await exchange(h, { subject_token: orch, subject_token_type: JWT });
  assertRefused(agentLogin, 400, 'invalid_grant', 'TESSERA_OAUTH_NOT_ATTESTATION');
  assert.match(agentLogin.body.error_description, /agent token is not an attestation/);
  // A task token is not an identity: not an actor token.
  const asActor = await exchange(h, { subject_token: root.token, actor_token: root.token, actor_token_type: ACCESS, scope: 'secret:team/a' });
  assertRefused(asActor, 400, 'invalid_request', 'TESSERA_TASK_ACTOR_TOKEN_INVALID');
  assert.match(asActor.body.error_description, /task token is not an identity/);
  assertRefused(await exchange(h, { subject_token: root.token, actor_token: sub, actor_token_type: JWT, scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_ACTOR_TOKEN_INVALID');
  assertRefused(await exchange(h, { subject_token: root.token, actor_token: 'not-a-token', actor_token_type: ACCESS, scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_ACTOR_TOKEN_INVALID');
  // An agent token is not a parent task.
  const notParent = await exchange(h, { subject_token: orch, label: 'x', scope: 'secret:team/a', purpose: 'p' });
  assertRefused(notParent, 400, 'invalid_request', 'TESSERA_TASK_PARENT_REQUIRED');
  assert.match(notParent.body.error_description, /agent token is not a parent task/);
  // An access_token subject must be Tessera's own; task parameters on a login are a confused client.
  assertRefused(await exchange(h, { subject_token: 'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL290aGVyIn0.c2ln', scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE');
  const join = await h.joinToken(ORCH);
  assertRefused(await exchange(h, { subject_token: join, subject_token_type: 'urn:tessera:token-type:join-token', purpose: 'p' }), 400, 'invalid_request', 'TESSERA_TASK_PARAMETER_INVALID');
});

test('a forged or reordered act chain fails the signature; actor claims in parameters are refused', async () => {
  const root = await openTask(h, orch);
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/a' });
  const forged = [
    tamper(child.token, (c) => ({ ...c, act: { sub: INTRUDER, act: c.act.act } })),
    tamper(child.token, (c) => ({ ...c, act: { sub: ORCH, act: { sub: SUB } } })), // reordered
    tamper(child.token, (c) => ({ ...c, act: { sub: SUB } })), // a hop removed
    tamper(child.token, (c) => ({ ...c, anc: [] })), // its ancestry erased
    tamper(child.token, (c) => ({ ...c, scope: 'secret:**' })),
  ];
  for (const f of forged) {
    const r = await h.agent(f, 'GET', '/v1/secrets/team/a');
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_TOKEN_SIGNATURE_INVALID');
    const d = await exchange(h, { subject_token: f, label: 'x', scope: 'secret:team/a' });
    assertRefused(d, 400, 'invalid_grant', 'TESSERA_OAUTH_INVALID_GRANT');
  }
  for (const name of ['act', 'sub', 'txn', 'ptxn', 'rtxn', 'anc', 'cnf', 'may_act']) {
    assertRefused(await exchange(h, { subject_token: child.token, label: 'x', scope: 'secret:team/a', [name]: '{"sub":"spiffe://tessera.local/ns/ops/sa/intruder"}' }), 400, 'invalid_request', 'TESSERA_TASK_CLAIM_PARAMETER');
  }
});

test('a child is refused once its parent (or an agent of its chain) is revoked; delegating from it too', async () => {
  const root = await openTask(h, orch, { scope: 'secret:team/**' });
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/**' });
  const grandchild = await delegate(h, child.token, { label: 'leaf', scope: 'secret:team/a' });
  await h.admin('PUT', '/v1/admin/secrets/team/a', { value: 'revocation-test-value', mode: 'read' });
  h.sensitive.add('revocation-test-value');
  assert.equal((await h.agent(grandchild.token, 'GET', '/v1/secrets/team/a')).status, 200);
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: child.txn, reason: 'test' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  assert.equal(rev.body.known, true);
  for (const t of [child.token, grandchild.token]) {
    const r = await h.agent(t, 'GET', '/v1/secrets/team/a');
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_TOKEN_REVOKED');
  }
  assert.equal((await h.agent(root.token, 'GET', '/v1/secrets/team/a')).status, 200, 'the parent above is unaffected');
  const d = await exchange(h, { subject_token: grandchild.token, label: 'x', scope: 'secret:team/a' });
  assertRefused(d, 400, 'invalid_grant', 'TESSERA_OAUTH_INVALID_GRANT');
  assert.equal(d.body.code, 'TESSERA_OAUTH_INVALID_GRANT');
  // Lifted: the tree works again.
  assert.equal((await h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`)).status, 200);
  assert.equal((await h.agent(grandchild.token, 'GET', '/v1/secrets/team/a')).status, 200);
  // Revoking the orchestrator (the root of the chain) refuses every task below it, whoever acts.
  const r2 = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: ORCH, ttl: '1h' });
  assert.equal(r2.status, 201);
  assert.equal((await h.agent(child.token, 'GET', '/v1/secrets/team/a')).body.error.code, 'TESSERA_TOKEN_REVOKED');
  assert.equal((await h.admin('DELETE', `/v1/admin/revocations/${r2.body.id}`)).status, 200);
  // An unknown task id is recorded anyway, with a warning.
  const typo = await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: 'task_doesNotExist123456789', ttl: '1m' });
  assert.equal(typo.body.known, false);
  assert.match(typo.body.warning, /not in the task tree/);
});

test('a DPoP proof at the exchange binds the child to the proving key; a bound parent yields only bound children, proven by its key; dpop_jkt is refused', async () => {
  const root = await openTask(h, orch);
  const key = proofKey();
  const jkt = await thumbprint(key);
  const bound = await delegate(h, root.token, { label: 'keyed', scope: 'secret:team/a' }, key);
  assert.equal(bound.body.token_type, 'DPoP');
  assert.deepEqual(claimsOf(bound.token).cnf, { jkt });
  // A child of the bound parent needs a proof by the parent's key, and is bound to it.
  assertRefused(await exchange(h, { subject_token: bound.token, label: 'next', scope: 'secret:team/a' }), 400, 'invalid_request', 'TESSERA_TASK_BINDING_REQUIRED');
  assertRefused(await exchange(h, { subject_token: bound.token, label: 'next', scope: 'secret:team/a' }, { dpop: tokenProof(h, proofKey()) }), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH');
  const grandchild = await delegate(h, bound.token, { label: 'next', scope: 'secret:team/a' }, key);
  assert.deepEqual(claimsOf(grandchild.token).cnf, { jkt });
  // A thumbprint by parameter proves no key: refused, never ignored (a bearer token the client believes bound).
  for (const jktParam of [jkt, 'short']) {
    assertRefused(await exchange(h, { subject_token: root.token, label: 'keyed', scope: 'secret:team/a', dpop_jkt: jktParam }), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
  }
  assertRefused(await exchange(h, { subject_token: bound.token, label: 'next', scope: 'secret:team/a', dpop_jkt: jkt }), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
});

test('RFC 7662 introspection shows a task token\'s task and chain; RFC 7009 by its holder ends the task and its subtree', async () => {
  const root = await openTask(h, orch);
  const child = await delegate(h, root.token, { actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/a' });
  const form = (token: string) => new URLSearchParams({ token });
  const intro = await fetch(`${h.url}/v1/oauth/introspect`, { method: 'POST', headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: form(child.token) });
  const ib = (await intro.json()) as any;
  assert.equal(ib.active, true);
  assert.equal(ib.tessera_token_type, 'task');
  assert.equal(ib.txn, child.txn);
  assert.equal(ib.rtxn, root.txn);
  assert.deepEqual(ib.act, { sub: SUB, act: { sub: ORCH } });
  assert.equal(ib.scope, 'secret:team/a');
  const rv = await fetch(`${h.url}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form(root.token) });
  assert.equal(rv.status, 200);
  for (const t of [root.token, child.token]) assert.equal((await h.agent(t, 'GET', '/v1/whoami')).body.error.code, 'TESSERA_TOKEN_REVOKED');
  assert.equal((await h.agent(orch, 'GET', '/v1/whoami')).status, 200, 'the agent token itself is untouched');
  const list = await h.admin('GET', '/v1/admin/revocations?kind=task&active=true');
  assert.ok(list.body.revocations.some((r: any) => r.target === root.txn && r.expires_at !== null), 'recorded as a task revocation that ends after the task could have');
});

test('a task token is accepted wherever an agent token is, for its own audience only; a downstream-typed token nowhere', async () => {
  const root = await openTask(h, orch);
  assert.equal((await h.agent(root.token, 'GET', '/v1/whoami')).status, 200);
  // The task is for Tessera's API only (its agent token was): the gateway refuses it.
  const mcp = await fetch(`${h.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${root.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }) });
  assert.equal(mcp.status, 401);
  assert.equal(((await mcp.json()) as any).error.data.code, 'TESSERA_TOKEN_AUDIENCE_INVALID');
});
