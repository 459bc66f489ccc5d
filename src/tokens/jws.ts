import { sign, type KeyObject } from 'node:crypto';
import { TesseraError } from '../shared/errors.js';

/**
 * JWS compact serialization helpers (RFC 7515 §3.1). The protected header is read before any
 * key is touched, so the algorithm and `kid` are pinned first (RFC 8725 §3.1). Signature
 * verification uses jose `compactVerify` (WebCrypto, off the event loop); issuing signs with
 * node:crypto directly so `issueAgentToken` stays synchronous (RFC 7518 §3.4: R || S).
 * On the shared 2-core test machine the two measured within noise of each other (node:crypto
 * sync verify 0.5×–1.4× of jose); repeated tokens skip the ECDSA step via the verified-token
 * cache in service.ts instead.
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

export function signEs256(header: JwsHeader, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}
