/**
 * `GET /v1/admin/agents/detail?id=<SPIFFE ID>` (docs/console-api.md): everything the console's
 * agent page shows — the inventory row, live credentials with their remaining seconds, recent
 * tasks and decisions, the agent's revocations, and `kill_preview`: exactly what
 * `POST /v1/admin/revocations {kind:'agent'}` would act on now (RevocationService.preview, the
 * kill switch's own matches). Never a token or a secret: token ids are jti HMACs.
 */
import type { SqlExecutor } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import { fail } from '../shared/errors.js';
import { NEXT_STEPS } from '../shared/next-steps.js';
import type { AuditTailQuery, AuditTailResult } from '../audit/query.js';
import type { Revocation, RevocationService } from '../revocations/service.js';
import { listTasks, type TaskViewDeps } from '../tasks/tree.js';
import { liveCredentialsOf } from '../exposure/store.js';
import { agentView, getAgentRow } from '../identity/agents-view.js';
import { liveCountsByAgent } from '../exposure/store.js';

/** Rows of each list on the page (credentials of each source, tasks, decisions, revocations). */
export const DETAIL_LIMIT = 50;

export interface AgentDetailDeps {
  readonly store: SqlExecutor;
  readonly clock: Clock;
  readonly revocations: Pick<RevocationService, 'preview' | 'list' | 'isAgentRevoked'>;
  readonly audit: { tail(q: AuditTailQuery): Promise<AuditTailResult> };
  readonly tasks: TaskViewDeps;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function revocationView(r: Revocation, now: number): Record<string, unknown> {
  return {
    id: r.id, kind: r.kind, target: r.target, reason: r.reason, created_at: iso(r.createdAt), expires_at: iso(r.expiresAt), lifted_at: iso(r.liftedAt),
    active: r.liftedAt === null && (r.expiresAt === null || r.expiresAt > now),
  };
}

/** The detail document; TESSERA_AGENT_NOT_FOUND when the agent never logged in here. */
export async function agentDetail(deps: AgentDetailDeps, spiffeId: string): Promise<Record<string, unknown>> {
  const row = await getAgentRow(deps.store, spiffeId);
  if (!row) {
    const step = NEXT_STEPS.listAgents();
    throw fail('TESSERA_AGENT_NOT_FOUND', `no agent ${spiffeId} has logged in here; find agents with ${step.route}?q=<part of the SPIFFE ID>`, { next_step: step });
  }
  const now = deps.clock.now();
  const [live, credentials, tasks, decisions, revocations, killPreview] = await Promise.all([
    liveCountsByAgent(deps.store, [spiffeId], now),
    liveCredentialsOf(deps.store, spiffeId, now, DETAIL_LIMIT),
    listTasks(deps.tasks, { actor: spiffeId, limit: DETAIL_LIMIT }),
    // Newest first: this agent's allow/deny events (audit_events_actor index).
    deps.audit.tail({ actor: spiffeId, result: ['allow', 'deny'], beforeSeq: Number.MAX_SAFE_INTEGER, limit: DETAIL_LIMIT }),
    deps.revocations.list({ kind: 'agent', target: spiffeId, limit: DETAIL_LIMIT }),
    deps.revocations.preview('agent', spiffeId),
  ]);
  return {
    agent: agentView(row, { liveCredentials: live.get(spiffeId) ?? 0, revoked: deps.revocations.isAgentRevoked(spiffeId) }),
    credentials: credentials.map((c) => ({ kind: c.kind, id: c.id, expires_at: iso(c.expiresAt), ttl_s: Math.max(0, Math.floor((c.expiresAt - now) / 1000)), detail: c.detail })),
    tasks: tasks.tasks,
    decisions: decisions.events,
    revocations: revocations.map((r) => revocationView(r, now)),
    kill_preview: killPreview,
  };
}
