import type { z } from 'zod';
import { TesseraError, type ErrorCode } from '../shared/errors.js';

/** Parses an input at the edge; the error names the offending field and what was expected. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what = 'request body', code: ErrorCode = 'TESSERA_REQUEST_INVALID'): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length ? issue.path.map(String).join('.') : what;
  const problems = result.error.issues.slice(0, 5).map((i) => `${i.path.length ? i.path.map(String).join('.') : what}: ${i.message}`);
  throw new TesseraError(code, `invalid ${what}: ${problems.join('; ')}`, { field, issues: problems });
}

/**
 * RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
 * TESSERA_REQUEST_INVALID naming the parameter (`details.field`): the one refusal of a repeated
 * parameter, for form bodies (src/server/app.ts) and query strings alike.
 */
export function repeatedParameter(name: string): TesseraError {
  const field = name.slice(0, 64);
  return new TesseraError('TESSERA_REQUEST_INVALID', `${field}: is given more than once; send each parameter once (RFC 6749 §3.1)`, { field });
}

/**
 * Throws repeatedParameter for the first parameter of `raw` (a parsed query string: a repeated
 * key is an array) given more than once, except the `multi` ones (RFC 8707 `resource`).
 */
export function refuseRepeatedParameters(raw: unknown, multi: readonly string[] = []): void {
  if (raw === null || typeof raw !== 'object') return;
  for (const [k, v] of Object.entries(raw)) {
    if (Array.isArray(v) && !multi.includes(k)) throw repeatedParameter(k);
  }
}
