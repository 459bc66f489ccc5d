import { sign, verify, type KeyObject } from 'node:crypto';
import { TesseraError } from '../shared/errors.js';
import { tokenKindOf } from '../shared/token-kind.js';
import { NEXT_STEPS } from '../shared/next-steps.js';

/**
 * JWS compact serialization for Tessera's own ES256 tokens (RFC 7515 §3.1, RFC 7518 §3.4:
 * the signature is R || S). The protected header is read before any key is touched, so the
 * algorithm and `kid` are pinned first (RFC 8725 §3.1); the payload is decoded only after the
 * signature verifies. Signing is synchronous node:crypto; verification is node:crypto's
 * callback form, which runs the ECDSA check on the libuv pool. jose's compactVerify does the
 * same work through WebCrypto but costs 45–60 µs of main-thread time per call against 5–15 µs
 * here (profiled under HTTP load, docs/adr/0004-token-crypto.md) — on the token-verification
 * hot path that difference is the throughput. jose still verifies every attestation token
 * (foreign issuers, many algorithms), where its generality is the point.
 */
export interface JwsHeader {
  readonly alg: string;
  readonly kid?: string;
  readonly typ?: string;
  readonly [k: string]: unknown;
}

// base64url parts joined by dots (RFC 7515 §7.1).
const B64URL = /^[A-Za-z0-9_.-]*$/;

/** Decodes the protected header only; the payload stays unread until the signature verifies. */
export function parseProtectedHeader(token: string): JwsHeader {
  const dot1 = token.indexOf('.');
  const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1);
  if (dot1 <= 0 || dot2 < 0 || dot2 === dot1 + 1 || token.indexOf('.', dot2 + 1) !== -1 || !B64URL.test(token)) {
    // An operator's or a join token where an agent token belongs: say which, and what to do.
    const kind = tokenKindOf(token);
    const login = NEXT_STEPS.login();
    if (kind === 'admin') throw new TesseraError('TESSERA_TOKEN_MALFORMED', `this is an admin token (tsr_admin_…); this endpoint needs an agent token: log in first with ${login.route}`, { next_step: login });
    if (kind === 'join') throw new TesseraError('TESSERA_TOKEN_MALFORMED', `this is a join token (tsr_join_…); exchange it for an agent token first with ${login.route}`, { next_step: login });
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token is not a JWS compact serialization (three base64url parts)');
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, dot1), 'base64url').toString('utf8'));
  } catch {
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token header is not valid JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header) || typeof (header as JwsHeader).alg !== 'string') {
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token header has no "alg"');
  }
  return header as JwsHeader;
}

export function decodePayload(payload: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token payload is not valid JSON');
  }
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

// Synchronous on purpose: node:crypto's callback form (libuv pool) was measured and gave no
// login throughput on a 2-core machine (3,528 vs 3,554 logins/s, bench/tokens.ts): the pool
// competes for the same cores, and the signature is ~9 % of a login's main-thread time.
export function signEs256(header: JwsHeader, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/**
 * Verifies an ES256 JWS compact token with `key` off the event loop. Resolves the decoded
 * payload bytes, or null when the signature does not verify. The caller has already pinned
 * `alg` and chosen the key by `kid` from the protected header.
 */
export function verifyEs256(token: string, key: KeyObject): Promise<Buffer | null> {
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  const signature = Buffer.from(token.slice(dot2 + 1), 'base64url');
  // RFC 7518 §3.4: exactly 64 bytes; anything else is not an ES256 signature.
  if (dot1 <= 0 || dot2 <= dot1 || signature.length !== 64) return Promise.resolve(null);
  const signingInput = Buffer.from(token.slice(0, dot2), 'latin1');
  return new Promise((resolve) => {
    verify('sha256', signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature, (err, ok) => {
      resolve(!err && ok ? Buffer.from(token.slice(dot1 + 1, dot2), 'base64url') : null);
    });
  });
}
