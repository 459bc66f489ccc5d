/** The exposure page's SVG chart scales (console/src/lib/chart-scale.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupedBars, linearScale, niceMax, niceTimeAxis, shortSeconds, ticks } from '../../console/src/lib/chart-scale.js';

test('niceMax rounds up to 1, 2, 2.5, 5 × 10^k', () => {
  const cases: [number, number][] = [[0, 1], [-5, 1], [Number.NaN, 1], [Number.POSITIVE_INFINITY, 1], [0.3, 0.5], [1, 1], [1.01, 2], [2, 2], [2.2, 2.5], [3, 5], [7, 10], [10, 10], [11, 20], [240, 250], [251, 500], [86400, 100000], [0.0007, 0.001]];
  for (const [input, want] of cases) assert.ok(Math.abs(niceMax(input) - want) < 1e-12, `niceMax(${input}) = ${niceMax(input)}, want ${want}`);
  for (let v = 0.001; v < 1e7; v *= 1.37) assert.ok(niceMax(v) >= v, `niceMax(${v}) ≥ ${v}`);
});

test('linearScale maps 0..max onto 0..range and clamps', () => {
  const x = linearScale(200, 400);
  assert.equal(x(0), 0);
  assert.equal(x(100), 200);
  assert.equal(x(200), 400);
  assert.equal(x(500), 400);
  assert.equal(x(-3), 0);
  assert.equal(x(Number.NaN), 0);
  assert.equal(linearScale(0, 100)(0.5), 50, 'an empty domain behaves as 0..1');
});

test('ticks are evenly spaced and include both ends', () => {
  assert.deepEqual(ticks(100), [0, 25, 50, 75, 100]);
  assert.deepEqual(ticks(10, 2), [0, 5, 10]);
  assert.deepEqual(ticks(10, 0), [0, 10]);
});

test('shortSeconds labels', () => {
  assert.equal(shortSeconds(0), '0');
  assert.equal(shortSeconds(-1), '0');
  assert.equal(shortSeconds(45), '45s');
  assert.equal(shortSeconds(2.25), '2.3s');
  assert.equal(shortSeconds(90), '1.5m');
  assert.equal(shortSeconds(3600 * 3.5), '3.5h');
  assert.equal(shortSeconds(86400 * 2), '2d');
  assert.equal(shortSeconds(86400 * 12), '12d');
});

test('groupedBars: one bar per row and series, widths proportional on one axis', () => {
  const series = [{ key: 'p50', label: 'p50' }, { key: 'p95', label: 'p95' }, { key: 'max', label: 'max' }];
  const l = groupedBars([{ key: 'a', values: [10, 50, 100] }, { key: 'b', values: [0, 5, 240] }], series, { width: 616, labelWidth: 100, barHeight: 12, gap: 10, axisHeight: 24 });
  assert.equal(l.plotWidth, 500);
  assert.equal(l.max, 250);
  assert.equal(l.bars.length, 6);
  const bar = (row: string, s: string) => l.bars.find((b) => b.row === row && b.series === s)!;
  assert.equal(bar('a', 'max').width, 200);
  assert.equal(bar('b', 'max').width, 480);
  assert.equal(bar('b', 'p50').width, 0);
  assert.ok(l.bars.every((b) => b.x === 100 && b.width <= l.plotWidth));
  // rows do not overlap; bars stay inside their row
  assert.ok(l.rows[1]!.y >= l.rows[0]!.y + l.rows[0]!.height);
  for (const b of l.bars) {
    const r = l.rows.find((x) => x.key === b.row)!;
    assert.ok(b.y >= r.y && b.y + b.height <= r.y + r.height);
  }
  assert.equal(l.height, 2 * (3 * 12 + 10) + 24);
  assert.deepEqual(l.ticks.map((t) => t.value), [0, 62.5, 125, 187.5, 250]);
  assert.equal(l.ticks[4]!.x, 600);
});

test('groupedBars of nothing or of zeros still has an axis', () => {
  const l = groupedBars([], [{ key: 'max', label: 'max' }], { width: 300, labelWidth: 50 });
  assert.equal(l.bars.length, 0);
  assert.equal(l.max, 1);
  const z = groupedBars([{ key: 'a', values: [0] }], [{ key: 'max', label: 'max' }], { width: 300, labelWidth: 50 });
  assert.equal(z.bars[0]!.width, 0);
});

test('niceTimeAxis: round steps in the unit a person reads, the axis covers the data', () => {
  // [data max, step, axis max]
  const cases: [number, number, number][] = [[3, 1, 3], [149, 60, 180], [150, 60, 180], [200, 60, 240], [59, 15, 60], [3600, 900, 3600], [3601, 1800, 5400], [86400, 21600, 86400], [7 * 86400, 172800, 8 * 86400]];
  for (const [max, step, axisMax] of cases) assert.deepEqual(niceTimeAxis(max), { max: axisMax, step }, `axis for ${max}`);
  for (let v = 0.5; v < 1e8; v *= 1.7) {
    const a = niceTimeAxis(v);
    assert.ok(a.max >= v, `covers ${v}`);
    assert.ok(a.max / a.step <= 8, `at most 8 intervals for ${v}: ${a.max}/${a.step}`);
  }
  assert.deepEqual(niceTimeAxis(0), { max: 4, step: 1 });
  const l = groupedBars([{ key: 'a', values: [149] }], [{ key: 'max', label: 'max' }], { width: 616, labelWidth: 100, time: true });
  assert.deepEqual(l.ticks.map((t) => t.value), [0, 60, 120, 180]);
  assert.equal(l.ticks[3]!.x, 600);
});
