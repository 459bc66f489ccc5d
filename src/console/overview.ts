/**
 * `GET /v1/admin/overview` (docs/console-api.md, CONSOLE contract): one answer for the console's
 * overview page. Each part comes from the service that owns it — the agents inventory, the
 * exposure windows (src/exposure), the audit table and jobs (src/audit), the policy engine, the
 * postgres engine — so the page never shows a second count that could disagree with theirs.
 * Times are RFC 3339; durations seconds.
 */
import type { SqlExecutor } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { ExposureService } from '../exposure/service.js';
import { liveCounts } from '../exposure/store.js';
import type { PolicyStatus } from '../policy/engine.js';
import type { EngineHealth } from '../engines/index.js';

/** Width of one bucket of the decisions series, and how many (24 h). */
export const DECISION_BUCKET_MS = 3_600_000;
export const DECISION_BUCKETS = 24;

export interface OverviewDeps {
  readonly store: SqlExecutor;
  readonly clock: Clock;
  readonly version: string;
  readonly exposure: Pick<ExposureService, 'groups'>;
  readonly policy: { status(): PolicyStatus };
  readonly engines: () => Promise<readonly EngineHealth[]>;
  readonly lastVerify: () => Promise<{ at: string; ok: boolean; checked: number } | null>;
  /** Open MCP sessions of this replica's gateway. */
  readonly mcpSessions: () => number;
  /** Live console sessions (all replicas); absent until console sessions exist: 0. */
  readonly consoleSessions?: () => Promise<number>;
}

export interface DecisionBucket {
  /** Start of the hour, RFC 3339. */
  readonly t: string;
  readonly allow: number;
  readonly deny: number;
}

/**
 * Permitted and refused actions per hour over the last 24 h: `allow` counts audit events whose
 * result is `allow` (a gateway or proxy decision) or `success` (a permitted action that completed:
 * a secret read, a credential issued, a login — most allowed decisions are recorded so), `deny`
 * counts those whose result is `deny`. DECISION_BUCKETS buckets aligned on the
 * hour, the last one the current (partial) hour; empty hours are zeros; an event stamped after the
 * last hour (a replica's clock ahead) is in none. One statement: per hour, two counts on the
 * `audit_events_result_ts` index (migration 339), each a range of index entries — nothing is
 * sorted or grouped (ADR 0286).
 */
export async function decisionSeries(db: SqlExecutor, now: number): Promise<DecisionBucket[]> {
  const first = Math.floor(now / DECISION_BUCKET_MS) * DECISION_BUCKET_MS - (DECISION_BUCKETS - 1) * DECISION_BUCKET_MS;
  const from = `CAST(? AS BIGINT) + h.i * ${DECISION_BUCKET_MS}`;
  const to = `CAST(? AS BIGINT) + (h.i + 1) * ${DECISION_BUCKET_MS}`;
  const rows = await db.all<{ b: number; allow: number; deny: number }>(
    `WITH RECURSIVE h(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM h WHERE i < ${DECISION_BUCKETS - 1})
     SELECT h.i AS b,
       (SELECT COUNT(*) FROM audit_events WHERE result IN ('allow', 'success') AND ts >= ${from} AND ts < ${to}) AS allow,
       (SELECT COUNT(*) FROM audit_events WHERE result = 'deny' AND ts >= ${from} AND ts < ${to}) AS deny
     FROM h`,
    [first, first, first, first],
  );
  const series = Array.from({ length: DECISION_BUCKETS }, (_, i) => ({ t: new Date(first + i * DECISION_BUCKET_MS).toISOString(), allow: 0, deny: 0 }));
  for (const r of rows) {
    const bucket = series[Number(r.b)];
    if (!bucket) continue;
    bucket.allow = Number(r.allow);
    bucket.deny = Number(r.deny);
  }
  return series;
}

/**
 * Console sessions live at `now` (src/console/sessions.ts): not ended, not expired, and seen
 * within the idle timeout (`last_seen_at` is written at most every quarter of it, so a session
 * about to go idle may be counted a little longer than it lives).
 */
export async function liveConsoleSessions(db: SqlExecutor, now: number, idleMs: number): Promise<number> {
  const row = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM console_sessions WHERE revoked_at IS NULL AND expires_at > ? AND last_seen_at > ?', [now, now - idleMs]);
  return Number(row?.n ?? 0);
}

/** The overview document (the contract's shape). */
export async function buildOverview(deps: OverviewDeps): Promise<Record<string, unknown>> {
  const now = deps.clock.now();
  const { store } = deps;
  const [agents, live, decisions, exposure, head, lastVerify, engines, consoleSessions] = await Promise.all([
    store.get<{ total: number; seen: number | null }>('SELECT COUNT(*) AS total, SUM(CASE WHEN last_seen >= ? THEN 1 ELSE 0 END) AS seen FROM agents', [now - 86_400_000]),
    liveCounts(store, now),
    decisionSeries(store, now),
    deps.exposure.groups({ by: 'kind', since: now - 86_400_000 }),
    store.get<{ m: number | null }>('SELECT MAX(seq) AS m FROM audit_events'),
    deps.lastVerify(),
    deps.engines(),
    deps.consoleSessions ? deps.consoleSessions() : Promise.resolve(0),
  ]);
  const policy = deps.policy.status();
  return {
    agents: { total: Number(agents?.total ?? 0), seen_24h: Number(agents?.seen ?? 0) },
    live: { agent_tokens: live.agent_token, task_tokens: live.task_token, leases: live.lease, mcp_sessions: deps.mcpSessions(), console_sessions: consoleSessions },
    decisions: { bucket_s: DECISION_BUCKET_MS / 1000, series: decisions },
    exposure: { kinds: exposure.map((g) => ({ kind: g.key, live: g.live, p50_s: g.p50_s, p95_s: g.p95_s, max_s: g.max_s })) },
    audit: { head_seq: Number(head?.m ?? 0), last_verify: lastVerify ? { at: lastVerify.at, ok: lastVerify.ok, checked: lastVerify.checked } : null },
    policy: { policies: policy.policies, errors: policy.errors.length, loaded_at: policy.lastGoodAt !== undefined ? new Date(policy.lastGoodAt).toISOString() : null },
    engines: engines.map((e) => ({ name: e.name, kind: e.kind, healthy: e.healthy, ...(e.detail !== undefined ? { detail: e.detail } : {}) })),
    version: deps.version,
  };
}
