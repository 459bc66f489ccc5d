/**
 * Exposure windows (docs/exposure.md, ADR 0150): "how long does exposure last?" for every
 * credential Tessera issues. This service owns the metrics, the batched writes of secret uses,
 * the expiry sweep and the report; the issuing and revoking services write and close windows
 * inside their own audited commits (store.ts).
 */
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { MetricsRegistry, Histogram } from '../shared/metrics.js';
import { randomId } from '../shared/crypto.js';
import { EXPOSURE_KINDS, type ExposureGrouping, type ExposureKind } from './kinds.js';
import { liveCredentials, type ExposureGroup, type LiveCredential } from './report.js';
import { closeAllTokens, groupStats, insertExposures, liveCounts, liveWindowsTop, sweepExpired, windowsTruncated, type ClosedWindow, type ExposureRow, type GroupStats } from './store.js';

/** Histogram buckets, seconds: a second to a day. */
export const EXPOSURE_BUCKETS_S = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400] as const;

/** An injected secret's use: the secret was in an outbound call from `startedAt` to `endedAt`. */
export interface SecretUse {
  readonly agent: string;
  readonly task: string | null;
  readonly root: string | null;
  readonly user: string | null;
  /** `kv/<path> → <where it went>`: the secret's path and the upstream, never its value. */
  readonly resource: string;
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface ExposureQuery {
  readonly by: ExposureGrouping;
  /** Epoch ms: windows issued at or after it. */
  readonly since: number;
  readonly kind?: ExposureKind;
}

export interface ExposureReport {
  /** RFC 3339. */
  readonly generated_at: string;
  readonly since: string;
  readonly by: ExposureGrouping;
  readonly kind: ExposureKind | null;
  readonly groups: ExposureGroup[];
  readonly live: LiveCredential[];
  /** Every live credential (`live` lists at most LIVE_LIMIT of them, longest remaining first). */
  readonly live_total: number;
  /** True when more than WINDOW_LIMIT windows of a source were issued since `since`: groups cover the newest. */
  readonly truncated: boolean;
}

export interface ExposureService {
  /** Records a secret use (batched: written within `flushIntervalMs`, or at once when many wait). */
  recordUse(use: SecretUse): void;
  /** Observes windows just closed (a revocation's, a key revocation's) in the histogram. */
  observe(closed: readonly ClosedWindow[]): void;
  /** A lease's backend credential was dropped (the lease service calls it once per lease moved to `revoked`). */
  leaseClosed(createdAt: number, revokedAt: number): void;
  /**
   * The signing keys were revoked (`keys rotate --revoke-previous`): every token issued before
   * `before` is refused, so its window closes then. Tokens issued in the second of the rotation
   * stay open (`iat` has whole seconds: they may be signed by the new key), erring towards
   * reporting more exposure, never less.
   */
  keysRevoked(before: number): Promise<void>;
  /** One sweep: expired token windows are marked closed and observed, ≤ `sweepBatch` × 20 a pass. */
  sweepOnce(): Promise<number>;
  report(q: ExposureQuery): Promise<ExposureReport>;
  /** The report's `groups` alone (the console overview): no live list. */
  groups(q: ExposureQuery): Promise<ExposureGroup[]>;
  /** Writes the secret uses waiting in memory. */
  flush(): Promise<void>;
  start(): void;
  close(): Promise<void>;
}

export interface ExposureServiceDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly metrics?: MetricsRegistry;
  readonly logger?: Logger;
  /** Default 1 s. */
  readonly flushIntervalMs?: number;
  /** Secret uses kept in memory before a flush is forced; beyond 10× that, uses are dropped (and counted). Default 500. */
  readonly maxPending?: number;
  /** Rows per sweep statement. Default 5000. */
  readonly sweepBatch?: number;
}

/** Most windows of each source a report reads. */
export const WINDOW_LIMIT = 200_000;
/** Most live credentials a report lists. */
export const LIVE_LIMIT = 1000;
/** Rows per INSERT (12 parameters each: far below both stores' limits). */
const INSERT_CHUNK = 200;

/** Seconds with millisecond precision (report.ts). */
const seconds = (ms: number): number => Math.round(ms) / 1000;

/** The store's group numbers as the report's groups: largest credential-seconds first, then by key (report.ts groupWindows). */
export function toGroups(stats: readonly GroupStats[]): ExposureGroup[] {
  return stats
    .map((g) => ({ key: g.key, count: g.count, live: g.live, p50_s: seconds(g.p50), p95_s: seconds(g.p95), max_s: seconds(g.max), credential_seconds: seconds(g.total) }))
    .sort((x, y) => y.credential_seconds - x.credential_seconds || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}

export function createExposureService(deps: ExposureServiceDeps): ExposureService {
  const { store, clock } = deps;
  const maxPending = deps.maxPending ?? 500;
  const sweepBatch = deps.sweepBatch ?? 5000;
  const histogram: Histogram | undefined = deps.metrics?.histogram('tessera_credential_exposure_seconds', 'Length of credential exposure windows, observed when a window closes (expiry or revocation), by kind', EXPOSURE_BUCKETS_S);
  const dropped = deps.metrics?.counter('tessera_exposure_uses_dropped_total', 'Secret uses not recorded as exposure windows (the store refused them, or too many waited)');
  const liveGauge = deps.metrics?.gauge('tessera_credentials_live', 'Credentials live now (exposure windows not yet closed), by kind');
  liveGauge?.collectLabelled(async () => {
    try {
      const counts = await liveCounts(store, clock.now());
      return EXPOSURE_KINDS.map((kind) => ({ labels: { kind }, value: counts[kind] }));
    } catch {
      return []; // the store is down: the scrape keeps the last values (/readyz says why)
    }
  });

  let pending: ExposureRow[] = [];
  let flushing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  const observeOne = (kind: ExposureKind, issuedAt: number, closedAt: number): void => histogram?.observe(Math.max(0, closedAt - issuedAt) / 1000, { kind });

  async function write(batch: readonly ExposureRow[]): Promise<void> {
    for (let i = 0; i < batch.length; i += INSERT_CHUNK) await insertExposures(store, batch.slice(i, i + INSERT_CHUNK));
  }

  /** The groups over the newest WINDOW_LIMIT + 1 windows of each source (all of them when not truncated: no ordering needed). */
  async function groupsOf(q: ExposureQuery, now: number): Promise<{ groups: ExposureGroup[]; truncated: boolean }> {
    const truncated = await windowsTruncated(store, q.since, q.kind, WINDOW_LIMIT);
    return { groups: toGroups(await groupStats(store, q.since, q.by, q.kind, now, truncated ? WINDOW_LIMIT + 1 : null)), truncated };
  }

  const service: ExposureService = {
    recordUse(u) {
      if (pending.length >= maxPending * 10) {
        dropped?.inc({ reason: 'backlog' });
        return;
      }
      pending.push({
        id: randomId('use_'), kind: 'secret_use', agent: u.agent, task: u.task, root: u.root, user: u.user, resource: u.resource,
        issuedAt: u.startedAt, expiresAt: u.endedAt, closedAt: u.endedAt, closedBy: 'ended',
      });
      observeOne('secret_use', u.startedAt, u.endedAt);
      if (pending.length >= maxPending) void service.flush();
    },

    observe(closed) {
      for (const c of closed) observeOne(c.kind, c.issuedAt, c.closedAt);
    },

    leaseClosed(createdAt, revokedAt) {
      observeOne('lease', createdAt, revokedAt);
    },

    async keysRevoked(before) {
      const at = Math.floor(before / 1000) * 1000 - 1;
      try {
        service.observe(await closeAllTokens(store, at, 'keys_revoked'));
      } catch (e) {
        deps.logger?.warn({ err: (e as Error).message }, 'exposure: windows of tokens signed by revoked keys could not be closed');
      }
    },

    async sweepOnce() {
      let total = 0;
      for (let i = 0; i < 20; i++) {
        const closed = await sweepExpired(store, clock.now(), sweepBatch);
        service.observe(closed);
        total += closed.length;
        if (closed.length < sweepBatch) break;
      }
      return total;
    },

    async report(q) {
      await service.flush();
      const now = clock.now();
      const [groups, live] = await Promise.all([groupsOf(q, now), liveWindowsTop(store, now, q.kind, LIVE_LIMIT, WINDOW_LIMIT)]);
      return {
        generated_at: new Date(now).toISOString(), since: new Date(q.since).toISOString(), by: q.by, kind: q.kind ?? null,
        groups: groups.groups, live: liveCredentials(live.windows, now, LIVE_LIMIT), live_total: live.total, truncated: groups.truncated,
      };
    },

    async groups(q) {
      await service.flush();
      return (await groupsOf(q, clock.now())).groups;
    },

    flush() {
      const batch = pending;
      pending = [];
      flushing = flushing.then(async () => {
        if (batch.length === 0) return;
        try {
          await write(batch);
        } catch (e) {
          // Bookkeeping of calls that already happened: it never fails them. Counted and logged.
          dropped?.inc({ reason: 'store' }, batch.length);
          deps.logger?.warn({ err: (e as Error).message, uses: batch.length }, 'exposure: secret uses could not be recorded');
        }
      });
      return flushing;
    },

    start() {
      timer ??= setInterval(() => void service.flush(), deps.flushIntervalMs ?? 1000);
      timer.unref();
    },

    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await service.flush();
    },
  };
  return service;
}
