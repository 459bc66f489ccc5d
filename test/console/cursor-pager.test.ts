/** Cursor paging of the leases list (console/src/lib/cursor-pager.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIRST_PAGE, currentCursor, nextPage, pageNumber, prevPage } from '../../console/src/lib/cursor-pager.js';

test('forward and back through opaque cursors', () => {
  let s = FIRST_PAGE;
  assert.equal(currentCursor(s), undefined);
  assert.equal(pageNumber(s), 1);
  s = nextPage(s, 'c2');
  s = nextPage(s, 'c3');
  assert.equal(currentCursor(s), 'c3');
  assert.equal(pageNumber(s), 3);
  assert.equal(nextPage(s, undefined), s, 'no next cursor: stays');
  assert.equal(nextPage(s, null), s);
  s = prevPage(s);
  assert.equal(currentCursor(s), 'c2');
  s = prevPage(prevPage(s));
  assert.equal(currentCursor(s), undefined);
  assert.equal(pageNumber(s), 1);
  assert.equal(FIRST_PAGE.stack.length, 1, 'immutable');
});
