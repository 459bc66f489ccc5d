/**
 * Exposure (issue 11): how long credentials Tessera issued stayed usable (`GET /v1/admin/exposure
 * ?by=&since=&kind=`, src/exposure/report.ts): p50 / p95 / max window per group as a hand-written
 * SVG bar chart (its numbers also in a table: the text alternative), credential-seconds, and the
 * credentials live now with countdowns (paged: at most LIVE_PAGE rows in the DOM). Ids are token
 * jti HMACs, lease ids or secret-use ids — never a credential. Refetches (debounced 5 s) on
 * token/task/lease/secret/revocation audit events.
 *
 * data-testids: exposure-filters, exposure-by, exposure-since, exposure-kind, exposure-apply,
 * exposure-loading, exposure-empty, exposure-summary, exposure-total-cs, exposure-live-total,
 * exposure-truncated, exposure-chart (figure; svg role=img), exposure-table, exposure-group-row
 * (data-key), exposure-groups-pager, exposure-live-table, exposure-live-row (data-id),
 * exposure-live-empty, exposure-live-pager (-prev, -next, -page), countdown, error, error-code.
 */
import { useEffect, useState } from 'preact/hooks';
import { qs } from '../api.js';
import type { Route } from '../router.js';
import { navigate } from '../router.js';
import { useApi } from '../hooks.js';
import { useLive } from '../live.js';
import { duration, when } from '../format.js';
import { ErrorBox } from '../components/error-box.js';
import { Countdown } from '../components/countdown.js';
import { UibBarChart } from '../components/uib-bar-chart.js';
import { UibPager, pageSlice } from '../components/uib-pager.js';
import { shortSeconds } from '../lib/chart-scale.js';

/** src/exposure/kinds.ts. */
const KINDS = ['agent_token', 'task_token', 'lease', 'secret_use'] as const;
const GROUPINGS = ['kind', 'agent', 'task', 'user'] as const;
const SINCE = [
  ['1h', 'last hour'],
  ['24h', 'last 24 hours'],
  ['7d', 'last 7 days'],
  ['30d', 'last 30 days'],
  ['90d', 'last 90 days'],
] as const;
const CHART_ROWS = 15;
const GROUP_PAGE = 50;
const LIVE_PAGE = 50;

interface Group {
  key: string;
  count: number;
  live: number;
  p50_s: number;
  p95_s: number;
  max_s: number;
  credential_seconds: number;
}
interface LiveCred {
  kind: string;
  id: string;
  agent: string;
  task: string | null;
  user: string | null;
  issued_at: string;
  expires_at: string;
  remaining_s: number;
}
interface Report {
  generated_at: string;
  since: string;
  by: string;
  kind: string | null;
  groups: Group[];
  live: LiveCred[];
  live_total: number;
  truncated: boolean;
}

const SERIES = [
  { key: 'p50', label: 'p50', class: 'uib-bar-p50' },
  { key: 'p95', label: 'p95', class: 'uib-bar-p95' },
  { key: 'max', label: 'max', class: 'uib-bar-max' },
];

const groupLabel = (k: string): string => (k === '-' ? '(none)' : k);

export function ExposurePage({ route }: { route: Route }) {
  const by = route.query.get('by') ?? 'kind';
  const since = route.query.get('since') ?? '24h';
  const kind = route.query.get('kind') ?? '';
  const [draft, setDraft] = useState({ by, since, kind });
  const [groupPage, setGroupPage] = useState(1);
  const [livePage, setLivePage] = useState(1);
  // The URL changed (back/forward): the form and the paging follow it.
  useEffect(() => {
    setDraft({ by, since, kind });
    setGroupPage(1);
    setLivePage(1);
  }, [by, since, kind]);
  const report = useApi<Report>(`/v1/admin/exposure${qs({ by, since, kind })}`);
  useLive(['token.', 'task.', 'lease.', 'secret.', 'revocation.'], report.reload, 5000);

  const apply = (e: Event) => {
    e.preventDefault();
    setGroupPage(1);
    setLivePage(1);
    navigate(`/exposure${qs({ by: draft.by, since: draft.since, kind: draft.kind })}`, true);
  };

  const r = report.data;
  const groups = r?.groups ?? [];
  const totalCs = groups.reduce((a, g) => a + g.credential_seconds, 0);
  const chartRows = groups.slice(0, CHART_ROWS).map((g) => ({ key: g.key, values: [g.p50_s, g.p95_s, g.max_s] }));
  const gp = pageSlice(groups, groupPage, GROUP_PAGE);
  const lp = pageSlice(r?.live ?? [], livePage, LIVE_PAGE);
  const sinceLabel = SINCE.find(([v]) => v === since)?.[1] ?? `since ${since}`;

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Exposure</h1>
      <p class="help">How long each credential stayed usable: from issue until it expired, was revoked or (leases) was dropped by the engine. Shorter is better.</p>
      <form class="inline" onSubmit={apply} data-testid="exposure-filters" aria-label="Exposure report options">
        <div>
          <label for="exposure-by">Group by</label>
          <select id="exposure-by" value={draft.by} onChange={(e) => setDraft({ ...draft, by: (e.target as HTMLSelectElement).value })} data-testid="exposure-by">
            {GROUPINGS.map((g) => (
              <option key={g} value={g}>
                {g === 'task' ? 'task (root)' : g}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="exposure-since">Period</label>
          <select id="exposure-since" value={draft.since} onChange={(e) => setDraft({ ...draft, since: (e.target as HTMLSelectElement).value })} data-testid="exposure-since">
            {SINCE.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
            {!SINCE.some(([v]) => v === draft.since) && <option value={draft.since}>since {draft.since}</option>}
          </select>
        </div>
        <div>
          <label for="exposure-kind">Credential kind</label>
          <select id="exposure-kind" value={draft.kind} onChange={(e) => setDraft({ ...draft, kind: (e.target as HTMLSelectElement).value })} data-testid="exposure-kind">
            <option value="">all</option>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" class="primary" data-testid="exposure-apply">
          Show
        </button>
      </form>
      <ErrorBox error={report.error} />
      {report.loading && !r && (
        <p class="loading" role="status" data-testid="exposure-loading">
          Loading the exposure report…
        </p>
      )}
      {r && (
        <>
          <div class="cards" data-testid="exposure-summary">
            <div class="card">
              <div class="value">{groups.reduce((a, g) => a + g.count, 0)}</div>
              <div class="label">credentials issued ({sinceLabel})</div>
            </div>
            <div class="card">
              <div class="value" data-testid="exposure-total-cs" title={`${totalCs} credential-seconds`}>
                {shortSeconds(totalCs)}
              </div>
              <div class="label">credential-seconds (sum of windows)</div>
            </div>
            <div class="card">
              <div class="value" data-testid="exposure-live-total">
                {r.live_total}
              </div>
              <div class="label">live now</div>
            </div>
          </div>
          {r.truncated && (
            <p class="notice" data-testid="exposure-truncated">
              The period holds more windows than one report reads; the figures cover the most recent ones. Choose a shorter period for exact figures.
            </p>
          )}
          {groups.length === 0 ? (
            <p class="muted" data-testid="exposure-empty">
              No credential was issued in this period{kind ? ` of kind ${kind}` : ''}.
            </p>
          ) : (
            <>
              <h2 id="windows-title">Window length by {by === 'task' ? 'root task' : by}</h2>
              <UibBarChart
                testid="exposure-chart"
                title={`Exposure window p50, p95 and max by ${by}, ${sinceLabel}`}
                desc={`${groups.length} group${groups.length === 1 ? '' : 's'}${groups.length > CHART_ROWS ? `, the ${CHART_ROWS} with the most credential-seconds shown` : ''}. ${chartRows
                  .map((c) => `${groupLabel(c.key)}: p50 ${shortSeconds(c.values[0]!)}, p95 ${shortSeconds(c.values[1]!)}, max ${shortSeconds(c.values[2]!)}`)
                  .join('; ')}. The same figures are in the table below.`}
                rows={chartRows}
                series={SERIES}
                rowLabel={groupLabel}
              />
              <div class="uib-scroll">
                <table data-testid="exposure-table">
                  <caption>Exposure by {by === 'task' ? 'root task' : by} (largest credential-seconds first)</caption>
                  <thead>
                    <tr>
                      <th scope="col">{by}</th>
                      <th scope="col" class="num">
                        Issued
                      </th>
                      <th scope="col" class="num">
                        Live
                      </th>
                      <th scope="col" class="num">
                        p50
                      </th>
                      <th scope="col" class="num">
                        p95
                      </th>
                      <th scope="col" class="num">
                        Max
                      </th>
                      <th scope="col" class="num">
                        Credential-seconds
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {gp.rows.map((g) => (
                      <tr key={g.key} data-testid="exposure-group-row" data-key={g.key}>
                        <th scope="row" class="uib-break">
                          {groupLabel(g.key)}
                        </th>
                        <td class="num">{g.count}</td>
                        <td class="num">{g.live}</td>
                        <td class="num">{duration(g.p50_s)}</td>
                        <td class="num">{duration(g.p95_s)}</td>
                        <td class="num">{duration(g.max_s)}</td>
                        <td class="num">{Math.round(g.credential_seconds).toLocaleString()}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {gp.pages > 1 && <UibPager label="Exposure groups" testid="exposure-groups-pager" page={gp.page} summary={`${groups.length} groups`} hasPrev={gp.page > 1} hasNext={gp.page < gp.pages} onPrev={() => setGroupPage(gp.page - 1)} onNext={() => setGroupPage(gp.page + 1)} />}
            </>
          )}
          <h2 id="live-title">Live now</h2>
          {r.live.length === 0 ? (
            <p class="muted" data-testid="exposure-live-empty">
              No credential is live right now.
            </p>
          ) : (
            <>
              {r.live_total > r.live.length && <p class="help">The {r.live.length} with the most time left of {r.live_total} live credentials.</p>}
              <div class="uib-scroll">
                <table data-testid="exposure-live-table" aria-labelledby="live-title">
                  <thead>
                    <tr>
                      <th scope="col">Kind</th>
                      <th scope="col">Id (HMAC or lease id)</th>
                      <th scope="col">Agent</th>
                      <th scope="col">Task</th>
                      <th scope="col">User</th>
                      <th scope="col">Issued</th>
                      <th scope="col">Expires in</th>
                    </tr>
                  </thead>
                  <tbody>
                    {lp.rows.map((c) => (
                      <tr key={`${c.kind}:${c.id}`} data-testid="exposure-live-row" data-id={c.id}>
                        <td>{c.kind}</td>
                        <td>
                          <code class="uib-ellipsis" title={c.id}>
                            {c.id}
                          </code>
                        </td>
                        <td class="uib-break">{c.agent}</td>
                        <td>{c.task ? <code>{c.task}</code> : <span class="muted">—</span>}</td>
                        <td>{c.user ?? <span class="muted">—</span>}</td>
                        <td>{when(c.issued_at)}</td>
                        <td>
                          <Countdown until={c.expires_at} />
                          {c.kind === 'lease' && c.remaining_s === 0 && <div class="help">past expiry, not dropped yet</div>}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {lp.pages > 1 && <UibPager label="Live credentials" testid="exposure-live-pager" page={lp.page} summary={`${r.live.length} live`} hasPrev={lp.page > 1} hasNext={lp.page < lp.pages} onPrev={() => setLivePage(lp.page - 1)} onNext={() => setLivePage(lp.page + 1)} />}
            </>
          )}
          <p class="help">
            Report generated {when(r.generated_at)}, covering windows since {when(r.since)}.
          </p>
        </>
      )}
    </section>
  );
}
