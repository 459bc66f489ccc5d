import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Constant-time comparison of two secrets; different lengths compare false without early exit on content. */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const ab = typeof a === 'string' ? Buffer.from(a, 'utf8') : Buffer.from(a);
  const bb = typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b);
  // Hash both sides first so the comparison length never depends on the secret's length.
  const ha = createHash('sha256').update(ab).digest();
  const hb = createHash('sha256').update(bb).digest();
  return timingSafeEqual(ha, hb) && ab.length === bb.length;
}

export function sha256(data: Uint8Array | string): Buffer {
  return createHash('sha256').update(data).digest();
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmacSha256(key: Uint8Array, data: Uint8Array | string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** A random opaque token with a recognisable prefix (`tsr_join_...`), 32 random bytes, base64url. */
export function randomToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** A random identifier (not a secret): 16 random bytes, base64url. */
export function randomId(prefix = ''): string {
  return `${prefix}${randomBytes(16).toString('base64url')}`;
}
