/**
 * Drift (issue 13, docs/drift.md): the report of `GET /v1/admin/drift` — the policy source, tool
 * pin counts, and the findings, most severe first. A changed or never-approved upstream tool has
 * an Approve button for admins (`POST /v1/admin/drift/tools/approve` with the digest shown, so a
 * definition changed again meanwhile is refused with TESSERA_DRIFT_DIGEST_MISMATCH). Auditors see
 * the same page read-only. Upstream text is never shown (the report carries digests only).
 *
 * data-testids: drift-loading, drift-policy, drift-tools, drift-empty, drift-table, drift-row
 * (data-id, data-severity), drift-approve (data-tool), drift-approved, drift-readonly, drift-recheck, error, error-code.
 */
import { useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import type { Route } from '../router.js';
import { useApi } from '../hooks.js';
import { useCanWrite } from '../session.js';
import { when } from '../format.js';
import { ErrorBox } from '../components/error-box.js';

interface Finding {
  id: string;
  kind: string;
  code: string;
  severity: 'info' | 'warning' | 'critical';
  subject: string;
  message: string;
  since?: string;
  details?: Record<string, unknown>;
}

interface Report {
  checked_at: string;
  findings: Finding[];
  counts: Record<string, number>;
  worst: string;
  policy: { dir: string; loaded: boolean; digest?: string; git?: { commit?: string; branch?: string; dirty?: boolean }; expected_digest?: string; matches_expected?: boolean };
  tools: { pinned: number; changed: number; unapproved: number; first_sight: string; on_change: string };
}

const SEVERITY_CLASS: Record<string, string> = { info: 'muted', warning: 'warn', critical: 'bad' };
const short = (d: string | undefined): string => (d ? `${d.slice(0, 19)}…` : '—');

export function DriftPage(_: { route: Route }) {
  const report = useApi<Report>('/v1/admin/drift');
  const canWrite = useCanWrite();
  const [busy, setBusy] = useState<string | undefined>();
  const [done, setDone] = useState<string | undefined>();
  const [failure, setFailure] = useState<ApiError | undefined>();

  const approve = async (f: Finding) => {
    setBusy(f.id);
    setFailure(undefined);
    setDone(undefined);
    try {
      const digest = typeof f.details?.['observed_digest'] === 'string' ? (f.details['observed_digest'] as string) : undefined;
      await api.post('/v1/admin/drift/tools/approve', { tool: f.subject, ...(digest ? { digest } : {}) });
      setDone(f.subject);
      report.reload();
    } catch (e) {
      setFailure(e instanceof ApiError ? e : new ApiError('CONSOLE_ERROR', String(e), 0));
    } finally {
      setBusy(undefined);
    }
  };

  const r = report.data;
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Drift</h1>
      <p class="help">
        What runs, held against what was approved: upstream tool definitions, engine grants, the policy set and secret hygiene (<code>tessera drift</code>).
      </p>
      {!canWrite && (
        <p class="notice" data-testid="drift-readonly">
          Read-only: approving a tool needs an admin.
        </p>
      )}
      <ErrorBox error={report.error ?? failure} />
      {done && (
        <p class="ok" role="status" data-testid="drift-approved">
          Approved {done}: it is served again.
        </p>
      )}
      {report.loading && !r && (
        <p class="loading" role="status" data-testid="drift-loading">
          Checking…
        </p>
      )}
      {r && (
        <>
          <p data-testid="drift-policy">
            Policy set <code>{short(r.policy.digest)}</code>
            {r.policy.git?.commit && (
              <>
                {' '}
                at commit <code>{r.policy.git.commit.slice(0, 12)}</code>
                {r.policy.git.dirty && <span class="badge warn">uncommitted changes</span>}
              </>
            )}
            {r.policy.expected_digest && (r.policy.matches_expected ? <span class="badge ok">as expected</span> : <span class="badge bad">not the expected set</span>)}
          </p>
          <p class="muted" data-testid="drift-tools">
            Tools: {r.tools.pinned} pinned, {r.tools.changed} changed, {r.tools.unapproved} awaiting approval (first sight: {r.tools.first_sight}, on change: {r.tools.on_change}) · checked {when(r.checked_at)}{' '}
            <button type="button" onClick={report.reload} disabled={report.loading} data-testid="drift-recheck">
              Check again
            </button>
          </p>
          {r.findings.length === 0 ? (
            <p class="muted" data-testid="drift-empty">
              No drift found.
            </p>
          ) : (
            <div class="uib-scroll">
              <table data-testid="drift-table">
                <caption class="uib-sr">Drift findings, most severe first</caption>
                <thead>
                  <tr>
                    <th scope="col">Severity</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Subject</th>
                    <th scope="col">What</th>
                    <th scope="col">Since</th>
                    <th scope="col">
                      <span class="uib-sr">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {r.findings.map((f) => (
                    <tr key={f.id} data-testid="drift-row" data-id={f.id} data-severity={f.severity}>
                      <td>
                        <span class={`badge ${SEVERITY_CLASS[f.severity] ?? ''}`}>{f.severity}</span>
                      </td>
                      <td>{f.kind}</td>
                      <td>
                        <code>{f.subject}</code>
                      </td>
                      <td>
                        <code class="muted">{f.code}</code> {f.message}
                      </td>
                      <td>{f.since ? when(f.since) : <span class="muted">—</span>}</td>
                      <td>
                        {canWrite && (f.code === 'tool_changed' || f.code === 'tool_unapproved') && (
                          <button type="button" class="primary" disabled={busy !== undefined} onClick={() => void approve(f)} aria-label={`Approve the current definition of ${f.subject}`} data-testid="drift-approve" data-tool={f.subject}>
                            Approve
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
