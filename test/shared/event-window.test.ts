/**
 * The one window behind limit-refusal and refused-credential events (src/shared/event-window.ts):
 * the first event of a key passes, the others within the window are counted, the next one after
 * it carries the count; keys are independent; the tracked keys are bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createEventWindow } from '../../src/shared/event-window.js';
import { ManualClock } from '../../src/shared/clock.js';

test('one event per key per window; the next one after the window says how many were not written', () => {
  const clock = new ManualClock();
  const w = createEventWindow(clock, 60_000);
  assert.deepEqual(w.pass('a'), { suppressed: 0, window_s: 60 });
  assert.equal(w.pass('a'), undefined);
  clock.advance(59_999);
  assert.equal(w.pass('a'), undefined);
  assert.deepEqual(w.pass('b'), { suppressed: 0, window_s: 60 }, 'another key has its own window');
  clock.advance(1);
  assert.deepEqual(w.pass('a'), { suppressed: 2, window_s: 60 }, 'exactly one window later: written, with the two counted');
  assert.equal(w.pass('a'), undefined);
  clock.advance(60_000);
  assert.deepEqual(w.pass('a'), { suppressed: 1, window_s: 60 });
});

test('at most 10 000 keys are tracked: past that the oldest is forgotten, so its next event is written', () => {
  const clock = new ManualClock();
  const w = createEventWindow(clock, 60_000);
  for (let i = 0; i < 10_000; i++) assert.ok(w.pass(`k${i}`));
  assert.equal(w.pass('k0'), undefined, 'still tracked at 10 000 keys');
  assert.ok(w.pass('k10000'), 'a new key past the bound is written');
  assert.deepEqual(w.pass('k0'), { suppressed: 0, window_s: 60 }, 'the oldest key was forgotten (its count lost, never its event)');
  assert.equal(w.pass('k10000'), undefined);
});
