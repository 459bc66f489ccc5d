/**
 * Cursor paging for lists that answer `next_cursor` (console read API: `limit` + opaque
 * `cursor`): keeps the cursors of the pages seen so "previous" works without offsets.
 * Pure and immutable (test/console/cursor-pager.test.ts).
 */
export interface PagerState {
  /** Cursor of each page visited so far; `undefined` is the first page. */
  readonly stack: readonly (string | undefined)[];
}

export const FIRST_PAGE: PagerState = { stack: [undefined] };

export function currentCursor(s: PagerState): string | undefined {
  return s.stack[s.stack.length - 1];
}

/** 1-based page number. */
export function pageNumber(s: PagerState): number {
  return s.stack.length;
}

export function nextPage(s: PagerState, nextCursor: string | undefined | null): PagerState {
  return nextCursor ? { stack: [...s.stack, nextCursor] } : s;
}

export function prevPage(s: PagerState): PagerState {
  return s.stack.length > 1 ? { stack: s.stack.slice(0, -1) } : s;
}
