/**
 * The console's read routes (docs/console-api.md; operator auth through `app.requireAdmin`):
 *  - `GET /v1/admin/overview`                the overview page (overview.ts)
 *  - `GET /v1/admin/agents/detail?id=`       one agent with its kill-switch preview (agent-detail.ts)
 *  - `GET /v1/admin/events`                  live audit events, text/event-stream (events.ts)
 * The lists behind the other pages are the existing operator routes (agents, leases, tasks,
 * audit, secrets, exposure, policy), extended with pagination.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { spiffeIdProblem, describeSpiffeIdProblem } from '../identity/spiffe-id.js';
import { fail } from '../shared/errors.js';
import { AUDIT_RESULTS } from '../audit/events.js';
import { buildOverview, type OverviewDeps } from './overview.js';
import { agentDetail, type AgentDetailDeps } from './agent-detail.js';
import type { AuditStreams } from './events.js';

const detailQuery = z.strictObject({
  id: z.string({ error: 'send id=<SPIFFE ID of the agent>, e.g. id=spiffe://example.org/ns/prod/sa/agent' }).min(1).max(2048),
});

const eventsQuery = z.strictObject({
  actor: z.string().min(1).max(2048).optional(),
  task: z.string().regex(/^[\x21-\x7e]{1,256}$/, 'send a task id such as task_3q2Jd… (printable ASCII, no spaces)').optional(),
  kind: z.string().regex(/^[a-z][a-z0-9_.]{0,127}$/, 'send an event kind or its prefix, such as "lease." or "auth.login"').optional(),
  result: z.enum(AUDIT_RESULTS, { error: `send one of ${AUDIT_RESULTS.join(', ')}` }).optional(),
});

/** `Last-Event-ID` (WHATWG HTML §9.2.4): the seq of the last event the client received. */
function lastEventIdOf(header: string | string[] | undefined): number | undefined {
  if (header === undefined || header === '') return undefined;
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || !/^[0-9]{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw fail('TESSERA_REQUEST_INVALID', 'Last-Event-ID: send the id of the last event received (a whole number, the event\'s seq), or omit the header', { field: 'last-event-id' });
  }
  return Number(v);
}

export function registerConsoleReadRoutes(app: FastifyInstance, deps: { overview: OverviewDeps; detail: AgentDetailDeps; streams: AuditStreams }): void {
  app.get('/v1/admin/overview', { preHandler: app.requireAdmin }, async () => buildOverview(deps.overview));

  app.get('/v1/admin/agents/detail', { preHandler: app.requireAdmin }, async (req) => {
    const { id } = parseInput(detailQuery, req.query, 'query string');
    const problem = spiffeIdProblem(id);
    if (problem) throw fail('TESSERA_REQUEST_INVALID', `id: send the agent's SPIFFE ID such as spiffe://example.org/ns/prod/sa/agent: ${describeSpiffeIdProblem(problem)}`, { field: 'id' });
    return agentDetail(deps.detail, id);
  });

  app.get('/v1/admin/events', { preHandler: app.requireAdmin }, async (req, reply) => {
    const q = parseInput(eventsQuery, req.query, 'query string');
    const lastEventId = lastEventIdOf(req.headers['last-event-id']);
    // The stream ends when the token or session that opened it does (A11-2); per-operator bound (A11-3).
    const holder = { operator: req.admin?.tokenId ?? 'unknown', stillValid: () => app.adminStillValid(req) };
    await deps.streams.open(req, reply, { ...(q.actor ? { actor: q.actor } : {}), ...(q.task ? { task: q.task } : {}), ...(q.kind ? { kind: q.kind } : {}), ...(q.result ? { result: q.result } : {}) }, lastEventId, holder);
  });

  // Streams end before the server waits for its connections to close.
  app.addHook('preClose', async () => {
    await deps.streams.close();
  });
}
