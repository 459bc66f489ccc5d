/**
 * The pure core of the exposure report (docs/exposure.md, ADR 0150): windows in, groups and
 * live credentials out. No store, no clock: `now` is given.
 */
import type { ExposureGrouping, ExposureKind } from './kinds.js';

/** One credential's window. Times are epoch milliseconds. */
export interface ExposureWindow {
  readonly kind: ExposureKind;
  /** A token's jti HMAC, a lease id or a secret use id (never a credential). */
  readonly id: string;
  /** The acting agent (SPIFFE ID). */
  readonly agent: string;
  /** The root task (`rtxn`) of the tree the credential was issued in; null outside tasks. */
  readonly task: string | null;
  readonly user: string | null;
  readonly issuedAt: number;
  /** When the credential stops working by itself (a lease: its current expiry). */
  readonly expiresAt: number;
  /**
   * When the window closed: a token's revocation (or, once swept, its expiry), a lease's
   * confirmed drop, a secret use's end. null: not closed by anything recorded yet.
   */
  readonly closedAt: number | null;
  /**
   * Whether the window still runs past `expiresAt` until closed (leases: the backend credential
   * exists until Tessera has dropped it, whatever its expiry). Tokens: false.
   */
  readonly openUntilClosed: boolean;
}

export interface ExposureGroup {
  readonly key: string;
  readonly count: number;
  readonly live: number;
  /** Window lengths in seconds (live windows counted up to now); nearest-rank percentiles. */
  readonly p50_s: number;
  readonly p95_s: number;
  readonly max_s: number;
  /** Sum of window lengths in seconds, live ones counted up to now. */
  readonly credential_seconds: number;
}

export interface LiveCredential {
  readonly kind: ExposureKind;
  readonly id: string;
  readonly agent: string;
  readonly task: string | null;
  readonly user: string | null;
  /** RFC 3339. */
  readonly issued_at: string;
  readonly expires_at: string;
  /** Seconds until `expires_at`; 0 for a lease past its expiry that is not dropped yet. */
  readonly remaining_s: number;
}

/** The end of a window as of `now` (never before it is issued), and whether it is still running. */
export function windowEnd(w: ExposureWindow, now: number): { end: number; live: boolean } {
  if (w.openUntilClosed) {
    if (w.closedAt !== null) return { end: Math.max(w.issuedAt, w.closedAt), live: false };
    return { end: Math.max(w.issuedAt, now), live: true };
  }
  // closed = min(expires_at, revoked_at): expiry needs no timer.
  const closes = Math.min(w.expiresAt, w.closedAt ?? Infinity);
  if (closes > now) return { end: Math.max(w.issuedAt, now), live: true };
  return { end: Math.max(w.issuedAt, closes), live: false };
}

/** Nearest-rank percentile (p in 0..100) of ascending `sorted`; 0 for none. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** Seconds with millisecond precision. */
const seconds = (ms: number): number => Math.round(ms) / 1000;

export const NO_KEY = '-';

function keyOf(w: ExposureWindow, by: ExposureGrouping): string {
  if (by === 'kind') return w.kind;
  if (by === 'agent') return w.agent;
  if (by === 'task') return w.task ?? NO_KEY;
  return w.user ?? NO_KEY;
}

/** Groups windows by `by`, largest credential-seconds first (then by key). */
export function groupWindows(windows: readonly ExposureWindow[], by: ExposureGrouping, now: number): ExposureGroup[] {
  const acc = new Map<string, { lengths: number[]; live: number; total: number }>();
  for (const w of windows) {
    const { end, live } = windowEnd(w, now);
    const k = keyOf(w, by);
    let a = acc.get(k);
    if (!a) acc.set(k, (a = { lengths: [], live: 0, total: 0 }));
    const len = end - w.issuedAt;
    a.lengths.push(len);
    a.total += len;
    if (live) a.live++;
  }
  const groups: ExposureGroup[] = [];
  for (const [key, a] of acc) {
    a.lengths.sort((x, y) => x - y);
    groups.push({
      key, count: a.lengths.length, live: a.live,
      p50_s: seconds(percentile(a.lengths, 50)), p95_s: seconds(percentile(a.lengths, 95)), max_s: seconds(a.lengths[a.lengths.length - 1] ?? 0),
      credential_seconds: seconds(a.total),
    });
  }
  return groups.sort((x, y) => y.credential_seconds - x.credential_seconds || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}

/**
 * The live ones among `windows`, longest remaining first (then id); the first `limit` of them
 * (only those are formatted).
 */
export function liveCredentials(windows: readonly ExposureWindow[], now: number, limit = Infinity): LiveCredential[] {
  return windows
    .filter((w) => windowEnd(w, now).live)
    .map((w) => ({ w, remaining_s: Math.max(0, Math.floor((w.expiresAt - now) / 1000)) }))
    .sort((x, y) => y.remaining_s - x.remaining_s || (x.w.id < y.w.id ? -1 : 1))
    .slice(0, limit)
    .map(({ w, remaining_s }) => ({
      kind: w.kind, id: w.id, agent: w.agent, task: w.task, user: w.user,
      issued_at: new Date(w.issuedAt).toISOString(), expires_at: new Date(w.expiresAt).toISOString(),
      remaining_s,
    }));
}
