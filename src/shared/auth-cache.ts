/**
 * A bounded cache for verification and authorization results (docs/adr/0061-cache-invalidation.md).
 *
 * - Invalidation: every entry carries the auth epoch under which its answer was computed; an
 *   entry of an older epoch is never served, and the whole cache is dropped the first time it
 *   is used after a bump (so stale entries do not linger in memory).
 * - Expiry: an entry may carry `until` (epoch ms, by the injected Clock); it is not served at or
 *   after that instant.
 * - Fairness: at most `perOwner` entries per owner (the principal the answer is about). An
 *   owner at its quota evicts its own least recently used entry, never another owner's, so one
 *   agent cannot push everyone else out of the cache. `capacity` bounds the whole.
 */
import type { AuthEpoch } from './auth-epoch.js';
import type { Clock } from './clock.js';

interface Entry<V> {
  readonly value: V;
  readonly owner: string;
  readonly until: number;
}

export interface AuthCacheOptions {
  /** Entries in all; 0 disables the cache. */
  readonly capacity: number;
  /** Entries per owner (at least 1; clamped to capacity). */
  readonly perOwner: number;
  readonly epoch: AuthEpoch;
  readonly clock: Clock;
}

export class AuthCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  /** Keys per owner, least recently used first (a Set keeps insertion order). */
  private readonly owners = new Map<string, Set<string>>();
  private seen: number;
  readonly capacity: number;
  readonly perOwner: number;

  constructor(private readonly options: AuthCacheOptions) {
    this.capacity = Math.max(0, Math.floor(options.capacity));
    this.perOwner = Math.max(1, Math.min(Math.floor(options.perOwner), this.capacity || 1));
    this.seen = options.epoch.value;
  }

  /** The epoch to pass to `set`: read it BEFORE computing the answer to cache. */
  get epoch(): number {
    return this.options.epoch.value;
  }

  get size(): number {
    this.sync();
    return this.entries.size;
  }

  /** Entries held for one owner (tests, metrics). */
  ownerSize(owner: string): number {
    this.sync();
    return this.owners.get(owner)?.size ?? 0;
  }

  get(key: string): V | undefined {
    this.sync();
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (this.options.clock.now() >= e.until) {
      this.delete(key);
      return undefined;
    }
    // Most recently used: last in both orders.
    this.entries.delete(key);
    this.entries.set(key, e);
    const keys = this.owners.get(e.owner)!;
    keys.delete(key);
    keys.add(key);
    return e.value;
  }

  /**
   * Stores an answer computed under `epoch` (the value of `this.epoch` read before computing
   * it). An answer computed before the latest bump is dropped: it may rest on the old state.
   */
  set(key: string, value: V, meta: { owner: string; epoch: number; until?: number }): void {
    this.sync();
    if (this.capacity === 0 || meta.epoch !== this.options.epoch.value) return;
    const until = meta.until ?? Number.POSITIVE_INFINITY;
    if (until <= this.options.clock.now()) return;
    this.delete(key);
    let keys = this.owners.get(meta.owner);
    if (keys && keys.size >= this.perOwner) this.delete(keys.values().next().value!);
    else if (this.entries.size >= this.capacity) this.delete(this.entries.keys().next().value!);
    keys = this.owners.get(meta.owner);
    if (!keys) this.owners.set(meta.owner, (keys = new Set()));
    keys.add(key);
    this.entries.set(key, { value, owner: meta.owner, until });
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.entries.delete(key);
    const keys = this.owners.get(e.owner);
    keys?.delete(key);
    if (keys && keys.size === 0) this.owners.delete(e.owner);
  }

  clear(): void {
    this.entries.clear();
    this.owners.clear();
  }

  /** Drops everything once per epoch bump. */
  private sync(): void {
    const now = this.options.epoch.value;
    if (now !== this.seen) {
      this.clear();
      this.seen = now;
    }
  }
}
