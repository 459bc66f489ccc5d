/**
 * Leases (issue 11 item 6): `GET /v1/admin/leases` one page at a time (filters state, owner,
 * task; `limit` + `cursor` → `next_cursor`), each lease with a live countdown to its expiry;
 * renew (`POST /v1/admin/leases/:id/renew`) and revoke (`DELETE /v1/admin/leases/:id`) behind a
 * confirmation, for admins only (auditors see the buttons disabled, with the reason). Never more
 * than one page (PAGE_SIZE rows) in the DOM, so 10,000 leases stay fast. Refetches the page
 * (debounced) when `lease.*` audit events arrive.
 *
 * data-testids: leases-filters, leases-state, leases-owner, leases-task, leases-apply, leases-clear,
 * leases-loading, leases-empty, leases-table, lease-row (data-lease-id), lease-id, lease-state,
 * lease-expires (contains countdown), lease-renew, lease-revoke, leases-pager (-prev, -next, -page),
 * renew-increment (in the dialog), confirm-dialog, confirm-button, readonly-note, error, error-code.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, qs } from '../api.js';
import type { Route } from '../router.js';
import { navigate } from '../router.js';
import { useApi } from '../hooks.js';
import { useLive } from '../live.js';
import { useCanWrite } from '../session.js';
import { when } from '../format.js';
import { ErrorBox } from '../components/error-box.js';
import { Countdown } from '../components/countdown.js';
import { Confirm } from '../components/confirm.js';
import { UibPager, UibReadOnlyNote, AUDITOR_REASON } from '../components/uib-pager.js';
import { FIRST_PAGE, currentCursor, nextPage, pageNumber, prevPage, type PagerState } from '../lib/cursor-pager.js';

/** src/leases/states.ts LEASE_STATES. */
const LEASE_STATES = ['pending', 'active', 'revoking', 'disabled', 'revoked', 'irrevocable'] as const;
const PAGE_SIZE = 50;

interface Lease {
  lease_id: string;
  engine: string;
  role: string;
  path?: string;
  owner: string;
  task: string | null;
  user: string | null;
  state: string;
  created_at: string | null;
  expires_at: string | null;
  max_expires_at?: string | null;
  revoked_at?: string | null;
  revoke_cause?: string | null;
  revoke_attempts?: number;
  last_error?: string | null;
  ttl_s?: number;
}

interface LeaseList {
  leases: Lease[];
  next_cursor?: string | null;
}

type Pending = { kind: 'renew' | 'revoke'; lease: Lease } | undefined;

const stateClass = (s: string): string => (s === 'active' ? 'ok' : s === 'irrevocable' ? 'bad' : s === 'revoked' ? 'muted' : 'warn');

export function LeasesPage({ route }: { route: Route }) {
  const canWrite = useCanWrite();
  const filters = { state: route.query.get('state') ?? '', owner: route.query.get('owner') ?? '', task: route.query.get('task') ?? '' };
  const [draft, setDraft] = useState(filters);
  const [pager, setPager] = useState<PagerState>(FIRST_PAGE);
  const [pending, setPending] = useState<Pending>();
  const [increment, setIncrement] = useState('');
  const [done, setDone] = useState<string | undefined>();
  // The URL changed (back/forward, a link): the form and the paging follow it.
  const queryKey = route.query.toString();
  useEffect(() => {
    setDraft(filters);
    setPager(FIRST_PAGE);
  }, [queryKey]);
  const path = `/v1/admin/leases${qs({ ...filters, limit: PAGE_SIZE, cursor: currentCursor(pager) })}`;
  const list = useApi<LeaseList>(path);
  useLive(['lease.'], list.reload);

  const apply = (e: Event) => {
    e.preventDefault();
    setPager(FIRST_PAGE);
    navigate(`/leases${qs({ state: draft.state, owner: draft.owner.trim(), task: draft.task.trim() })}`, true);
  };
  const clear = () => {
    setDraft({ state: '', owner: '', task: '' });
    setPager(FIRST_PAGE);
    navigate('/leases', true);
  };

  const act = async () => {
    if (!pending) return;
    const id = encodeURIComponent(pending.lease.lease_id);
    if (pending.kind === 'renew') {
      const body = increment.trim() ? { increment: /^\d+$/.test(increment.trim()) ? Number(increment.trim()) : increment.trim() } : {};
      const r = await api.post<{ expires_at?: string }>(`/v1/admin/leases/${id}/renew`, body);
      setDone(`Lease ${pending.lease.lease_id} renewed${r?.expires_at ? `; it now expires ${when(r.expires_at)}` : ''}.`);
    } else {
      const r = await api.del<{ state?: string }>(`/v1/admin/leases/${id}`);
      setDone(`Lease ${pending.lease.lease_id} revoked${r?.state ? ` (state: ${r.state})` : ''}.`);
    }
    list.reload();
  };

  const rows = list.data?.leases ?? [];
  const readOnlyId = 'leases-readonly';
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Leases</h1>
      <p class="help">Dynamic credentials issued by engines. The credential itself is never stored, so it is never shown; renewing extends its expiry (up to the role's max TTL), revoking disables it first, then cleans up.</p>
      {!canWrite && <UibReadOnlyNote id={readOnlyId} />}
      <form class="inline" onSubmit={apply} data-testid="leases-filters" aria-label="Filter leases">
        <div>
          <label for="leases-state">State</label>
          <select id="leases-state" value={draft.state} onChange={(e) => setDraft({ ...draft, state: (e.target as HTMLSelectElement).value })} data-testid="leases-state">
            <option value="">any</option>
            {LEASE_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="leases-owner">Owner (SPIFFE ID)</label>
          <input id="leases-owner" class="uib-wide" value={draft.owner} placeholder="spiffe://…" onInput={(e) => setDraft({ ...draft, owner: (e.target as HTMLInputElement).value })} data-testid="leases-owner" />
        </div>
        <div>
          <label for="leases-task">Task (txn, with its subtree)</label>
          <input id="leases-task" value={draft.task} placeholder="task_…" onInput={(e) => setDraft({ ...draft, task: (e.target as HTMLInputElement).value })} data-testid="leases-task" />
        </div>
        <button type="submit" class="primary" data-testid="leases-apply">
          Apply
        </button>
        <button type="button" onClick={clear} data-testid="leases-clear">
          Clear
        </button>
      </form>
      {done && (
        <p class="notice" role="status" data-testid="leases-done">
          {done}
        </p>
      )}
      <ErrorBox error={list.error} />
      {list.loading && !list.data && (
        <p class="loading" role="status" data-testid="leases-loading">
          Loading leases…
        </p>
      )}
      {list.data && rows.length === 0 && (
        <p class="muted" data-testid="leases-empty">
          {pageNumber(pager) > 1 ? 'No more leases.' : filters.state || filters.owner || filters.task ? 'No lease matches these filters.' : 'No leases yet. Agents get one with POST /v1/creds/<engine>/<role> once an engine is configured.'}
        </p>
      )}
      {rows.length > 0 && (
        <div class="uib-scroll">
          <table data-testid="leases-table" aria-busy={list.loading}>
            <caption class="uib-sr">Leases, page {pageNumber(pager)}</caption>
            <thead>
              <tr>
                <th scope="col">Lease</th>
                <th scope="col">Engine / role</th>
                <th scope="col">Owner</th>
                <th scope="col">Task</th>
                <th scope="col">State</th>
                <th scope="col">Expires in</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((l) => {
                const live = l.state === 'active';
                const revocable = l.state !== 'revoked';
                return (
                  <tr key={l.lease_id} data-testid="lease-row" data-lease-id={l.lease_id}>
                    <td>
                      <code data-testid="lease-id">{l.lease_id}</code>
                    </td>
                    <td>
                      {l.engine}/{l.role}
                    </td>
                    <td class="uib-break">{l.owner}</td>
                    <td>{l.task ? <code>{l.task}</code> : <span class="muted">—</span>}</td>
                    <td>
                      <span class={`badge ${stateClass(l.state)}`} data-testid="lease-state">
                        {l.state}
                      </span>
                      {l.last_error && <div class="help uib-break">{l.last_error}</div>}
                    </td>
                    <td data-testid="lease-expires">{live ? <Countdown until={l.expires_at} /> : <span class="muted">{l.revoked_at ? `revoked ${when(l.revoked_at)}` : '—'}</span>}</td>
                    <td>{when(l.created_at)}</td>
                    <td class="uib-actions">
                      <button
                        type="button"
                        disabled={!canWrite || !live}
                        aria-describedby={!canWrite ? readOnlyId : undefined}
                        title={!canWrite ? AUDITOR_REASON : !live ? 'only an active lease can be renewed' : undefined}
                        aria-label={`Renew lease ${l.lease_id}`}
                        onClick={() => {
                          setIncrement('');
                          setDone(undefined);
                          setPending({ kind: 'renew', lease: l });
                        }}
                        data-testid="lease-renew"
                      >
                        Renew
                      </button>
                      <button
                        type="button"
                        class={canWrite && revocable ? 'danger' : undefined}
                        disabled={!canWrite || !revocable}
                        aria-describedby={!canWrite ? readOnlyId : undefined}
                        title={!canWrite ? AUDITOR_REASON : !revocable ? 'already revoked' : undefined}
                        aria-label={`Revoke lease ${l.lease_id}`}
                        onClick={() => {
                          setDone(undefined);
                          setPending({ kind: 'revoke', lease: l });
                        }}
                        data-testid="lease-revoke"
                      >
                        Revoke
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {(rows.length > 0 || pageNumber(pager) > 1) && (
        <UibPager
          label="Leases"
          testid="leases-pager"
          page={pageNumber(pager)}
          summary={`${rows.length} shown (at most ${PAGE_SIZE} per page)`}
          hasPrev={pageNumber(pager) > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          onPrev={() => setPager(prevPage(pager))}
          onNext={() => setPager(nextPage(pager, list.data?.next_cursor))}
        />
      )}
      {pending?.kind === 'renew' && (
        <Confirm title="Renew this lease?" confirmLabel="Renew" onConfirm={act} onClose={() => setPending(undefined)}>
          <p>
            Lease <code>{pending.lease.lease_id}</code> ({pending.lease.engine}/{pending.lease.role}) of <span class="uib-break">{pending.lease.owner}</span> expires in{' '}
            <Countdown until={pending.lease.expires_at} />. Renewing extends it from now, never past its maximum ({when(pending.lease.max_expires_at)}).
          </p>
          <label for="renew-increment">Increment (optional: seconds or a duration such as 15m; empty = the role's default)</label>
          <input id="renew-increment" value={increment} onInput={(e) => setIncrement((e.target as HTMLInputElement).value)} data-testid="renew-increment" />
        </Confirm>
      )}
      {pending?.kind === 'revoke' && (
        <Confirm title="Revoke this lease?" confirmLabel="Revoke" danger onConfirm={act} onClose={() => setPending(undefined)}>
          <p>
            Lease <code>{pending.lease.lease_id}</code> ({pending.lease.engine}/{pending.lease.role}) of <span class="uib-break">{pending.lease.owner}</span> will be disabled at
            once on the engine (no new logins, sessions ended) and then cleaned up. The agent loses this credential; this cannot be undone.
          </p>
        </Confirm>
      )}
    </section>
  );
}
