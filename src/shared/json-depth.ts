import { TesseraError } from './errors.js';

/**
 * Nesting depth of JSON inputs. Every structure an agent or operator sends is bounded at the
 * edge to MAX_JSON_DEPTH levels, so no walker further in (canonical JSON, schema validation,
 * policy context, the scrubber, JSON.stringify) can overflow the stack on it.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Depth of a value: a scalar is 0, `[]` and `{}` are 1, `[[]]` is 2. Computed iteratively (an
 * explicit stack, so any depth is safe) and stops early: returns `limit + 1` as soon as the value
 * is known to be deeper than `limit`. Only arrays and plain object values are descended into.
 */
export function jsonDepth(value: unknown, limit = Number.MAX_SAFE_INTEGER): number {
  if (value === null || typeof value !== 'object') return 0;
  let max = 0;
  const stack: { v: object; d: number }[] = [{ v: value, d: 1 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (d > max) max = d;
    if (max > limit) return limit + 1;
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const c of children) if (c !== null && typeof c === 'object') stack.push({ v: c, d: d + 1 });
  }
  return max;
}

/** Throws TESSERA_REQUEST_TOO_DEEP (400) when `value` is nested deeper than `limit` (default MAX_JSON_DEPTH). */
export function checkJsonDepth(value: unknown, what: string, limit = MAX_JSON_DEPTH): void {
  if (jsonDepth(value, limit) > limit) {
    throw new TesseraError('TESSERA_REQUEST_TOO_DEEP', `${what} is nested deeper than ${limit} levels; flatten the structure`, { limit });
  }
}
