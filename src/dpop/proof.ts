/**
 * Verification of one DPoP proof JWT against the request it came with (RFC 9449 §4.3).
 *
 * Checks, cheapest first, each with its own error code (src/shared/errors.ts, "DPoP"):
 *  1. exactly one `DPoP` header (check 1), at most 8 KiB;
 *  2. a JWS compact serialization with JSON header and payload (check 2);
 *  3. `typ` is `dpop+jwt` (check 4), no `crit`;
 *  4. `alg` asymmetric and in `tokens.dpop.algorithms` — never `none` or a MAC (check 5);
 *  5. `jwk` an acceptable public key, no private part (check 7; ./jwk.ts);
 *  6. `jti`, `htm`, `htu`, `iat` present with the right types (check 3);
 *  7. `htm` = the request method (check 8), `htu` = the request URI (check 9, ./htu.ts);
 *  8. `iat` within `tokens.dpop.iat_window` of now, either side (check 11);
 *  9. with an access token: `ath` = base64url(SHA-256(token)) and the key's thumbprint = the
 *     token's `cnf.jkt` (check 12);
 * 10. with server nonces on: a current `nonce` (check 10, §8, §9);
 * 11. the signature verifies with the `jwk` (check 6) — node:crypto's callback form, which runs
 *     the public-key operation on the libuv pool, as src/tokens/jws.ts does (ADR 0004);
 * 12. the `jti` was not seen before (§11.1, ./replay.ts) — recorded only once everything above
 *     passed, so a forged proof cannot fill the cache.
 */
import { proveHolder } from './holder.js';
import { constants, createHash, verify, type KeyObject } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import { TesseraError } from '../shared/errors.js';
import { PublicKeyCache, isDpopAlgorithm, type DpopAlgorithm } from './jwk.js';
import type { HtuMatcher } from './htu.js';
import type { NonceSource } from './nonce.js';
import type { ReplayCache } from './replay.js';

/** RFC 9449 gives no limit; an EC or Ed25519 proof is ~600 bytes, an RSA-4096 one ~2 KiB. */
export const MAX_PROOF_BYTES = 8192;

// The signature part may be empty here so that `alg: none` is refused by name (check 5).
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface ProofExpectation {
  /** The request method (`htm`). */
  readonly method: string;
  /** The request target as received, origin-form (`/v1/whoami?x=1`); compared as `htu`. */
  readonly target: string;
  /** The access token sent with the proof (resource requests): `ath` must be its hash. */
  readonly accessToken?: string;
  /** The thumbprint the access token is bound to (`cnf.jkt`). */
  readonly jkt?: string;
}

export interface VerifiedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof key. */
  readonly jkt: string;
  /** The proof carried a nonce of the previous window: answer with the current one. */
  readonly nonceStale: boolean;
}

export interface ProofVerifierOptions {
  readonly algorithms: readonly DpopAlgorithm[];
  /** Accepted distance of `iat` from now, either side, in ms. */
  readonly iatWindowMs: number;
  readonly htu: HtuMatcher;
  readonly replay: ReplayCache;
  /** Present when server nonces are required (`tokens.dpop.nonce`). */
  readonly nonces?: NonceSource;
  readonly clock: Clock;
  readonly keys?: PublicKeyCache;
}

export interface ProofVerifier {
  /** Verifies the `DPoP` header value(s) of a request; throws a TESSERA_DPOP_* TesseraError. */
  verify(header: string | readonly string[] | undefined, expect: ProofExpectation): Promise<VerifiedProof>;
}

const HASH: Readonly<Record<string, string>> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };
const EC_SIG_BYTES: Readonly<Record<string, number>> = { ES256: 64, ES384: 96, ES512: 132 };

const malformed = (why: string): TesseraError => new TesseraError('TESSERA_DPOP_PROOF_MALFORMED', `the DPoP proof ${why} (RFC 9449 §4.2)`);

function decodeJson(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw malformed(`${what} is not valid JSON`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw malformed(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function claimString(p: Record<string, unknown>, name: string, max: number): string {
  const v = p[name];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw malformed(`has no valid "${name}" claim (a string of 1 to ${max} characters)`);
  return v;
}

/** Verifies a JWS signature off the event loop; resolves false on any failure. */
export function verifySignature(alg: DpopAlgorithm, key: KeyObject, signingInput: Buffer, signature: Buffer): Promise<boolean> {
  const ec = EC_SIG_BYTES[alg];
  if (ec !== undefined && signature.length !== ec) return Promise.resolve(false); // RFC 7518 §3.4: R || S
  const hash = alg === 'EdDSA' ? null : HASH[alg.slice(2)]!;
  const k = alg.startsWith('ES')
    ? { key, dsaEncoding: 'ieee-p1363' as const }
    : alg.startsWith('PS')
      ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 } // RFC 7518 §3.5
      : key;
  return new Promise((resolve) => {
    try {
      verify(hash, signingInput, k, signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

/** base64url(SHA-256(access token)): the `ath` claim (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

export function createProofVerifier(opts: ProofVerifierOptions): ProofVerifier {
  const keys = opts.keys ?? new PublicKeyCache();
  const allowed = new Set<string>(opts.algorithms);
  const algList = opts.algorithms.join(' ');

  return {
    async verify(header, expect) {
      if (header === undefined || (Array.isArray(header) && header.length === 0)) {
        throw new TesseraError('TESSERA_DPOP_PROOF_MISSING', 'this request needs a DPoP proof in the `DPoP` header (RFC 9449 §4): a JWT signed with your DPoP key, made for this request');
      }
      // Node joins repeated unknown headers with ", "; a JWS has neither character.
      if (typeof header !== 'string' || header.includes(',')) throw malformed('header appears more than once; send exactly one `DPoP` header (RFC 9449 §4.3 check 1)');
      const proof = header.trim();
      if (proof === '') throw malformed('header is empty');
      if (proof.length > MAX_PROOF_BYTES) throw new TesseraError('TESSERA_DPOP_PROOF_TOO_LARGE', `the DPoP proof is ${proof.length} bytes; at most ${MAX_PROOF_BYTES} are accepted`);
      if (!JWS.test(proof)) throw malformed('is not a JWS compact serialization (three base64url parts separated by dots)');
      const dot1 = proof.indexOf('.');
      const dot2 = proof.indexOf('.', dot1 + 1);
      const h = decodeJson(proof.slice(0, dot1), 'header');
      if (typeof h.typ !== 'string' || !['dpop+jwt', 'application/dpop+jwt'].includes(h.typ.toLowerCase())) throw malformed('header "typ" is not "dpop+jwt" (RFC 9449 §4.3 check 4)');
      const alg = h.alg;
      if (typeof alg !== 'string' || !isDpopAlgorithm(alg) || !allowed.has(alg)) {
        const shown = typeof alg === 'string' ? `"${alg.slice(0, 20)}"` : 'a missing "alg"';
        const why = alg === 'none' ? 'an unsigned proof ("none") proves nothing' : typeof alg === 'string' && /^HS/i.test(alg) ? 'a symmetric (MAC) algorithm proves no possession of a private key' : 'it is not accepted here';
        throw new TesseraError('TESSERA_DPOP_ALG_NOT_ALLOWED', `the DPoP proof uses ${shown}: ${why}; accepted algorithms: ${algList} (RFC 9449 §4.3 check 5)`);
      }
      if (h.crit !== undefined) throw malformed('header has a "crit" parameter Tessera does not understand (RFC 7515 §4.1.11)');
      const { key, jkt } = keys.get(h.jwk, alg);

      const p = decodeJson(proof.slice(dot1 + 1, dot2), 'payload');
      const jti = claimString(p, 'jti', 256);
      const htm = claimString(p, 'htm', 32);
      const htu = claimString(p, 'htu', 4096);
      const iat = p.iat;
      if (typeof iat !== 'number' || !Number.isFinite(iat)) throw malformed('has no valid "iat" claim (seconds since the epoch)');

      if (htm !== expect.method) throw new TesseraError('TESSERA_DPOP_HTM_MISMATCH', `the DPoP proof is for method "${htm.slice(0, 16)}", this request is ${expect.method}; make a new proof for each request (RFC 9449 §4.3 check 8)`);
      if (!opts.htu.matches(htu, expect.target)) {
        throw new TesseraError('TESSERA_DPOP_HTU_MISMATCH', 'the DPoP proof "htu" is not the URL of this request (without query and fragment); behind a proxy, use the public URL (server.public_url) (RFC 9449 §4.3 check 9)');
      }
      const now = opts.clock.now();
      const iatMs = iat * 1000;
      if (Math.abs(now - iatMs) > opts.iatWindowMs) {
        const when = iatMs < now ? 'too old' : 'in the future';
        throw new TesseraError('TESSERA_DPOP_IAT_INVALID', `the DPoP proof "iat" is ${when} (accepted: within ${Math.round(opts.iatWindowMs / 1000)} s of Tessera's clock, tokens.dpop.iat_window); make a fresh proof and check the clock`);
      }
      if (expect.accessToken !== undefined) {
        const ath = p.ath;
        if (typeof ath !== 'string') throw new TesseraError('TESSERA_DPOP_ATH_MISMATCH', 'the DPoP proof has no "ath" claim; with an access token it must carry base64url(SHA-256(token)) (RFC 9449 §4.2)');
        if (ath !== accessTokenHash(expect.accessToken)) throw new TesseraError('TESSERA_DPOP_ATH_MISMATCH', 'the DPoP proof "ath" is not the hash of the access token sent with it: the proof was made for another token (RFC 9449 §4.3 check 12)');
      }
      // Check 12: the key the access token is bound to (src/dpop/holder.ts, the one such check).
      proveHolder(expect.jkt, jkt, { what: 'the token', hint: 'sign with the key you logged in with' });
      let nonceStale = false;
      if (opts.nonces) {
        const nonce = p.nonce;
        if (typeof nonce !== 'string' || !opts.nonces.accepts(nonce)) {
          throw new TesseraError('TESSERA_DPOP_NONCE_REQUIRED', `the DPoP proof needs the server nonce: ${typeof nonce === 'string' ? 'the one it carries has expired or is unknown' : 'it carries none'}; retry with the nonce from the DPoP-Nonce response header (RFC 9449 §8, §9)`);
        }
        nonceStale = opts.nonces.isStale(nonce);
      }

      const ok = await verifySignature(alg, key, Buffer.from(proof.slice(0, dot2), 'latin1'), Buffer.from(proof.slice(dot2 + 1), 'base64url'));
      if (!ok) throw new TesseraError('TESSERA_DPOP_SIGNATURE_INVALID', 'the DPoP proof signature does not verify with its "jwk" (RFC 9449 §4.3 check 6)');

      const admitted = opts.replay.admit(jkt, jti, iatMs + opts.iatWindowMs);
      if (!admitted.ok) {
        if (admitted.why === 'replayed') throw new TesseraError('TESSERA_DPOP_REPLAYED', 'this DPoP proof was already used; make a new proof with a new random "jti" for each request (RFC 9449 §11.1)');
        const retry = Math.ceil(admitted.retryAfterMs / 1000);
        if (admitted.why === 'key_full') throw new TesseraError('TESSERA_DPOP_RATE_LIMITED', `this DPoP key has too many proofs in flight on this replica (tokens.dpop.replay_cache_per_key); retry in ${retry} s`, { retry_after_s: retry });
        throw new TesseraError('TESSERA_DPOP_REPLAY_CACHE_FULL', `the DPoP replay cache of this replica is full (tokens.dpop.replay_cache_size); retry in ${retry} s`, { retry_after_s: retry });
      }
      return { jkt, nonceStale };
    },
  };
}
