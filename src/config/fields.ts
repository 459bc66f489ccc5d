import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseSecretPath } from '../secrets/path.js';
import { describeDuration } from '../shared/duration.js';

/** A duration (seconds, or "30s", "500ms", "5m") bounded to [min, max] milliseconds; parsed to ms. */
export const durationBetween = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === null || ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `expected a duration between ${describeDuration(min)} and ${describeDuration(max)} such as "10s" or "500ms", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

/** A kv secret path, validated by the same rules as the secrets engine (docs/secrets.md). */
export const secretPathField = z.string().superRefine((p, ctx) => {
  try {
    parseSecretPath(p);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

/** A token-bucket rate (src/shared/rate-limit.ts): `per_second` sustained, `burst` at once. */
export const rateField = (defaults: { per_second: number; burst: number }) =>
  z.object({
    per_second: z.number().positive().max(1_000_000).default(defaults.per_second),
    burst: z.number().int().min(1).max(1_000_000).default(defaults.burst),
  }).strict().prefault({});
