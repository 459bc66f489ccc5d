import { createHash, createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';

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

/**
 * Random bytes for identifiers, drawn from the OS CSPRNG 4 KiB at a time (one getrandom call per
 * 256 ids instead of one per id, as node:crypto's randomUUID caches its entropy). Each byte is
 * handed out once. Never for secrets (keys, bearer tokens: randomToken and randomBytes).
 */
const ID_POOL = Buffer.alloc(4096);
let idPoolAt = ID_POOL.length;

/** `n` (1–64) fresh random bytes from the identifier pool, base64url (RFC 4648 §5). */
export function randomIdBytes(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError('randomIdBytes: 1 to 64 bytes');
  if (idPoolAt + n > ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolAt = 0;
  }
  const out = ID_POOL.toString('base64url', idPoolAt, idPoolAt + n);
  idPoolAt += n;
  return out;
}

/** A random identifier (not a secret): 16 random bytes, base64url. */
export function randomId(prefix = ''): string {
  return `${prefix}${randomIdBytes(16)}`;
}
