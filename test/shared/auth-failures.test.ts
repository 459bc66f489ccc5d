/**
 * The refused-credential guard (src/shared/auth-failures.ts) on a manual clock: the per-source
 * failure bucket (checked without charging, charged per refusal, IPv6 by /64) and the
 * aggregation of refusal events per (kind, source, actor) per window, with the count of the
 * events not written in between.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAuthFailureGuard } from '../../src/shared/auth-failures.js';
import { ManualClock } from '../../src/shared/clock.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { MemoryAuditWriter } from '../helpers/audit.js';

const refusal = (source: string, actor = 'unauthenticated') => ({
  kind: 'auth.token_refused' as const, actor: { id: actor }, action: 'token.verify', result: 'deny' as const,
  reason: { code: 'TESSERA_TOKEN_SIGNATURE_INVALID' }, where: { source }, details: { code: 'TESSERA_TOKEN_SIGNATURE_INVALID' },
});

test('admit() refuses a source only once its refusals used up the bucket; successes cost nothing', () => {
  const clock = new ManualClock();
  const g = createAuthFailureGuard({ rate: { perSecond: 1, burst: 3 }, clock, audit: new MemoryAuditWriter() });
  const m = { source: '203.0.113.1' };
  for (let i = 0; i < 100; i++) g.admit(m); // never charged: never refused
  for (let i = 0; i < 3; i++) {
    g.admit(m);
    g.charge(m);
  }
  let err: unknown;
  try {
    g.admit(m);
  } catch (e) {
    err = e;
  }
  assert.ok(isTesseraError(err));
  assert.equal(err.code, 'TESSERA_AUTH_RATE_LIMITED');
  assert.equal(err.status, 429);
  assert.equal(err.details?.retry_after_s, 1);
  // Another source is its own bucket; the same /64 is the same source.
  g.admit({ source: '203.0.113.2' });
  for (let i = 0; i < 3; i++) g.charge({ source: '2001:db8:1:2::1' });
  assert.throws(() => g.admit({ source: '2001:db8:1:2:ffff::9' }), /auth_failure_rate_limit/);
  g.admit({ source: '2001:db8:1:3::1' });
  // It refills at the configured rate.
  clock.advance(1000);
  g.admit(m);
});

test('refusal events: one per kind, source and actor per window; the next one counts the rest', async () => {
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const g = createAuthFailureGuard({ rate: { perSecond: 1, burst: 3 }, clock, audit, windowMs: 60_000 });
  for (let i = 0; i < 50; i++) await g.events.append(refusal('203.0.113.1'));
  await g.events.append(refusal('203.0.113.1', 'spiffe://example.org/a'));
  await g.events.append(refusal('203.0.113.9'));
  assert.equal(audit.events.length, 3);
  assert.deepEqual(audit.events.map((e) => (e.details as { suppressed: number }).suppressed), [0, 0, 0]);
  clock.advance(59_999);
  await g.events.append(refusal('203.0.113.1'));
  assert.equal(audit.events.length, 3, 'still inside the window');
  clock.advance(1);
  await g.events.append(refusal('203.0.113.1'));
  assert.equal(audit.events.length, 4);
  assert.deepEqual(audit.events[3]!.details, { code: 'TESSERA_TOKEN_SIGNATURE_INVALID', suppressed: 50, window_s: 60 });
});
