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
