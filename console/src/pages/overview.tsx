/**
 * Overview (issue 11 item 3): what Tessera holds and did, from `GET /v1/admin/overview`.
 * Refreshed on audit events that change its numbers (debounced by useLive), never polled.
 *
 * data-testids: overview-loading · card-agents · card-agents-24h · card-agent-tokens ·
 * card-task-tokens · card-leases · card-mcp-sessions · card-console-sessions (each card's number
 * is in `[data-testid=<card>] .value`) · decisions-chart · decisions-summary · decisions-table ·
 * exposure-table (rows `exposure-row-<kind>`) · exposure-empty · audit-status (`data-ok` =
 * true|false|unknown) · audit-head-seq · policy-status (`data-ok`) · engines-table (rows
 * `engine-row-<name>`, `data-healthy`) · engines-empty · version · error (ErrorBox).
 */
import { useApi } from '../hooks.js';
import { useLive } from '../live.js';
import { duration, when } from '../format.js';
import type { Route } from '../router.js';
import { ErrorBox } from '../components/error-box.js';
import { Link } from '../components/link.js';
import { DecisionChart } from '../components/decision-chart.js';
import type { DecisionBucket } from '../lib/bar-chart.js';
import { kindIn } from '../lib/events.js';

/** `GET /v1/admin/overview` (docs/console.md; CONSOLE-CONTRACT "Console read API"). */
export interface Overview {
  agents: { total: number; seen_24h: number };
  live: { agent_tokens: number; task_tokens: number; leases: number; mcp_sessions: number; console_sessions: number };
  decisions: { bucket_s: number; series: DecisionBucket[] };
  exposure: { kinds: { kind: string; live: number; p50_s: number; p95_s: number; max_s: number }[] };
  audit: { head_seq: number; last_verify: { at: string; ok: boolean; checked: number } | null };
  policy: { policies: number; errors: number | unknown[]; loaded_at: string | null };
  engines: { name: string; kind: string; healthy: boolean; detail?: string }[];
  version: string;
}

/** Event kinds that change the overview's numbers. */
const LIVE_KINDS = ['auth.', 'token.', 'task.', 'lease.', 'policy.', 'revocation.', 'gateway.session_', 'console.session_', 'engine.', 'oauth.token_issued'];

function Card({ id, label, value, href }: { id: string; label: string; value: number; href?: string }) {
  const body = (
    <>
      <span class="value">{value.toLocaleString()}</span>
      <span class="label">{label}</span>
    </>
  );
  return (
    <div class="card" data-testid={id}>
      {href ? (
        <Link href={href} class="card-link">
          {body}
        </Link>
      ) : (
        body
      )}
    </div>
  );
}

function errorCount(e: number | unknown[]): number {
  return Array.isArray(e) ? e.length : Number(e) || 0;
}

export function OverviewPage(_props: { route: Route }) {
  const { data, error, loading, reload } = useApi<Overview>('/v1/admin/overview');
  useLive(kindIn(LIVE_KINDS), reload);
  return (
    <section aria-labelledby="page-title" class="uia-overview">
      <h1 id="page-title">Overview</h1>
      <ErrorBox error={error} />
      {!data && loading && (
        <p class="loading" role="status" data-testid="overview-loading">
          Loading the overview…
        </p>
      )}
      {data && <OverviewBody o={data} />}
    </section>
  );
}

function OverviewBody({ o }: { o: Overview }) {
  const policyErrors = errorCount(o.policy.errors);
  const verify = o.audit.last_verify;
  const auditOk = verify ? String(verify.ok) : 'unknown';
  return (
    <>
      <h2 id="now">Now</h2>
      <div class="cards" aria-labelledby="now">
        <Card id="card-agents" label="agents known" value={o.agents.total} href="/agents" />
        <Card id="card-agents-24h" label="agents seen in 24 h" value={o.agents.seen_24h} href="/agents" />
        <Card id="card-agent-tokens" label="live agent tokens" value={o.live.agent_tokens} />
        <Card id="card-task-tokens" label="live task tokens" value={o.live.task_tokens} href="/tasks?state=active" />
        <Card id="card-leases" label="live leases" value={o.live.leases} href="/leases" />
        <Card id="card-mcp-sessions" label="MCP sessions" value={o.live.mcp_sessions} />
        <Card id="card-console-sessions" label="console sessions" value={o.live.console_sessions} />
      </div>

      <h2>Decisions and denials</h2>
      {o.decisions.series.length ? <DecisionChart series={o.decisions.series} bucketS={o.decisions.bucket_s} /> : <p class="muted">No decisions recorded yet.</p>}

      <div class="uia-columns">
        <div>
          <h2 id="exposure-now">Exposure windows now</h2>
          {o.exposure.kinds.length === 0 ? (
            <p class="muted" data-testid="exposure-empty">
              No credentials issued yet.
            </p>
          ) : (
            <table data-testid="exposure-table" aria-labelledby="exposure-now">
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col" class="num">Live</th>
                  <th scope="col" class="num">p50</th>
                  <th scope="col" class="num">p95</th>
                  <th scope="col" class="num">Max</th>
                </tr>
              </thead>
              <tbody>
                {o.exposure.kinds.map((k) => (
                  <tr key={k.kind} data-testid={`exposure-row-${k.kind}`}>
                    <th scope="row">{k.kind}</th>
                    <td class="num">{k.live}</td>
                    <td class="num">{duration(k.p50_s)}</td>
                    <td class="num">{duration(k.p95_s)}</td>
                    <td class="num">{duration(k.max_s)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <p>
            <Link href="/exposure">Exposure report</Link>
          </p>
        </div>

        <div>
          <h2>Audit chain</h2>
          <p data-testid="audit-status" data-ok={auditOk} class={verify ? (verify.ok ? 'ok' : 'bad') : 'muted'}>
            {verify
              ? verify.ok
                ? `✓ verified: ${verify.checked.toLocaleString()} events intact (${when(verify.at)})`
                : `✗ verification FAILED at ${when(verify.at)} (${verify.checked.toLocaleString()} events checked): see the audit page`
              : 'not verified yet'}
          </p>
          <p>
            Head: event <span data-testid="audit-head-seq">{o.audit.head_seq}</span> · <Link href="/audit">Audit</Link>
          </p>

          <h2>Policy set</h2>
          <p data-testid="policy-status" data-ok={String(policyErrors === 0)} class={policyErrors === 0 ? 'ok' : 'bad'}>
            {policyErrors === 0 ? '✓' : '✗'} {o.policy.policies} policies loaded{policyErrors ? `, ${policyErrors} with errors` : ''}
            {o.policy.loaded_at ? ` (${when(o.policy.loaded_at)})` : ''}
          </p>
          <p>
            <Link href="/policies">Policies</Link>
          </p>
        </div>
      </div>

      <h2 id="engines">Engines</h2>
      {o.engines.length === 0 ? (
        <p class="muted" data-testid="engines-empty">
          No secret engines configured.
        </p>
      ) : (
        <table data-testid="engines-table" aria-labelledby="engines">
          <thead>
            <tr>
              <th scope="col">Engine</th>
              <th scope="col">Kind</th>
              <th scope="col">Health</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {o.engines.map((e) => (
              <tr key={e.name} data-testid={`engine-row-${e.name}`} data-healthy={String(e.healthy)}>
                <th scope="row">{e.name}</th>
                <td>{e.kind}</td>
                <td class={e.healthy ? 'ok' : 'bad'}>{e.healthy ? '✓ healthy' : '✗ unhealthy'}</td>
                <td>{e.detail ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p class="muted">
        Tessera <span data-testid="version">{o.version}</span>
      </p>
    </>
  );
}
