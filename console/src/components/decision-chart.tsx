import { decisionChart, hourLabel, summarizeDecisions, type DecisionBucket } from '../lib/bar-chart.js';

/**
 * Allowed vs denied decisions per bucket as grouped SVG bars (hand-written: no chart library).
 * The SVG is one image with a summary as its accessible name; the numbers are also in a table
 * (collapsed under "Show the numbers") for screen readers and copy-paste.
 */
export function DecisionChart({ series, bucketS }: { series: DecisionBucket[]; bucketS: number }) {
  const m = decisionChart(series);
  const hours = Math.round((series.length * bucketS) / 3600);
  const summary = summarizeDecisions(series, hours);
  const every = Math.max(1, Math.ceil(series.length / 8));
  return (
    <figure class="chart" data-testid="decisions-chart">
      <svg viewBox="0 0 720 220" class="chart-svg" role="img" aria-label={`Decisions per hour. ${summary}`}>
        {m.ticks.map((t) => (
          <g key={t.value}>
            <line class="axis" x1={m.plot.x} x2={m.plot.x + m.plot.width} y1={t.y} y2={t.y} />
            <text x={m.plot.x - 6} y={t.y + 4} text-anchor="end">
              {t.value}
            </text>
          </g>
        ))}
        {m.groups.map((g, i) => (
          <g key={g.t}>
            <rect class="bar-allow" x={g.allow.x} y={g.allow.y} width={g.allow.width} height={g.allow.height}>
              <title>{`${hourLabel(g.t)} UTC: ${g.allow.value} allowed`}</title>
            </rect>
            <rect class="bar-deny" x={g.deny.x} y={g.deny.y} width={g.deny.width} height={g.deny.height}>
              <title>{`${hourLabel(g.t)} UTC: ${g.deny.value} denied`}</title>
            </rect>
            {i % every === 0 && (
              <text x={g.labelX} y={m.plot.y + m.plot.height + 16} text-anchor="middle">
                {hourLabel(g.t)}
              </text>
            )}
          </g>
        ))}
      </svg>
      <figcaption>
        <span class="legend legend-allow">allowed</span> <span class="legend legend-deny">denied</span>
        <span class="uia-summary" data-testid="decisions-summary">
          {summary}
        </span>
      </figcaption>
      <details>
        <summary>Show the numbers</summary>
        <table data-testid="decisions-table">
          <caption class="sr-only">Decisions per hour (UTC)</caption>
          <thead>
            <tr>
              <th scope="col">Hour (UTC)</th>
              <th scope="col" class="num">Allowed</th>
              <th scope="col" class="num">Denied</th>
            </tr>
          </thead>
          <tbody>
            {series.map((b) => (
              <tr key={b.t}>
                <td>{hourLabel(b.t)}</td>
                <td class="num">{b.allow}</td>
                <td class="num">{b.deny}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
