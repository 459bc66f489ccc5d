import { KeyObject, constants, verify as cryptoVerify } from 'node:crypto';
import { errors, type CompactJWSHeaderParameters, type JWTPayload, type JWTVerifyGetKey, type ProtectedHeaderParameters } from 'jose';

/**
 * Verification of other issuers' signed JWTs (attestation subject tokens: Kubernetes projected
 * service-account tokens, CI job tokens, JWT-SVIDs) with node:crypto's callback `verify`, which
 * runs the signature check on the libuv pool instead of the event loop.
 *
 * It does exactly the checks jose v6 `jwtVerify` did for Tessera (jose 6.2 `lib/jws_verify.js`,
 * `lib/jwt_claims_set.js`), in the same order, and throws jose's own error classes with the same
 * `code`, `claim` and `reason`, so the attestor's error mapping is unchanged:
 *  1. compact form: exactly three base64url parts (RFC 7515 §7.1); header and claims are JSON
 *     objects in strict UTF-8 (RFC 7519 §7.2);
 *  2. `crit` (RFC 7515 §4.1.11): only `b64` is understood, and a JWT must not use an unencoded
 *     payload (RFC 7797 §7);
 *  3. `alg` is a string in the caller's allow-list (RFC 8725 §3.1), before any key is touched;
 *  4. the key comes from jose's JWKS resolver (local set or remote URL, unchanged: kid, kty, crv,
 *     `use`, `key_ops`, public keys only; several matches are refused), is checked as jose checks a
 *     CryptoKey (public, algorithm/hash/curve of `alg`, usage `verify`, RSA modulus ≥ 2048 bits)
 *     and converted once to a KeyObject (cached per CryptoKey);
 *  5. the signature (RFC 7518 §3: PKCS#1 v1.5, PSS with salt = hash length, ECDSA R‖S of the
 *     curve's exact length, Ed25519);
 *  6. claims after the signature: required claims present (jose's order), `iss` exact, `aud`
 *     contains one of the audiences, `iat`/`nbf`/`exp` numbers, `nbf` and `exp` against now with
 *     the tolerance, `iat` age against `maxTokenAge` (RFC 7519 §4.1).
 * The payload is decoded once (`decodeJwt`), read unverified only to pick the attestor, and its
 * claims are trusted only after the signature over those same bytes verified.
 */

/** A compact JWT split and decoded, nothing verified yet. */
export interface DecodedJwt {
  readonly header: ProtectedHeaderParameters & Record<string, unknown>;
  /** Unverified until `verifyDecodedJwt` resolves. */
  readonly claims: JWTPayload;
  /** `<header>.<payload>` as sent: the signing input (RFC 7515 §5.2). */
  readonly signingInput: string;
  readonly encodedHeader: string;
  readonly encodedPayload: string;
  readonly encodedSignature: string;
}

export interface JwtVerifyOptions {
  /** Allowed `alg` values (never `none` or HMAC for attestation). */
  readonly algorithms: ReadonlySet<string>;
  /** jose's key resolver: `createLocalJWKSet` / `createRemoteJWKSet`. */
  readonly getKey: JWTVerifyGetKey;
  /** Exact `iss` (absent: not checked). */
  readonly issuer?: string;
  /** `aud` must contain one of these (absent: not checked). */
  readonly audience?: string | readonly string[];
  /** Claims that must be present (jose's `requiredClaims`). */
  readonly requiredClaims?: readonly string[];
  /** Now, in seconds since the epoch (floored). */
  readonly nowS: number;
  /** Allowed clock skew, seconds, ≥ 0. */
  readonly toleranceS: number;
  /** Maximum age of `iat`, seconds (makes `iat` required). */
  readonly maxTokenAgeS?: number;
}

const B64URL_PART = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** jose's isObject: a plain JSON object. */
function isObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Object.prototype.toString.call(v) !== '[object Object]') return false;
  const proto = Object.getPrototypeOf(v) as object | null;
  return proto === null || Object.getPrototypeOf(proto) === null;
}

function decodeJsonPart(part: string, what: 'header' | 'payload'): unknown {
  if (part.length === 0 || !B64URL_PART.test(part)) {
    throw what === 'header' ? new errors.JWSInvalid('JWS Protected Header is invalid') : new errors.JWTInvalid('Invalid JWT Claims Set');
  }
  try {
    return JSON.parse(utf8.decode(Buffer.from(part, 'base64url')));
  } catch (cause) {
    throw what === 'header' ? new errors.JWSInvalid('JWS Protected Header is invalid', { cause }) : new errors.JWTInvalid('JWT Claims Set must be a top-level JSON object', { cause });
  }
}

/**
 * Splits and decodes a compact JWT. Throws jose's JWSInvalid / JWTInvalid (code ERR_JWS_INVALID,
 * ERR_JWT_INVALID) when it is not three base64url parts with a JSON-object header and claims set.
 * `checkHeader` runs on the decoded header before the payload is decoded (its error is thrown as is).
 */
export function decodeJwt(token: string, checkHeader?: (header: DecodedJwt['header']) => void): DecodedJwt {
  const dot1 = token.indexOf('.');
  const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1);
  if (dot1 < 0 || dot2 < 0 || token.indexOf('.', dot2 + 1) !== -1) throw new errors.JWSInvalid('Invalid Compact JWS');
  const encodedHeader = token.slice(0, dot1);
  const encodedPayload = token.slice(dot1 + 1, dot2);
  const encodedSignature = token.slice(dot2 + 1);
  if (!B64URL_PART.test(encodedSignature)) throw new errors.JWSInvalid('Failed to base64url decode the signature');
  const header = decodeJsonPart(encodedHeader, 'header');
  if (!isObject(header)) throw new errors.JWSInvalid('JWS Protected Header is invalid');
  checkHeader?.(header as DecodedJwt['header']);
  const claims = decodeJsonPart(encodedPayload, 'payload');
  if (!isObject(claims)) throw new errors.JWTInvalid('JWT Claims Set must be a top-level JSON object');
  return { header: header as DecodedJwt['header'], claims: claims as JWTPayload, signingInput: token.slice(0, dot2), encodedHeader, encodedPayload, encodedSignature };
}

/** How each JWS `alg` verifies (RFC 7518 §3) and what a CryptoKey for it must be (jose's table). */
interface AlgSpec {
  readonly digest: string | null;
  readonly subtle: { readonly name: string; readonly hash?: string; readonly namedCurve?: string };
  readonly options: { readonly padding?: number; readonly saltLength?: number; readonly dsaEncoding?: 'ieee-p1363' };
  /** ECDSA: R‖S length in bytes. */
  readonly sigLength?: number;
  readonly minRsaBits?: number;
}

const rsa = (bits: 256 | 384 | 512, pss: boolean): AlgSpec => ({
  digest: `sha${bits}`,
  subtle: { name: pss ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash: `SHA-${bits}` },
  options: pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bits / 8 } : { padding: constants.RSA_PKCS1_PADDING },
  minRsaBits: 2048,
});
const ecdsa = (bits: 256 | 384 | 512, curve: string, sigLength: number): AlgSpec => ({
  digest: `sha${bits}`, subtle: { name: 'ECDSA', namedCurve: curve }, options: { dsaEncoding: 'ieee-p1363' }, sigLength,
});
const eddsa: AlgSpec = { digest: null, subtle: { name: 'Ed25519' }, options: {} };

const ALGS: Readonly<Record<string, AlgSpec>> = {
  RS256: rsa(256, false), RS384: rsa(384, false), RS512: rsa(512, false),
  PS256: rsa(256, true), PS384: rsa(384, true), PS512: rsa(512, true),
  ES256: ecdsa(256, 'P-256', 64), ES384: ecdsa(384, 'P-384', 96), ES512: ecdsa(512, 'P-521', 132),
  EdDSA: eddsa, Ed25519: eddsa,
};

/** KeyObjects of checked CryptoKeys, per `alg` (jose's resolver caches its CryptoKeys, so this hits). */
const keyObjects = new WeakMap<object, Map<string, KeyObject>>();

/** jose's prepareKey + checkCryptoKey + checkModulusLength for a verification key; TypeError as jose throws. */
function verificationKey(key: unknown, alg: string, spec: AlgSpec): KeyObject {
  if (key instanceof KeyObject) {
    if (key.type !== 'public') throw new TypeError(`KeyObject instances must be of type "public" for the ${alg} algorithm`);
    return key;
  }
  if (typeof key !== 'object' || key === null || (key as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] !== 'CryptoKey') {
    throw new TypeError(`Key for the ${alg} algorithm must be one of type CryptoKey or KeyObject`);
  }
  const perAlg = keyObjects.get(key);
  const hit = perAlg?.get(alg);
  if (hit) return hit;
  const ck = key as CryptoKey;
  if (ck.type !== 'public') throw new TypeError(`CryptoKey instances must be of type "public" for the ${alg} algorithm`);
  const a = ck.algorithm as { name: string; hash?: { name: string }; namedCurve?: string; modulusLength?: number };
  if (a.name !== spec.subtle.name) throw new TypeError(`CryptoKey does not support this operation, its algorithm.name must be ${spec.subtle.name}`);
  if (spec.subtle.hash && a.hash?.name !== spec.subtle.hash) throw new TypeError(`CryptoKey does not support this operation, its algorithm.hash must be ${spec.subtle.hash}`);
  if (spec.subtle.namedCurve && a.namedCurve !== spec.subtle.namedCurve) throw new TypeError(`CryptoKey does not support this operation, its algorithm.namedCurve must be ${spec.subtle.namedCurve}`);
  if (!ck.usages.includes('verify')) throw new TypeError('CryptoKey does not support this operation, its usages must include verify.');
  if (spec.minRsaBits && (typeof a.modulusLength !== 'number' || a.modulusLength < spec.minRsaBits)) throw new TypeError(`${alg} requires key modulusLength to be 2048 bits or larger`);
  const ko = KeyObject.from(ck);
  (perAlg ?? keyObjects.set(key, new Map()).get(key)!).set(alg, ko);
  return ko;
}

/** jose's validateCrit (recognized: b64) + validateB64, for a JWT (which must not use b64: false). */
function checkCrit(header: Record<string, unknown>): void {
  if (header.crit === undefined) return;
  const crit = header.crit;
  if (!Array.isArray(crit) || crit.length === 0 || crit.some((c) => typeof c !== 'string' || c.length === 0)) {
    throw new errors.JWSInvalid('"crit" (Critical) Header Parameter MUST be an array of non-empty strings when present');
  }
  for (const p of crit as string[]) {
    if (p !== 'b64') throw new errors.JOSENotSupported(`Extension Header Parameter "${p}" is not recognized`);
    if (!Object.hasOwn(header, p) || header[p] === undefined) throw new errors.JWSInvalid(`Extension Header Parameter "${p}" is missing`);
  }
  if (typeof header.b64 !== 'boolean') throw new errors.JWSInvalid('The "b64" (base64url-encode payload) Header Parameter must be a boolean');
  if (!header.b64) throw new errors.JWTInvalid('JWTs MUST NOT use unencoded payload');
}

function verifySignature(spec: AlgSpec, key: KeyObject, signingInput: string, signature: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    cryptoVerify(spec.digest, Buffer.from(signingInput, 'latin1'), { key, ...spec.options }, signature, (err, ok) => {
      if (err) reject(new errors.JWSSignatureVerificationFailed(undefined, { cause: err }));
      else resolve(ok);
    });
  });
}

const claimFailed = (message: string, claims: JWTPayload, claim: string, reason: string) => new errors.JWTClaimValidationFailed(message, claims, claim, reason);

/** jose's validateClaimsSet for the options Tessera uses; same messages, claims and reasons. */
function checkClaims(claims: JWTPayload, o: JwtVerifyOptions): void {
  const presence = [...(o.requiredClaims ?? [])];
  if (o.maxTokenAgeS !== undefined) presence.push('iat');
  if (o.audience !== undefined) presence.push('aud');
  if (o.issuer !== undefined) presence.push('iss');
  for (const claim of new Set(presence.reverse())) {
    if (!Object.hasOwn(claims, claim)) throw claimFailed(`missing required "${claim}" claim`, claims, claim, 'missing');
  }
  if (o.issuer !== undefined && claims.iss !== o.issuer) throw claimFailed('unexpected "iss" claim value', claims, 'iss', 'check_failed');
  if (o.audience !== undefined) {
    const want = typeof o.audience === 'string' ? [o.audience] : o.audience;
    const aud = claims.aud;
    const ok = typeof aud === 'string' ? want.includes(aud) : Array.isArray(aud) ? want.some((a) => aud.includes(a)) : false;
    if (!ok) throw claimFailed('unexpected "aud" claim value', claims, 'aud', 'check_failed');
  }
  const tolerance = o.toleranceS;
  const numeric = (claim: 'iat' | 'nbf' | 'exp', required = false): number | undefined => {
    const v = claims[claim];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'number') throw claimFailed(`"${claim}" claim must be a number`, claims, claim, 'invalid');
    return v;
  };
  const iat = numeric('iat', o.maxTokenAgeS !== undefined);
  const nbf = numeric('nbf');
  if (nbf !== undefined && nbf > o.nowS + tolerance) throw claimFailed('"nbf" claim timestamp check failed', claims, 'nbf', 'check_failed');
  const exp = numeric('exp');
  if (exp !== undefined && exp <= o.nowS - tolerance) throw new errors.JWTExpired('"exp" claim timestamp check failed', claims, 'exp', 'check_failed');
  if (o.maxTokenAgeS !== undefined) {
    const age = o.nowS - iat!;
    if (age - tolerance > o.maxTokenAgeS) throw new errors.JWTExpired('"iat" claim timestamp check failed (too far in the past)', claims, 'iat', 'check_failed');
    if (age < -tolerance) throw claimFailed('"iat" claim timestamp check failed (it should be in the past)', claims, 'iat', 'check_failed');
  }
}

/**
 * Verifies a decoded JWT (see the module comment for every check) and resolves its claims.
 * Rejects with jose's error classes: ERR_JWS_INVALID, ERR_JWT_INVALID, ERR_JOSE_NOT_SUPPORTED
 * (format), ERR_JOSE_ALG_NOT_ALLOWED, ERR_JWKS_* (key resolution), a TypeError for an unusable
 * key, ERR_JWS_SIGNATURE_VERIFICATION_FAILED, ERR_JWT_CLAIM_VALIDATION_FAILED, ERR_JWT_EXPIRED.
 */
export async function verifyDecodedJwt(jwt: DecodedJwt, o: JwtVerifyOptions): Promise<JWTPayload> {
  const { header } = jwt;
  checkCrit(header);
  const alg = header.alg;
  if (typeof alg !== 'string' || !alg) throw new errors.JWSInvalid('JWS "alg" (Algorithm) Header Parameter missing or invalid');
  if (!o.algorithms.has(alg)) throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  const spec = Object.hasOwn(ALGS, alg) ? ALGS[alg] : undefined;
  if (!spec) throw new errors.JOSENotSupported(`Unsupported "alg" value: ${alg.slice(0, 20)}`);
  const resolved = await o.getKey(header as CompactJWSHeaderParameters, { payload: jwt.encodedPayload, signature: jwt.encodedSignature, protected: jwt.encodedHeader });
  const key = verificationKey(resolved, alg, spec);
  const signature = Buffer.from(jwt.encodedSignature, 'base64url');
  // RFC 7518 §3.4: an ECDSA signature is R‖S of exactly twice the curve's byte length.
  const ok = (spec.sigLength === undefined || signature.length === spec.sigLength) && (await verifySignature(spec, key, jwt.signingInput, signature));
  if (!ok) throw new errors.JWSSignatureVerificationFailed();
  checkClaims(jwt.claims, o);
  return jwt.claims;
}
