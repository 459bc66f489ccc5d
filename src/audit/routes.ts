import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { pageLimit } from '../server/pagination.js';
import { AUDIT_RESULTS } from './events.js';
import type { AuditLog } from './log.js';
import type { AuditJobs } from './jobs.js';
import type { Checkpoint } from './chain.js';
import type { WitnessReport } from './witness.js';

const TXN = z.string().min(1).max(256);
const tailQuery = z.object({
  after_seq: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** Newest first, older than this seq (the console's audit page); exclusive with after_seq. */
  before_seq: z.string().regex(/^[1-9][0-9]{0,15}$/, 'send a positive whole number: the next_before_seq of the previous page, or head_seq + 1 from GET /v1/admin/overview for the newest page').transform(Number).refine((n) => Number.isSafeInteger(n), 'at most 9007199254740991').optional(),
  actor: z.string().min(1).max(2048).optional(),
  txn: TXN.optional(),
  /** The console's name for `txn`: the task and its subtree. */
  task: TXN.optional(),
  kind: z.string().regex(/^[a-z][a-z0-9_.]*$/, 'expected an event kind such as "token.issued"').max(128).optional(),
  result: z.enum(AUDIT_RESULTS, { error: `send one of ${AUDIT_RESULTS.join(', ')}` }).optional(),
  limit: pageLimit(1000, 100),
}).strict()
  .refine((q) => !(q.after_seq !== undefined && q.before_seq !== undefined), { message: 'send after_seq (oldest first, forward) or before_seq (newest first, backward), not both', path: ['before_seq'] })
  .refine((q) => !(q.txn !== undefined && q.task !== undefined && q.txn !== q.task), { message: 'task and txn name the same filter; send one of them', path: ['task'] });

const hmacBody = z.object({ value: z.string().min(1).max(4096) }).strict();

const verifyBody = z.object({
  /** Re-read everything instead of resuming after the signed verification position. */
  full: z.boolean().default(false),
  /** Also verify the archived segments in audit.retention.archive_dir (implies full). */
  archives: z.boolean().default(false),
  /** Answer when the job has finished (the work still runs off the request path). */
  wait: z.boolean().default(false),
}).strict();

const archiveBody = z.object({ wait: z.boolean().default(false) }).strict();

const jobParams = z.object({ id: z.string().regex(/^ajob_[A-Za-z0-9_-]{16}$/, 'expected a job id such as "ajob_…" (from POST /v1/admin/audit/verify)') }).strict();

/** Heads per witness request: the CLI streams a witness file in requests of this size. */
export const WITNESS_HEADS_PER_REQUEST = 128;

const witnessBody = z.object({
  heads: z.array(z.object({
    seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    ts: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    hash: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits'),
    key_id: z.string().min(1).max(64),
    signature: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'expected a base64url signature'),
  }).strict()).min(1).max(WITNESS_HEADS_PER_REQUEST),
}).strict();

/**
 * Operator audit endpoints. `GET /v1/admin/audit` pages forward by seq: the CLI's `tail -f`
 * polls with `after_seq=<next_seq>`. Verification and archiving run as background jobs
 * (jobs.ts): `POST …/verify` and `POST …/archive` answer 202 with the job at once, and
 * `GET …/jobs/:id` reports progress and the result. `POST …/witness` checks a batch of signed
 * heads from a witness (an external sink's output) against the store. `POST …/hmac` computes the
 * HMAC of an identifier so an operator can search events for it without the identifier ever
 * being stored in clear.
 */
export function registerAuditRoutes(app: FastifyInstance, deps: { audit: Pick<AuditLog, 'tail' | 'hmac'>; jobs: AuditJobs; checkWitness: (heads: readonly Checkpoint[]) => Promise<WitnessReport> }): void {
  const { audit, jobs } = deps;

  app.get('/v1/admin/audit', { preHandler: app.requireAdmin }, async (req) => {
    const q = parseInput(tailQuery, req.query, 'query string');
    const txn = q.task ?? q.txn;
    const r = await audit.tail({
      ...(q.before_seq !== undefined ? { beforeSeq: q.before_seq } : { afterSeq: q.after_seq }),
      actor: q.actor, txn, kind: q.kind, result: q.result, limit: q.limit,
    });
    return { events: r.events, next_seq: r.nextSeq, ...(q.before_seq !== undefined ? { next_before_seq: r.nextBeforeSeq ?? null } : {}) };
  });

  app.post('/v1/admin/audit/verify', { config: { readOnly: true }, preHandler: app.requireAdmin }, async (req, reply) => {
    const b = parseInput(verifyBody, req.body ?? {});
    const { job, created } = await jobs.start('verify', { full: b.full || b.archives, ...(b.archives ? { archives: true } : {}) });
    if (b.wait) return reply.status(200).send({ job: await jobs.wait(job.id), created });
    return reply.status(202).header('location', `/v1/admin/audit/jobs/${job.id}`).send({ job, created });
  });

  app.post('/v1/admin/audit/archive', { preHandler: app.requireAdmin }, async (req, reply) => {
    const b = parseInput(archiveBody, req.body ?? {});
    const { job, created } = await jobs.start('archive');
    if (b.wait) return reply.status(200).send({ job: await jobs.wait(job.id), created });
    return reply.status(202).header('location', `/v1/admin/audit/jobs/${job.id}`).send({ job, created });
  });

  app.get('/v1/admin/audit/jobs/:id', { preHandler: app.requireAdmin }, async (req) => {
    const p = parseInput(jobParams, req.params, 'path');
    return { job: await jobs.get(p.id) };
  });

  app.post('/v1/admin/audit/witness', { config: { readOnly: true }, preHandler: app.requireAdmin }, async (req) => {
    const b = parseInput(witnessBody, req.body);
    return deps.checkWitness(b.heads.map((h) => ({ seq: h.seq, ts: h.ts, hash: h.hash, keyId: h.key_id, signature: h.signature })));
  });

  app.post('/v1/admin/audit/hmac', { config: { readOnly: true }, preHandler: app.requireAdmin }, async (req) => {
    const b = parseInput(hmacBody, req.body);
    return { hmac: audit.hmac(b.value) };
  });
}
