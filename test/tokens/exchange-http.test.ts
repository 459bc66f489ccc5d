import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { SignJWT, decodeProtectedHeader, decodeJwt, jwtVerify } from 'jose';
import { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT } from '../../src/identity/types.js';
import { GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS } from '../../src/tokens/exchange.js';
import { startHarness, AGENT, MINUTE, type Harness } from './helpers.js';

let h: Harness;
let as: oauth.AuthorizationServer;
const client: oauth.Client = { client_id: 'tessera-agent' };
const insecure = { [oauth.allowInsecureRequests]: true } as const;

before(async () => {
  h = await startHarness();
  // RFC 8414 discovery through a real OAuth client.
  const issuer = new URL(h.base);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
});

after(async () => {
  await h.close();
});

async function joinToken(spiffeId = AGENT, labels: Record<string, string> = { team: 'care' }): Promise<string> {
  return (await h.joinTokens.create({ spiffeId, ttlMs: 10 * MINUTE, labels })).token;
}

async function login(params: Record<string, string> = {}): Promise<oauth.TokenEndpointResponse> {
  const subject = params.subject_token ?? (await joinToken());
  const res = await oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT_TOKEN_EXCHANGE, { subject_token: subject, subject_token_type: TOKEN_TYPE_JOIN, ...params }, insecure);
  return oauth.processGenericTokenEndpointResponse(as, client, res);
}

async function postForm(body: string, contentType = 'application/x-www-form-urlencoded'): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${h.base}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function whoami(token: string): Promise<{ status: number; json: Record<string, unknown>; wwwAuth: string | null }> {
  const res = await fetch(`${h.base}/test/whoami`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown>, wwwAuth: res.headers.get('www-authenticate') };
}

async function assertRefused(token: string, code: string): Promise<void> {
  const before = h.audit.events.length;
  const r = await whoami(token);
  assert.equal(r.status, 401, `expected 401 for ${code}, got ${r.status} ${JSON.stringify(r.json)}`);
  assert.equal((r.json.error as { code: string }).code, code);
  assert.match(r.wwwAuth ?? '', /^Bearer realm="tessera", error="invalid_token"/);
  const ev = h.audit.events.slice(before).find((e) => e.kind === 'auth.token_refused');
  assert.ok(ev, 'refusal is audited');
  assert.equal(ev.reason?.code, code);
  assert.ok(!JSON.stringify(ev).includes(token.slice(-20)), 'the token is never audited');
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function currentKid(): string {
  return h.keys.signingKey().kid;
}

function goodClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(h.clock.now() / 1000);
  return { iss: h.base, sub: AGENT, aud: h.base, iat: now, nbf: now, exp: now + 300, jti: 'forged-jti-0123456789abcdef', tessera: { attestor: 'join_token', attrs: {} }, ...over };
}

async function signWithTesseraKey(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const { kid, privateKey } = h.keys.signingKey();
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT', ...header }).sign(privateKey);
}

test('RFC 8414 metadata describes the token endpoint', async () => {
  assert.equal(as.issuer, h.base);
  assert.equal(as.token_endpoint, `${h.base}/v1/oauth/token`);
  assert.equal(as.jwks_uri, `${h.base}/.well-known/jwks.json`);
  assert.deepEqual(as.grant_types_supported, [GRANT_TOKEN_EXCHANGE]);
  assert.deepEqual(as.token_endpoint_auth_methods_supported, ['none']);
  assert.deepEqual(as.response_types_supported, []);
});

test('login by token exchange with a real join token issues a JWT-SVID that verifies over HTTP', async () => {
  const issuedBefore = h.metrics.counter('tessera_tokens_issued_total', '').get({ type: 'agent' });
  const auditBefore = h.audit.events.length;
  const res = await login();
  assert.equal(res.token_type, 'bearer'); // oauth4webapi lower-cases it
  assert.equal(res.expires_in, 300);
  assert.equal((res as unknown as { issued_token_type: string }).issued_token_type, TOKEN_TYPE_JWT);

  const header = decodeProtectedHeader(res.access_token);
  assert.equal(header.alg, 'ES256');
  assert.equal(header.typ, 'JWT');
  assert.equal(header.kid, currentKid());
  const claims = decodeJwt(res.access_token);
  assert.equal(claims.iss, h.base);
  assert.equal(claims.sub, AGENT);
  assert.equal(claims.aud, h.base);
  assert.equal(claims.exp! - claims.iat!, 300);
  assert.equal(claims.nbf, claims.iat);
  assert.equal(typeof claims.jti, 'string');

  const me = await whoami(res.access_token);
  assert.equal(me.status, 200);
  assert.equal(me.json.spiffeId, AGENT);
  assert.equal(me.json.path, '/ns/prod/sa/reader');
  assert.equal((me.json.attributes as Record<string, string>).attestor, 'join_token');

  assert.equal(h.metrics.counter('tessera_tokens_issued_total', '').get({ type: 'agent' }), issuedBefore + 1);
  const evs = h.audit.events.slice(auditBefore);
  const loginEv = evs.find((e) => e.kind === 'auth.login' && e.result === 'success');
  assert.ok(loginEv);
  // One event per login: auth.login carries the token's jti HMAC and expiry; no separate token.issued.
  assert.ok(!evs.some((e) => e.kind === 'token.issued'));
  assert.equal(evs.filter((e) => e.kind === 'auth.login').length, 1);
  assert.equal(loginEv.actor.id, AGENT);
  assert.equal((loginEv.details as { token_jti_hmac: string }).token_jti_hmac, h.audit.hmac(claims.jti!));
  assert.equal((loginEv.details as { expires_at: number }).expires_at, claims.exp! * 1000);
  const dump = JSON.stringify(evs);
  assert.ok(!dump.includes(claims.jti!), 'jti is HMACed, never in clear');
  assert.ok(!dump.includes(res.access_token.split('.')[2]!), 'the token is never audited');
});

test('RFC 8707 audience/resource selects audiences Tessera serves', async () => {
  const res = await login({ resource: `${h.base}/mcp` });
  assert.equal(decodeJwt(res.access_token).aud, `${h.base}/mcp`);
  // A token for the gateway is not accepted by the API.
  await assertRefused(res.access_token, 'TESSERA_TOKEN_AUDIENCE_INVALID');
  const both = await oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT_TOKEN_EXCHANGE,
    [['subject_token', await joinToken()], ['subject_token_type', TOKEN_TYPE_JOIN], ['audience', h.base], ['resource', `${h.base}/mcp`]], insecure);
  const tok = await oauth.processGenericTokenEndpointResponse(as, client, both);
  assert.deepEqual(decodeJwt(tok.access_token).aud, [h.base, `${h.base}/mcp`]);
  assert.equal((await whoami(tok.access_token)).status, 200);
});

test('token endpoint errors use the RFC 6749 §5.2 shape with a stable code', async (t) => {
  const jt = await joinToken();
  const cases: Array<[string, string, number, string, string]> = [
    ['unknown grant type', `grant_type=client_credentials&subject_token=x&subject_token_type=${encodeURIComponent(TOKEN_TYPE_JOIN)}`, 400, 'unsupported_grant_type', 'TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE'],
    ['missing grant_type', `subject_token=x&subject_token_type=${encodeURIComponent(TOKEN_TYPE_JOIN)}`, 400, 'invalid_request', 'TESSERA_REQUEST_INVALID'],
    ['missing subject_token', `grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token_type=${encodeURIComponent(TOKEN_TYPE_JOIN)}`, 400, 'invalid_request', 'TESSERA_REQUEST_INVALID'],
    ['missing subject_token_type', `grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token=${jt}`, 400, 'invalid_request', 'TESSERA_REQUEST_INVALID'],
    ['repeated parameter', `grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token=${jt}&subject_token=${jt}&subject_token_type=${encodeURIComponent(TOKEN_TYPE_JOIN)}`, 400, 'invalid_request', 'TESSERA_REQUEST_INVALID'],
    ['access_token subject (delegation, later)', `grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token=${jt}&subject_token_type=${encodeURIComponent(TOKEN_TYPE_ACCESS)}`, 400, 'invalid_request', 'TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE'],
    ['unknown subject token type', `grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token=${jt}&subject_token_type=urn%3Ax%3Ay`, 400, 'invalid_request', 'TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE'],
    ['audience not served', `grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token=${jt}&subject_token_type=${encodeURIComponent(TOKEN_TYPE_JOIN)}&audience=https%3A%2F%2Fevil.example`, 400, 'invalid_target', 'TESSERA_OAUTH_INVALID_TARGET'],
    ['unknown join token', `grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token=tjt_nope&subject_token_type=${encodeURIComponent(TOKEN_TYPE_JOIN)}`, 400, 'invalid_grant', 'TESSERA_JOIN_TOKEN_INVALID'],
    ['malformed body', '%%%=%', 400, 'invalid_request', 'TESSERA_REQUEST_INVALID'],
  ];
  for (const [name, body, status, oauthError, code] of cases) {
    await t.test(name, async () => {
      const r = await postForm(body);
      assert.equal(r.status, status, JSON.stringify(r.json));
      assert.equal(r.json.error, oauthError);
      assert.equal(r.json.code, code);
      assert.equal(typeof r.json.error_description, 'string');
    });
  }
  // The join token was never consumed by a refused request, so it still logs in.
  const ok = await login({ subject_token: jt });
  assert.ok(ok.access_token);
});

test('oauth4webapi surfaces Tessera errors as OAuth errors', async () => {
  const res = await oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT_TOKEN_EXCHANGE, { subject_token: 'tjt_unknown', subject_token_type: TOKEN_TYPE_JOIN }, insecure);
  await assert.rejects(oauth.processGenericTokenEndpointResponse(as, client, res), (e: unknown) => {
    assert.ok(e instanceof oauth.ResponseBodyError);
    assert.equal(e.error, 'invalid_grant');
    assert.equal((e.cause as { code: string }).code, 'TESSERA_JOIN_TOKEN_INVALID');
    return true;
  });
});

test('the token endpoint refuses other content types and oversized bodies', async () => {
  const json = await postForm(JSON.stringify({ grant_type: GRANT_TOKEN_EXCHANGE }), 'application/json');
  assert.equal(json.status, 415);
  assert.equal(json.json.code, 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  const text = await postForm('grant_type=x', 'text/plain');
  assert.equal(text.status, 415);
  assert.equal(text.json.code, 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  const big = await postForm(`grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token=${'a'.repeat(64 * 1024)}`);
  assert.equal(big.status, 413);
  assert.equal(big.json.code, 'TESSERA_REQUEST_TOO_LARGE');
  const longParam = await postForm(`grant_type=${encodeURIComponent(GRANT_TOKEN_EXCHANGE)}&subject_token_type=${encodeURIComponent(TOKEN_TYPE_JOIN)}&subject_token=${'a'.repeat(16_385)}`);
  assert.equal(longParam.status, 400);
  assert.equal(longParam.json.code, 'TESSERA_REQUEST_INVALID');
});

test('a join token is one-time: the second login is refused and audited', async () => {
  const jt = await joinToken();
  await login({ subject_token: jt });
  const before = h.audit.events.length;
  await assert.rejects(login({ subject_token: jt }), (e: unknown) => e instanceof oauth.ResponseBodyError && (e.cause as { code: string }).code === 'TESSERA_JOIN_TOKEN_REUSED');
  const fail = h.audit.events.slice(before).find((e) => e.kind === 'auth.login' && e.result === 'failure');
  assert.equal(fail?.reason?.code, 'TESSERA_JOIN_TOKEN_REUSED');
});

test('a revoked agent cannot log in; the refusal is audited', async () => {
  const spiffeId = 'spiffe://example.org/ns/prod/sa/revoked-one';
  const jt = await joinToken(spiffeId);
  h.revocations.agents.add(spiffeId);
  try {
    const before = h.audit.events.length;
    const res = await oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT_TOKEN_EXCHANGE, { subject_token: jt, subject_token_type: TOKEN_TYPE_JOIN }, insecure);
    assert.equal(res.status, 400); // RFC 6749 §5.2
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.code, 'TESSERA_AGENT_REVOKED');
    assert.equal(body.error, 'invalid_grant');
    const ev = h.audit.events.slice(before).find((e) => e.kind === 'auth.login');
    assert.equal(ev?.result, 'failure');
    assert.equal(ev?.actor.id, spiffeId);
    assert.equal(ev?.reason?.code, 'TESSERA_AGENT_REVOKED');
    assert.ok(!h.audit.events.slice(before).some((e) => e.kind === 'auth.login' && e.result === 'success'));
  } finally {
    h.revocations.agents.delete(spiffeId);
  }
});

test('a revoked token and a token of a revoked agent are refused', async () => {
  const { access_token } = await login();
  assert.equal((await whoami(access_token)).status, 200);
  h.revocations.jtis.add(decodeJwt(access_token).jti!);
  await assertRefused(access_token, 'TESSERA_TOKEN_REVOKED');

  const other = await login();
  h.revocations.agents.add(AGENT);
  try {
    await assertRefused(other.access_token, 'TESSERA_TOKEN_REVOKED');
  } finally {
    h.revocations.agents.delete(AGENT);
  }
});

test('RFC 7009 revocation by the holder', async () => {
  const { access_token } = await login();
  const res = await fetch(`${h.base}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: access_token }) });
  assert.equal(res.status, 200);
  assert.ok(h.revocations.revokedTokens.includes(decodeJwt(access_token).jti!));
  await assertRefused(access_token, 'TESSERA_TOKEN_REVOKED');
  // §2.2: an invalid token still answers 200.
  const junk = await fetch(`${h.base}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=abc' });
  assert.equal(junk.status, 200);
});

test('forged and malformed tokens are refused with stable codes', async (t) => {
  const { access_token } = await login();
  const [hdr, payload, sig] = access_token.split('.') as [string, string, string];
  const kid = currentKid();

  await t.test('malformed', async () => {
    await assertRefused('abc.def', 'TESSERA_TOKEN_MALFORMED');
    await assertRefused('a.b.c.d', 'TESSERA_TOKEN_MALFORMED');
    await assertRefused(`${b64('not-an-object')}.${payload}.${sig}`, 'TESSERA_TOKEN_MALFORMED');
    await assertRefused(`${Buffer.from('{not json').toString('base64url')}.${payload}.${sig}`, 'TESSERA_TOKEN_MALFORMED');
  });

  await t.test('missing bearer token', async () => {
    const res = await fetch(`${h.base}/test/whoami`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'TESSERA_TOKEN_MISSING');
  });

  await t.test('alg none', async () => {
    await assertRefused(`${b64({ alg: 'none', kid, typ: 'JWT' })}.${payload}.`, 'TESSERA_TOKEN_ALG_NOT_ALLOWED');
    await assertRefused(`${b64({ alg: 'none', kid, typ: 'JWT' })}.${payload}.${sig}`, 'TESSERA_TOKEN_ALG_NOT_ALLOWED');
  });

  await t.test('HS256 signed with the public key (algorithm confusion)', async () => {
    const pub = h.keys.verificationKey(kid)!;
    for (const secret of [pub.export({ format: 'pem', type: 'spki' }) as string, JSON.stringify(h.keys.jwks().keys.find((k) => k.kid === kid))]) {
      const input = `${b64({ alg: 'HS256', kid, typ: 'JWT' })}.${payload}`;
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      await assertRefused(`${input}.${mac}`, 'TESSERA_TOKEN_ALG_NOT_ALLOWED');
    }
  });

  await t.test('other asymmetric algorithms are refused too', async () => {
    await assertRefused(`${b64({ alg: 'RS256', kid })}.${payload}.${sig}`, 'TESSERA_TOKEN_ALG_NOT_ALLOWED');
    await assertRefused(`${b64({ alg: 'ES384', kid })}.${payload}.${sig}`, 'TESSERA_TOKEN_ALG_NOT_ALLOWED');
  });

  await t.test('unknown kid, and a valid signature by a foreign key', async () => {
    await assertRefused(`${b64({ alg: 'ES256', kid: 'no-such-kid', typ: 'JWT' })}.${payload}.${sig}`, 'TESSERA_TOKEN_KID_UNKNOWN');
    await assertRefused(`${b64({ alg: 'ES256', typ: 'JWT' })}.${payload}.${sig}`, 'TESSERA_TOKEN_KID_UNKNOWN');
    const foreign: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const forged = await new SignJWT(goodClaims()).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' }).sign(foreign);
    await assertRefused(forged, 'TESSERA_TOKEN_SIGNATURE_INVALID');
  });

  await t.test('tampered payload or signature', async () => {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    await assertRefused(`${hdr}.${b64({ ...claims, sub: 'spiffe://example.org/ns/prod/sa/admin' })}.${sig}`, 'TESSERA_TOKEN_SIGNATURE_INVALID');
    const flipped = Buffer.from(sig, 'base64url');
    flipped[10] = flipped[10]! ^ 0x01;
    await assertRefused(`${hdr}.${payload}.${flipped.toString('base64url')}`, 'TESSERA_TOKEN_SIGNATURE_INVALID');
    await assertRefused(`${hdr}.${payload}.${sig.slice(0, 40)}`, 'TESSERA_TOKEN_SIGNATURE_INVALID');
  });

  await t.test('claims are checked only after the signature: bad claims with a bad signature say signature', async () => {
    await assertRefused(`${hdr}.${b64({ iss: 'x' })}.${sig}`, 'TESSERA_TOKEN_SIGNATURE_INVALID');
  });

  await t.test('wrong iss / aud, expired, not yet valid, bad sub, missing claims (validly signed)', async () => {
    const now = Math.floor(h.clock.now() / 1000);
    await assertRefused(await signWithTesseraKey(goodClaims({ iss: 'https://other.example' })), 'TESSERA_TOKEN_ISSUER_INVALID');
    await assertRefused(await signWithTesseraKey(goodClaims({ aud: 'https://other.example' })), 'TESSERA_TOKEN_AUDIENCE_INVALID');
    await assertRefused(await signWithTesseraKey(goodClaims({ aud: [] })), 'TESSERA_TOKEN_CLAIMS_INVALID');
    // Expired beyond the 30 s skew; inside the skew it still passes.
    await assertRefused(await signWithTesseraKey(goodClaims({ iat: now - 400, nbf: now - 400, exp: now - 31 })), 'TESSERA_TOKEN_EXPIRED');
    assert.equal((await whoami(await signWithTesseraKey(goodClaims({ iat: now - 400, nbf: now - 400, exp: now - 10 })))).status, 200);
    await assertRefused(await signWithTesseraKey(goodClaims({ nbf: now + 120 })), 'TESSERA_TOKEN_NOT_YET_VALID');
    await assertRefused(await signWithTesseraKey(goodClaims({ iat: now + 120, nbf: now })), 'TESSERA_TOKEN_NOT_YET_VALID');
    assert.equal((await whoami(await signWithTesseraKey(goodClaims({ nbf: now + 10 })))).status, 200);
    await assertRefused(await signWithTesseraKey(goodClaims({ sub: 'not-a-spiffe-id' })), 'TESSERA_TOKEN_CLAIMS_INVALID');
    await assertRefused(await signWithTesseraKey(goodClaims({ sub: 'spiffe://Example.org/ns/x' })), 'TESSERA_TOKEN_CLAIMS_INVALID');
    const { exp: _exp, ...noExp } = goodClaims();
    await assertRefused(await signWithTesseraKey(noExp), 'TESSERA_TOKEN_CLAIMS_INVALID');
    await assertRefused(await signWithTesseraKey(goodClaims({ jti: 'short' })), 'TESSERA_TOKEN_CLAIMS_INVALID');
    await assertRefused(await signWithTesseraKey(goodClaims(), { crit: ['b64'], b64: true }), 'TESSERA_TOKEN_MALFORMED');
  });

  await t.test('a token issued by this server expires after 5 minutes (+ skew)', async () => {
    const { access_token: tok } = await login();
    h.clock.advance(5 * MINUTE + 20_000);
    assert.equal((await whoami(tok)).status, 200, 'still inside the skew');
    h.clock.advance(15_000);
    await assertRefused(tok, 'TESSERA_TOKEN_EXPIRED');
  });
});

test('JWKS and SPIFFE bundle are published with the signing key', async () => {
  const jwks = (await (await fetch(`${h.base}/.well-known/jwks.json`)).json()) as { keys: Array<Record<string, string>> };
  const key = jwks.keys.find((k) => k.kid === currentKid());
  assert.ok(key);
  assert.equal(key.kty, 'EC');
  assert.equal(key.crv, 'P-256');
  assert.equal(key.alg, 'ES256');
  // RFC 7517 §4.2: generic JOSE verifiers select `use: "sig"`; the SPIFFE bundle says "jwt-svid".
  assert.equal(key.use, 'sig');
  assert.equal(key.d, undefined, 'no private part is published');
  // The published key verifies a token the server issued (what any relying party does).
  const { access_token } = await login();
  const pub = createPublicKey({ key: { kty: key.kty!, crv: key.crv!, x: key.x!, y: key.y! }, format: 'jwk' });
  const { payload } = await jwtVerify(access_token, pub, { issuer: h.base, audience: h.base, algorithms: ['ES256'], currentDate: new Date(h.clock.now()) });
  assert.equal(payload.sub, AGENT);

  const bundle = (await (await fetch(`${h.base}/v1/bundle`)).json()) as { keys: Array<Record<string, string>>; spiffe_sequence: number; spiffe_refresh_hint: number };
  assert.ok(bundle.keys.some((k) => k.kid === currentKid() && k.use === 'jwt-svid'));
  assert.ok(Number.isInteger(bundle.spiffe_sequence) && bundle.spiffe_sequence >= 1);
  assert.ok(bundle.spiffe_refresh_hint > 0);
});
