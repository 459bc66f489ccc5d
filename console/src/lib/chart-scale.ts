/**
 * Scales for the console's hand-written SVG bar charts (exposure page). Pure: numbers in,
 * numbers and labels out (test/console/chart-scale.test.ts).
 */

/**
 * A "nice" upper bound ≥ `max` (1, 2, 2.5, 5 × 10^k), so the axis ends on a round number;
 * 1 for an empty or non-positive domain (a chart of zeros still draws an axis).
 */
export function niceMax(max: number): number {
  if (!Number.isFinite(max) || max <= 0) return 1;
  const exp = Math.floor(Math.log10(max));
  const base = 10 ** exp;
  for (const m of [1, 2, 2.5, 5, 10]) {
    const v = m * base;
    if (v >= max * (1 - 1e-12)) return v;
  }
  return 10 * base;
}

/** Tick steps for a time axis, in seconds: round in the unit a person reads (s, min, h, d). */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 1209600, 2592000];

/**
 * A time axis for `max` seconds with about `count` intervals: the smallest round step (1 s, 5 min,
 * 1 h, 1 d…) with `count` steps ≥ `max`, and the axis maximum (a whole number of steps). Beyond
 * the table (~8 months per step), falls back to niceMax.
 */
export function niceTimeAxis(max: number, count = 4): { max: number; step: number } {
  if (!Number.isFinite(max) || max <= 0) return { max: count, step: 1 };
  if (max < 1) {
    const m = niceMax(max);
    return { max: m, step: m / count };
  }
  for (const step of TIME_STEPS) if (step * count >= max) return { max: step * Math.ceil(max / step), step };
  const m = niceMax(max);
  return { max: m, step: m / count };
}

/** Maps [0, domainMax] linearly onto [0, rangePx]; values are clamped into the range. */
export function linearScale(domainMax: number, rangePx: number): (v: number) => number {
  const d = domainMax > 0 && Number.isFinite(domainMax) ? domainMax : 1;
  return (v: number) => {
    if (!Number.isFinite(v) || v <= 0) return 0;
    return Math.min(rangePx, (v / d) * rangePx);
  };
}

/** `count + 1` evenly spaced ticks from 0 to `max` inclusive. */
export function ticks(max: number, count = 4): number[] {
  const n = Math.max(1, Math.floor(count));
  return Array.from({ length: n + 1 }, (_, i) => (max * i) / n);
}

/** A compact duration for axis labels: `0`, `45s`, `12m`, `3.5h`, `2d`. */
export function shortSeconds(s: number): string {
  if (!Number.isFinite(s) || s <= 0) return '0';
  if (s < 60) return `${trim(s)}s`;
  if (s < 3600) return `${trim(s / 60)}m`;
  if (s < 86400) return `${trim(s / 3600)}h`;
  return `${trim(s / 86400)}d`;
}

function trim(v: number): string {
  return v >= 10 ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
}

export interface BarSeries {
  readonly key: string;
  readonly label: string;
}

export interface GroupedBarRow {
  readonly key: string;
  /** One value per series, in series order. */
  readonly values: readonly number[];
}

export interface BarRect {
  readonly row: string;
  readonly series: string;
  readonly value: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface GroupedBarLayout {
  readonly width: number;
  readonly height: number;
  /** Left edge of the plotting area (room for row labels). */
  readonly plotX: number;
  readonly plotWidth: number;
  readonly max: number;
  readonly ticks: readonly { value: number; x: number }[];
  readonly rows: readonly { key: string; y: number; height: number }[];
  readonly bars: readonly BarRect[];
}

/**
 * A horizontal grouped bar chart: one band per row, one bar per series inside it, all on one
 * shared linear axis from 0 to a nice maximum.
 */
export function groupedBars(rows: readonly GroupedBarRow[], series: readonly BarSeries[], opts: { width: number; labelWidth: number; barHeight?: number; gap?: number; axisHeight?: number; time?: boolean }): GroupedBarLayout {
  const barH = opts.barHeight ?? 12;
  const gap = opts.gap ?? 10;
  const axisH = opts.axisHeight ?? 24;
  const plotX = opts.labelWidth;
  const plotWidth = Math.max(10, opts.width - plotX - 16);
  const top = Math.max(0, ...rows.flatMap((r) => r.values.filter(Number.isFinite)));
  const axis = opts.time ? niceTimeAxis(top) : undefined;
  const max = axis ? axis.max : niceMax(top);
  const x = linearScale(max, plotWidth);
  const bandH = Math.max(1, series.length) * barH + gap;
  const outRows: { key: string; y: number; height: number }[] = [];
  const bars: BarRect[] = [];
  rows.forEach((r, i) => {
    const y0 = i * bandH + gap / 2;
    outRows.push({ key: r.key, y: y0, height: bandH - gap });
    series.forEach((s, j) => {
      const v = r.values[j] ?? 0;
      bars.push({ row: r.key, series: s.key, value: v, x: plotX, y: y0 + j * barH, width: x(v), height: barH - 2 });
    });
  });
  const plotH = rows.length * bandH;
  return {
    width: opts.width,
    height: plotH + axisH,
    plotX,
    plotWidth,
    max,
    ticks: (axis ? ticks(max, Math.round(max / axis.step)) : ticks(max)).map((value) => ({ value, x: plotX + x(value) })),
    rows: outRows,
    bars,
  };
}
