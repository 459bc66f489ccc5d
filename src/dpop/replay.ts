/**
 * The DPoP `jti` replay cache (RFC 9449 §11.1): a proof is accepted once. Bounded in memory and
 * per replica (docs/dpop.md "Replicas" and docs/adr/0111 for what that means with several
 * replicas).
 *
 * An entry is kept at least until the last instant its proof could still pass the `iat` check
 * (`iat + tokens.dpop.iat_window`); after that the proof is refused for its age, so forgetting
 * it is safe. Expiry times are kept non-decreasing in arrival order (an entry never expires
 * before the one admitted just before it: a slightly longer memory, never a shorter one), so
 * expired entries are dropped from the oldest end, amortised O(1). Keys are SHA-256(jkt, jti) truncated to 128 bits: fixed size whatever the
 * client sends, and no jti text kept.
 *
 * Bounds (fail closed: a proof that cannot be remembered is refused, never accepted unrecorded):
 * - `capacity` entries in all; when full of live entries → `full` (503, Retry-After);
 * - `perKey` entries per proof key (`jkt`), so one client cannot fill the cache for every other
 *   → `key_full` (429).
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../shared/clock.js';

interface Entry {
  readonly until: number;
  readonly jkt: string;
}

export type ReplayVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly why: 'replayed' }
  | { readonly ok: false; readonly why: 'full' | 'key_full'; readonly retryAfterMs: number };

export interface ReplayCacheOptions {
  readonly capacity: number;
  readonly perKey: number;
  /** How long entries live at most (the `iat` window, both sides): the Retry-After of a refusal by `perKey`. */
  readonly windowMs: number;
  readonly clock: Clock;
}

export class ReplayCache {
  private readonly entries = new Map<string, Entry>();
  private readonly perKey = new Map<string, number>();
  /** Expiry of the newest entry: later entries never expire before it. */
  private last = 0;
  constructor(private readonly options: ReplayCacheOptions) {}

  get size(): number {
    return this.entries.size;
  }

  /** Records (`jkt`, `jti`) until `until` (epoch ms), or says why it cannot. */
  admit(jkt: string, jti: string, until: number): ReplayVerdict {
    const now = this.options.clock.now();
    this.purge(now);
    const id = createHash('sha256').update(jkt).update('\n').update(jti).digest('base64url').slice(0, 22);
    // Every entry still in the map is live (purge is exact: expiries are in order).
    if (this.entries.has(id)) return { ok: false, why: 'replayed' };
    const mine = this.perKey.get(jkt) ?? 0;
    if (mine >= this.options.perKey) return { ok: false, why: 'key_full', retryAfterMs: Math.max(1000, this.options.windowMs) };
    if (this.entries.size >= this.options.capacity) return { ok: false, why: 'full', retryAfterMs: this.oldestUntil(now) };
    this.last = Math.max(this.last, until);
    this.entries.set(id, { until: this.last, jkt });
    this.perKey.set(jkt, mine + 1);
    return { ok: true };
  }

  /** Drops expired entries from the oldest end; stops at the first live one. */
  private purge(now: number): void {
    for (const [id, e] of this.entries) {
      if (e.until > now) return;
      this.entries.delete(id);
      const n = (this.perKey.get(e.jkt) ?? 1) - 1;
      if (n > 0) this.perKey.set(e.jkt, n);
      else this.perKey.delete(e.jkt);
    }
  }

  /** Milliseconds until the oldest entry expires (a place frees up then); at least 1 s. */
  private oldestUntil(now: number): number {
    for (const e of this.entries.values()) return Math.max(1000, e.until - now);
    return 1000;
  }
}
