/**
 * A horizontal grouped bar chart in plain SVG (no library; strict CSP: colours by class).
 * Accessible: `role="img"` with a <title> and a <desc> summarising it; the page shows the same
 * numbers in a table next to it (the text alternative), and each bar has its own <title>.
 */
import { groupedBars, shortSeconds, type BarSeries, type GroupedBarRow } from '../lib/chart-scale.js';

export function UibBarChart(props: { title: string; desc: string; rows: readonly GroupedBarRow[]; series: readonly (BarSeries & { class: string })[]; width?: number; labelWidth?: number; rowLabel: (key: string) => string; testid: string }) {
  const width = props.width ?? 760;
  const l = groupedBars(props.rows, props.series, { width, labelWidth: props.labelWidth ?? 220, barHeight: 11, gap: 12, axisHeight: 26, time: true });
  const plotBottom = l.height - 26;
  const ids = `${props.testid}-t`;
  return (
    <figure class="uib-chart" data-testid={props.testid}>
      <ul class="uib-legend" aria-hidden="true">
        {props.series.map((s) => (
          <li key={s.key}>
            <svg width="12" height="12" aria-hidden="true" focusable="false">
              <rect width="12" height="12" class={s.class} />
            </svg>{' '}
            {s.label}
          </li>
        ))}
      </ul>
      <svg viewBox={`0 0 ${l.width} ${l.height}`} width={l.width} height={l.height} role="img" aria-labelledby={`${ids}-title ${ids}-desc`} class="uib-svg">
        <title id={`${ids}-title`}>{props.title}</title>
        <desc id={`${ids}-desc`}>{props.desc}</desc>
        {l.ticks.map((t) => (
          <g key={t.value}>
            <line x1={t.x} x2={t.x} y1={0} y2={plotBottom} class="uib-grid" />
            <text x={t.x} y={plotBottom + 16} text-anchor="middle">
              {shortSeconds(t.value)}
            </text>
          </g>
        ))}
        {l.rows.map((r) => (
          <text key={r.key} x={l.plotX - 8} y={r.y + r.height / 2 + 4} text-anchor="end">
            {truncate(props.rowLabel(r.key), 30)}
          </text>
        ))}
        {l.bars.map((b) => {
          const s = props.series.find((x) => x.key === b.series);
          return (
            <rect key={`${b.row}|${b.series}`} x={b.x} y={b.y} width={Math.max(b.width, b.value > 0 ? 1 : 0)} height={b.height} class={s?.class}>
              <title>{`${props.rowLabel(b.row)} — ${s?.label ?? b.series}: ${shortSeconds(b.value)}`}</title>
            </rect>
          );
        })}
        <line x1={l.plotX} x2={l.plotX} y1={0} y2={plotBottom} class="axis" />
      </svg>
    </figure>
  );
}

function truncate(s: string, n: number): string {
  return s.length > n ? `…${s.slice(s.length - n + 1)}` : s;
}
