/**
 * src/shared/deadline.ts: the time limit fires even when nothing else holds the signal and the
 * garbage collector runs (the fault of AbortSignal.any + AbortSignal.timeout on Node 20,
 * nodejs/node#57736), the parent's abort is passed on with its reason, and done() disarms both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deadline } from '../../src/shared/deadline.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Resolves with the abort reason's name, or 'none' after `waitMs`. Holds only a listener, as fetch does through the signal. */
function outcome(signal: AbortSignal, waitMs: number): Promise<string> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('none'), waitMs);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve((signal.reason as Error).name);
    }, { once: true });
  });
}

test('the time limit fires after the garbage collector ran, with a parent signal that never aborts', async () => {
  const parent = new AbortController();
  const results = Array.from({ length: 50 }, () => outcome(deadline(100, parent.signal).signal, 3_000));
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(new Set(await Promise.all(results)), new Set(['TimeoutError']));
});

test('the parent aborting is passed on with its reason; an already aborted parent aborts at once', async () => {
  const parent = new AbortController();
  const d = deadline(10_000, parent.signal);
  const got = outcome(d.signal, 3_000);
  parent.abort(new Error('session closed'));
  assert.equal(await got, 'Error');
  assert.equal((d.signal.reason as Error).message, 'session closed');
  d.done();
  const gone = new AbortController();
  gone.abort(new DOMException('x', 'AbortError'));
  assert.equal(deadline(10_000, gone.signal).signal.aborted, true);
});

test('done() disarms the timer and the parent listener', async () => {
  const parent = new AbortController();
  const d = deadline(50, parent.signal);
  d.done();
  const got = outcome(d.signal, 300);
  parent.abort();
  assert.equal(await got, 'none');
  assert.equal(d.signal.aborted, false);
});
