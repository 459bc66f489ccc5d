/**
 * Audit (issue 11): the newest events from `GET /v1/admin/audit` (filters actor, task — with its
 * subtree —, kind, result; older pages with `before_seq`), with the live events of the shared
 * stream (`subscribe`, live.ts) prepended as they are committed. ONE filter definition
 * (lib/audit-filter.ts) decides for both, so a filter gives the same rows live and on reload.
 * Pause holds new events aside (bounded) until resume. Memory is bounded: at most MAX_ROWS rows
 * are kept (the oldest fall off) and at most MAX_ROWS held while paused.
 * Verification: `POST /v1/admin/audit/verify` (202 + job), then ONE job polled with backoff
 * (`GET /v1/admin/audit/jobs/:id`, at most ~4 minutes) until done: ok, or the first bad seq.
 *
 * data-testids: audit-filters, audit-actor, audit-task, audit-kind, audit-result, audit-apply,
 * audit-clear, audit-live-state (data-state), audit-pause (aria-pressed), audit-held,
 * audit-loading, audit-empty, audit-table, audit-row (data-seq, data-kind), audit-seq, audit-kind-cell,
 * audit-actor-cell, audit-result-cell, audit-details-toggle, audit-details, audit-older,
 * audit-cap-note, verify-full, verify-button, verify-status (data-status running|ok|bad|failed),
 * verify-checked, verify-first-bad-seq, verify-problems, verify-again, error, error-code.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, qs } from '../api.js';
import type { Route } from '../router.js';
import { navigate } from '../router.js';
import { liveState, onLiveState, subscribe } from '../live.js';
import { ErrorBox } from '../components/error-box.js';
import {
  AUDIT_RESULTS, TaskSubtree, auditListParams, flattenAuditEntry, matchesAuditFilter, mergeNewestFirst, normaliseFilter,
  type AuditFilter, type FlatAuditEvent,
} from '../lib/audit-filter.js';
import { pollDelay, summariseVerifyJob, type AuditJob, type VerifySummary } from '../lib/audit-verify.js';

/** Rows kept in memory and in the DOM (the live view drops the oldest beyond this). */
const MAX_ROWS = 500;
/** Rows per list request. */
const PAGE = 100;
/** First page: the newest events (every seq is below this). */
const NEWEST = Number.MAX_SAFE_INTEGER;

/** Event kinds for the kind field's suggestions (src/audit/events.ts). A trailing "." selects a family. */
const KIND_SUGGESTIONS = [
  'auth.', 'auth.login', 'auth.token_refused', 'auth.admin_refused', 'token.', 'token.issued', 'token.revoked', 'task.', 'task.created', 'task.refused',
  'policy.', 'policy.decision', 'policy.reloaded', 'secret.', 'secret.read', 'secret.written', 'secret.deleted', 'lease.', 'lease.created', 'lease.renewed',
  'lease.revoked', 'lease.revoke_failed', 'revocation.', 'revocation.created', 'admin_token.', 'console.', 'engine.',
];

function fmtTs(ts: number | undefined): string {
  return ts === undefined ? '—' : new Date(ts).toLocaleString();
}

const resultClass = (r: string | undefined): string => (r === 'allow' || r === 'success' ? 'ok' : r === 'deny' || r === 'failure' || r === 'error' ? 'bad' : 'muted');

function filterFromQuery(q: URLSearchParams): AuditFilter {
  return normaliseFilter({ actor: q.get('actor') ?? '', task: q.get('task') ?? '', kind: q.get('kind') ?? '', result: q.get('result') ?? '' });
}

function LiveIndicator() {
  const [s, setS] = useState(liveState());
  useEffect(() => onLiveState(setS), []);
  const label = s === 'open' ? 'live' : s === 'connecting' ? 'connecting…' : 'not connected';
  return (
    <span class={`badge ${s === 'open' ? 'ok' : 'warn'}`} data-testid="audit-live-state" data-state={s} role="status">
      {label}
    </span>
  );
}

function AuditRow({ e }: { e: FlatAuditEvent }) {
  const [open, setOpen] = useState(false);
  const reason = e.reason?.code ?? e.reason?.policies?.join(', ') ?? e.reason?.message;
  return (
    <>
      <tr data-testid="audit-row" data-seq={e.seq} data-kind={e.kind}>
        <td class="num" data-testid="audit-seq">
          {e.seq}
        </td>
        <td class="uib-nowrap">{fmtTs(e.ts)}</td>
        <td data-testid="audit-kind-cell">
          <code>{e.kind}</code>
          {e.problem && <span class="badge bad"> {e.problem}</span>}
        </td>
        <td class="uib-break" data-testid="audit-actor-cell">
          {e.actor?.id ?? '—'}
          {e.actor?.verified === false && <span class="badge warn"> unverified</span>}
        </td>
        <td>
          {e.action ?? '—'}
          {e.resource && (
            <>
              {' '}
              <code class="uib-break">{e.resource}</code>
            </>
          )}
        </td>
        <td>
          <span class={`badge ${resultClass(e.result)}`} data-testid="audit-result-cell">
            {e.result ?? '—'}
          </span>
          {reason && <div class="help uib-break">{reason}</div>}
        </td>
        <td>{e.txn ? <code>{e.txn}</code> : <span class="muted">—</span>}</td>
        <td>
          <button type="button" aria-expanded={open} aria-label={`${open ? 'Hide details' : 'Details'} of event ${e.seq}`} onClick={() => setOpen(!open)} data-testid="audit-details-toggle">
            {open ? 'Hide details' : 'Details'}
          </button>
        </td>
      </tr>
      {open && (
        <tr class="uib-details-row">
          <td colSpan={8}>
            <pre class="uib-pre" data-testid="audit-details">
              {JSON.stringify({ details: e.details, reason: e.reason, where: e.where, purpose: e.purpose, actor: e.actor }, null, 2)}
            </pre>
          </td>
        </tr>
      )}
    </>
  );
}

function VerifyPanel() {
  const [full, setFull] = useState(false);
  const [summary, setSummary] = useState<VerifySummary | undefined>();
  const [jobId, setJobId] = useState<string | undefined>();
  const [gaveUp, setGaveUp] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const alive = useRef(true);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => {
    alive.current = false;
    if (timer.current) clearTimeout(timer.current);
  }, []);

  /** Polls ONE job with backoff until it is no longer running (or the bound is reached). */
  const poll = (id: string, n: number) => {
    const delay = pollDelay(n);
    if (delay === undefined) {
      setGaveUp(true);
      return;
    }
    timer.current = setTimeout(async () => {
      if (!alive.current) return;
      try {
        const r = await api.get<{ job: AuditJob }>(`/v1/admin/audit/jobs/${encodeURIComponent(id)}`);
        if (!alive.current) return;
        const s = summariseVerifyJob(r.job);
        setSummary(s);
        if (s.status === 'running') poll(id, n + 1);
      } catch (e) {
        if (alive.current) setError(e as ApiError);
      }
    }, delay);
  };

  const start = async () => {
    if (timer.current) clearTimeout(timer.current);
    setError(undefined);
    setGaveUp(false);
    setSummary({ status: 'running', checked: 0 });
    try {
      const r = await api.post<{ job: AuditJob; created: boolean }>('/v1/admin/audit/verify', { full });
      setJobId(r.job.id);
      const s = summariseVerifyJob(r.job);
      setSummary(s);
      if (s.status === 'running') poll(r.job.id, 0);
    } catch (e) {
      setSummary(undefined);
      setError(e as ApiError);
    }
  };
  const running = summary?.status === 'running' && !gaveUp;
  return (
    <section aria-labelledby="verify-title" class="uib-panel">
      <h2 id="verify-title">Verify the audit chain</h2>
      <p class="help">Checks the hash chain and signed checkpoints in the background (read-only: auditors may run it). Incremental by default: it resumes after the last signed verification position.</p>
      <div class="uib-row">
        <input id="verify-full" type="checkbox" checked={full} onChange={(e) => setFull((e.target as HTMLInputElement).checked)} data-testid="verify-full" />
        <label for="verify-full">Full (re-read every event)</label>
        <button type="button" class="primary" onClick={() => void start()} disabled={running} data-testid="verify-button">
          {running ? 'Verifying…' : 'Verify'}
        </button>
      </div>
      <ErrorBox error={error} />
      {summary && (
        <div role="status" aria-live="polite" data-testid="verify-status" data-status={summary.status} class="uib-result">
          {summary.status === 'running' && (
            <p>
              {gaveUp ? 'Still running after several minutes; ' : 'Verifying… '}
              <span data-testid="verify-checked">{summary.checked}</span> events checked{jobId ? ` (job ${jobId})` : ''}.
              {gaveUp && jobId && (
                <>
                  {' '}
                  <button type="button" onClick={() => { setGaveUp(false); poll(jobId, 0); }} data-testid="verify-again">
                    Check again
                  </button>
                </>
              )}
            </p>
          )}
          {summary.status === 'ok' && (
            <p>
              <span class="badge ok">intact</span> <span data-testid="verify-checked">{summary.checked}</span> events checked
              {summary.toSeq !== undefined ? `, chain verified up to seq ${summary.toSeq}` : ''}
              {summary.mode ? ` (${summary.mode})` : ''}.
            </p>
          )}
          {summary.status === 'bad' && (
            <>
              <p>
                <span class="badge bad">broken</span> <span data-testid="verify-checked">{summary.checked}</span> events checked; first bad seq:{' '}
                <strong data-testid="verify-first-bad-seq">{summary.firstBadSeq ?? '— (not at one event)'}</strong>. Run <code>tessera audit verify</code> for the full report.
              </p>
              <ul data-testid="verify-problems">
                {summary.problems.slice(0, 20).map((p, i) => (
                  <li key={i}>
                    <code>{p.kind}</code> {p.seq > 0 ? `at seq ${p.seq}` : ''}: {p.message}
                  </li>
                ))}
                {summary.problems.length > 20 && <li>… and {summary.problems.length - 20} more</li>}
              </ul>
            </>
          )}
          {summary.status === 'failed' && <ErrorBox error={new ApiError(summary.code, summary.message, 0)} />}
          {(summary.status === 'ok' || summary.status === 'bad') && summary.notes.length > 0 && (
            <ul class="help">
              {summary.notes.map((n, i) => (
                <li key={i}>{n}</li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}

export function AuditPage({ route }: { route: Route }) {
  const filter = filterFromQuery(route.query);
  const key = JSON.stringify(filter);
  const [draft, setDraft] = useState<AuditFilter>(filter);
  const [rows, setRows] = useState<FlatAuditEvent[]>([]);
  const [loading, setLoading] = useState(true);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const [hasOlder, setHasOlder] = useState(false);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState(0);
  const pausedRef = useRef(false);
  const heldRef = useRef<FlatAuditEvent[]>([]);
  const missedRef = useRef(0);
  const subtreeRef = useRef(new TaskSubtree(filter.task));
  const gen = useRef(0);
  const filterRef = useRef(filter);
  filterRef.current = filter;

  const fail = (e: unknown) => setError(e instanceof ApiError ? e : new ApiError('CONSOLE_ERROR', String(e), 0));

  /** One page of the list below `before`, narrowed by the shared matcher. */
  const fetchPage = async (before: number): Promise<{ rows: FlatAuditEvent[]; full: boolean }> => {
    const r = await api.get<{ events: unknown[] }>(`/v1/admin/audit${qs({ ...auditListParams(filter), before_seq: before, limit: PAGE })}`);
    const list = (r.events ?? []).map(flattenAuditEntry).filter((e): e is FlatAuditEvent => e !== undefined && e.seq < before);
    for (const e of list) subtreeRef.current.add(e.txn); // the server placed it in the task's subtree
    return { rows: list.filter((e) => matchesAuditFilter(e, filter, subtreeRef.current)).sort((a, b) => b.seq - a.seq), full: (r.events ?? []).length >= PAGE };
  };

  // Filter changed: start over (list + live view with a fresh subtree).
  useEffect(() => {
    const mine = ++gen.current;
    setDraft(filter);
    setRows([]);
    setLoaded(false);
    setError(undefined);
    setLoading(true);
    heldRef.current = [];
    missedRef.current = 0;
    setHeld(0);
    subtreeRef.current = new TaskSubtree(filter.task);
    void (async () => {
      try {
        if (filter.task) {
          // Seed the subtree with the task's known descendants (so their live events match).
          try {
            const t = await api.get<{ nodes?: { txn: string }[] }>(`/v1/admin/tasks/${encodeURIComponent(filter.task)}${qs({ events: 'false' })}`);
            for (const n of t.nodes ?? []) subtreeRef.current.add(n.txn);
          } catch {
            // an unknown task: the list answers for it (empty); live events still match by txn
          }
        }
        const page = await fetchPage(NEWEST);
        if (mine !== gen.current) return;
        setRows((live) => mergeNewestFirst(live, page.rows, MAX_ROWS));
        setHasOlder(page.full);
        setLoaded(true);
      } catch (e) {
        if (mine === gen.current) fail(e);
      } finally {
        if (mine === gen.current) setLoading(false);
      }
    })();
  }, [key]);

  // Live events: every event teaches the subtree; matching ones are shown (or held while paused).
  useEffect(() => {
    let batch: FlatAuditEvent[] = [];
    let batchGen = gen.current;
    let flush: ReturnType<typeof setTimeout> | undefined;
    const off = subscribe((raw) => {
      const e = flattenAuditEntry(raw);
      if (!e) return;
      subtreeRef.current.learn(e);
      if (!matchesAuditFilter(e, filterRef.current, subtreeRef.current)) return;
      if (pausedRef.current) {
        heldRef.current.push(e);
        if (heldRef.current.length > MAX_ROWS) {
          missedRef.current += heldRef.current.length - MAX_ROWS;
          heldRef.current = heldRef.current.slice(-MAX_ROWS);
        }
        setHeld(heldRef.current.length + missedRef.current);
        return;
      }
      if (batchGen !== gen.current) batch = []; // the filter changed: what was matched before is not shown
      batchGen = gen.current;
      batch.push(e);
      flush ??= setTimeout(() => {
        const b = batchGen === gen.current ? batch : [];
        batch = [];
        flush = undefined;
        if (b.length) setRows((r) => mergeNewestFirst(r, b, MAX_ROWS));
      }, 200);
    });
    return () => {
      off();
      if (flush) clearTimeout(flush);
    };
  }, []);

  const togglePause = () => {
    const next = !paused;
    pausedRef.current = next;
    setPaused(next);
    if (!next) {
      const h = heldRef.current;
      heldRef.current = [];
      missedRef.current = 0;
      setHeld(0);
      setRows((r) => mergeNewestFirst(r, h, MAX_ROWS));
    }
  };

  const older = async () => {
    const min = rows.length ? rows[rows.length - 1]!.seq : NEWEST;
    setLoading(true);
    setError(undefined);
    try {
      const page = await fetchPage(min);
      setRows((r) => mergeNewestFirst(r, page.rows, MAX_ROWS));
      setHasOlder(page.full);
    } catch (e) {
      fail(e);
    } finally {
      setLoading(false);
    }
  };

  const apply = (e: Event) => {
    e.preventDefault();
    const n = normaliseFilter(draft);
    navigate(`/audit${qs({ ...n })}`, true);
  };
  const active = Object.keys(filter).length > 0;
  const atCap = rows.length >= MAX_ROWS;

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Audit</h1>
      <form class="inline" onSubmit={apply} data-testid="audit-filters" aria-label="Filter audit events">
        <div>
          <label for="audit-actor">Actor</label>
          <input id="audit-actor" class="uib-wide" value={draft.actor ?? ''} placeholder="spiffe://… or admin:adm_…" onInput={(e) => setDraft({ ...draft, actor: (e.target as HTMLInputElement).value })} data-testid="audit-actor" />
        </div>
        <div>
          <label for="audit-task">Task (with its subtree)</label>
          <input id="audit-task" value={draft.task ?? ''} placeholder="task_…" onInput={(e) => setDraft({ ...draft, task: (e.target as HTMLInputElement).value })} data-testid="audit-task" />
        </div>
        <div>
          <label for="audit-kind">Kind (end with "." for a family)</label>
          <input id="audit-kind" list="audit-kinds" value={draft.kind ?? ''} placeholder="lease. or token.issued" onInput={(e) => setDraft({ ...draft, kind: (e.target as HTMLInputElement).value })} data-testid="audit-kind" />
          <datalist id="audit-kinds">
            {KIND_SUGGESTIONS.map((k) => (
              <option key={k} value={k} />
            ))}
          </datalist>
        </div>
        <div>
          <label for="audit-result">Result</label>
          <select id="audit-result" value={draft.result ?? ''} onChange={(e) => setDraft({ ...draft, result: (e.target as HTMLSelectElement).value })} data-testid="audit-result">
            <option value="">any</option>
            {AUDIT_RESULTS.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" class="primary" data-testid="audit-apply">
          Apply
        </button>
        <button type="button" onClick={() => navigate('/audit', true)} disabled={!active} data-testid="audit-clear">
          Clear
        </button>
      </form>
      <div class="uib-row">
        <LiveIndicator />
        <button type="button" aria-pressed={paused} onClick={togglePause} data-testid="audit-pause">
          {paused ? 'Resume live updates' : 'Pause live updates'}
        </button>
        {paused && (
          <span role="status" data-testid="audit-held">
            {held} new event{held === 1 ? '' : 's'} held{held > MAX_ROWS ? ` (only the newest ${MAX_ROWS} will be shown)` : ''}
          </span>
        )}
        <span class="muted">
          {rows.length} shown (at most {MAX_ROWS})
        </span>
      </div>
      <ErrorBox error={error} />
      {loading && !loaded && (
        <p class="loading" role="status" data-testid="audit-loading">
          Loading audit events…
        </p>
      )}
      {loaded && rows.length === 0 && (
        <p class="muted" data-testid="audit-empty">
          {active ? 'No event matches these filters yet; new ones appear here as they happen.' : 'No audit events yet.'}
        </p>
      )}
      {rows.length > 0 && (
        <div class="uib-scroll">
          <table data-testid="audit-table">
            <caption class="uib-sr">Audit events, newest first</caption>
            <thead>
              <tr>
                <th scope="col" class="num">
                  Seq
                </th>
                <th scope="col">Time</th>
                <th scope="col">Kind</th>
                <th scope="col">Actor</th>
                <th scope="col">Action / resource</th>
                <th scope="col">Result</th>
                <th scope="col">Task</th>
                <th scope="col">
                  <span class="uib-sr">Details</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <AuditRow key={e.seq} e={e} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {loaded && hasOlder && (
        <p>
          <button type="button" onClick={() => void older()} disabled={loading || atCap} aria-describedby={atCap ? 'audit-cap-note' : undefined} data-testid="audit-older">
            {loading ? 'Loading…' : 'Load older events'}
          </button>
          {atCap && (
            <span id="audit-cap-note" class="help" data-testid="audit-cap-note">
              {' '}
              The page keeps at most {MAX_ROWS} events; narrow the filters (or use <code>tessera audit tail</code>) to look further back.
            </span>
          )}
        </p>
      )}
      <VerifyPanel />
    </section>
  );
}
