/**
 * User token verification (src/users/verify.ts) with tokens from a real OpenID Provider
 * (oidc-provider in-process, obtained by openid-client): every refusal has its stable code —
 * untrusted issuer, wrong audience, expired, too old (max_age), not yet valid, an ID token where
 * an access token is required and the other way round, a declared type that disagrees, a
 * missing or unusable user id, unusable mapped claims, an algorithm outside the allow-list, a
 * tampered signature, an unreachable key set — and the claims map to the User tags and groups.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createUserTokenVerifier, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT } from '../../src/users/verify.js';
import { usersConfigSchema, type UserIssuerConfig } from '../../src/users/config.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { freePort, startOp, userTokens, API_AUDIENCE, AGENT_APP, ACCOUNTS, type TestOp } from './op.js';

let op: TestOp;
let other: TestOp;
let alice: { accessToken: string; idToken: string };
let stranger: { accessToken: string; idToken: string };

before(async () => {
  ACCOUNTS['spiffy'] = { groups: ['staff'], extra: { employee_id: 'spiffe://tessera.local/ns/ops/sa/orchestrator' } };
  ACCOUNTS['crowd'] = { groups: Array.from({ length: 65 }, (_, i) => `g${i}`) };
  op = await startOp();
  other = await startOp();
  alice = await userTokens(op, 'alice');
  stranger = await userTokens(other, 'alice');
});
after(async () => {
  await op?.close();
  await other?.close();
});

function issuer(over: Record<string, unknown> = {}): UserIssuerConfig {
  return usersConfigSchema.parse({ issuers: [{ name: 'corp', issuer: op.issuer, discovery: true, audience: API_AUDIENCE, attributes: { department: 'department', email: 'email' }, groups_claim: 'groups', ...over }] }).issuers[0]!;
}

const exp = (token: string): number => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;

function verifier(over: Record<string, unknown> = {}, at = Date.now()) {
  return createUserTokenVerifier({ issuers: [issuer(over)], clock: { now: () => at }, skewMs: 30_000 });
}

const code = (c: string) => (e: unknown): boolean => {
  assert.ok(isTesseraError(e), String(e));
  assert.equal(e.code, c, e.message);
  return true;
};

test('a JWT access token (typ at+jwt) from the OP: the person, their mapped tags and groups', async () => {
  const v = await verifier().verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN);
  assert.equal(v.kind, 'access_token');
  assert.deepEqual(v.identity, { id: 'alice', issuer: 'corp', attrs: { department: 'finance', email: 'alice@example.org' }, groups: ['finance', 'staff'] });
  assert.equal(v.expiresAt, exp(alice.accessToken) * 1000);
  // Declared as a plain jwt: the kind comes from the token's typ.
  assert.equal((await verifier().verify(alice.accessToken, TOKEN_TYPE_JWT)).kind, 'access_token');
  // A prefix keeps two providers from naming the same person.
  assert.equal((await verifier({ user_id_prefix: 'corp:' }).verify(alice.accessToken, TOKEN_TYPE_JWT)).identity.id, 'corp:alice');
  // max_age shortens how long the person counts as proven.
  const aged = await verifier({ max_age: '60s' }).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN);
  assert.ok(aged.expiresAt < exp(alice.accessToken) * 1000);
});

test('an ID token where the issuer requires an access token is refused (and the other way round)', async () => {
  await assert.rejects(verifier().verify(alice.idToken, TOKEN_TYPE_ID_TOKEN), code('TESSERA_USER_TOKEN_TYPE_INVALID'));
  await assert.rejects(verifier().verify(alice.idToken, TOKEN_TYPE_JWT), code('TESSERA_USER_TOKEN_TYPE_INVALID'));
  // An issuer configured for ID tokens (their aud is the app's client id).
  const idOnly = verifier({ token: 'id_token', audience: AGENT_APP.client_id });
  assert.equal((await idOnly.verify(alice.idToken, TOKEN_TYPE_ID_TOKEN)).identity.id, 'alice');
  await assert.rejects(idOnly.verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_TOKEN_TYPE_INVALID'));
  // `any` accepts both, but the declared type must still match the token.
  const any = createUserTokenVerifier({ issuers: [issuer({ token: 'any', audience: [API_AUDIENCE, AGENT_APP.client_id] })], clock: { now: () => Date.now() }, skewMs: 30_000 });
  assert.equal((await any.verify(alice.idToken, TOKEN_TYPE_ID_TOKEN)).kind, 'id_token');
  await assert.rejects(any.verify(alice.idToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_TOKEN_TYPE_INVALID'));
  await assert.rejects(any.verify(alice.accessToken, TOKEN_TYPE_ID_TOKEN), code('TESSERA_USER_TOKEN_TYPE_INVALID'));
});

test('untrusted issuer, wrong audience, expired, too old, not yet valid', async () => {
  await assert.rejects(verifier().verify(stranger.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_ISSUER_UNTRUSTED'));
  await assert.rejects(verifier().verify('not-a-jwt', TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_ISSUER_UNTRUSTED'));
  await assert.rejects(verifier({ audience: 'https://another-service.test' }).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_AUDIENCE_INVALID'));
  const after = exp(alice.accessToken) * 1000 + 31_000;
  await assert.rejects(verifier({}, after).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_TOKEN_EXPIRED'));
  await assert.rejects(verifier({ max_age: '1s' }, Date.now() + 45_000).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_TOKEN_EXPIRED'));
  await assert.rejects(verifier({}, Date.now() - 3_600_000).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_TOKEN_INVALID'));
});

test('signature and algorithm: a tampered token, an algorithm outside the allow-list, an unreachable key set', async () => {
  const [h, p, s] = alice.accessToken.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, groups: ['admins'] })).toString('base64url')}.${s}`;
  await assert.rejects(verifier().verify(forged, TOKEN_TYPE_ACCESS_TOKEN), (e) => code('TESSERA_USER_TOKEN_INVALID')(e) && (e as { details: { reason: string } }).details.reason === 'signature');
  await assert.rejects(verifier({ algorithms: ['ES256'] }).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), (e) => code('TESSERA_USER_TOKEN_INVALID')(e) && (e as { details: { reason: string } }).details.reason === 'algorithm');
  const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
  await assert.rejects(verifier().verify(none, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_TOKEN_INVALID'));
  const closed = await freePort();
  const dead = verifier({ discovery: false, jwks_url: `http://127.0.0.1:${closed}/jwks` });
  await assert.rejects(dead.verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_JWKS_UNAVAILABLE'));
});

test('claims: a missing user-id claim, a SPIFFE ID as user id, mapped claims of the wrong type, too many groups', async () => {
  await assert.rejects(verifier({ user_id_claim: 'employee_id' }).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_CLAIM_MISSING'));
  const spiffy = await userTokens(op, 'spiffy', { scope: 'openid groups api:read' });
  // A user id that reads as an agent's SPIFFE ID would make the task look like the agent's own.
  await assert.rejects(verifier({ user_id_claim: 'employee_id' }).verify(spiffy.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_CLAIM_INVALID'));
  await assert.rejects(verifier({ attributes: { groups: 'groups' } }).verify(alice.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_CLAIM_INVALID'));
  const crowd = await userTokens(op, 'crowd', { scope: 'openid groups api:read' });
  await assert.rejects(verifier().verify(crowd.accessToken, TOKEN_TYPE_ACCESS_TOKEN), code('TESSERA_USER_CLAIM_INVALID'));
});

test('config: several issuers need distinct user_id_prefix; exactly one of jwks_url or discovery; http only on loopback', () => {
  const two = (a: string, b: string) => usersConfigSchema.safeParse({ issuers: [{ name: 'a', issuer: 'https://a.example', discovery: true, audience: 'x', user_id_prefix: a }, { name: 'b', issuer: 'https://b.example', discovery: true, audience: 'x', user_id_prefix: b }] });
  assert.equal(two('', '').success, false);
  assert.equal(two('a:', 'b:').success, true);
  assert.equal(usersConfigSchema.safeParse({ issuers: [{ name: 'a', issuer: 'https://a.example', audience: 'x' }] }).success, false);
  assert.equal(usersConfigSchema.safeParse({ issuers: [{ name: 'a', issuer: 'http://idp.example', discovery: true, audience: 'x' }] }).success, false);
  assert.equal(usersConfigSchema.safeParse({ authorization_server: { enabled: true } }).success, false);
});
