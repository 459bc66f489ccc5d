/**
 * DPoP test helpers: a guard with the configuration defaults, and a DPoP proof builder that
 * shares no code with src/dpop (node:crypto signatures, jose thumbprints), so the server is
 * tested against an independent implementation of RFC 9449 §4.2.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { configSchema } from '../../src/config/schema.js';
import { createDpopGuard, createHtuMatcher, dpopSettingsOf, type DpopGuard, type DpopSettings } from '../../src/dpop/index.js';
import type { Clock } from '../../src/shared/clock.js';

/** A guard with the `tokens.dpop` defaults (overridable), checking htu against `issuer`. */
export function testDpopGuard(opts: { clock: Clock; issuer: string; settings?: Partial<DpopSettings> }): DpopGuard {
  const defaults = dpopSettingsOf(configSchema.parse({}).tokens.dpop);
  return createDpopGuard({ settings: { ...defaults, ...(opts.settings ?? {}) }, clock: opts.clock, htu: createHtuMatcher({ bases: [opts.issuer] }), nonceKey: randomBytes(32) });
}

export type ProofAlg = 'ES256' | 'ES384' | 'ES512' | 'PS256' | 'RS256' | 'EdDSA';

export interface ProofKey {
  readonly alg: ProofAlg;
  readonly privateKey: KeyObject;
  readonly publicJwk: Record<string, string>;
}

export function proofKey(alg: ProofAlg = 'ES256'): ProofKey {
  const pair = alg === 'EdDSA'
    ? generateKeyPairSync('ed25519')
    : alg.startsWith('ES')
      ? generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg as 'ES256']! })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { alg, privateKey: pair.privateKey, publicJwk: pair.publicKey.export({ format: 'jwk' }) as Record<string, string> };
}

/** RFC 7638 SHA-256 thumbprint by jose (independent of src/dpop/jwk.ts). */
export function thumbprint(k: ProofKey): Promise<string> {
  return calculateJwkThumbprint(k.publicJwk as JWK, 'sha256');
}

export const ath = (token: string): string => createHash('sha256').update(token).digest('base64url');

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

export interface ProofOptions {
  readonly htm: string;
  readonly htu: string;
  /** Access token: `ath` is its hash. */
  readonly token?: string;
  readonly iat?: number;
  readonly jti?: string;
  readonly nonce?: string;
  /** Header fields replaced or added (`undefined` removes). */
  readonly header?: Record<string, unknown>;
  /** Claims replaced or added (`undefined` removes). */
  readonly claims?: Record<string, unknown>;
  /** Sign with this key instead of the one in the header (a forged proof). */
  readonly signWith?: KeyObject;
  /** Replace the signature by this base64url text. */
  readonly signature?: string;
}

function clean(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** A DPoP proof JWT (RFC 9449 §4.2) signed with `key`. */
export function makeProof(key: ProofKey, o: ProofOptions): string {
  const header = clean({ typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk, ...(o.header ?? {}) });
  const claims = clean({
    jti: o.jti ?? randomBytes(16).toString('base64url'), htm: o.htm, htu: o.htu, iat: o.iat ?? Math.floor(Date.now() / 1000),
    ...(o.token !== undefined ? { ath: ath(o.token) } : {}), ...(o.nonce !== undefined ? { nonce: o.nonce } : {}), ...(o.claims ?? {}),
  });
  const input = `${b64(header)}.${b64(claims)}`;
  if (o.signature !== undefined) return `${input}.${o.signature}`;
  const k = o.signWith ?? key.privateKey;
  const data = Buffer.from(input);
  const sig = key.alg === 'EdDSA'
    ? sign(null, data, k)
    : key.alg.startsWith('ES')
      ? sign(`sha${key.alg.slice(2)}`, data, { key: k, dsaEncoding: 'ieee-p1363' })
      : key.alg.startsWith('PS')
        ? sign('sha256', data, { key: k, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 })
        : sign('sha256', data, k);
  return `${input}.${sig.toString('base64url')}`;
}
