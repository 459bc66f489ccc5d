/**
 * `GET /v1/admin/exposure` (admin token; docs/exposure.md, docs/api.md): exposure windows by
 * agent, task (root), user or kind since a time, and the credentials live now. Each bad query
 * value has its own code (TESSERA_EXPOSURE_…).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../server/validate.js';
import { fail } from '../shared/errors.js';
import type { Clock } from '../shared/clock.js';
import { parseDuration } from '../config/duration.js';
import { EXPOSURE_GROUPINGS, EXPOSURE_KINDS } from './kinds.js';
import type { ExposureService } from './service.js';

/** How far back a report may look. */
export const MAX_LOOKBACK_MS = 366 * 86_400_000;
/** Default `since`: the last 24 hours. */
export const DEFAULT_SINCE_MS = 86_400_000;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const DURATION = /^\d+(\.\d+)?(ms|s|m|h|d)$/;

const queryShape = z.strictObject({
  by: z.string().max(64).optional(),
  since: z.string().max(64).optional(),
  kind: z.string().max(64).optional(),
});
const bySchema = z.enum(EXPOSURE_GROUPINGS);
const kindSchema = z.enum(EXPOSURE_KINDS);

/**
 * `since`: an RFC 3339 time, or a duration back from `now` (`90s`, `30m`, `24h`, `7d`). Epoch ms.
 * Throws TESSERA_EXPOSURE_SINCE_INVALID for anything else, a future time, or beyond 366 days back.
 */
export function parseSince(v: string | undefined, now: number): number {
  if (v === undefined) return now - DEFAULT_SINCE_MS;
  let at: number;
  if (RFC3339.test(v)) {
    at = Date.parse(v.replace(' ', 'T'));
    if (!Number.isFinite(at)) throw fail('TESSERA_EXPOSURE_SINCE_INVALID', `since: "${v}" is not a valid RFC 3339 time`, { field: 'since' });
    if (at > now) throw fail('TESSERA_EXPOSURE_SINCE_INVALID', 'since: the time is in the future; give a past time or a duration such as 24h', { field: 'since' });
  } else if (DURATION.test(v)) {
    const ms = parseDuration(v);
    if (ms === null || ms <= 0) throw fail('TESSERA_EXPOSURE_SINCE_INVALID', `since: "${v}" is not a positive duration`, { field: 'since' });
    at = now - Math.min(ms, MAX_LOOKBACK_MS + 1);
  } else {
    throw fail('TESSERA_EXPOSURE_SINCE_INVALID', 'since: expected an RFC 3339 time (2026-01-01T00:00:00Z) or a duration back from now (90s, 30m, 24h, 7d)', { field: 'since' });
  }
  if (now - at > MAX_LOOKBACK_MS) throw fail('TESSERA_EXPOSURE_SINCE_INVALID', 'since: at most 366 days back', { field: 'since' });
  return at;
}

export function registerExposureRoutes(app: FastifyInstance, deps: { exposure: ExposureService; clock: Clock }): void {
  app.get('/v1/admin/exposure', { preHandler: app.requireAdmin }, async (req) => {
    // A repeated parameter arrives as an array: refused with the unknown ones.
    const q = parseInput(queryShape, req.query, 'query', 'TESSERA_EXPOSURE_QUERY_INVALID');
    const by = parseInput(bySchema, q.by ?? 'kind', 'by', 'TESSERA_EXPOSURE_BY_INVALID');
    const kind = q.kind === undefined ? undefined : parseInput(kindSchema, q.kind, 'kind', 'TESSERA_EXPOSURE_KIND_INVALID');
    const since = parseSince(q.since, deps.clock.now());
    return deps.exposure.report({ by, since, ...(kind ? { kind } : {}) });
  });
}
