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

/** A lone UTF-16 surrogate: JSON's `\ud800` escape makes one, and no encoder downstream (Cedar, UTF-8) can represent it. */
const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** ES2024 String.prototype.isWellFormed (native in Node 20), the same test as UNPAIRED_SURROGATE. */
const nativeWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;

/** True when `s` is well-formed UTF-16 (no unpaired surrogate). */
export function isWellFormedText(s: string): boolean {
  return nativeWellFormed ? nativeWellFormed.call(s) : !UNPAIRED_SURROGATE.test(s);
}

/** True when every string and object key in `value` is well-formed UTF-16. Iterative. */
export function jsonTextWellFormed(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (!isWellFormedText(v)) return false;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    } else if (v !== null && typeof v === 'object') {
      for (const k of Object.keys(v)) {
        if (!isWellFormedText(k)) return false;
        stack.push((v as Record<string, unknown>)[k]);
      }
    }
  }
  return true;
}

/** Throws TESSERA_REQUEST_TOO_DEEP (400) when `value` is nested deeper than `limit` (default MAX_JSON_DEPTH). */
export function checkJsonDepth(value: unknown, what: string, limit = MAX_JSON_DEPTH): void {
  if (jsonDepth(value, limit) > limit) {
    throw new TesseraError('TESSERA_REQUEST_TOO_DEEP', `${what} is nested deeper than ${limit} levels; flatten the structure`, { limit });
  }
}

/**
 * The edge check for a parsed JSON input: TESSERA_REQUEST_TOO_DEEP past `limit` levels, then
 * TESSERA_REQUEST_INVALID when a string or key holds an unpaired surrogate (`"\ud800"`).
 */
export function checkJsonInput(value: unknown, what: string, limit = MAX_JSON_DEPTH): void {
  checkJsonDepth(value, what, limit);
  if (!jsonTextWellFormed(value)) {
    throw new TesseraError('TESSERA_REQUEST_INVALID', `${what} contains a string with an unpaired UTF-16 surrogate (e.g. "\\ud800"), which is not text; send valid Unicode`, { field: what });
  }
}
