/**
 * The operator's view of the agents inventory (`GET /v1/admin/agents`, the console's agents page):
 * a keyset-paged list, newest sighting first, with each agent's live credentials and whether a
 * revocation refuses it. Reads the `agents` table (src/identity/agent-registry.ts) and the
 * exposure windows and leases (src/exposure/store.ts); times are epoch ms in, RFC 3339 out.
 */
import type { SqlExecutor, SqlValue } from '../store/port.js';
import type { RevocationChecker } from '../shared/revocation.js';
import { liveCountsByAgent } from '../exposure/store.js';

export interface AgentRow {
  spiffe_id: string;
  attestor: string;
  attributes: string;
  first_seen: number;
  last_seen: number;
  logins: number;
  [k: string]: unknown;
}

const AGENT_COLUMNS = 'spiffe_id, attestor, attributes, first_seen, last_seen, logins';

export interface AgentListQuery {
  /** Case-insensitive substring of the SPIFFE ID. */
  readonly q?: string;
  readonly limit: number;
  /** The last agent of the previous page (its `last_seen`, `spiffe_id`). */
  readonly after?: { readonly lastSeen: number; readonly spiffeId: string };
}

/** `LIKE` pattern matching `text` anywhere, with `\`, `%` and `_` taken literally (ESCAPE '\'). */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * One page of agents, newest `last_seen` first (ties: SPIFFE ID, descending), at most `limit`
 * rows plus one (the caller tells from it whether another page follows). Served by the
 * `agents_last_seen` index (migration 339).
 */
export async function listAgentRows(db: SqlExecutor, q: AgentListQuery): Promise<AgentRow[]> {
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (q.q !== undefined) {
    where.push(`LOWER(spiffe_id) LIKE ? ESCAPE '\\'`);
    params.push(containsPattern(q.q.toLowerCase()));
  }
  if (q.after) {
    where.push('(last_seen < ? OR (last_seen = ? AND spiffe_id < ?))');
    params.push(q.after.lastSeen, q.after.lastSeen, q.after.spiffeId);
  }
  params.push(q.limit + 1);
  return db.all<AgentRow>(`SELECT ${AGENT_COLUMNS} FROM agents ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY last_seen DESC, spiffe_id DESC LIMIT ?`, params);
}

export async function getAgentRow(db: SqlExecutor, spiffeId: string): Promise<AgentRow | undefined> {
  return db.get<AgentRow>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE spiffe_id = ?`, [spiffeId]);
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The JSON of one agent: the inventory fields, plus `live_credentials` and `revoked` when known. */
export function agentView(r: AgentRow, extra?: { liveCredentials: number; revoked: boolean }): Record<string, unknown> {
  let attributes: Record<string, string>;
  try {
    attributes = JSON.parse(r.attributes) as Record<string, string>;
  } catch {
    attributes = {};
  }
  return {
    spiffe_id: r.spiffe_id,
    attestor: r.attestor,
    attributes,
    first_seen: iso(Number(r.first_seen)),
    last_seen: iso(Number(r.last_seen)),
    logins: Number(r.logins),
    ...(extra ? { live_credentials: extra.liveCredentials, revoked: extra.revoked } : {}),
  };
}

/** A page of agents as JSON, each with its live credentials (one grouped query a source for the page) and revocation state. */
export async function agentPage(db: SqlExecutor, rows: readonly AgentRow[], now: number, revocations: Pick<RevocationChecker, 'isAgentRevoked'>): Promise<Record<string, unknown>[]> {
  const live = await liveCountsByAgent(db, rows.map((r) => r.spiffe_id), now);
  return rows.map((r) => agentView(r, { liveCredentials: live.get(r.spiffe_id) ?? 0, revoked: revocations.isAgentRevoked(r.spiffe_id) }));
}
