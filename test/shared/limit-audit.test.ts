/**
 * Limit refusals are counted every time but audited at most once per key and limit per window,
 * with the number left unaudited carried by the next event (src/shared/limit-audit.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLimitAuditor, codeOf } from '../../src/shared/limit-audit.js';
import { MemoryAuditWriter } from '../../src/audit/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { ERROR_CATALOGUE } from '../../src/shared/errors.js';

test('one event per (limit, key) per window; every refusal counted; a failing sink changes nothing', async () => {
  const audit = new MemoryAuditWriter();
  const clock = new ManualClock();
  const metrics = new MetricsRegistry();
  const a = createLimitAuditor({ audit, clock, metrics, windowMs: 60_000 });
  const refuse = (key: string, limit: 'gateway.requests_per_agent' | 'login.per_source' = 'gateway.requests_per_agent') =>
    a.refused({ limit, key, actor: { id: key }, where: { source: '203.0.113.1' }, retryAfterS: 2 });
  for (let i = 0; i < 100; i++) refuse('spiffe://t/a');
  refuse('spiffe://t/b');
  refuse('spiffe://t/a', 'login.per_source');
  await new Promise((r) => setImmediate(r));
  assert.equal(audit.events.length, 3, 'one per key and limit');
  const first = audit.events[0]!;
  assert.equal(first.kind, 'limit.exceeded');
  assert.equal(first.result, 'deny');
  assert.equal(first.reason?.code, 'TESSERA_GATEWAY_RATE_LIMITED');
  assert.deepEqual(first.details, { limit: 'gateway.requests_per_agent', retry_after_s: 2, suppressed: 0, window_s: 60 });
  assert.equal(metrics.counter('tessera_limit_refusals_total', '').get({ limit: 'gateway.requests_per_agent' }), 101);

  clock.advance(60_000);
  refuse('spiffe://t/a');
  await new Promise((r) => setImmediate(r));
  assert.equal(audit.events.length, 4);
  assert.equal((audit.events[3]!.details as { suppressed: number }).suppressed, 99, 'the 99 refusals not audited in the last window');

  audit.failing = true;
  clock.advance(60_000);
  assert.doesNotThrow(() => refuse('spiffe://t/a'));
  await new Promise((r) => setImmediate(r));
});

test('every limit maps to a catalogued 429/503 code', () => {
  for (const l of ['gateway.requests_per_agent', 'gateway.sessions_per_agent', 'gateway.sessions', 'gateway.inflight_per_agent', 'gateway.inflight_per_session', 'gateway.upstream_processes_per_agent', 'login.per_identity', 'login.per_source'] as const) {
    assert.ok([429, 503].includes(ERROR_CATALOGUE[codeOf(l)].status), l);
  }
});
