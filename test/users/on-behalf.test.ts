/**
 * Agents acting for a person, over real HTTP against the whole server, with a person's tokens
 * from a real OpenID Provider (oidc-provider, obtained by openid-client): the RFC 8693 exchange
 * (subject = the person's access token, actor = the agent's own token) opens a root task whose
 * `sub` is the person and whose `act` is the agent; every request needs Cedar to permit the agent
 * AND the person (User tags, Group parents, context.actor); delegation keeps the person;
 * `revoke user` refuses every task acting for them and drops their leases; a DPoP-bound acting
 * agent must prove its key, and the proof binds the person's task; each bad input has its code.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ACCESS, JWT, ORCH, SUB, assertRefused, claimsOf, delegate, exchange, openTask, policyDir } from '../tasks/helpers.js';
import { startOp, userTokens, API_AUDIENCE, type TestOp } from './op.js';
import { USER_POLICIES } from './policies.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { makeProof, proofKey, thumbprint, type ProofKey } from '../helpers/dpop.js';

const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';


let h: Harness;
let op: TestOp;
let orch: string;
let sub: string;
const people: Record<string, { accessToken: string; idToken: string }> = {};

before(async () => {
  op = await startOp();
  h = await startHarness({
    policyDir: policyDir(USER_POLICIES),
    engines: [new MemoryEngine('mem')],
    config: { users: { issuers: [{ name: 'corp', issuer: op.issuer, discovery: true, audience: API_AUDIENCE, attributes: { department: 'department', email: 'email' }, groups_claim: 'groups' }] } },
  });
  for (const [path, value] of Object.entries({ 'team/general/a': 'value-general', 'team/finance/q3': 'value-finance', 'hr/payroll': 'value-payroll' })) {
    assert.equal((await h.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode: 'read' })).status, 200);
    h.sensitive.add(value);
  }
  orch = await h.login(await h.joinToken(ORCH));
  sub = await h.login(await h.joinToken(SUB));
  for (const u of ['alice', 'bob', 'mallory']) {
    people[u] = await userTokens(op, u);
    h.sensitive.add(people[u]!.accessToken);
    h.sensitive.add(people[u]!.idToken);
  }
});
after(async () => {
  await h?.close();
  await op?.close();
});

const read = (token: string, path: string) => h.agent(token, 'GET', `/v1/secrets/${path}`);
const forUser = (user: string, params: Record<string, string> = {}) =>
  exchange(h, { subject_token: people[user]!.accessToken, subject_token_type: ACCESS, actor_token: orch, actor_token_type: ACCESS, scope: 'secret:team/** secret:hr/**', purpose: `help ${user}`, ...params });

test('a person\'s access token + the agent\'s token → a root task: sub = the person, act = the agent, usr = what policy knows', async () => {
  const r = await forUser('alice');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const c = claimsOf(r.body.access_token);
  assert.equal(c.sub, 'alice');
  assert.deepEqual(c.act, { sub: ORCH });
  assert.deepEqual(c.usr, { iss: 'corp', attrs: { department: 'finance', email: 'alice@example.org' }, groups: ['finance', 'staff'] });
  assert.ok(c.exp * 1000 <= claimsOf(people['alice']!.accessToken).exp * 1000, 'never beyond the person\'s token');
  const who = await h.agent(r.body.access_token, 'GET', '/v1/whoami');
  assert.equal(who.body.spiffe_id, ORCH, 'the agent acts');
  const row = await h.tessera.store.get<{ user_id: string; sub: string; actor: string }>('SELECT user_id, sub, actor FROM tasks WHERE txn = ?', [r.body.txn]);
  assert.deepEqual({ ...row }, { user_id: 'alice', sub: 'alice', actor: ORCH });
  // Also declared as a plain jwt (RFC 8693 §3).
  assert.equal((await forUser('alice', { subject_token_type: JWT })).status, 200);
});

test('DPoP: a bound acting agent must prove its key; the proof binds the person\'s task, which then needs a proof by that key at every request', async () => {
  const key = proofKey();
  const tokenProof = (k: ProofKey) => makeProof(k, { htm: 'POST', htu: `${h.url}/v1/oauth/token` });
  const login = await exchange(h, { subject_token: await h.joinToken(ORCH), subject_token_type: 'urn:tessera:token-type:join-token' }, { dpop: tokenProof(key) });
  assert.equal(login.body.token_type, 'DPoP', JSON.stringify(login.body));
  const boundOrch = login.body.access_token as string;
  const withActor = (extra: Record<string, string> = {}) => ({ subject_token: people['alice']!.accessToken, subject_token_type: ACCESS, actor_token: boundOrch, actor_token_type: ACCESS, scope: 'secret:team/**', purpose: 'bound help', ...extra });
  assertRefused(await exchange(h, withActor()), 400, 'invalid_request', 'TESSERA_TASK_BINDING_REQUIRED');
  assertRefused(await exchange(h, withActor(), { dpop: tokenProof(proofKey()) }), 400, 'invalid_grant', 'TESSERA_TASK_KEY_MISMATCH');
  assertRefused(await exchange(h, withActor({ dpop_jkt: await thumbprint(key) })), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
  const bad = await exchange(h, withActor(), { dpop: makeProof(key, { htm: 'GET', htu: `${h.url}/v1/oauth/token` }) });
  assert.equal(bad.body.code, 'TESSERA_DPOP_HTM_MISMATCH');
  const ok = await exchange(h, withActor(), { dpop: tokenProof(key) });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.token_type, 'DPoP');
  const c = claimsOf(ok.body.access_token);
  assert.equal(c.sub, 'alice');
  assert.equal(c.cnf.jkt, await thumbprint(key));
  const url = `${h.url}/v1/secrets/team/general/a`;
  const bound = await fetch(url, { headers: { authorization: `DPoP ${ok.body.access_token}`, dpop: makeProof(key, { htm: 'GET', htu: url, token: ok.body.access_token }) } });
  assert.equal(bound.status, 200, 'agent and person permit, with the proof');
  const asBearer = await read(ok.body.access_token, 'team/general/a');
  assert.equal(asBearer.status, 401);
  assert.equal(asBearer.body.error.code, 'TESSERA_DPOP_TOKEN_BOUND');
  // An unbound agent with a proof: the person's task is bound to the proving key.
  const other = proofKey();
  const fromUnbound = await exchange(h, { ...withActor(), actor_token: orch }, { dpop: tokenProof(other) });
  assert.equal(fromUnbound.status, 200, JSON.stringify(fromUnbound.body));
  assert.equal(claimsOf(fromUnbound.body.access_token).cnf.jkt, await thumbprint(other));
});

test('both must permit: agent ∩ person, at every request', async () => {
  const alice = (await forUser('alice')).body.access_token as string;
  const bob = (await forUser('bob')).body.access_token as string;
  assert.equal((await read(alice, 'team/finance/q3')).body.value, 'value-finance');
  assert.equal((await read(bob, 'team/general/a')).body.value, 'value-general');
  // The agent may (team/**), the person may not (bob is not in finance).
  const denied = await read(bob, 'team/finance/q3');
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, 'TESSERA_POLICY_USER_DENIED');
  // The person may (hr for people), the agent may not: the agent's ceiling holds.
  const ceiling = await read(alice, 'hr/payroll');
  assert.equal(ceiling.status, 403);
  assert.equal(ceiling.body.error.code, 'TESSERA_POLICY_DENIED');
  // The agent's own token (no person) reads team/finance by policy alone, as before.
  assert.equal((await read(orch, 'team/finance/q3')).status, 200);
});

test('a person whose entitlement does not allow agents at all: the task is refused (token.delegate for the User)', async () => {
  const r = await forUser('mallory');
  assertRefused(r, 400, 'invalid_request', 'TESSERA_TASK_DELEGATION_DENIED');
  assert.equal(r.body.error_description.includes('mallory'), true);
});

test('delegation keeps the person; Cedar sees context.actor = the sub-agent acting for them', async () => {
  const root = await forUser('alice');
  const child = await delegate(h, root.body.access_token, { actor_token: sub, actor_token_type: ACCESS, scope: 'secret:team/**' });
  const c = claimsOf(child.token);
  assert.equal(c.sub, 'alice');
  assert.deepEqual(c.usr, claimsOf(root.body.access_token).usr);
  assert.equal((await read(child.token, 'team/general/a')).status, 200);
  // A forbid for the person when the summarizer acts: denied for the child, not for the root.
  const r = await read(child.token, 'team/finance/q3');
  assert.equal(r.body.error?.code, 'TESSERA_POLICY_USER_DENIED');
  assert.equal((await read(root.body.access_token, 'team/finance/q3')).status, 200);
  const label = await delegate(h, root.body.access_token, { label: 'reader', scope: 'secret:team/general/**' });
  assert.equal(claimsOf(label.token).sub, 'alice');
  assert.equal((await read(label.token, 'team/general/a')).status, 200);
});

test('revoke user: every task acting for the person is refused at once, their leases are dropped, and no new one opens', async () => {
  const lease = async (token: string): Promise<string> => {
    const r = await h.agent(token, 'POST', '/v1/creds/mem/reader', {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    h.sensitive.add(String(r.body.data.password));
    return r.body.lease_id as string;
  };
  const root = await forUser('bob', { scope: 'secret:team/** cred:mem/reader' });
  const child = await delegate(h, root.body.access_token, { label: 'helper', scope: 'secret:team/general/** cred:mem/reader' });
  assert.equal((await read(child.token, 'team/general/a')).status, 200);
  const bobLeases = [await lease(root.body.access_token), await lease(child.token)];
  const alicesLease = await lease((await forUser('alice', { scope: 'cred:mem/reader' })).body.access_token);
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'user', target: 'bob', reason: 'left the company' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  assert.equal(rev.body.leases_revoked, 2, 'the leases of every task acting for bob, at any depth');
  const leases = (await h.admin('GET', '/v1/admin/leases?limit=100')).body.leases as any[];
  for (const id of bobLeases) assert.equal(leases.find((l) => l.lease_id === id)?.state, 'revoked');
  assert.equal(leases.find((l) => l.lease_id === alicesLease)?.state, 'active', 'another person\'s lease stays');
  for (const t of [root.body.access_token, child.token]) {
    const r = await read(t, 'team/general/a');
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_TOKEN_REVOKED');
  }
  assertRefused(await forUser('bob'), 400, 'invalid_grant', 'TESSERA_USER_REVOKED');
  // Another person is untouched.
  assert.equal((await forUser('alice')).status, 200);
  assert.equal((await h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`)).status < 300, true);
  assert.equal((await forUser('bob')).status, 200);
});

test('bad inputs, each with its code', async () => {
  // An ID token where the issuer requires an access token.
  assertRefused(await forUser('alice', { subject_token: people['alice']!.idToken, subject_token_type: ID_TOKEN }), 400, 'invalid_grant', 'TESSERA_USER_TOKEN_TYPE_INVALID');
  assertRefused(await forUser('alice', { subject_token: people['alice']!.idToken, subject_token_type: JWT }), 400, 'invalid_grant', 'TESSERA_USER_TOKEN_TYPE_INVALID');
  // A token from a provider nobody configured.
  const stranger = await startOp();
  try {
    const t = await userTokens(stranger, 'alice');
    h.sensitive.add(t.accessToken);
    assertRefused(await forUser('alice', { subject_token: t.accessToken }), 400, 'invalid_grant', 'TESSERA_USER_ISSUER_UNTRUSTED');
  } finally {
    await stranger.close();
  }
  // The right provider, but issued for another service.
  const elsewhere = await userTokens(op, 'alice', { resource: 'https://another-service.test' });
  h.sensitive.add(elsewhere.accessToken);
  assertRefused(await forUser('alice', { subject_token: elsewhere.accessToken }), 400, 'invalid_grant', 'TESSERA_USER_AUDIENCE_INVALID');
  // The actor must be an agent token: a task token is not an identity.
  const task = await openTask(h, orch, { scope: 'secret:team/**' });
  assertRefused(await forUser('alice', { actor_token: task.token }), 400, 'invalid_request', 'TESSERA_USER_ACTOR_INVALID');
  assertRefused(await forUser('alice', { actor_token_type: JWT }), 400, 'invalid_request', 'TESSERA_USER_ACTOR_INVALID');
  // A person's token alone is not a login, nor a task.
  const r = await exchange(h, { subject_token: people['alice']!.accessToken, subject_token_type: ACCESS, scope: 'secret:team/**', purpose: 'x' });
  assertRefused(r, 400, 'invalid_request', 'TESSERA_USER_ACTOR_REQUIRED');
  // A label on a person's root task; a claim-named parameter.
  assertRefused(await forUser('alice', { label: 'x' }), 400, 'invalid_request', 'TESSERA_TASK_PARENT_REQUIRED');
  assertRefused(await forUser('alice', { sub: 'root' }), 400, 'invalid_request', 'TESSERA_TASK_CLAIM_PARAMETER');
  // A tampered person's token.
  const [hd, p, s] = people['alice']!.accessToken.split('.');
  const forged = `${hd}.${Buffer.from(JSON.stringify({ ...claimsOf(people['alice']!.accessToken), groups: ['finance', 'staff', 'admins'] })).toString('base64url')}.${s}`;
  void p;
  assertRefused(await forUser('alice', { subject_token: forged }), 400, 'invalid_grant', 'TESSERA_USER_TOKEN_INVALID');
});
