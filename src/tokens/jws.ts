import { sign, verify, type KeyObject } from 'node:crypto';
import { TesseraError } from '../shared/errors.js';

/**
 * ES256 JWS compact serialization (RFC 7515 §3.1, RFC 7518 §3.4) on node:crypto directly.
 * jose v6 signs and verifies through async WebCrypto; this hot path uses the synchronous
 * node:crypto calls instead (bench/tokens.ts measures both, docs/tokens.md). The checks are
 * the same: algorithm pinned before any key is touched, signature before any claim is read.
 */
export interface JwsHeader {
  readonly alg: string;
  readonly kid?: string;
  readonly typ?: string;
  readonly [k: string]: unknown;
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export function signEs256(header: JwsHeader, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

export interface ParsedJws {
  readonly header: JwsHeader;
  readonly signingInput: string;
  readonly payloadPart: string;
  readonly signature: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Splits and decodes the protected header only; the payload stays unread until the signature verifies. */
export function parseJws(token: string): ParsedJws {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p)) || parts[0]!.length === 0 || parts[1]!.length === 0) {
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token is not a JWS compact serialization (three base64url parts)');
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
  } catch {
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token header is not valid JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header) || typeof (header as JwsHeader).alg !== 'string') {
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token header has no "alg"');
  }
  return { header: header as JwsHeader, signingInput: `${parts[0]}.${parts[1]}`, payloadPart: parts[1]!, signature: Buffer.from(parts[2]!, 'base64url') };
}

export function verifyEs256(parsed: ParsedJws, key: KeyObject): boolean {
  // RFC 7518 §3.4: the ES256 signature is R || S, 64 bytes.
  if (parsed.signature.length !== 64) return false;
  return verify('sha256', Buffer.from(parsed.signingInput), { key, dsaEncoding: 'ieee-p1363' }, parsed.signature);
}

export function decodePayload(parsed: ParsedJws): unknown {
  try {
    return JSON.parse(Buffer.from(parsed.payloadPart, 'base64url').toString('utf8'));
  } catch {
    throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token payload is not valid JSON');
  }
}
