import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import type { AuditLog } from './log.js';

const tailQuery = z.object({
  after_seq: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  actor: z.string().min(1).max(2048).optional(),
  txn: z.string().min(1).max(256).optional(),
  kind: z.string().regex(/^[a-z][a-z0-9_.]*$/, 'expected an event kind such as "token.issued"').max(128).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
}).strict();

const hmacBody = z.object({ value: z.string().min(1).max(4096) }).strict();

/**
 * Operator audit endpoints. `GET /v1/admin/audit` pages forward by seq: the CLI's `tail -f`
 * polls with `after_seq=<next_seq>`. `POST /v1/admin/audit/verify` walks the whole chain.
 * `POST /v1/admin/audit/hmac` computes the HMAC of an identifier so an operator can search
 * events for it without the identifier ever being stored in clear.
 */
export function registerAuditRoutes(app: FastifyInstance, deps: { audit: Pick<AuditLog, 'tail' | 'verify' | 'hmac'> }): void {
  const { audit } = deps;

  app.get('/v1/admin/audit', { preHandler: app.requireAdmin }, async (req) => {
    const q = parseInput(tailQuery, req.query, 'query string');
    const r = await audit.tail({ afterSeq: q.after_seq, actor: q.actor, txn: q.txn, kind: q.kind, limit: q.limit });
    return { events: r.events, next_seq: r.nextSeq };
  });

  app.post('/v1/admin/audit/verify', { preHandler: app.requireAdmin }, async () => {
    const r = await audit.verify();
    return { ok: r.ok, checked: r.checked, checkpoints: r.checkpoints, problems: r.problems };
  });

  app.post('/v1/admin/audit/hmac', { preHandler: app.requireAdmin }, async (req) => {
    const b = parseInput(hmacBody, req.body);
    return { hmac: audit.hmac(b.value) };
  });
}
