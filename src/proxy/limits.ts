/**
 * Per-route limits on requests and model tokens, counted separately per agent, per task and per
 * user (`proxy.routes[].limits`, docs/proxy-providers.md "Limits", ADR 0212). Pure: time from
 * the injected Clock, no I/O; state is in memory, per process (each replica counts its own).
 *
 * **Window: a two-bucket sliding window counter.** Per key, the counts of the current fixed
 * window and of the previous one; the count "in the last window" is estimated as
 * `previous × (1 − elapsed fraction of the current window) + current`. It has no burst at window
 * edges (a fixed window lets 2× the limit through around a boundary) and costs two numbers per
 * counter instead of a log of timestamps.
 *
 * - **Requests** are counted when admitted (`admit`): a request is admitted when, for each of
 *   its keys, the estimate plus this request stays within `requests`.
 * - **Tokens** are recorded after the response (`record`, from its `usage`); a request is
 *   admitted while each key's token estimate is under `tokens`. The request that crosses the
 *   limit completes (its size is not known in advance); the next ones wait.
 * - A refusal says which limit (`requests` | `tokens`), for which key kind (`agent` | `task` |
 *   `user`), and `retryAfterSec`: whole seconds until enough of the window has rolled off for
 *   the same request to be admitted (≥ 1; RFC 9110 §10.2.3 `Retry-After: delay-seconds`).
 *   A refused request is not counted.
 *
 * **Memory** is bounded: at most `maxKeys` counters (route × key kind × id; default 100,000).
 * A counter whose two windows have rolled off holds only its totals "since start"; such idle
 * counters are dropped when room is needed (at most one sweep per second). When every counter is
 * still active, a request needing a new one is refused with `which: 'capacity'` (fail closed:
 * letting it through uncounted would defeat the limits) and a `retryAfterSec` until the first
 * counter goes idle; the caller answers 503 TESSERA_PROXY_LIMITS_FULL. Totals "since start" of a
 * dropped counter are lost (the metrics keep the per-route totals).
 *
 * **Metrics** (Prometheus, src/shared/metrics.ts): `tessera_proxy_usage_requests_total{route}`,
 * `tessera_proxy_usage_tokens_total{route,kind="input"|"output"}`,
 * `tessera_proxy_limit_refusals_total{route,which,per}`. No agent, task or user id is ever a
 * label: ids are unbounded (every task is a new one), and each label value is a time series kept
 * forever by the registry and by Prometheus — a cardinality explosion, and a memory leak here.
 * Usage per agent, task and user is in `usage()` (GET /v1/admin/proxy/usage) instead. Route names
 * come from the configuration, so that label is bounded.
 */
import type { Clock } from '../shared/clock.js';
import { TesseraError } from '../shared/errors.js';
import type { Counter, MetricsRegistry } from '../shared/metrics.js';
import type { Usage } from './usage.js';

/** One route's limits (from `proxy.routes[].limits`). Absent `requests`/`tokens`: not limited. */
export interface RouteLimits {
  /** Window length in milliseconds (≥ 1000). */
  readonly windowMs: number;
  /** Requests per window, per agent, per task and per user. */
  readonly requests?: number;
  /** Model tokens (input + output, from the responses' usage) per window, per key. */
  readonly tokens?: number;
}

export interface LimitKeys {
  /** The agent (SPIFFE ID). */
  readonly agent: string;
  /** The task (`txn`), when the request came with a task token. */
  readonly task?: string;
  /** The person the agent acts for, when there is one. */
  readonly user?: string;
}

export type KeyKind = 'agent' | 'task' | 'user';

export type AdmitResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly retryAfterSec: number; readonly which: 'requests' | 'tokens'; readonly per: KeyKind }
  | { readonly ok: false; readonly retryAfterSec: number; readonly which: 'capacity'; readonly per: KeyKind };

export interface UsageCounts {
  readonly requests: number;
  readonly input: number;
  readonly output: number;
  readonly total: number;
}

export interface UsageRow {
  readonly route: string;
  /** Which kind of key this row counts; the id is in the field of that name. */
  readonly per: KeyKind;
  readonly agent?: string;
  readonly task?: string;
  readonly user?: string;
  /** The route's window, milliseconds. */
  readonly window_ms: number;
  /** Sliding-window estimates over the last window (what the limits compare), rounded up. */
  readonly window: UsageCounts;
  /** Since this counter was created (process start, unless it was dropped while idle). */
  readonly since_start: UsageCounts;
}

export interface UsageFilter {
  readonly agent?: string;
  readonly task?: string;
  readonly user?: string;
  readonly route?: string;
}

export interface ProxyLimits {
  /**
   * Whether a request on `route` by `keys` may go now; when it may, its request is counted.
   * `limits` undefined: never refused, still counted (usage is visible on every route).
   */
  admit(route: string, keys: LimitKeys, limits: RouteLimits | undefined): AdmitResult;
  /** The response's token usage, counted for each of the request's keys. */
  record(route: string, keys: LimitKeys, usage: Usage): void;
  /**
   * Counters sorted by route, key kind (agent, task, user), id. `filter.route` keeps one route's;
   * `agent`, `task`, `user` keep the counters of the ids given (any of them: `{ agent, task }` is
   * that agent's row and that task's row). No filter: every counter.
   */
  usage(filter: UsageFilter): UsageRow[];
  /** Counters held (tests, metrics). */
  readonly size: number;
}

export const DEFAULT_MAX_KEYS = 100_000;
/** The window of a route with no `limits` (counting only). */
export const DEFAULT_WINDOW_MS = 60_000;
const SWEEP_EVERY_MS = 1000;
const MAX_ROUTES_REMEMBERED = 4096;

interface Bucket {
  requests: number;
  input: number;
  output: number;
  total: number;
}

interface Entry {
  readonly route: string;
  readonly per: KeyKind;
  readonly id: string;
  windowMs: number;
  /** Index of the current fixed window: floor(now / windowMs). */
  index: number;
  cur: Bucket;
  prev: Bucket;
  readonly sum: Bucket;
}

const empty = (): Bucket => ({ requests: 0, input: 0, output: 0, total: 0 });
const KINDS: readonly KeyKind[] = ['agent', 'task', 'user'];

/** The keys of a request, in the order agent, task, user. */
function keyList(keys: LimitKeys): [KeyKind, string][] {
  const out: [KeyKind, string][] = [];
  for (const per of KINDS) {
    const id = keys[per];
    if (typeof id === 'string' && id.length > 0) out.push([per, id]);
  }
  return out;
}

/** Moves an entry's buckets to the window of `now`. */
function roll(e: Entry, now: number): void {
  const index = Math.floor(now / e.windowMs);
  if (index === e.index) return;
  if (index < e.index) return; // a clock that steps back: keep the newer buckets
  e.prev = index === e.index + 1 ? e.cur : empty();
  e.cur = empty();
  e.index = index;
}

/** The elapsed fraction of the current window at `now`, in [0, 1). */
function fraction(e: Entry, now: number): number {
  return Math.min(1, Math.max(0, (now - e.index * e.windowMs) / e.windowMs));
}

function estimate(e: Entry, field: keyof Bucket, now: number): number {
  return e.prev[field] * (1 - fraction(e, now)) + e.cur[field];
}

/**
 * Milliseconds from `now` until `prev × (1 − f) + cur` is at most `budget` (the buckets as they
 * are; nothing more is counted meanwhile). Within this window when `cur ≤ budget`, else in the
 * next one (where `cur` becomes the previous bucket), else two windows on (both rolled off).
 */
function waitMs(prev: number, cur: number, budget: number, windowMs: number, f: number): number {
  if (cur <= budget) {
    if (prev <= 0) return 0;
    const need = 1 - (budget - cur) / prev; // fraction at which the estimate reaches the budget
    return Math.max(0, (need - f) * windowMs);
  }
  const toNext = (1 - f) * windowMs;
  const need = 1 - budget / cur;
  return toNext + Math.max(0, need) * windowMs;
}

export function createProxyLimits(deps: { clock: Clock; metrics?: MetricsRegistry; maxKeys?: number }): ProxyLimits {
  const { clock } = deps;
  const maxKeys = deps.maxKeys ?? DEFAULT_MAX_KEYS;
  const entries = new Map<string, Entry>();
  /** The last window each route was admitted with, for `record` on a counter not yet created. */
  const routeWindow = new Map<string, number>();
  let lastSweep = Number.NEGATIVE_INFINITY;
  /** Earliest time a held counter goes idle, from the last sweep. */
  let nextIdleAt = Number.POSITIVE_INFINITY;

  const m = deps.metrics;
  const requestsTotal: Counter | undefined = m?.counter('tessera_proxy_usage_requests_total', 'Proxy requests admitted by the route limits (counted per route; per agent, task and user in GET /v1/admin/proxy/usage).');
  const tokensTotal: Counter | undefined = m?.counter('tessera_proxy_usage_tokens_total', 'Model tokens reported by the providers\' usage fields, per route and kind (input, output).');
  const refusals: Counter | undefined = m?.counter('tessera_proxy_limit_refusals_total', 'Proxy requests refused by the route limits, per route, limit (requests, tokens, capacity) and key kind (agent, task, user).');

  const keyOf = (route: string, per: KeyKind, id: string): string => `${route}\u0000${per}\u0000${id}`;
  const idleAt = (e: Entry): number => (e.index + 2) * e.windowMs;

  /** Drops idle counters when full (at most once per second); true when there is room. */
  function makeRoom(now: number): boolean {
    if (entries.size < maxKeys) return true;
    if (now - lastSweep >= SWEEP_EVERY_MS || now >= nextIdleAt) {
      lastSweep = now;
      nextIdleAt = Number.POSITIVE_INFINITY;
      for (const [k, e] of entries) {
        const at = idleAt(e);
        if (now >= at) entries.delete(k);
        else if (at < nextIdleAt) nextIdleAt = at;
      }
    }
    return entries.size < maxKeys;
  }

  function fresh(route: string, per: KeyKind, id: string, windowMs: number, now: number): Entry {
    return { route, per, id, windowMs, index: Math.floor(now / windowMs), cur: empty(), prev: empty(), sum: empty() };
  }

  /** The existing counter, moved to `now` (and to a changed window length). */
  function existing(route: string, per: KeyKind, id: string, windowMs: number, now: number): Entry | undefined {
    const e = entries.get(keyOf(route, per, id));
    if (!e) return undefined;
    if (e.windowMs !== windowMs) {
      // The configuration changed the window: the old buckets mean nothing in the new one.
      e.windowMs = windowMs;
      e.index = Math.floor(now / windowMs);
      e.cur = empty();
      e.prev = empty();
    }
    roll(e, now);
    return e;
  }

  function refuse(route: string, which: 'requests' | 'tokens' | 'capacity', per: KeyKind, ms: number): AdmitResult {
    refusals?.inc({ route, which, per });
    // Requests are admitted when the estimate reaches the budget, tokens only once it is below it.
    const retryAfterSec = Math.max(1, which === 'tokens' ? Math.floor(ms / 1000) + 1 : Math.ceil(ms / 1000 - 1e-9));
    return which === 'capacity' ? { ok: false, retryAfterSec, which, per } : { ok: false, retryAfterSec, which, per };
  }

  function rememberWindow(route: string, windowMs: number): void {
    if (routeWindow.has(route) || routeWindow.size < MAX_ROUTES_REMEMBERED) routeWindow.set(route, windowMs);
  }

  return {
    admit(route, keys, limits) {
      const now = clock.now();
      const windowMs = limits?.windowMs ?? DEFAULT_WINDOW_MS;
      rememberWindow(route, windowMs);
      const list = keyList(keys);
      const held: (Entry | undefined)[] = list.map(([per, id]) => existing(route, per, id, windowMs, now));
      // A limit below 1 (the schema requires ≥ 1) refuses everything, even a key never seen.
      if (limits && list.length > 0) {
        if (limits.requests !== undefined && !(limits.requests >= 1)) return refuse(route, 'requests', list[0]![0], windowMs);
        if (limits.tokens !== undefined && !(limits.tokens >= 1)) return refuse(route, 'tokens', list[0]![0], windowMs);
      }
      // Check every key first: a refused request is counted nowhere.
      for (let i = 0; i < list.length; i++) {
        const e = held[i];
        if (!e || !limits) continue;
        const f = fraction(e, now);
        if (limits.requests !== undefined && estimate(e, 'requests', now) + 1 > limits.requests + 1e-9) {
          return refuse(route, 'requests', list[i]![0], waitMs(e.prev.requests, e.cur.requests, limits.requests - 1, windowMs, f));
        }
        if (limits.tokens !== undefined && estimate(e, 'total', now) >= limits.tokens) {
          return refuse(route, 'tokens', list[i]![0], waitMs(e.prev.total, e.cur.total, limits.tokens - 1e-6, windowMs, f)); // strictly under
        }
      }
      // Then room for the new counters: all or none.
      const missing = held.filter((e) => !e).length;
      if (missing > 0) {
        if (!makeRoom(now) || entries.size + missing > maxKeys) {
          const first = list[held.findIndex((e) => !e)]![0];
          return refuse(route, 'capacity', first, Number.isFinite(nextIdleAt) ? nextIdleAt - now : windowMs);
        }
        for (let i = 0; i < list.length; i++) {
          if (held[i]) continue;
          const [per, id] = list[i]!;
          const e = fresh(route, per, id, windowMs, now);
          entries.set(keyOf(route, per, id), e);
          held[i] = e;
        }
      }
      for (const e of held) {
        e!.cur.requests += 1;
        e!.sum.requests += 1;
      }
      requestsTotal?.inc({ route });
      return { ok: true };
    },

    record(route, keys, usage) {
      const now = clock.now();
      const windowMs = routeWindow.get(route) ?? DEFAULT_WINDOW_MS;
      for (const [per, id] of keyList(keys)) {
        let e = existing(route, per, id, windowMs, now);
        if (!e) {
          // Dropped since admit (idle for two windows: a very long response): counted anew if there is room.
          if (!makeRoom(now)) continue;
          e = fresh(route, per, id, windowMs, now);
          entries.set(keyOf(route, per, id), e);
        }
        for (const b of [e.cur, e.sum]) {
          b.input += usage.input;
          b.output += usage.output;
          b.total += usage.total;
        }
      }
      tokensTotal?.inc({ route, kind: 'input' }, usage.input);
      tokensTotal?.inc({ route, kind: 'output' }, usage.output);
    },

    usage(filter) {
      const now = clock.now();
      const rows: UsageRow[] = [];
      const byKey = filter.agent !== undefined || filter.task !== undefined || filter.user !== undefined;
      for (const e of entries.values()) {
        if (filter.route !== undefined && e.route !== filter.route) continue;
        if (byKey && filter[e.per] !== e.id) continue;
        roll(e, now);
        const w = (field: keyof Bucket): number => Math.ceil(estimate(e, field, now) - 1e-9);
        rows.push({
          route: e.route, per: e.per, [e.per]: e.id, window_ms: e.windowMs,
          window: { requests: w('requests'), input: w('input'), output: w('output'), total: w('total') },
          since_start: { ...e.sum },
        });
      }
      const order = (r: UsageRow): string => `${r.route}\u0000${KINDS.indexOf(r.per)}\u0000${r[r.per] ?? ''}`;
      return rows.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
    },

    get size() {
      return entries.size;
    },
  };
}

/**
 * The error for a refused admission: 429 TESSERA_PROXY_RATE_LIMITED, or 503
 * TESSERA_PROXY_LIMITS_FULL for `capacity`; `details.retry_after_s` is what the answer's
 * `Retry-After` header carries (src/server/app.ts `retryAfterOf`), `details.which`/`per` say which
 * limit. Never an id: the agent knows who it is.
 */
export function limitError(route: string, refused: Extract<AdmitResult, { ok: false }>): TesseraError {
  if (refused.which === 'capacity') {
    return new TesseraError('TESSERA_PROXY_LIMITS_FULL', `the proxy cannot count more agents, tasks and users at once; retry in ${refused.retryAfterSec} s`, { route, retry_after_s: refused.retryAfterSec });
  }
  const what = refused.which === 'requests' ? 'requests' : 'model tokens';
  return new TesseraError('TESSERA_PROXY_RATE_LIMITED', `the ${what} limit of route ${route} per ${refused.per} is used up for this window; retry in ${refused.retryAfterSec} s`, { route, which: refused.which, per: refused.per, retry_after_s: refused.retryAfterSec });
}
