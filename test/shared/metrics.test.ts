/**
 * The Prometheus registry's series keys (text exposition format 0.0.4): label pairs sorted by
 * name, values escaped (backslash, newline, double quote) and otherwise kept as they are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsRegistry } from '../../src/shared/metrics.js';

test('label order does not matter; values are escaped exactly as the text format asks', async () => {
  const m = new MetricsRegistry();
  const c = m.counter('t_total', 'test');
  c.inc({ route: '/v1/x', method: 'GET', status: '200' });
  c.inc({ status: '200', method: 'GET', route: '/v1/x' }, 2);
  c.inc({ v: 'a\\b\n"c"' });
  c.inc({ only: '' });
  c.inc();
  assert.equal(c.get({ method: 'GET', route: '/v1/x', status: '200' }), 3);
  const text = await m.render();
  assert.match(text, /^t_total\{method="GET",route="\/v1\/x",status="200"\} 3$/m);
  assert.ok(text.includes('t_total{v="a\\\\b\\n\\"c\\""} 1'), text);
  assert.match(text, /^t_total\{only=""\} 1$/m);
  assert.match(text, /^t_total 1$/m);
  const h = m.histogram('t_seconds', 'test', [0.1, 1]);
  h.observe(0.05, { route: 'r' });
  assert.match(await m.render(), /^t_seconds_bucket\{route="r",le="0.1"\} 1$/m);
});
