/**
 * Server-provided DPoP nonces (RFC 9449 §8 at the token endpoint, §9 at resources), when
 * `tokens.dpop.nonce` is on: a proof must carry a nonce Tessera issued recently, so a proof
 * cannot be made ahead of time (§11.2 pre-generation).
 *
 * Stateless and the same on every replica: a nonce is `<window>.<mac>` where window =
 * floor(now / lifetime) and mac = HMAC-SHA-256(key, "dpop-nonce\n" + window), truncated to 128
 * bits. The key is derived from a secret every replica shares (main.ts: the audit HMAC key,
 * domain-separated), so a nonce one replica issued is accepted by all. A nonce is accepted
 * during its own window and the next one (between `lifetime` and 2 × `lifetime` after issue).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../shared/clock.js';

export interface NonceSource {
  /** The nonce to hand out now (`DPoP-Nonce` header). */
  current(): string;
  /** True when `nonce` was issued by this installation in the current or the previous window. */
  accepts(nonce: string): boolean;
  /** True when `nonce` is accepted but no longer current: the response carries the current one. */
  isStale(nonce: string): boolean;
}

const NONCE = /^([0-9a-z]{1,12})\.([A-Za-z0-9_-]{22})$/;

export function createNonceSource(opts: { key: Uint8Array; lifetimeMs: number; clock: Clock }): NonceSource {
  const { key, lifetimeMs, clock } = opts;
  const macOf = (w: number): Buffer => createHmac('sha256', key).update(`dpop-nonce\n${w}`).digest().subarray(0, 16);
  let cached: { w: number; value: string } | undefined;
  const windowNow = (): number => Math.floor(clock.now() / lifetimeMs);
  const windowOf = (nonce: string): number | undefined => {
    const m = NONCE.exec(nonce);
    if (!m) return undefined;
    const w = parseInt(m[1]!, 36);
    // Compared as canonical text: a variant spelling of the same bytes is not the nonce issued.
    const got = Buffer.from(m[2]!, 'latin1');
    const want = Buffer.from(macOf(w).toString('base64url'), 'latin1');
    return got.length === want.length && timingSafeEqual(got, want) ? w : undefined;
  };
  return {
    current() {
      const w = windowNow();
      if (cached?.w !== w) cached = { w, value: `${w.toString(36)}.${macOf(w).toString('base64url')}` };
      return cached.value;
    },
    accepts(nonce) {
      const w = windowOf(nonce);
      const now = windowNow();
      return w !== undefined && (w === now || w === now - 1);
    },
    isStale(nonce) {
      return windowOf(nonce) !== windowNow();
    },
  };
}
