/**
 * The keeper's schedule (src/agent/keeper.ts), on a manual clock: renewal at 80 % ± 5 % of a
 * lifetime and before the margin, bounded retry delays, and retrying for ever (never giving up
 * while Tessera is down). The logins here are functions that fail or succeed on demand; the real
 * logins against a real Tessera are in sidecar.test.ts and lifecycle.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CredentialKeeper, renewalDelay, retryDelay } from '../../../src/agent/index.js';
import type { SdkClock } from '../../../src/sdk/client.js';

test('renewalDelay: 75–85 % of the lifetime, never past the margin, never a busy loop', () => {
  for (const r of [0, 0.5, 0.999]) {
    const d = renewalDelay({ issuedAt: 0, expiresAt: 300_000 }, 0, r);
    assert.ok(d >= 225_000 && d <= 255_000, `${r}: ${d}`);
  }
  // 3 s tokens: renewed with 40 % of the lifetime left before the margin (0.3 s) for the login.
  assert.equal(renewalDelay({ issuedAt: 0, expiresAt: 3_000 }, 0, 0.999), 1_500);
  // Already late, or a token that lives for no time: at least 250 ms.
  assert.equal(renewalDelay({ issuedAt: 0, expiresAt: 300_000 }, 299_000, 0.5), 250);
  assert.equal(renewalDelay({ issuedAt: 0, expiresAt: 0 }, 0, 0.5), 250);
});

test('retryDelay: grows, is bounded at 15 s ± 20 %', () => {
  assert.ok(retryDelay(0, 0.5) === 500);
  assert.ok(retryDelay(3, 0.5) === 5_000);
  for (let n = 5; n < 1000; n += 97) assert.ok(retryDelay(n, 0.999) <= 18_000 && retryDelay(n, 0) >= 12_000);
});

/** Timers fired by hand, in order of due time. */
function manualClock(): SdkClock & { advance(ms: number): Promise<void> } {
  let now = 1_000_000;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let next = 0;
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = next++;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout(h) {
      timers = timers.filter((t) => t.id !== h);
    },
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
        for (let i = 0; i < 20; i++) await Promise.resolve();
      }
      now = end;
    },
  };
}

test('the keeper retries a failing login for ever with bounded backoff, then holds and renews the token', async () => {
  const clock = manualClock();
  let down = true;
  let logins = 0;
  const lines: string[] = [];
  const keeper = new CredentialKeeper({
    login: async () => {
      logins++;
      if (down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'TESSERA_SDK_CONNECT_FAILED' });
      return { token: `token-${logins}`, issuedAt: clock.now(), expiresAt: clock.now() + 60_000 };
    },
    clock, random: () => 0.5, log: (l) => lines.push(l),
  });
  keeper.start();
  await clock.advance(10 * 60_000); // ten minutes of Tessera being down
  assert.equal(keeper.state, 'retrying');
  assert.equal(keeper.current(), undefined);
  assert.equal(keeper.lastError?.code, 'TESSERA_SDK_CONNECT_FAILED');
  assert.ok(logins >= 40 && logins <= 60, `bounded backoff: ${logins} attempts in 10 min`);
  down = false;
  await clock.advance(16_000);
  assert.equal(keeper.state, 'ready');
  const first = keeper.current()!.token;
  await clock.advance(50_000); // past 80 %
  assert.notEqual(keeper.current()!.token, first, 'renewed before expiry');
  // Down again: the current token stays in use until its margin, then none is handed out.
  down = true;
  const held = keeper.current()!;
  await clock.advance(held.expiresAt - clock.now() - 3_000);
  assert.equal(keeper.current()?.token, held.token);
  await clock.advance(5_000);
  assert.equal(keeper.current(), undefined);
  keeper.stop();
  assert.equal(keeper.state, 'stopped');
  assert.ok(lines.some((l) => /renewal failed: connect ECONNREFUSED \[TESSERA_SDK_CONNECT_FAILED\]; retrying in/.test(l)));
});
