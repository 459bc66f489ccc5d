/**
 * AuthCache (src/shared/auth-cache.ts): auth-epoch invalidation, expiry, LRU order, and the
 * per-owner quota that keeps one principal from evicting everyone else's entries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthCache } from '../../src/shared/auth-cache.js';
import { createAuthEpoch } from '../../src/shared/auth-epoch.js';
import { ManualClock } from '../../src/shared/clock.js';

function cache(capacity = 10, perOwner = 3) {
  const epoch = createAuthEpoch();
  const clock = new ManualClock();
  return { epoch, clock, c: new AuthCache<string>({ capacity, perOwner, epoch, clock }) };
}

test('an epoch bump ends every entry at once', () => {
  const { epoch, c } = cache();
  c.set('a', 'A', { owner: 'x', epoch: c.epoch });
  c.set('b', 'B', { owner: 'y', epoch: c.epoch });
  assert.equal(c.get('a'), 'A');
  epoch.bump('keys');
  assert.equal(c.get('a'), undefined);
  assert.equal(c.get('b'), undefined);
  assert.equal(c.size, 0, 'stale entries are dropped, not kept in memory');
});

test('an answer computed before a bump is never stored (the epoch is read before computing)', () => {
  const { epoch, c } = cache();
  const before = c.epoch;
  epoch.bump('policy'); // e.g. the policy set changes while a verification is in flight
  c.set('a', 'computed under the old state', { owner: 'x', epoch: before });
  assert.equal(c.get('a'), undefined);
  assert.equal(c.size, 0);
  c.set('a', 'fresh', { owner: 'x', epoch: c.epoch });
  assert.equal(c.get('a'), 'fresh');
});

test('entries are not served at or after `until`, nor stored when already expired', () => {
  const { clock, c } = cache();
  c.set('a', 'A', { owner: 'x', epoch: c.epoch, until: clock.now() + 1000 });
  clock.advance(999);
  assert.equal(c.get('a'), 'A');
  clock.advance(1);
  assert.equal(c.get('a'), undefined);
  c.set('b', 'B', { owner: 'x', epoch: c.epoch, until: clock.now() });
  assert.equal(c.size, 0);
});

test('one owner at its quota evicts only its own least recently used entry', () => {
  const { c } = cache(10, 3);
  c.set('victim', 'V', { owner: 'victim', epoch: c.epoch });
  for (let i = 0; i < 50; i++) c.set(`flood-${i}`, 'F', { owner: 'attacker', epoch: c.epoch });
  assert.equal(c.ownerSize('attacker'), 3);
  assert.equal(c.get('victim'), 'V', "another owner's entry survives the flood");
  assert.deepEqual(['flood-47', 'flood-48', 'flood-49'].map((k) => c.get(k)), ['F', 'F', 'F']);
  assert.equal(c.get('flood-46'), undefined);
  // A hit makes an entry the owner's most recent: the next eviction takes another one.
  c.get('flood-47');
  c.set('flood-50', 'F', { owner: 'attacker', epoch: c.epoch });
  assert.equal(c.get('flood-47'), 'F');
  assert.equal(c.get('flood-48'), undefined);
});

test('the whole is bounded by capacity (global least recently used first)', () => {
  const { c } = cache(4, 4);
  for (const k of ['a', 'b', 'c', 'd']) c.set(k, k, { owner: k, epoch: c.epoch });
  c.get('a');
  c.set('e', 'e', { owner: 'e', epoch: c.epoch });
  assert.equal(c.size, 4);
  assert.equal(c.get('b'), undefined, 'b was the least recently used');
  assert.equal(c.get('a'), 'a');
  assert.equal(c.ownerSize('b'), 0);
});

test('re-setting a key keeps one entry; capacity 0 disables; perOwner is clamped to at least 1', () => {
  const { c } = cache(5, 2);
  c.set('a', '1', { owner: 'x', epoch: c.epoch });
  c.set('a', '2', { owner: 'x', epoch: c.epoch });
  assert.equal(c.size, 1);
  assert.equal(c.ownerSize('x'), 1);
  assert.equal(c.get('a'), '2');
  c.delete('a');
  assert.equal(c.ownerSize('x'), 0);
  const off = cache(0, 5).c;
  off.set('a', 'A', { owner: 'x', epoch: off.epoch });
  assert.equal(off.get('a'), undefined);
  const epoch = createAuthEpoch();
  const one = new AuthCache<string>({ capacity: 10, perOwner: 0, epoch, clock: new ManualClock() });
  assert.equal(one.perOwner, 1);
});
