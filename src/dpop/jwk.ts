/**
 * The public key of a DPoP proof (RFC 9449 §4.2 `jwk` header): validation, import and its
 * RFC 7638 JWK SHA-256 thumbprint (the `jkt` a bound token carries in `cnf`, RFC 9449 §6.1).
 *
 * Only asymmetric public keys whose type fits the proof's `alg` are accepted (RFC 9449 §4.3
 * checks 5 and 7): EC P-256/P-384/P-521 for ES256/ES384/ES512, RSA (≥ 2048 bits) for RS256-RS512 and PS256-PS512,
 * OKP Ed25519/Ed448 for EdDSA. A key carrying any private member (`d`, `p`, `q`, `dp`, `dq`,
 * `qi`, `oth`) or a symmetric key (`kty: oct`, `k`) is refused.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TesseraError } from '../shared/errors.js';

/** JWS algorithms a DPoP proof may use (RFC 7518 §3.1, RFC 8037 §3.1): asymmetric only. */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA'] as const;
export type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number];

export function isDpopAlgorithm(v: unknown): v is DpopAlgorithm {
  return typeof v === 'string' && (DPOP_ALGORITHMS as readonly string[]).includes(v);
}

/** JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const EC_CURVES: Readonly<Record<string, { crv: string; bytes: number }>> = {
  ES256: { crv: 'P-256', bytes: 32 },
  ES384: { crv: 'P-384', bytes: 48 },
  ES512: { crv: 'P-521', bytes: 66 },
};
const B64URL = /^[A-Za-z0-9_-]+$/;
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;

const invalid = (why: string): TesseraError => new TesseraError('TESSERA_DPOP_KEY_INVALID', `the DPoP proof "jwk" ${why} (RFC 9449 §4.2: the public key the proof is signed with)`);

function member(jwk: Record<string, unknown>, name: string): string {
  const v = jwk[name];
  if (typeof v !== 'string' || v.length === 0 || v.length > 2048 || !B64URL.test(v)) throw invalid(`has no valid "${name}" member (base64url)`);
  return v;
}

function bytesOf(v: string): number {
  return Buffer.from(v, 'base64url').length;
}

/**
 * The RFC 7638 §3.2 thumbprint input: the required members of the key, lexicographically
 * ordered, no whitespace. Validates the key against `alg` on the way. Throws
 * TESSERA_DPOP_KEY_INVALID.
 */
export function thumbprintInput(jwk: unknown, alg: DpopAlgorithm): string {
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) throw invalid('is missing or not a JSON object');
  const k = jwk as Record<string, unknown>;
  for (const m of PRIVATE_MEMBERS) {
    if (m in k) throw invalid(m === 'k' ? 'is a symmetric key ("k"); DPoP needs an asymmetric public key' : `contains private key material ("${m}"); send the public key only`);
  }
  const kty = k.kty;
  if (kty === 'oct') throw invalid('is a symmetric key (kty "oct"); DPoP needs an asymmetric public key');
  if (typeof k.alg === 'string' && k.alg !== alg) throw invalid(`names alg "${k.alg.slice(0, 20)}" but the proof is signed with ${alg}`);
  if (alg.startsWith('ES')) {
    const curve = EC_CURVES[alg]!;
    if (kty !== 'EC' || k.crv !== curve.crv) throw invalid(`must be an EC ${curve.crv} key for ${alg}`);
    const x = member(k, 'x');
    const y = member(k, 'y');
    if (bytesOf(x) !== curve.bytes || bytesOf(y) !== curve.bytes) throw invalid(`has coordinates of the wrong length for ${curve.crv}`);
    return `{"crv":"${curve.crv}","kty":"EC","x":"${x}","y":"${y}"}`;
  }
  if (alg === 'EdDSA') {
    if (kty !== 'OKP' || (k.crv !== 'Ed25519' && k.crv !== 'Ed448')) throw invalid('must be an OKP Ed25519 or Ed448 key for EdDSA');
    const x = member(k, 'x');
    if (bytesOf(x) !== (k.crv === 'Ed25519' ? 32 : 57)) throw invalid(`has a public key of the wrong length for ${k.crv}`);
    return `{"crv":"${k.crv}","kty":"OKP","x":"${x}"}`;
  }
  // RS*, PS*
  if (kty !== 'RSA') throw invalid(`must be an RSA key for ${alg}`);
  const n = member(k, 'n');
  const e = member(k, 'e');
  const bits = bytesOf(n) * 8;
  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) throw invalid(`is an RSA key of ${bits} bits; ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits are accepted`);
  if (bytesOf(e) > 8) throw invalid('has an RSA exponent that is too long');
  return `{"e":"${e}","kty":"RSA","n":"${n}"}`;
}

/** base64url(SHA-256(input)): RFC 7638 §3 with SHA-256 (the `jkt` of RFC 9449 §6.1). */
export function thumbprintOf(input: string): string {
  return createHash('sha256').update(input, 'utf8').digest('base64url');
}

/** The RFC 7638 SHA-256 thumbprint of a public JWK valid for `alg`; throws TESSERA_DPOP_KEY_INVALID. */
export function jwkThumbprint(jwk: unknown, alg: DpopAlgorithm): string {
  return thumbprintOf(thumbprintInput(jwk, alg));
}

export interface ImportedKey {
  readonly key: KeyObject;
  /** RFC 7638 SHA-256 thumbprint, base64url. */
  readonly jkt: string;
}

/**
 * Imports validated public keys, remembering the last `capacity` (the thumbprint input is the
 * key's identity): a client signs every proof with the same key, so its import and thumbprint
 * are computed once. Throws TESSERA_DPOP_KEY_INVALID (a point not on the curve, for example).
 */
export class PublicKeyCache {
  private readonly entries = new Map<string, ImportedKey>();
  constructor(private readonly capacity = 4096) {}

  get(jwk: unknown, alg: DpopAlgorithm): ImportedKey {
    const input = thumbprintInput(jwk, alg);
    const hit = this.entries.get(input);
    if (hit) return hit;
    let key: KeyObject;
    try {
      // Only the validated members: nothing else of the attacker's object reaches the importer.
      key = createPublicKey({ key: JSON.parse(input) as Record<string, string>, format: 'jwk' });
    } catch {
      throw invalid('is not a valid public key (the point is not on the curve, or the key cannot be imported)');
    }
    const imported = { key, jkt: thumbprintOf(input) };
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(input, imported);
    return imported;
  }
}
