/**
 * Task tokens in the token service: the JOSE `typ` is pinned per use on every verification,
 * cached or not (RFC 8725 §3.11); the tree claims must agree with each other even under
 * Tessera's own signature; the service never signs an inconsistent task; a verified task token
 * becomes the acting agent's principal with its task, chain and facts; and the claim model
 * (RFC 8693 §4.1 act nesting).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness, TRUST_DOMAIN } from '../tokens/helpers.js';
import { signEs256 } from '../../src/tokens/jws.js';
import { actorsOf, nestActors, taskClaimsProblem, type TaskClaims } from '../../src/tasks/claims.js';
import { isTesseraError } from '../../src/shared/errors.js';
import type { TaskTokenInput } from '../../src/tokens/service.js';

const A = `spiffe://${TRUST_DOMAIN}/ns/ops/sa/orchestrator`;
const B = `spiffe://${TRUST_DOMAIN}/ns/ops/sa/worker`;
const T1 = 'task_AAAAAAAAAAAAAAAAAAAAAA';
const T2 = 'task_BBBBBBBBBBBBBBBBBBBBBB';
const T3 = 'task_CCCCCCCCCCCCCCCCCCCCCC';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h?.close();
});

const code = (c: string) => (e: unknown): boolean => {
  assert.ok(isTesseraError(e), String(e));
  assert.equal(e.code, c, e.message);
  return true;
};

function child(over: Partial<TaskTokenInput> = {}): TaskTokenInput {
  return {
    sub: A, aud: h.base, exp: Math.floor(h.clock.now() / 1000) + 300,
    act: nestActors([{ sub: A }, { sub: B }, { sub: B, label: 'leaf' }]),
    txn: T3, ptxn: T2, rtxn: T1, anc: [T1, T2], scope: 'secret:a/** tool:x/y', purpose: 'p', depth: 2, max_depth: 3, tctx: { ticket: 'INC-1' },
    tessera: { attestor: 'join_token', kind: 'join_token', attrs: {} },
    ...over,
  };
}

test('act nesting: newest actor outermost (RFC 8693 §4.1), read back oldest first', () => {
  const act = nestActors([{ sub: A }, { sub: B }, { sub: B, label: 'leaf' }]);
  assert.deepEqual(act, { sub: B, label: 'leaf', act: { sub: B, act: { sub: A } } });
  assert.deepEqual(actorsOf(act), [{ sub: A }, { sub: B, act: { sub: A } }, act]);
});

test('a verified task token is the acting agent\'s principal with its task, chain, label and facts', async () => {
  const issued = h.tokens.issueTaskToken(child());
  const p = await h.tokens.verify(issued.token, { audience: h.base });
  assert.equal(p.spiffeId, B, 'the acting agent (a label sub-agent acts as its delegator)');
  assert.equal(p.label, 'leaf');
  assert.deepEqual(p.chain, [A, B]);
  assert.equal(p.depth, 2);
  assert.equal(p.task, T3);
  assert.equal(p.parentTask, T2);
  assert.equal(p.rootTask, T1);
  assert.deepEqual(p.ancestors, [T1, T2]);
  assert.deepEqual(p.scope, ['secret:a/**', 'tool:x/y']);
  assert.deepEqual(p.tctx, { ticket: 'INC-1' });
  assert.equal(p.subject, A);
  assert.equal(p.tokenKind, 'task');
  // Revocation of any ancestor is checked on every request (cached verification or not).
  h.revocations.tasks.add(T1);
  await assert.rejects(h.tokens.verify(issued.token, { audience: h.base }), code('TESSERA_TOKEN_REVOKED'));
  h.revocations.tasks.delete(T1);
  await h.tokens.verify(issued.token, { audience: h.base });
});

test('a task whose sub is not an agent acts for that user: revoking the user refuses it', async () => {
  const issued = h.tokens.issueTaskToken(child({ sub: 'alice@example.org', txn: 'task_EEEEEEEEEEEEEEEEEEEEEE', usr: { iss: 'corp' } }));
  const p = await h.tokens.verify(issued.token, { audience: h.base });
  assert.equal(p.user, 'alice@example.org');
  assert.equal(p.spiffeId, B, 'the acting agent is still the newest actor');
  h.revocations.users.add('alice@example.org');
  await assert.rejects(h.tokens.verify(issued.token, { audience: h.base }), code('TESSERA_TOKEN_REVOKED'));
  h.revocations.users.clear();
});

test('typ is pinned per use, on cache hits too: an agent token is no task token and the other way round', async () => {
  const task = h.tokens.issueTaskToken(child({ txn: 'task_DDDDDDDDDDDDDDDDDDDDDD' })).token;
  const agent = h.tokens.issueAgentToken({ spiffeId: A, attestor: 'join_token', attestorKind: 'join_token', attributes: {} }, { audience: [h.base] }).token;
  for (let i = 0; i < 2; i++) {
    // The second round hits the verified-token cache.
    await h.tokens.verifyToken(task, { audiences: [h.base], kinds: ['task'] });
    await h.tokens.verifyToken(agent, { audiences: [h.base], kinds: ['agent'] });
    await assert.rejects(h.tokens.verifyToken(task, { audiences: [h.base], kinds: ['agent'] }), (e: unknown) => code('TESSERA_TOKEN_TYPE_INVALID')(e) && (e as { details?: { presented?: string } }).details?.presented === 'task');
    await assert.rejects(h.tokens.verifyToken(agent, { audiences: [h.base], kinds: ['task'] }), code('TESSERA_TOKEN_TYPE_INVALID'));
  }
  // A downstream token, signed by Tessera for an upstream: never accepted by Tessera.
  const p = await h.tokens.verify(task, { audience: h.base });
  const down = h.tokens.issueDownstreamToken(p, { audience: 'https://upstream.example', ttlMs: 60_000 }).token;
  await assert.rejects(h.tokens.verify(down, { audience: 'https://upstream.example' }), code('TESSERA_TOKEN_TYPE_INVALID'));
  // Signed with Tessera's key but with no or another typ.
  const { kid, privateKey } = h.keys.signingKey();
  const claims = { iss: h.base, sub: A, aud: h.base, exp: Math.floor(h.clock.now() / 1000) + 60, iat: Math.floor(h.clock.now() / 1000), jti: 'j'.repeat(22) };
  await assert.rejects(h.tokens.verify(signEs256({ alg: 'ES256', kid }, claims, privateKey), { audience: h.base }), code('TESSERA_TOKEN_TYPE_INVALID'));
  await assert.rejects(h.tokens.verify(signEs256({ alg: 'ES256', kid, typ: 'at+jwt' }, claims, privateKey), { audience: h.base }), code('TESSERA_TOKEN_TYPE_INVALID'));
});

test('tree claims that disagree are refused even under Tessera\'s signature; the service never signs such a task', async () => {
  const { kid, privateKey } = h.keys.signingKey();
  const iat = Math.floor(h.clock.now() / 1000);
  const good = { iss: h.base, iat, nbf: iat, jti: 'k'.repeat(22), ...child() } as unknown as TaskClaims;
  assert.equal(taskClaimsProblem(good), undefined);
  const broken: Record<string, unknown>[] = [
    { depth: 1 }, // act nesting says 2
    { anc: [T2] }, // does not run from the root
    { anc: [T1, T1] },
    { ptxn: T1 },
    { rtxn: T2 },
    { max_depth: 1 },
    { act: nestActors([{ sub: A, label: 'root-label' }, { sub: B }, { sub: B }]) },
    { anc: [T1, T3], ptxn: T3 }, // its own ancestor
    { depth: 9, max_depth: 9 },
    { scope: '' },
    { tctx: { 'bad key': 'x' } },
    { act: { sub: 7 } },
  ];
  for (const edit of broken) {
    const token = signEs256({ alg: 'ES256', kid, typ: 'tessera-task+jwt' }, { ...good, ...edit } as unknown as Record<string, unknown>, privateKey);
    await assert.rejects(h.tokens.verify(token, { audience: h.base }), code('TESSERA_TOKEN_CLAIMS_INVALID'), JSON.stringify(edit));
    assert.throws(() => h.tokens.issueTaskToken({ ...child(), ...edit } as TaskTokenInput), code('TESSERA_INTERNAL'), JSON.stringify(edit));
  }
  assert.throws(() => h.tokens.issueTaskToken(child({ exp: iat })), code('TESSERA_INTERNAL'));
  assert.throws(() => h.tokens.issueTaskToken(child({ act: nestActors([{ sub: 'spiffe://elsewhere.example/x' }, { sub: B }, { sub: B, label: 'leaf' }]) })), code('TESSERA_TRUST_DOMAIN_UNKNOWN'));
});
