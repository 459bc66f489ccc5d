/**
 * src/identity/jwt-verify.ts against jose's jwtVerify, the implementation it replaced on the login
 * path: every token below goes through both with the same key set and options, and both must
 * agree — the same claims, or the same error (class code, and for claim errors the same claim and
 * reason). Where jwt-verify is deliberately stricter (base64url only, RFC 7515 §2), it is asserted
 * on its own.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, UnsecuredJWT, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { decodeJwt, verifyDecodedJwt, type JwtVerifyOptions } from '../../src/identity/jwt-verify.js';

const NOW = 1_780_000_000;
const ISS = 'https://issuer.example';
const AUD = 'tessera';
type Alg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';
const ALL: Alg[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

interface Key { alg: Alg; kid: string; privateKey: CryptoKey; jwk: JWK }
const keys = new Map<Alg, Key>();
let jwks: JWK[];
let getKey: JWTVerifyGetKey;

async function makeKey(alg: Alg, kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  return { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

before(async () => {
  for (const alg of ALL) keys.set(alg, await makeKey(alg, `k-${alg}`));
  jwks = [...keys.values()].map((k) => k.jwk);
  getKey = createLocalJWKSet({ keys: jwks });
});

const claims = (over: JWTPayload = {}): JWTPayload => ({ iss: ISS, aud: AUD, sub: 'worker', iat: NOW - 10, nbf: NOW - 10, exp: NOW + 600, ...over });
const signWith = (alg: Alg, c: JWTPayload, header: Record<string, unknown> = {}): Promise<string> =>
  new SignJWT(c).setProtectedHeader({ alg, kid: keys.get(alg)!.kid, typ: 'JWT', ...header }).sign(keys.get(alg)!.privateKey);

interface Opts { algorithms?: string[]; issuer?: string; audience?: string | string[]; requiredClaims?: string[]; maxTokenAgeS?: number; tolerance?: number; getKey?: JWTVerifyGetKey }

type Outcome = { ok: true; claims: unknown } | { ok: false; code: string; claim?: string; reason?: string };

function outcome(e: unknown): Outcome {
  const err = e as { code?: string; claim?: string; reason?: string; name?: string };
  return { ok: false, code: err.code ?? (e instanceof TypeError ? 'TypeError' : String(err.name)), ...(err.claim ? { claim: err.claim, reason: err.reason } : {}) };
}

async function viaJose(token: string, o: Opts): Promise<Outcome> {
  try {
    const { payload } = await jwtVerify(token, o.getKey ?? getKey, {
      algorithms: o.algorithms ?? ALL, issuer: o.issuer ?? ISS, audience: o.audience ?? AUD, requiredClaims: o.requiredClaims ?? ['exp'],
      currentDate: new Date(NOW * 1000), clockTolerance: o.tolerance ?? 30, ...(o.maxTokenAgeS !== undefined ? { maxTokenAge: o.maxTokenAgeS } : {}),
    });
    return { ok: true, claims: payload };
  } catch (e) {
    return outcome(e);
  }
}

async function viaNode(token: string, o: Opts): Promise<Outcome> {
  const options: JwtVerifyOptions = {
    getKey: o.getKey ?? getKey, algorithms: new Set(o.algorithms ?? ALL), issuer: o.issuer ?? ISS, audience: o.audience ?? AUD,
    requiredClaims: o.requiredClaims ?? ['exp'], nowS: NOW, toleranceS: o.tolerance ?? 30, ...(o.maxTokenAgeS !== undefined ? { maxTokenAgeS: o.maxTokenAgeS } : {}),
  };
  try {
    return { ok: true, claims: await verifyDecodedJwt(decodeJwt(token), options) };
  } catch (e) {
    return outcome(e);
  }
}

async function agree(token: string, o: Opts = {}, expect?: Partial<Outcome> & { ok: boolean }): Promise<void> {
  const [j, n] = [await viaJose(token, o), await viaNode(token, o)];
  assert.deepEqual(n, j, `jwt-verify and jose disagree on ${token.slice(0, 60)}… (${JSON.stringify(o).slice(0, 80)})`);
  if (expect) assert.deepEqual({ ...n, ...expect }, n, `expected ${JSON.stringify(expect)}, got ${JSON.stringify(n)}`);
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** An ES256 token with any header (jose's signer refuses the odd ones), signed with node:crypto. */
const rawEs256 = (header: Record<string, unknown>, payload: string): string => {
  const input = `${b64({ alg: 'ES256', kid: 'k-ES256', ...header })}.${payload}`;
  return `${input}.${nodeSign('sha256', Buffer.from(input), { key: KeyObject.from(keys.get('ES256')!.privateKey), dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
};
const parts = (t: string): [string, string, string] => t.split('.') as [string, string, string];

test('every allowed algorithm verifies exactly as jose does (RSA PKCS#1, PSS, ECDSA P-256/384/521, Ed25519)', async () => {
  for (const alg of ALL) await agree(await signWith(alg, claims()), {}, { ok: true });
});

test('a wrong key, a tampered payload or header, and a swapped signature fail the signature check', async () => {
  for (const alg of ALL) {
    const good = await signWith(alg, claims());
    const [h, p, s] = parts(good);
    await agree(`${h}.${b64(claims({ sub: 'admin' }))}.${s}`, {}, { ok: false, code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    await agree(`${b64({ alg, kid: keys.get(alg)!.kid, typ: 'JOSE' })}.${p}.${s}`, {}, { ok: false, code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    const other = await makeKey(alg, keys.get(alg)!.kid); // same kid, another key
    const forged = await new SignJWT(claims()).setProtectedHeader({ alg, kid: other.kid }).sign(other.privateKey);
    await agree(forged, {}, { ok: false, code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  }
});

test('ECDSA signatures that are not R‖S of the exact length fail (DER, truncated, padded, all-zero "psychic")', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const localKeys = createLocalJWKSet({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'p', alg: 'ES256' }] });
  const input = `${b64({ alg: 'ES256', kid: 'p' })}.${b64(claims())}`;
  const raw = (k: KeyObject, dsaEncoding: 'der' | 'ieee-p1363') => nodeSign('sha256', Buffer.from(input), { key: k, dsaEncoding });
  const good = raw(privateKey, 'ieee-p1363');
  await agree(`${input}.${good.toString('base64url')}`, { getKey: localKeys }, { ok: true });
  for (const sig of [raw(privateKey, 'der'), good.subarray(0, 63), Buffer.concat([good, Buffer.alloc(1)]), Buffer.alloc(64), Buffer.alloc(0)]) {
    await agree(`${input}.${sig.toString('base64url')}`, { getKey: localKeys }, { ok: false, code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  }
});

test('algorithms: none, HMAC keyed with the public key, one outside the allow-list, missing or not a string', async () => {
  await agree(new UnsecuredJWT(claims()).encode(), {}, { ok: false, code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
  const hs = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'k-ES256' }).sign(new TextEncoder().encode(JSON.stringify(keys.get('ES256')!.jwk)));
  await agree(hs, {}, { ok: false, code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
  await agree(await signWith('ES256', claims()), { algorithms: ['RS256'] }, { ok: false, code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
  const [, p, s] = parts(await signWith('ES256', claims()));
  await agree(`${b64({ kid: 'k-ES256' })}.${p}.${s}`, {}, { ok: false, code: 'ERR_JWS_INVALID' });
  await agree(`${b64({ alg: 7, kid: 'k-ES256' })}.${p}.${s}`, {}, { ok: false, code: 'ERR_JWS_INVALID' });
  await agree(`${b64({ alg: '', kid: 'k-ES256' })}.${p}.${s}`, {}, { ok: false, code: 'ERR_JWS_INVALID' });
});

test('crit: only b64 is understood, and a JWT may not use an unencoded payload (RFC 7515 §4.1.11, RFC 7797 §7)', async () => {
  await agree(await signWith('ES256', claims(), { crit: ['b64'], b64: true }), {}, { ok: true });
  for (const [header, code] of [
    [{ crit: ['exp'], exp: 1 }, 'ERR_JOSE_NOT_SUPPORTED'],
    [{ crit: [] }, 'ERR_JWS_INVALID'],
    [{ crit: 'b64', b64: true }, 'ERR_JWS_INVALID'],
    [{ crit: [''] }, 'ERR_JWS_INVALID'],
    [{ crit: ['b64'] }, 'ERR_JWS_INVALID'],
    [{ crit: ['b64'], b64: 'yes' }, 'ERR_JWS_INVALID'],
  ] as const) {
    await agree(rawEs256(header, b64(claims())), {}, { ok: false, code });
  }
  // b64: false (an unencoded payload): jose's JWT layer refuses it after the signature, jwt-verify
  // before the key is touched; the refusal is the same.
  await agree(rawEs256({ crit: ['b64'], b64: false }, b64(claims())), {}, { ok: false, code: 'ERR_JWT_INVALID' });
  const unsigned = `${b64({ alg: 'ES256', kid: 'k-ES256', crit: ['b64'], b64: false })}.${b64(claims())}.AAAA`;
  assert.deepEqual(await viaNode(unsigned, {}), { ok: false, code: 'ERR_JWT_INVALID' });
});

test('key selection is jose\'s: unknown kid, several keys without kid, a key for another use or operation', async () => {
  await agree(await signWith('ES256', claims(), { kid: 'nope' }), {}, { ok: false, code: 'ERR_JWKS_NO_MATCHING_KEY' });
  const ec = keys.get('ES256')!;
  const twin = await makeKey('ES256', 'twin');
  const noKid = createLocalJWKSet({ keys: [{ ...ec.jwk, kid: undefined }, { ...twin.jwk, kid: undefined }] });
  const t = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey);
  await agree(t, { getKey: noKid }, { ok: false, code: 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' });
  await agree(await signWith('ES256', claims()), { getKey: createLocalJWKSet({ keys: [{ ...ec.jwk, use: 'enc' }] }) }, { ok: false, code: 'ERR_JWKS_NO_MATCHING_KEY' });
  await agree(await signWith('ES256', claims()), { getKey: createLocalJWKSet({ keys: [{ ...ec.jwk, key_ops: ['sign'] }] }) }, { ok: false, code: 'ERR_JWKS_NO_MATCHING_KEY' });
  await agree(await signWith('ES256', claims()), { getKey: createLocalJWKSet({ keys: [{ ...ec.jwk, alg: 'ES384' }] }) }, { ok: false, code: 'ERR_JWKS_NO_MATCHING_KEY' });
  // An RS256 token whose kid names an EC key: no RSA key matches.
  await agree(await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: 'k-ES256' }).sign(keys.get('RS256')!.privateKey), {}, { ok: false, code: 'ERR_JWKS_NO_MATCHING_KEY' });
});

test('an RSA key shorter than 2048 bits is refused as jose refuses it (a TypeError, whatever the signature)', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const weak = createLocalJWKSet({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'weak', alg: 'RS256' }] });
  const input = `${b64({ alg: 'RS256', kid: 'weak' })}.${b64(claims())}`;
  const token = `${input}.${nodeSign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  await agree(token, { getKey: weak }, { ok: false, code: 'TypeError' });
});

test('claims: required, iss, aud (string and array), numeric dates, nbf/exp with tolerance, max token age', async () => {
  const es = (over: JWTPayload, o: Opts = {}, expect?: Partial<Outcome> & { ok: boolean }) => signWith('ES256', claims(over)).then((t) => agree(t, o, expect));
  await es({ exp: undefined }, {}, { ok: false, code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'exp', reason: 'missing' });
  await es({ iss: undefined, aud: undefined }, {}, { ok: false, claim: 'iss', reason: 'missing' }); // jose's order: iss first
  await es({ aud: undefined }, {}, { ok: false, claim: 'aud', reason: 'missing' });
  await es({ iss: 'https://other.example' }, {}, { ok: false, claim: 'iss', reason: 'check_failed' });
  await es({ aud: 'other' }, {}, { ok: false, claim: 'aud', reason: 'check_failed' });
  await es({ aud: ['other', AUD] }, {}, { ok: true });
  await es({ aud: ['other'] }, {}, { ok: false, claim: 'aud' });
  await es({ aud: 7 as unknown as string }, {}, { ok: false, claim: 'aud' });
  await es({}, { audience: ['x', AUD] }, { ok: true });
  await es({ exp: 'soon' as unknown as number }, {}, { ok: false, claim: 'exp', reason: 'invalid' });
  await es({ nbf: 'now' as unknown as number }, {}, { ok: false, claim: 'nbf', reason: 'invalid' });
  await es({ iat: 'now' as unknown as number }, {}, { ok: false, claim: 'iat', reason: 'invalid' });
  for (const exp of [NOW - 31, NOW - 30, NOW - 29, NOW]) await es({ exp }); // the tolerance boundary, both sides
  for (const nbf of [NOW + 29, NOW + 30, NOW + 31]) await es({ nbf });
  await es({ exp: NOW - 31 }, {}, { ok: false, code: 'ERR_JWT_EXPIRED', claim: 'exp' });
  await es({ nbf: NOW + 31 }, {}, { ok: false, claim: 'nbf', reason: 'check_failed' });
  await es({ iat: NOW - 30 }, { maxTokenAgeS: 60 }, { ok: true });
  await es({ iat: NOW - 91 }, { maxTokenAgeS: 60 }, { ok: false, code: 'ERR_JWT_EXPIRED', claim: 'iat' });
  await es({ iat: NOW + 31 }, { maxTokenAgeS: 60 }, { ok: false, code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iat' });
  await es({ iat: undefined }, { maxTokenAgeS: 60 }, { ok: false, claim: 'iat', reason: 'missing' });
  await es({ sub: undefined }, { requiredClaims: ['sub', 'aud', 'exp'] }, { ok: false, claim: 'sub', reason: 'missing' });
  await es({}, { tolerance: 0 }, { ok: true });
});

test('malformed tokens are refused as jose refuses them', async () => {
  const [h, p, s] = parts(await signWith('ES256', claims()));
  for (const t of ['garbage', 'a.b', `${h}.${p}`, `${h}.${p}.${s}.x`, `${h}..${s}`, `.${p}.${s}`, `${b64('[1]')}.${p}.${s}`, `${b64('not json')}.${p}.${s}`, `${h}.${b64('[1]')}.${s}`, `${h}.${b64('"str"')}.${s}`]) {
    const n = await viaNode(t, {});
    const j = await viaJose(t, {});
    assert.equal(j.ok, false, t);
    assert.equal(n.ok, false, t);
    assert.ok(['ERR_JWS_INVALID', 'ERR_JWT_INVALID'].includes((n as { code: string }).code), `${t}: ${JSON.stringify(n)}`);
  }
  // Correctly signed, but the claims set is not a JSON object (or not UTF-8): the same refusal as jose.
  for (const payload of [b64('[1]'), b64('"str"'), b64('{"iss":'), Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')]) {
    const t = rawEs256({}, payload);
    const j = await viaJose(t, {});
    const n = await viaNode(t, {});
    assert.deepEqual(j, { ok: false, code: 'ERR_JWT_INVALID' }, payload);
    assert.deepEqual(n, j, payload);
  }
});

test('jwt-verify is stricter than jose on encoding: padding, whitespace and non-base64url characters are refused', async () => {
  const [h, p, s] = parts(await signWith('ES256', claims()));
  for (const t of [`${h}=.${p}.${s}`, `${h}.${p} .${s}`, `${h}.${p}.${s}=`, `${h}.${p}+.${s}`]) {
    const n = await viaNode(t, {});
    assert.equal(n.ok, false, t);
    assert.ok(['ERR_JWS_INVALID', 'ERR_JWT_INVALID'].includes((n as { code: string }).code), `${t}: ${JSON.stringify(n)}`);
  }
});

test('decodeJwt runs the header check before the payload is decoded', () => {
  const seen: unknown[] = [];
  assert.throws(() => decodeJwt(`${b64({ alg: 'HS256' })}.${b64('not json')}.AA`, (hdr) => {
    seen.push(hdr.alg);
    throw new Error('header refused');
  }), /header refused/);
  assert.deepEqual(seen, ['HS256']);
});
