/**
 * Token buckets keyed by principal or source (docs/adr/0062-per-principal-limits.md).
 *
 * A bucket holds up to `burst` tokens and refills at `perSecond` tokens per second; a request
 * takes one. The state per key is two numbers, updated lazily when the key is seen, so the cost
 * of a check is one Map lookup. Time comes from the injected Clock (never Date.now()).
 *
 * Memory is bounded: at most `maxKeys` buckets. A bucket that has refilled to `burst` is the
 * same as no bucket, so those are swept first (at most once per second, so a flood of new keys
 * cannot turn every check into a sweep); if every bucket is still draining, the least recently
 * used one is dropped, which gives that one key a fresh burst. That is the only way a limit can
 * be exceeded, and it needs more than `maxKeys` distinct keys active at once.
 */
import type { Clock } from './clock.js';

export interface Rate {
  /** Sustained requests per second (> 0). */
  readonly perSecond: number;
  /** Requests allowed at once after a quiet period (≥ 1). */
  readonly burst: number;
}

export type TakeResult =
  | { readonly ok: true }
  | { readonly ok: false; /** Milliseconds until one token is available again (≥ 1). */ readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

export const DEFAULT_MAX_KEYS = 100_000;
const SWEEP_EVERY_MS = 1000;

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = Number.NEGATIVE_INFINITY;

  constructor(readonly rate: Rate, private readonly clock: Clock, private readonly maxKeys = DEFAULT_MAX_KEYS) {
    if (!(rate.perSecond > 0) || !(rate.burst >= 1)) throw new RangeError('a rate needs perSecond > 0 and burst >= 1');
  }

  /**
   * Takes `cost` tokens (default one; a JSON-RPC batch costs one per message) for `key`; when
   * fewer are left, takes none and says how long until enough are.
   */
  take(key: string, cost = 1): TakeResult {
    const now = this.clock.now();
    const b = this.buckets.get(key);
    const tokens = b ? this.level(b, now) : this.rate.burst;
    if (b) this.buckets.delete(key); // re-inserted below: most recently used last
    else this.makeRoom(now);
    if (tokens >= cost) {
      this.buckets.set(key, { tokens: tokens - cost, at: now });
      return { ok: true };
    }
    this.buckets.set(key, { tokens, at: now });
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil(((Math.min(cost, this.rate.burst) - tokens) * 1000) / this.rate.perSecond)) };
  }

  /**
   * Whether `key` has a token now, without taking one (for limits charged only on failure: the
   * check runs before the work, the charge after it failed).
   */
  peek(key: string): TakeResult {
    const b = this.buckets.get(key);
    const tokens = b ? this.level(b, this.clock.now()) : this.rate.burst;
    return tokens >= 1 ? { ok: true } : { ok: false, retryAfterMs: Math.max(1, Math.ceil(((1 - tokens) * 1000) / this.rate.perSecond)) };
  }

  /** Buckets held (tests, metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private level(b: Bucket, now: number): number {
    // A clock that steps back refills nothing (never a negative refill).
    const elapsed = Math.max(0, now - b.at);
    return Math.min(this.rate.burst, b.tokens + (elapsed * this.rate.perSecond) / 1000);
  }

  private makeRoom(now: number): void {
    if (this.buckets.size < this.maxKeys) return;
    if (now - this.lastSweep >= SWEEP_EVERY_MS) {
      this.lastSweep = now;
      for (const [k, b] of this.buckets) if (this.level(b, now) >= this.rate.burst) this.buckets.delete(k);
    }
    while (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

/**
 * The key of a request source for per-source limits: an IPv4 address as is (also when written
 * IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by its /64 prefix (one host usually holds a
 * whole /64, so per-address keys would let it rotate through 2^64 of them).
 */
export function sourceKey(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const groups = expandIpv6(ip.split('%')[0]!);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : ip;
}

/** The eight 16-bit groups of an IPv6 address (lowercase, no leading zeros), or undefined. */
function expandIpv6(ip: string): string[] | undefined {
  let text = ip.toLowerCase();
  // A trailing embedded IPv4 (::a.b.c.d forms) becomes two groups.
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 2 && missing < 1) || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...head, ...new Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => parseInt(g, 16).toString(16));
}
