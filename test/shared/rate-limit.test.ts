/**
 * Token buckets (src/shared/rate-limit.ts) on a manual clock, and the source key used by
 * per-source limits (IPv4, IPv4-mapped, IPv6 by /64).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBuckets, sourceKey } from '../../src/shared/rate-limit.js';
import { ManualClock } from '../../src/shared/clock.js';

test('a bucket allows its burst, then refuses with the time until the next token', () => {
  const clock = new ManualClock();
  const b = new TokenBuckets({ perSecond: 2, burst: 3 }, clock);
  assert.deepEqual([b.take('a'), b.take('a'), b.take('a')], [{ ok: true }, { ok: true }, { ok: true }]);
  assert.deepEqual(b.take('a'), { ok: false, retryAfterMs: 500 });
  clock.advance(250);
  assert.deepEqual(b.take('a'), { ok: false, retryAfterMs: 250 }, 'a refused request takes nothing');
  clock.advance(250);
  assert.deepEqual(b.take('a'), { ok: true });
  assert.equal(b.take('a').ok, false);
  // Another key has its own bucket.
  assert.equal(b.take('b').ok, true);
  // A long quiet period refills to the burst, never beyond.
  clock.advance(3_600_000);
  assert.equal([1, 2, 3, 4].map(() => b.take('a').ok).filter(Boolean).length, 3);
});

test('fractional rates and a clock that steps back', () => {
  const clock = new ManualClock();
  const b = new TokenBuckets({ perSecond: 0.1, burst: 1 }, clock);
  assert.equal(b.take('k').ok, true);
  assert.deepEqual(b.take('k'), { ok: false, retryAfterMs: 10_000 });
  clock.advance(-60_000); // NTP step: no refill, no negative level
  assert.deepEqual(b.take('k'), { ok: false, retryAfterMs: 10_000 });
  clock.advance(70_000);
  assert.equal(b.take('k').ok, true);
});

test('invalid rates are refused at construction', () => {
  const clock = new ManualClock();
  assert.throws(() => new TokenBuckets({ perSecond: 0, burst: 1 }, clock), RangeError);
  assert.throws(() => new TokenBuckets({ perSecond: 1, burst: 0 }, clock), RangeError);
  assert.throws(() => new TokenBuckets({ perSecond: Number.NaN, burst: 1 }, clock), RangeError);
});

test('memory is bounded: refilled buckets are swept first, then the least recently used', () => {
  const clock = new ManualClock();
  const b = new TokenBuckets({ perSecond: 1, burst: 2 }, clock, 3);
  b.take('drained');
  b.take('drained');
  b.take('x');
  b.take('y');
  assert.equal(b.size, 3);
  clock.advance(2000); // x and y refill to the burst (as if absent); drained too
  b.take('drained');
  b.take('drained'); // drained again: most recently used, level 0
  b.take('z'); // full: sweep drops x and y (refilled), keeps drained
  assert.equal(b.size, 2);
  assert.equal(b.take('drained').ok, false, 'the sweep did not reset a draining bucket');
  // Without refilled buckets to sweep, the least recently used goes.
  const c = new TokenBuckets({ perSecond: 0.001, burst: 1 }, clock, 2);
  c.take('a');
  c.take('b');
  c.take('c');
  assert.equal(c.size, 2);
  assert.equal(c.take('c').ok, false);
  assert.equal(c.take('a').ok, true, 'a was evicted (least recently used) and starts afresh');
});

test('sourceKey: IPv4 as is, IPv4-mapped as IPv4, IPv6 by /64 in canonical form', () => {
  assert.equal(sourceKey('203.0.113.9'), '203.0.113.9');
  assert.equal(sourceKey('::ffff:203.0.113.9'), '203.0.113.9');
  assert.equal(sourceKey('::FFFF:203.0.113.9'), '203.0.113.9');
  assert.equal(sourceKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:0db8:0001:0002:ffff::1'), '2001:db8:1:2::/64', 'same /64, other spelling');
  assert.equal(sourceKey('2001:db8:1:2::'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(sourceKey('::ffff:1.2.3.4.5'), '::ffff:1.2.3.4.5', 'unparseable input is its own key');
  assert.equal(sourceKey('1::2::3'), '1::2::3');
});

test('a take of several tokens (a JSON-RPC batch) takes all or none, and says how long until all are there', () => {
  const clock = new ManualClock();
  const b = new TokenBuckets({ perSecond: 2, burst: 5 }, clock);
  assert.deepEqual(b.take('a', 4), { ok: true });
  assert.deepEqual(b.take('a', 3), { ok: false, retryAfterMs: 1000 }, 'one left, two more needed at 2/s');
  assert.deepEqual(b.take('a', 1), { ok: true }, 'the refused take took nothing');
  // More than the burst can never be had at once: the wait is until the bucket is full.
  assert.deepEqual(b.take('a', 9), { ok: false, retryAfterMs: 2500 });
  clock.advance(2500);
  assert.deepEqual(b.take('a', 5), { ok: true });
});
