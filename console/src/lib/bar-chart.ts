/**
 * Scales for the overview's "decisions vs denials" chart: grouped bars (allowed, denied) per
 * time bucket of `GET /v1/admin/overview` `decisions.series`, on a linear y scale from 0 to a
 * "nice" maximum. Pure (no DOM): unit-tested under Node.
 */

export interface DecisionBucket {
  /** Start of the bucket, RFC 3339. */
  t: string;
  allow: number;
  deny: number;
}

export interface ChartBox {
  width: number;
  height: number;
  /** Room for the y-axis labels (left) and the time labels (bottom). */
  left: number;
  bottom: number;
  top: number;
  right: number;
}

export const DEFAULT_BOX: ChartBox = { width: 720, height: 220, left: 44, bottom: 28, top: 10, right: 8 };

export interface Bar {
  x: number;
  y: number;
  width: number;
  height: number;
  value: number;
}

export interface ChartModel {
  max: number;
  ticks: { y: number; value: number }[];
  groups: { t: string; allow: Bar; deny: Bar; labelX: number }[];
  plot: { x: number; y: number; width: number; height: number };
}

/** The smallest of 1, 2, 5 × 10^k that is ≥ n (and ≥ 1). */
export function niceCeil(n: number): number {
  if (!(n > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

/** Bars and axis ticks for the series inside `box` (SVG user units). */
export function decisionChart(series: readonly DecisionBucket[], box: ChartBox = DEFAULT_BOX): ChartModel {
  const plot = { x: box.left, y: box.top, width: box.width - box.left - box.right, height: box.height - box.top - box.bottom };
  const peak = series.reduce((m, b) => Math.max(m, b.allow, b.deny), 0);
  const max = niceCeil(peak);
  const scale = (v: number) => (Math.max(0, v) / max) * plot.height;
  const ticks = [0, max / 2, max].map((value) => ({ value, y: plot.y + plot.height - scale(value) }));
  const slot = series.length ? plot.width / series.length : plot.width;
  const barW = Math.max(1, (slot * 0.8) / 2);
  const groups = series.map((b, i) => {
    const x0 = plot.x + i * slot + slot * 0.1;
    const bar = (v: number, x: number): Bar => ({ x, y: plot.y + plot.height - scale(v), width: barW, height: scale(v), value: v });
    return { t: b.t, allow: bar(b.allow, x0), deny: bar(b.deny, x0 + barW), labelX: x0 + barW };
  });
  return { max, ticks, groups, plot };
}

/** A one-sentence summary of the series for screen readers and the chart's caption. */
export function summarizeDecisions(series: readonly DecisionBucket[], hours: number): string {
  let allow = 0;
  let deny = 0;
  let worst: DecisionBucket | undefined;
  for (const b of series) {
    allow += b.allow;
    deny += b.deny;
    if (b.deny > 0 && (!worst || b.deny > worst.deny)) worst = b;
  }
  const total = allow + deny;
  const rate = total ? ` (${((deny / total) * 100).toFixed(1)}% denied)` : '';
  const peak = worst ? `; most denials (${worst.deny}) in the hour from ${hourLabel(worst.t)} UTC` : '';
  return `Last ${hours} h: ${allow} allowed, ${deny} denied${rate}${peak}.`;
}

/** `2026-01-01T14:00:00Z` → `14:00` (UTC, so the labels match the server's buckets). */
export function hourLabel(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}
