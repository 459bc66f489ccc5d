/**
 * Exposure windows in the store (migration 150, ADR 0150). Agent tokens, task tokens and secret
 * uses have an `exposures` row; a lease's window is its `leases` row (created_at → revoked_at).
 * Every statement here is portable SQL for both adapters; times are epoch milliseconds.
 */
import type { SqlExecutor, SqlValue } from '../store/port.js';
import type { ExposureGrouping, ExposureKind } from './kinds.js';
import { percentile, type ExposureWindow } from './report.js';

/** A row to insert: written with the credential's own audited commit (tokens) or batched (uses). */
export interface ExposureRow {
  readonly id: string;
  readonly kind: Exclude<ExposureKind, 'lease'>;
  readonly agent: string;
  /** The credential's task (`txn`) and its tree's root (`rtxn`); null outside tasks. */
  readonly task: string | null;
  readonly root: string | null;
  readonly user: string | null;
  /** Secret uses: `kv/<path> → <server>/<tool>`. */
  readonly resource: string | null;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** Set for windows already over when written (secret uses). */
  readonly closedAt: number | null;
  readonly closedBy: string | null;
  /** The acting agent's Kubernetes pod uid (tokens only): a `pod` revocation closes the window (docs/k8s-pods.md). */
  readonly podUid?: string | null;
}

/** A window just closed (for the histogram). */
export interface ClosedWindow {
  readonly kind: ExposureKind;
  readonly issuedAt: number;
  readonly closedAt: number;
}

const COLUMNS = 'id, kind, agent, task, root, user_id, resource, issued_at, expires_at, closed_at, closed_by, pod_uid';
const MARKS = `(${COLUMNS.split(', ').map(() => '?').join(', ')})`;
const values = (r: ExposureRow): SqlValue[] => [r.id, r.kind, r.agent, r.task, r.root, r.user, r.resource, r.issuedAt, r.expiresAt, r.closedAt, r.closedBy, r.podUid ?? null];

/** Inserts rows in one statement (callers bound the count: 12 parameters a row). */
export async function insertExposures(tx: SqlExecutor, rows: readonly ExposureRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.run(`INSERT INTO exposures (${COLUMNS}) VALUES ${rows.map(() => MARKS).join(', ')}`, rows.flatMap(values));
}

interface ClosedRow {
  kind: string;
  issued_at: number;
  closed_at: number;
  [k: string]: unknown;
}

const toClosed = (r: ClosedRow): ClosedWindow => ({ kind: r.kind as ExposureKind, issuedAt: Number(r.issued_at), closedAt: Number(r.closed_at) });

/** What a revocation names, as the revocation service records it; `jtiHmac` for `token` kinds. */
export interface ClosingRevocation {
  readonly id: string;
  readonly kind: string;
  readonly target: string;
  /** When the revocation took effect (epoch ms). */
  readonly at: number;
  readonly jtiHmac?: string;
}

/**
 * Closes the open token windows a revocation refuses, at the revocation's time (at `now` for a
 * token issued after it — by a replica that had not heard of it yet). Matches what
 * `isPrincipalRevoked` refuses: agent → its tokens and every task token with it in the chain
 * (an ancestor-or-self node it acts in); task → the subtree's task tokens; user → the tokens
 * acting for the user; token → that jti. Leases are closed by the lease service. Idempotent.
 */
export async function closeForRevocation(tx: SqlExecutor, r: ClosingRevocation, now: number): Promise<ClosedWindow[]> {
  const match = revocationTokenMatch(r);
  if (!match) return [];
  const rows = await tx.all<ClosedRow>(
    `UPDATE exposures SET closed_at = CASE WHEN issued_at > CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END, closed_by = ?
     WHERE closed_at IS NULL AND expires_at > ? AND ${match[0]} RETURNING kind, issued_at, closed_at`,
    [r.at, now, r.at, r.id, r.at, ...match[1]],
  );
  return rows.map(toClosed);
}

/**
 * Task nodes an agent acts in and every node below them (an ancestor-or-self node whose actor it
 * is): what an agent revocation refuses through the delegation chain. One parameter: the agent.
 */
const AGENT_SUBTREES = 'SELECT a.txn FROM task_ancestors a JOIN tasks t ON t.txn = a.ancestor WHERE t.actor = ?';

/**
 * The one definition of which token windows a revocation refuses (see closeForRevocation), as a
 * WHERE fragment on `exposures` and its parameters; null when it names no token window (leases).
 */
export function revocationTokenMatch(r: Pick<ClosingRevocation, 'kind' | 'target' | 'jtiHmac'>): [string, SqlValue[]] | null {
  if (r.kind === 'agent') return [`kind IN ('agent_token', 'task_token') AND (agent = ? OR task IN (${AGENT_SUBTREES}))`, [r.target, r.target]];
  if (r.kind === 'task') return [`kind = 'task_token' AND task IN (SELECT txn FROM task_ancestors WHERE ancestor = ?)`, [r.target]];
  if (r.kind === 'user') return [`kind IN ('agent_token', 'task_token') AND user_id = ?`, [r.target]];
  if (r.kind === 'token' && r.jtiHmac !== undefined) return [`kind IN ('agent_token', 'task_token') AND id = ?`, [r.jtiHmac]];
  // A deleted pod: the windows of tokens its agents acted with (docs/k8s-pods.md).
  if (r.kind === 'pod') return [`kind IN ('agent_token', 'task_token') AND pod_uid = ?`, [r.target]];
  return null;
}

/**
 * What a revocation of `r` would refuse at `now`, counted with the same match that
 * closeForRevocation closes (the kill switch's preview): open token windows by kind, and the
 * tasks whose live task tokens it refuses.
 */
export async function countForRevocation(db: SqlExecutor, r: Pick<ClosingRevocation, 'kind' | 'target' | 'jtiHmac'>, now: number): Promise<{ agent_tokens: number; task_tokens: number; tasks: number }> {
  const out = { agent_tokens: 0, task_tokens: 0, tasks: 0 };
  const tokens = revocationTokenMatch(r);
  if (!tokens) return out;
  const rows = await db.all<{ kind: string; n: number; t: number }>(
    `SELECT kind, COUNT(*) AS n, COUNT(DISTINCT task) AS t FROM exposures WHERE closed_at IS NULL AND expires_at > ? AND ${tokens[0]} GROUP BY kind`,
    [now, ...tokens[1]],
  );
  for (const row of rows) {
    if (row.kind === 'agent_token') out.agent_tokens = Number(row.n);
    if (row.kind === 'task_token') {
      out.task_tokens = Number(row.n);
      out.tasks = Number(row.t);
    }
  }
  return out;
}

/**
 * Live credentials (open unexpired token windows, leases not yet dropped) per agent, for the
 * given agents (the console's agents page; at most a page of them).
 */
export async function liveCountsByAgent(db: SqlExecutor, agents: readonly string[], now: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (agents.length === 0) return out;
  const marks = agents.map(() => '?').join(', ');
  const tokens = await db.all<{ agent: string; n: number }>(`SELECT agent, COUNT(*) AS n FROM exposures WHERE agent IN (${marks}) AND closed_at IS NULL AND expires_at > ? AND kind IN ('agent_token', 'task_token') GROUP BY agent`, [...agents, now]);
  const leases = await db.all<{ agent: string; n: number }>(`SELECT l.owner_agent AS agent, COUNT(*) AS n FROM leases l WHERE l.owner_agent IN (${marks}) AND ${LEASE_LIVE} AND ${HANDED_OUT} GROUP BY l.owner_agent`, [...agents]);
  for (const r of [...tokens, ...leases]) out.set(r.agent, (out.get(r.agent) ?? 0) + Number(r.n));
  return out;
}

/** One live credential of an agent (the console's agent detail): a token window or a lease. */
export interface AgentCredential {
  readonly kind: 'agent_token' | 'task_token' | 'lease';
  /** A token's jti HMAC (never the token), or the lease id. */
  readonly id: string;
  readonly expiresAt: number;
  /** Task tokens: the task (`txn`); leases: `<engine>/<role>`. */
  readonly detail: string | null;
}

/** An agent's live credentials, soonest expiry first (at most `limit` of each source). */
export async function liveCredentialsOf(db: SqlExecutor, agent: string, now: number, limit: number): Promise<AgentCredential[]> {
  const tokens = await db.all<{ id: string; kind: string; task: string | null; expires_at: number }>(
    `SELECT id, kind, task, expires_at FROM exposures WHERE agent = ? AND closed_at IS NULL AND expires_at > ? AND kind IN ('agent_token', 'task_token') ORDER BY expires_at LIMIT ?`,
    [agent, now, limit],
  );
  const leases = await db.all<{ id: string; engine: string; role: string; expires_at: number }>(
    `SELECT l.id AS id, l.engine AS engine, l.role AS role, l.expires_at AS expires_at FROM leases l WHERE l.owner_agent = ? AND ${LEASE_LIVE} AND ${HANDED_OUT} ORDER BY l.expires_at LIMIT ?`,
    [agent, limit],
  );
  return [
    ...tokens.map((t): AgentCredential => ({ kind: t.kind as 'agent_token' | 'task_token', id: t.id, expiresAt: Number(t.expires_at), detail: t.task })),
    ...leases.map((l): AgentCredential => ({ kind: 'lease', id: l.id, expiresAt: Number(l.expires_at), detail: `${l.engine}/${l.role}` })),
  ].sort((a, b) => a.expiresAt - b.expiresAt);
}

/** Closes every open token window issued up to `at` (the signing keys that signed them were revoked). */
export async function closeAllTokens(tx: SqlExecutor, at: number, cause: string): Promise<ClosedWindow[]> {
  const rows = await tx.all<ClosedRow>(
    `UPDATE exposures SET closed_at = ?, closed_by = ? WHERE closed_at IS NULL AND expires_at > ? AND issued_at <= ? AND kind IN ('agent_token', 'task_token') RETURNING kind, issued_at, closed_at`,
    [at, cause, at, at],
  );
  return rows.map(toClosed);
}

/** A lifted revocation reopens the windows it closed that have not expired since. Returns how many. */
export async function reopenClosedBy(tx: SqlExecutor, revocationId: string, now: number): Promise<number> {
  return (await tx.run(`UPDATE exposures SET closed_at = NULL, closed_by = NULL WHERE closed_by = ? AND expires_at > ?`, [revocationId, now])).changes;
}

/**
 * Marks up to `limit` expired open windows closed at their expiry, returning them: what the
 * histogram observes for expiries. Each row is claimed by exactly one replica (the UPDATE's
 * `closed_at IS NULL`), so replicas never observe the same expiry twice.
 */
export async function sweepExpired(tx: SqlExecutor, now: number, limit: number): Promise<ClosedWindow[]> {
  const rows = await tx.all<ClosedRow>(
    `UPDATE exposures SET closed_at = expires_at, closed_by = 'expired'
     WHERE id IN (SELECT id FROM exposures WHERE closed_at IS NULL AND expires_at <= ? LIMIT ?) AND closed_at IS NULL
     RETURNING kind, issued_at, closed_at`,
    [now, limit],
  );
  return rows.map(toClosed);
}

interface WindowRow {
  id: string;
  kind: string;
  agent: string | null;
  root: string | null;
  user_id: string | null;
  issued_at: number;
  expires_at: number;
  closed_at: number | null;
  [k: string]: unknown;
}

const toWindow = (r: WindowRow): ExposureWindow => ({
  kind: r.kind as ExposureKind, id: r.id, agent: r.agent ?? '-', task: r.root, user: r.user_id,
  issuedAt: Number(r.issued_at), expiresAt: Number(r.expires_at), closedAt: r.closed_at === null ? null : Number(r.closed_at),
  openUntilClosed: r.kind === 'lease',
});

/**
 * Leases whose credential was handed out: not `pending`, and not dropped because its issuance
 * failed or was abandoned (the agent never received it).
 */
const HANDED_OUT = `l.state <> 'pending' AND (l.revoke_cause IS NULL OR l.revoke_cause NOT IN ('create_failed', 'abandoned_intent'))`;
/** Leases whose backend credential may still exist. */
const LEASE_LIVE = `l.state IN ('active', 'revoking', 'disabled', 'irrevocable')`;
/**
 * `leases l` for a statement on the live, handed-out leases alone (LEASE_LIVE AND HANDED_OUT):
 * on SQLite pinned to their partial index (migration 386, ADR 0286), which covers such counts
 * and orders, whatever statistics the planner has (Tessera never runs ANALYZE: without them it
 * would take `leases_state_expires` and read every row). PostgreSQL plans by its own statistics.
 */
const liveLeases = (db: SqlExecutor): string => ((db as { dialect?: string }).dialect === 'sqlite' ? 'leases l INDEXED BY leases_live' : 'leases l');
const LEASE_SELECT = `SELECT l.id AS id, 'lease' AS kind, l.owner_agent AS agent, t.root AS root, l.user_id AS user_id, l.created_at AS issued_at, l.expires_at AS expires_at, l.revoked_at AS closed_at FROM leases l LEFT JOIN tasks t ON t.txn = l.task_id`;

/** Windows issued at or after `since`, newest first, at most `limit` of each source. */
export async function windowsSince(db: SqlExecutor, since: number, kind: ExposureKind | undefined, limit: number): Promise<ExposureWindow[]> {
  const out: ExposureWindow[] = [];
  if (kind !== 'lease') {
    const rows = await db.all<WindowRow>(
      `SELECT id, kind, agent, root, user_id, issued_at, expires_at, closed_at FROM exposures WHERE issued_at >= ? ${kind ? 'AND kind = ?' : ''} ORDER BY issued_at DESC LIMIT ?`,
      kind ? [since, kind, limit] : [since, limit],
    );
    out.push(...rows.map(toWindow));
  }
  if (kind === undefined || kind === 'lease') {
    const rows = await db.all<WindowRow>(`${LEASE_SELECT} WHERE l.created_at >= ? AND ${HANDED_OUT} ORDER BY l.created_at DESC LIMIT ?`, [since, limit]);
    out.push(...rows.map(toWindow));
  }
  return out;
}

/** Every credential live at `now`, whenever issued: open unexpired token windows, leases not yet dropped. */
export async function liveWindows(db: SqlExecutor, now: number, kind: ExposureKind | undefined, limit: number): Promise<ExposureWindow[]> {
  const out: ExposureWindow[] = [];
  if (kind !== 'lease' && kind !== 'secret_use') {
    const rows = await db.all<WindowRow>(
      `SELECT id, kind, agent, root, user_id, issued_at, expires_at, closed_at FROM exposures WHERE closed_at IS NULL AND expires_at > ? ${kind ? 'AND kind = ?' : ''} ORDER BY expires_at DESC LIMIT ?`,
      kind ? [now, kind, limit] : [now, limit],
    );
    out.push(...rows.map(toWindow));
  }
  if (kind === undefined || kind === 'lease') {
    const rows = await db.all<WindowRow>(`${LEASE_SELECT} WHERE ${LEASE_LIVE} AND ${HANDED_OUT} ORDER BY l.expires_at DESC LIMIT ?`, [limit]);
    out.push(...rows.map(toWindow));
  }
  return out;
}

/** Live credentials by kind (the gauge). */
export async function liveCounts(db: SqlExecutor, now: number): Promise<Record<ExposureKind, number>> {
  const counts: Record<ExposureKind, number> = { agent_token: 0, task_token: 0, lease: 0, secret_use: 0 };
  const rows = await db.all<{ kind: string; n: number }>(`SELECT kind, COUNT(*) AS n FROM exposures WHERE closed_at IS NULL AND expires_at > ? GROUP BY kind`, [now]);
  for (const r of rows) if (r.kind in counts) counts[r.kind as ExposureKind] = Number(r.n);
  const leases = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${liveLeases(db)} WHERE ${LEASE_LIVE} AND ${HANDED_OUT}`);
  counts.lease = Number(leases?.n ?? 0);
  return counts;
}

/** One group's numbers as the store computes them (milliseconds; see report.ts groupWindows). */
export interface GroupStats {
  readonly key: string;
  readonly count: number;
  readonly live: number;
  /** Nearest-rank p50 and p95 window lengths and the longest, ms. */
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
  /** Sum of window lengths, ms. */
  readonly total: number;
}

const GROUP_KEYS: Record<ExposureGrouping, { token: string; lease: string; join: boolean }> = {
  kind: { token: 'kind', lease: `'lease'`, join: false },
  agent: { token: `COALESCE(agent, '-')`, lease: `COALESCE(l.owner_agent, '-')`, join: false },
  task: { token: `COALESCE(root, '-')`, lease: `COALESCE(t.root, '-')`, join: true },
  user: { token: `COALESCE(user_id, '-')`, lease: `COALESCE(l.user_id, '-')`, join: false },
};

/**
 * The report's groups (ADR 0250, ADR 0286): the same windows as windowsSince (the newest `limit`
 * of each source issued at or after `since`), the same window ends as report.ts windowEnd.
 * The store filters, computes each window's length and aggregates per group and source — count,
 * live count, sum and every length as one decimal list (`group_concat`/`string_agg`) — in one statement without
 * sorting any window; JavaScript sorts each group's lengths (a Float64Array: numeric, in place)
 * and picks the nearest ranks with report.ts `percentile`, the reference's own function. A
 * group's two sources (`agent`, `task`, `user` span tokens and leases) are merged here.
 * `limit` null: every window since `since` (the caller knows there are at most its limit; no
 * ordering needed). Unordered: the caller sorts.
 */
export async function groupStats(db: SqlExecutor, since: number, by: ExposureGrouping, kind: ExposureKind | undefined, now: number, limit: number | null): Promise<GroupStats[]> {
  const newest = (col: string): string => (limit === null ? '' : `ORDER BY ${col} DESC LIMIT ?`);
  const lim: SqlValue[] = limit === null ? [] : [limit];
  const keys = GROUP_KEYS[by];
  const parts: string[] = [];
  const params: SqlValue[] = [];
  // group_concat on SQLite (string_agg only from 3.44; the port promises 3.35), string_agg on PostgreSQL.
  const list = (db as { dialect?: string }).dialect === 'sqlite' ? `group_concat(w.len, ',')` : `string_agg(CAST(w.len AS TEXT), ',')`;
  const aggregates = `COUNT(*) AS n, SUM(w.live) AS live, SUM(w.len) AS total, ${list} AS lens`;
  if (kind !== 'lease') {
    // Tokens and uses: closed at min(expires_at, closed_at); live while that is after now.
    parts.push(`SELECT w.k AS k, ${aggregates} FROM (
        SELECT e.k AS k, CASE WHEN e.c > p.now THEN (CASE WHEN e.i > p.now THEN e.i ELSE p.now END) ELSE (CASE WHEN e.i > e.c THEN e.i ELSE e.c END) END - e.i AS len,
          CASE WHEN e.c > p.now THEN 1 ELSE 0 END AS live
        FROM (SELECT ${keys.token} AS k, issued_at AS i, CASE WHEN closed_at IS NOT NULL AND closed_at < expires_at THEN closed_at ELSE expires_at END AS c
          FROM exposures WHERE issued_at >= ? ${kind ? 'AND kind = ?' : ''} ${newest('issued_at')}) e CROSS JOIN (SELECT CAST(? AS BIGINT) AS now) p) w GROUP BY w.k`);
    params.push(since, ...(kind ? [kind] : []), ...lim, now);
  }
  if (kind === undefined || kind === 'lease') {
    // Leases: open until dropped (revoked_at), whatever their expiry. By kind, one group: no GROUP BY (no sort).
    parts.push(`SELECT ${by === 'kind' ? `'lease'` : 'w.k'} AS k, ${aggregates} FROM (
        SELECT l2.k AS k, CASE WHEN l2.c IS NULL THEN (CASE WHEN l2.i > p.now THEN l2.i ELSE p.now END) ELSE (CASE WHEN l2.i > l2.c THEN l2.i ELSE l2.c END) END - l2.i AS len,
          CASE WHEN l2.c IS NULL THEN 1 ELSE 0 END AS live
        FROM (SELECT ${keys.lease} AS k, l.created_at AS i, l.revoked_at AS c FROM leases l ${keys.join ? 'LEFT JOIN tasks t ON t.txn = l.task_id' : ''}
          WHERE l.created_at >= ? AND ${HANDED_OUT} ${newest('l.created_at')}) l2 CROSS JOIN (SELECT CAST(? AS BIGINT) AS now) p) w ${by === 'kind' ? '' : 'GROUP BY w.k'}`);
    params.push(since, ...lim, now);
  }
  const rows = await db.all<{ k: string; n: number; live: number | null; total: number | null; lens: string | null }>(parts.join(' UNION ALL '), params);
  const acc = new Map<string, { count: number; live: number; total: number; lens: string[] }>();
  for (const r of rows) {
    const n = Number(r.n);
    if (n === 0 || r.lens === null) continue; // the lease aggregate by kind over no lease
    let g = acc.get(r.k);
    if (!g) acc.set(r.k, (g = { count: 0, live: 0, total: 0, lens: [] }));
    g.count += n;
    g.live += Number(r.live ?? 0);
    g.total += Number(r.total ?? 0);
    g.lens.push(r.lens);
  }
  const out: GroupStats[] = [];
  for (const [key, g] of acc) {
    const sorted = lengthsOf(g.lens, g.count);
    out.push({ key, count: g.count, live: g.live, total: g.total, p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted[sorted.length - 1] ?? 0 });
  }
  return out;
}

/** The lengths of `lists` (integers, comma-separated: a JSON array's inside), ascending. */
function lengthsOf(lists: readonly string[], count: number): Float64Array {
  const out = Float64Array.from(JSON.parse(`[${lists.join(',')}]`) as number[]);
  if (out.length !== count) throw new Error(`exposure groups: ${out.length} window lengths read for ${count} windows`);
  return out.sort();
}

/** Whether more than `limit` windows of a source were issued at or after `since` (the report's `truncated`). */
export async function windowsTruncated(db: SqlExecutor, since: number, kind: ExposureKind | undefined, limit: number): Promise<boolean> {
  if (kind !== 'lease') {
    const row = await db.get(`SELECT 1 AS x FROM exposures WHERE issued_at >= ? ${kind ? 'AND kind = ?' : ''} ORDER BY issued_at DESC LIMIT 1 OFFSET ?`, kind ? [since, kind, limit] : [since, limit]);
    if (row) return true;
  }
  if (kind === undefined || kind === 'lease') {
    // At most `limit` leases created since `since` at all (the index alone answers): none are
    // cut. Only when there are more, count the handed-out ones (each row read).
    const any = await db.get(`SELECT 1 AS x FROM leases l WHERE l.created_at >= ? ORDER BY l.created_at DESC LIMIT 1 OFFSET ?`, [since, limit]);
    if (any && (await db.get(`SELECT 1 AS x FROM leases l WHERE l.created_at >= ? AND ${HANDED_OUT} ORDER BY l.created_at DESC LIMIT 1 OFFSET ?`, [since, limit]))) return true;
  }
  return false;
}

/**
 * The live credentials the report lists (ADR 0250, ADR 0286): the same set as liveWindows (at
 * most `cap` of each source) counted in the store, and only the first `limit` of both sources
 * read, in the report's order — whole seconds remaining, descending, then id in byte order
 * (`COLLATE "C"` on PostgreSQL; ids are ASCII, so JavaScript's `<` agrees). One statement picks
 * them on ids and expiries alone (the live leases from their index, migration 386) and reads
 * only their rows, in that order.
 */
export async function liveWindowsTop(db: SqlExecutor & { readonly dialect?: 'sqlite' | 'postgres' }, now: number, kind: ExposureKind | undefined, limit: number, cap: number): Promise<{ total: number; windows: ExposureWindow[] }> {
  const byId = (col: string): string => (db.dialect === 'postgres' ? `${col} COLLATE "C"` : col);
  const remaining = (col: string): string => `CASE WHEN ${col} > CAST(? AS BIGINT) THEN (${col} - CAST(? AS BIGINT)) / 1000 ELSE 0 END`;
  const each = Math.min(limit, cap);
  let total = 0;
  const picks: string[] = [];
  const reads: string[] = [];
  const params: SqlValue[] = [];
  if (kind !== 'lease' && kind !== 'secret_use') {
    const kindSql = kind ? 'AND kind = ?' : '';
    const where = `WHERE closed_at IS NULL AND expires_at > ? ${kindSql}`;
    const args: SqlValue[] = kind ? [now, kind] : [now];
    const n = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM (SELECT 1 AS x FROM exposures ${where} LIMIT ?) c`, [...args, cap]);
    total += Number(n?.n ?? 0);
    picks.push(`SELECT 'token' AS src, a.id AS id, a.rem AS rem FROM (SELECT id, ${remaining('expires_at')} AS rem FROM exposures ${where} ORDER BY rem DESC, ${byId('id')} LIMIT ?) a`);
    params.push(now, now, ...args, each);
    reads.push(`SELECT e.id AS id, e.kind AS kind, e.agent AS agent, e.root AS root, e.user_id AS user_id, e.issued_at AS issued_at, e.expires_at AS expires_at, e.closed_at AS closed_at, top.rem AS rem
      FROM top CROSS JOIN exposures e WHERE e.id = top.id AND top.src = 'token'`);
  }
  if (kind === undefined || kind === 'lease') {
    const from = `FROM ${liveLeases(db)} WHERE ${LEASE_LIVE} AND ${HANDED_OUT}`;
    const n = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM (SELECT 1 AS x ${from} LIMIT ?) c`, [cap]);
    total += Number(n?.n ?? 0);
    picks.push(`SELECT 'lease' AS src, b.id AS id, b.rem AS rem FROM (SELECT l.id AS id, ${remaining('l.expires_at')} AS rem ${from} ORDER BY rem DESC, ${byId('l.id')} LIMIT ?) b`);
    params.push(now, now, each);
    reads.push(`SELECT x.id AS id, 'lease' AS kind, x.owner_agent AS agent, t.root AS root, x.user_id AS user_id, x.created_at AS issued_at, x.expires_at AS expires_at, x.revoked_at AS closed_at, top.rem AS rem
      FROM top CROSS JOIN leases x LEFT JOIN tasks t ON t.txn = x.task_id WHERE x.id = top.id AND top.src = 'lease'`);
  }
  if (picks.length === 0 || limit <= 0 || total === 0) return { total, windows: [] };
  // CROSS JOIN: the picked ids drive the reads (primary-key lookups), never a scan of a table.
  const rows = await db.all<WindowRow>(
    `WITH top AS MATERIALIZED (SELECT u.src AS src, u.id AS id, u.rem AS rem FROM (${picks.join(' UNION ALL ')}) u ORDER BY u.rem DESC, ${byId('u.id')} LIMIT ?)
     SELECT r.id AS id, r.kind AS kind, r.agent AS agent, r.root AS root, r.user_id AS user_id, r.issued_at AS issued_at, r.expires_at AS expires_at, r.closed_at AS closed_at
     FROM (${reads.join(' UNION ALL ')}) r ORDER BY r.rem DESC, ${byId('r.id')}`,
    [...params, limit],
  );
  return { total, windows: rows.map(toWindow) };
}
