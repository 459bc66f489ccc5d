/**
 * Identifiers (task ids, token jti) come from a 4 KiB pool of CSPRNG bytes (src/shared/crypto.ts):
 * every byte is handed out once, across refills, and the sizes are what the callers ask for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomId, randomIdBytes } from '../../src/shared/crypto.js';

test('ids from the pool are distinct, the asked length, across several refills', () => {
  const seen = new Set<string>();
  // 16 bytes each: 2,000 ids use about 8 refills of the 4 KiB pool; odd sizes cross its end.
  for (let i = 0; i < 2000; i++) {
    const id = randomIdBytes(16);
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(!seen.has(id), 'an identifier came out twice');
    seen.add(id);
    const odd = randomIdBytes(1 + (i % 64));
    assert.equal(Buffer.from(odd, 'base64url').length, 1 + (i % 64));
  }
  const task = randomId('task_');
  assert.match(task, /^task_[A-Za-z0-9_-]{22}$/);
});

test('the pool hands out fresh bytes, not a repeating block', () => {
  // 4096 bytes is the pool; two consecutive pool-sized reads must differ (a refill happened).
  const a = Array.from({ length: 64 }, () => randomIdBytes(64)).join('');
  const b = Array.from({ length: 64 }, () => randomIdBytes(64)).join('');
  assert.notEqual(a, b);
  // Byte values spread over the whole range (not all zero, as an unfilled pool would be).
  const bytes = Buffer.from(a, 'base64url');
  assert.ok(new Set(bytes).size > 200, 'the pool looks unfilled');
});

test('sizes outside 1–64 are refused', () => {
  for (const n of [0, -1, 65, 1.5, Number.NaN]) assert.throws(() => randomIdBytes(n), RangeError, String(n));
});
