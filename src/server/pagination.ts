import { z } from 'zod';
import { TesseraError } from '../shared/errors.js';

/**
 * Keyset pagination for operator lists (docs/api.md "Pagination", ADR 0239): `limit` and an
 * opaque `cursor` in, `next_cursor` out when more rows exist. A cursor is the sort key of the
 * last row of a page (base64url of a JSON array), so the next page is one index range scan
 * (`WHERE (k1, k2) > (?, ?)`-style), never an OFFSET. It carries no authority: a forged cursor
 * only moves the page, and its values are checked like any other input.
 */

/** `limit` of a list: a whole number from 1 to `max`, `def` when absent. Strings only (query strings). */
export function pageLimit(max: number, def: number) {
  const say = `send a whole number from 1 to ${max} (default ${def})`;
  return z
    .string()
    .regex(/^[0-9]{1,9}$/, say)
    .transform(Number)
    .refine((n) => n >= 1 && n <= max, say)
    .optional()
    .transform((n) => n ?? def);
}

/** The raw `cursor` parameter: base64url text of bounded length (checked again when decoded). */
export const cursorParam = z.string().regex(/^[A-Za-z0-9_-]{1,2048}$/, 'send the next_cursor of the previous page unchanged, or omit cursor for the first page');

/** A page's cursor for the sort key of its last row. */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

const badCursor = (list: string): TesseraError =>
  new TesseraError('TESSERA_REQUEST_INVALID', `cursor: not a cursor of ${list}; send the next_cursor of the previous page unchanged, or omit cursor for the first page`, { field: 'cursor' });

/**
 * Decodes a cursor made by encodeCursor for a key of the given kinds (`n`: a safe non-negative
 * integer, `s`: a string of at most 2048 characters). Throws TESSERA_REQUEST_INVALID
 * (`details.field = cursor`) for anything else.
 */
export function decodeCursor<K extends readonly ('n' | 's')[]>(raw: string, kinds: K, list: string): { [I in keyof K]: K[I] extends 'n' ? number : string } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw badCursor(list);
  }
  if (!Array.isArray(v) || v.length !== kinds.length) throw badCursor(list);
  kinds.forEach((k, i) => {
    const x: unknown = v[i];
    const ok = k === 'n' ? Number.isSafeInteger(x) && (x as number) >= 0 : typeof x === 'string' && x.length > 0 && x.length <= 2048;
    if (!ok) throw badCursor(list);
  });
  return v as { [I in keyof K]: K[I] extends 'n' ? number : string };
}
