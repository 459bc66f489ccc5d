/**
 * Token service: issuing, and every verification check with forged tokens built here on
 * node:crypto (RFC 8725 §2.1 algorithm confusion, §3.1 pinned algorithms; RFC 7515 §4.1.11 crit;
 * RFC 7519 §4.1 registered claims; SPIFFE JWT-SVID §3). Real store, sealer and revocations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { AGENT, ISSUER, MIN, claims, code, decodePart, forge, forgeHs256, tokenFixture, unsigned } from './fixtures.js';

const AUD = { audience: ISSUER };
const identity = { spiffeId: AGENT, attestor: 'join_token', attestorKind: 'join_token' as const, attributes: { team: 'care' } };

async function setup(opts: { skewMs?: number } = {}) {
  const f = await tokenFixture(opts);
  const { kid, privateKey } = f.keys.signingKey();
  const publicKey = f.keys.verificationKey(kid)!;
  const header = { alg: 'ES256', kid, typ: 'JWT' };
  /** A token signed with the real signing key: only the claim under test is wrong. */
  const signed = (over: Record<string, unknown> = {}, h: Record<string, unknown> = {}) => forge({ ...header, ...h }, claims(f.clock.now(), over), privateKey);
  return { ...f, kid, privateKey, publicKey, header, signed };
}

test('issued token: ES256 JWT-SVID with kid, typ, iss, sub, aud, exp = iat + 5 min, nbf, unique jti; verifies with jose against the JWKS', async () => {
  const { tokens, keys, clock } = await setup();
  const a = tokens.issueAgentToken(identity, { audience: [ISSUER] });
  const b = tokens.issueAgentToken(identity, { audience: [ISSUER, `${ISSUER}/mcp`] });
  const h = decodePart(a.token, 0);
  assert.deepEqual(h, { alg: 'ES256', kid: keys.signingKey().kid, typ: 'JWT' });
  const c = decodePart(a.token, 1);
  assert.equal(c.iss, ISSUER);
  assert.equal(c.sub, AGENT);
  assert.equal(c.aud, ISSUER);
  assert.equal(c.exp, (c.iat as number) + 300);
  assert.equal(c.nbf, c.iat);
  assert.equal(c.iat, Math.floor(clock.now() / 1000));
  assert.ok(typeof c.jti === 'string' && c.jti.length >= 16);
  assert.notEqual(c.jti, decodePart(b.token, 1).jti);
  assert.deepEqual(decodePart(b.token, 1).aud, [ISSUER, `${ISSUER}/mcp`]);
  // Interop: an independent JOSE implementation accepts it with the published JWKS.
  const { payload, protectedHeader } = await jwtVerify(a.token, createLocalJWKSet(keys.jwks()), {
    issuer: ISSUER, audience: ISSUER, algorithms: ['ES256'], currentDate: new Date(clock.now()),
  });
  assert.equal(payload.sub, AGENT);
  assert.equal(protectedHeader.alg, 'ES256');
  const p = await tokens.verify(a.token, AUD);
  assert.equal(p.spiffeId, AGENT);
  assert.equal(p.trustDomain, 'tessera.test');
  assert.equal(p.jti, a.jti);
  assert.equal(p.expiresAt, a.expiresAt);
  assert.deepEqual(p.attributes, { team: 'care', attestor: 'join_token' });
});

test('issueAgentTokenAsync (the login path: signature on the libuv pool) issues the same token shape, verified by jose and by the service', async () => {
  const { tokens, keys, clock } = await setup();
  const sync = tokens.issueAgentToken(identity, { audience: [ISSUER] });
  const a = await tokens.issueAgentTokenAsync(identity, { audience: [ISSUER, `${ISSUER}/mcp`] });
  assert.deepEqual(decodePart(a.token, 0), decodePart(sync.token, 0));
  const c = decodePart(a.token, 1);
  const s = decodePart(sync.token, 1);
  assert.deepEqual(Object.keys(c).sort(), Object.keys(s).sort());
  assert.deepEqual({ ...c, jti: 'x', aud: 'x' }, { ...s, jti: 'x', aud: 'x' });
  assert.deepEqual(c.aud, [ISSUER, `${ISSUER}/mcp`]);
  assert.equal(a.jti, c.jti);
  assert.notEqual(a.jti, sync.jti);
  assert.equal(a.expiresAt, (c.exp as number) * 1000);
  assert.equal(a.issuedAt, (c.iat as number) * 1000);
  const { payload } = await jwtVerify(a.token, createLocalJWKSet(keys.jwks()), { issuer: ISSUER, audience: ISSUER, algorithms: ['ES256'], currentDate: new Date(clock.now()) });
  assert.equal(payload.sub, AGENT);
  assert.equal((await tokens.verify(a.token, AUD)).jti, a.jti);
  // Same refusal as the synchronous form for a trust domain Tessera does not serve.
  await assert.rejects(tokens.issueAgentTokenAsync({ ...identity, spiffeId: 'spiffe://elsewhere.test/x' }, { audience: [ISSUER] }), code('TESSERA_TRUST_DOMAIN_UNKNOWN'));
});

test('a well-formed token built here with the real key verifies (the fixtures are sound)', async () => {
  const { tokens, signed } = await setup();
  assert.equal((await tokens.verify(signed(), AUD)).spiffeId, AGENT);
});

test('alg "none" (unsigned) is refused before any key is used', async () => {
  const { tokens, kid, clock } = await setup();
  for (const alg of ['none', 'None', 'NONE']) {
    await assert.rejects(tokens.verify(unsigned({ alg, kid }, claims(clock.now())), AUD), code('TESSERA_TOKEN_ALG_NOT_ALLOWED'));
  }
});

test('HS256 keyed with the public key (PEM, SPKI DER, JWK JSON, raw x||y) is refused: algorithm confusion', async () => {
  const { tokens, kid, publicKey, clock } = await setup();
  const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  const secrets: (string | Buffer)[] = [
    publicKey.export({ format: 'pem', type: 'spki' }) as string,
    publicKey.export({ format: 'der', type: 'spki' }),
    JSON.stringify(jwk),
    Buffer.concat([Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]),
  ];
  for (const s of secrets) {
    await assert.rejects(tokens.verify(forgeHs256({ alg: 'HS256', kid, typ: 'JWT' }, claims(clock.now()), s), AUD), code('TESSERA_TOKEN_ALG_NOT_ALLOWED'));
  }
});

test('other algorithms are refused: RS256, ES384, PS256, EdDSA, lower-case es256', async () => {
  const { tokens, kid, clock, privateKey } = await setup();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  await assert.rejects(tokens.verify(forge({ alg: 'RS256', kid }, claims(clock.now()), rsa), AUD), code('TESSERA_TOKEN_ALG_NOT_ALLOWED'));
  // The signature is genuinely ES256 by the real key; only the header lies.
  for (const alg of ['ES384', 'PS256', 'EdDSA', 'es256', 'ES256 ']) {
    await assert.rejects(tokens.verify(forge({ alg, kid }, claims(clock.now()), privateKey), AUD), code('TESSERA_TOKEN_ALG_NOT_ALLOWED'));
  }
});

test('unknown, missing or oversized kid → TESSERA_TOKEN_KID_UNKNOWN; a foreign key with a real kid → SIGNATURE_INVALID', async () => {
  const { tokens, kid, clock, privateKey } = await setup();
  const foreign = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  await assert.rejects(tokens.verify(forge({ alg: 'ES256', kid: 'no-such-kid' }, claims(clock.now()), foreign), AUD), code('TESSERA_TOKEN_KID_UNKNOWN'));
  clock.advance(5000); // past the reload rate limit: the store is consulted, the kid is still unknown
  await assert.rejects(tokens.verify(forge({ alg: 'ES256', kid: 'no-such-kid-2' }, claims(clock.now()), foreign), AUD), code('TESSERA_TOKEN_KID_UNKNOWN'));
  await assert.rejects(tokens.verify(forge({ alg: 'ES256' }, claims(clock.now()), privateKey), AUD), code('TESSERA_TOKEN_KID_UNKNOWN'));
  await assert.rejects(tokens.verify(forge({ alg: 'ES256', kid: 7 }, claims(clock.now()), privateKey), AUD), code('TESSERA_TOKEN_KID_UNKNOWN'));
  await assert.rejects(tokens.verify(forge({ alg: 'ES256', kid: 'k'.repeat(65) }, claims(clock.now()), privateKey), AUD), code('TESSERA_TOKEN_KID_UNKNOWN'));
  await assert.rejects(tokens.verify(forge({ alg: 'ES256', kid }, claims(clock.now()), foreign), AUD), code('TESSERA_TOKEN_SIGNATURE_INVALID'));
});

test('tampered payload or header, and bad signature lengths → TESSERA_TOKEN_SIGNATURE_INVALID', async () => {
  const { tokens, signed, privateKey, header, clock } = await setup();
  const good = signed();
  const [h, , s] = good.split('.');
  const evil = Buffer.from(JSON.stringify(claims(clock.now(), { sub: 'spiffe://tessera.test/ns/prod/sa/admin' }))).toString('base64url');
  await assert.rejects(tokens.verify(`${h}.${evil}.${s}`, AUD), code('TESSERA_TOKEN_SIGNATURE_INVALID'));
  const h2 = Buffer.from(JSON.stringify({ ...header, typ: 'at+jwt' })).toString('base64url');
  await assert.rejects(tokens.verify(`${h2}.${good.split('.')[1]}.${s}`, AUD), code('TESSERA_TOKEN_SIGNATURE_INVALID'));
  const sig = Buffer.from(s!, 'base64url');
  assert.equal(sig.length, 64);
  const variants = [
    forge(header, claims(clock.now()), privateKey, { der: true }), // DER, not R||S (RFC 7518 §3.4)
    `${h}.${good.split('.')[1]}.${sig.subarray(0, 63).toString('base64url')}`,
    `${h}.${good.split('.')[1]}.${Buffer.concat([sig, Buffer.alloc(1)]).toString('base64url')}`,
    `${h}.${good.split('.')[1]}.`,
    `${h}.${good.split('.')[1]}.${Buffer.alloc(64).toString('base64url')}`, // r = s = 0 (CVE-2022-21449 "psychic signatures")
  ];
  for (const v of variants) await assert.rejects(tokens.verify(v, AUD), code('TESSERA_TOKEN_SIGNATURE_INVALID'));
});

test('malformed serializations → TESSERA_TOKEN_MALFORMED; crit header refused (RFC 7515 §4.1.11)', async () => {
  const { tokens, signed, privateKey, header, clock } = await setup();
  const good = signed();
  const [h, p, s] = good.split('.');
  const bad = ['', 'abc', `${h}.${p}`, `${h}.${p}.${s}.x`, `${h}.${p}.${s}=`, `${h}+.${p}.${s}`, `.${p}.${s}`, `${h}..${s}`,
    `${Buffer.from('not json').toString('base64url')}.${p}.${s}`, `${Buffer.from('[1]').toString('base64url')}.${p}.${s}`,
    `${Buffer.from('{"kid":"x"}').toString('base64url')}.${p}.${s}`];
  for (const t of bad) await assert.rejects(tokens.verify(t, AUD), code('TESSERA_TOKEN_MALFORMED'), `token ${JSON.stringify(t.slice(0, 40))}`);
  await assert.rejects(tokens.verify(forge({ ...header, crit: ['exp'] }, claims(clock.now()), privateKey), AUD), code('TESSERA_TOKEN_MALFORMED'));
  await assert.rejects(tokens.verify(forge({ ...header, crit: ['b64'], b64: false }, claims(clock.now()), privateKey), AUD), code('TESSERA_TOKEN_MALFORMED'));
  // Signed payload that is not JSON: only read after the signature verified.
  await assert.rejects(tokens.verify(forge(header, 'not json', privateKey), AUD), code('TESSERA_TOKEN_MALFORMED'));
});

test('expiry with skew: expired beyond the skew refused, within the skew accepted', async () => {
  const { tokens, signed, clock } = await setup({ skewMs: 30_000 });
  const now = Math.floor(clock.now() / 1000);
  await assert.rejects(tokens.verify(signed({ iat: now - 400, nbf: now - 400, exp: now - 31 }), AUD), code('TESSERA_TOKEN_EXPIRED'));
  await assert.rejects(tokens.verify(signed({ iat: now - 400, nbf: now - 400, exp: now - 30 }), AUD), code('TESSERA_TOKEN_EXPIRED'));
  assert.ok(await tokens.verify(signed({ iat: now - 400, nbf: now - 400, exp: now - 29 }), AUD));
  // A real issued token expires after 5 min + skew.
  const t = tokens.issueAgentToken(identity, { audience: [ISSUER] });
  clock.advance(5 * MIN + 29_000);
  assert.ok(await tokens.verify(t.token, AUD));
  clock.advance(1_000);
  await assert.rejects(tokens.verify(t.token, AUD), code('TESSERA_TOKEN_EXPIRED'));
});

test('nbf and iat in the future beyond the skew → TESSERA_TOKEN_NOT_YET_VALID; within the skew accepted', async () => {
  const { tokens, signed, clock } = await setup({ skewMs: 30_000 });
  const now = Math.floor(clock.now() / 1000);
  await assert.rejects(tokens.verify(signed({ nbf: now + 31 }), AUD), code('TESSERA_TOKEN_NOT_YET_VALID'));
  assert.ok(await tokens.verify(signed({ nbf: now + 30 }), AUD));
  await assert.rejects(tokens.verify(signed({ iat: now + 31, nbf: undefined }), AUD), code('TESSERA_TOKEN_NOT_YET_VALID'));
  assert.ok(await tokens.verify(signed({ iat: now + 29, nbf: undefined }), AUD));
});

test('issuer and audience: wrong iss, wrong aud, aud array with and without this audience', async () => {
  const { tokens, signed } = await setup();
  await assert.rejects(tokens.verify(signed({ iss: 'https://evil.test' }), AUD), code('TESSERA_TOKEN_ISSUER_INVALID'));
  await assert.rejects(tokens.verify(signed({ iss: `${ISSUER}/` }), AUD), code('TESSERA_TOKEN_ISSUER_INVALID'));
  await assert.rejects(tokens.verify(signed({ aud: 'https://other.test' }), AUD), code('TESSERA_TOKEN_AUDIENCE_INVALID'));
  await assert.rejects(tokens.verify(signed({ aud: `${ISSUER}/mcp` }), AUD), code('TESSERA_TOKEN_AUDIENCE_INVALID'));
  await assert.rejects(tokens.verify(signed({ aud: ['https://a.test', 'https://b.test'] }), AUD), code('TESSERA_TOKEN_AUDIENCE_INVALID'));
  assert.ok(await tokens.verify(signed({ aud: ['https://a.test', ISSUER] }), AUD));
  assert.ok(await tokens.verify(signed({ aud: `${ISSUER}/mcp` }), { audience: `${ISSUER}/mcp` }));
});

test('missing or ill-typed claims → TESSERA_TOKEN_CLAIMS_INVALID (jti, sub not a SPIFFE ID, aud missing, exp string)', async () => {
  const { tokens, signed } = await setup();
  const cases: Record<string, unknown>[] = [
    { jti: undefined }, { jti: 'short' }, { sub: undefined }, { sub: 'alice' }, { sub: 'https://tessera.test/agent' }, { sub: 'spiffe://tessera.test/a/../b' },
    { sub: 'spiffe://Tessera.test/ns/x' }, { aud: undefined }, { aud: [] }, { aud: '' }, { exp: undefined }, { exp: '9999999999' }, { iat: undefined },
    { iss: undefined }, { nbf: 'now' }, { tessera: { attrs: { team: 5 } } },
  ];
  for (const c of cases) await assert.rejects(tokens.verify(signed(c), AUD), code('TESSERA_TOKEN_CLAIMS_INVALID'), JSON.stringify(c));
});

test('revocation by jti and by agent refuses an unexpired token at once; lifting restores it', async () => {
  const { tokens, revocations } = await setup();
  const a = tokens.issueAgentToken(identity, { audience: [ISSUER] });
  const b = tokens.issueAgentToken(identity, { audience: [ISSUER] });
  const other = tokens.issueAgentToken({ ...identity, spiffeId: 'spiffe://tessera.test/ns/prod/sa/other' }, { audience: [ISSUER] });

  await revocations.revokeToken(a.jti, a.expiresAt);
  await assert.rejects(tokens.verify(a.token, AUD), code('TESSERA_TOKEN_REVOKED'));
  assert.ok(await tokens.verify(b.token, AUD), 'only that jti is revoked');
  await assert.rejects(tokens.verifyAnyAudience(a.token, [ISSUER]), code('TESSERA_TOKEN_REVOKED'));

  const rev = await revocations.revoke({ kind: 'agent', target: AGENT, reason: 'test' });
  await assert.rejects(tokens.verify(b.token, AUD), code('TESSERA_TOKEN_REVOKED'));
  assert.ok(await tokens.verify(other.token, AUD), 'other agents are unaffected');
  await revocations.lift(rev.id);
  assert.ok(await tokens.verify(b.token, AUD));
  await assert.rejects(tokens.verify(a.token, AUD), code('TESSERA_TOKEN_REVOKED'), 'the jti revocation stands');
});

test('verifyAnyAudience: accepts any served audience, refuses others', async () => {
  const { tokens, signed } = await setup();
  const { claims: c } = await tokens.verifyAnyAudience(signed({ aud: `${ISSUER}/mcp` }), [ISSUER, `${ISSUER}/mcp`]);
  assert.equal(c.aud, `${ISSUER}/mcp`);
  await assert.rejects(tokens.verifyAnyAudience(signed({ aud: 'https://x.test' }), [ISSUER]), code('TESSERA_TOKEN_AUDIENCE_INVALID'));
});

test('trust domains: tokens are issued and accepted only for served domains (own and federated)', async () => {
  const { tokens, signed, keys, clock, revocations } = await setup();
  // Issuance: a federated domain (a spiffe attestor's) is fine; any other is refused.
  const fed = tokens.issueAgentToken({ spiffeId: 'spiffe://spire.test/w/planner', attestor: 'spire', attestorKind: 'spiffe', attributes: { trust_domain: 'spire.test' } }, { audience: [ISSUER] });
  assert.equal((await tokens.verify(fed.token, AUD)).trustDomain, 'spire.test');
  for (const spiffeId of ['spiffe://other.test/x', 'spiffe://tessera.test.evil/x', 'spiffe://xtessera.test/x']) {
    assert.throws(() => tokens.issueAgentToken({ ...identity, spiffeId }, { audience: [ISSUER] }), code('TESSERA_TRUST_DOMAIN_UNKNOWN'), spiffeId);
  }
  // Verification: a token Tessera signed for a domain it does not (or no longer) serve.
  await assert.rejects(tokens.verify(signed({ sub: 'spiffe://other.test/ns/prod/sa/agent' }), AUD), code('TESSERA_TOKEN_TRUST_DOMAIN_UNKNOWN'));
  await assert.rejects(tokens.verifyAnyAudience(signed({ sub: 'spiffe://tessera.test.evil/a' }), [ISSUER]), code('TESSERA_TOKEN_TRUST_DOMAIN_UNKNOWN'));
  // The same signing keys, without the federation: its tokens stop verifying.
  const { createTokenService } = await import('../../src/tokens/service.js');
  const { createTrustDomains } = await import('../../src/identity/trust-domains.js');
  const unfederated = createTokenService({ keys, clock, issuer: ISSUER, agentTtlMs: 5 * MIN, skewMs: 30_000, revocations, trustDomains: createTrustDomains('tessera.test') });
  await assert.rejects(unfederated.verify(fed.token, AUD), code('TESSERA_TOKEN_TRUST_DOMAIN_UNKNOWN'));
  assert.ok(await unfederated.verify(tokens.issueAgentToken(identity, { audience: [ISSUER] }).token, AUD));
});

test('attestor name and kind travel in the token; Kubernetes attributes survive only with kind "kubernetes"', async () => {
  const { tokens, signed } = await setup();
  const k8s = tokens.issueAgentToken({ spiffeId: AGENT, attestor: 'k8s-prod', attestorKind: 'kubernetes', attributes: { namespace: 'prod', service_account: 'agent', pod: 'agent-1' } }, { audience: [ISSUER] });
  assert.deepEqual(decodePart(k8s.token, 1).tessera, { attestor: 'k8s-prod', kind: 'kubernetes', attrs: { namespace: 'prod', service_account: 'agent', pod: 'agent-1' } });
  const p = await tokens.verify(k8s.token, AUD);
  assert.deepEqual([p.attestor, p.attestorKind, p.attributes.namespace, p.attributes.pod], ['k8s-prod', 'kubernetes', 'prod', 'agent-1']);
  // Any other kind, or none (a token from before attestor kinds): the Kubernetes attributes are dropped.
  for (const tessera of [{ attestor: 'gitlab', kind: 'jwt' }, { attestor: 'join_token', kind: 'join_token' }, { attestor: 'spire', kind: 'spiffe' }, { attestor: 'old' }, {}]) {
    const q = await tokens.verify(signed({ tessera: { ...tessera, attrs: { namespace: 'prod', service_account: 'agent', pod: 'x', 'label.team': 'a' } } }), AUD);
    assert.deepEqual(q.attributes, { 'label.team': 'a', ...(tessera.attestor ? { attestor: tessera.attestor } : {}) }, JSON.stringify(tessera));
    assert.equal(q.attestorKind, tessera.kind);
  }
  await assert.rejects(tokens.verify(signed({ tessera: { attestor: 'x', kind: 'k8s' } }), AUD), code('TESSERA_TOKEN_CLAIMS_INVALID'));
});

test('a refused token remembers the subject it claimed: signed (authentic, refused) or not (attacker text, SPIFFE IDs only)', async () => {
  const { tokens, signed, revocations, clock } = await setup();
  const { claimedSubjectOf } = await import('../../src/tokens/service.js');
  const refusal = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return { code: (e as { code: string }).code, claimed: claimedSubjectOf(e) };
    }
    throw new Error('expected a refusal');
  };
  const ok = tokens.issueAgentToken(identity, { audience: [ISSUER] });
  // Signature valid, refused for another reason: attributed.
  for (const [token, c] of [
    [signed({ aud: 'https://other.test' }), 'TESSERA_TOKEN_AUDIENCE_INVALID'],
    [signed({ exp: Math.floor(clock.now() / 1000) - 3600 }), 'TESSERA_TOKEN_EXPIRED'],
    [signed({ iss: 'https://evil.test' }), 'TESSERA_TOKEN_ISSUER_INVALID'],
    [signed({ jti: 'short' }), 'TESSERA_TOKEN_CLAIMS_INVALID'],
  ] as const) {
    assert.deepEqual(await refusal(tokens.verify(token, AUD)), { code: c, claimed: { id: AGENT, signed: true } }, c);
  }
  await revocations.revoke({ kind: 'agent', target: AGENT, ttlMs: 60_000 });
  assert.deepEqual(await refusal(tokens.verify(ok.token, AUD)), { code: 'TESSERA_TOKEN_REVOKED', claimed: { id: AGENT, signed: true } });
  assert.deepEqual(await refusal(tokens.verify(ok.token, AUD)), { code: 'TESSERA_TOKEN_REVOKED', claimed: { id: AGENT, signed: true } }, 'also from the verified-token cache');
  // Signature not valid: the sub is attacker-chosen text, kept only when it is a SPIFFE ID.
  const [h, p] = ok.token.split('.');
  assert.deepEqual(await refusal(tokens.verify(`${h}.${p}.${'A'.repeat(86)}`, AUD)), { code: 'TESSERA_TOKEN_SIGNATURE_INVALID', claimed: { id: AGENT, signed: false } });
  for (const sub of ['alice', 'spiffe://td/../x', `spiffe://td/${'a'.repeat(2100)}`, 42]) {
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub })).toString('base64url')}.${'A'.repeat(86)}`;
    assert.equal((await refusal(tokens.verify(forged, AUD))).claimed, undefined, String(sub).slice(0, 40));
  }
  for (const garbage of ['x', 'a.b.c', `${h}.!!!.x`, '']) assert.equal((await refusal(tokens.verify(garbage, AUD))).claimed, undefined, garbage);
  // A signed token whose sub is not a SPIFFE ID claims nothing either.
  assert.equal((await refusal(tokens.verify(signed({ sub: 'alice' }), AUD))).claimed, undefined);
});
