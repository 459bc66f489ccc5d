/**
 * Agents (issue 11 item 4): the agents that logged in, searchable by SPIFFE ID, and one agent's
 * page (`/ui/agents/detail?id=<spiffe id>`): its live credentials with countdowns, tasks,
 * recent decisions, revocations, and the kill switch.
 *
 * data-testids — list: agents-search (form) · agents-q (input) · agents-table · agent-row (each
 * row, `data-spiffe-id`) · agent-link · agent-live (live credential count) · agent-revoked ·
 * agents-empty · agents-loading · agents-more · error.
 * Detail: agent-detail (`data-spiffe-id`, `data-revoked`) · agent-loading · credentials-table
 * (rows credential-row, `data-kind`, countdowns `countdown`) · credentials-empty · agent-tasks
 * (rows agent-task-row, links task-link) · agent-tasks-empty · agent-decisions (rows event-row)
 * · agent-decisions-empty · agent-revocations (rows revocation-row) · agent-revocations-empty ·
 * kill-preview (the sentence) · kill-switch (button; disabled for auditors, reason in
 * kill-switch-disabled-reason) · confirm-dialog / confirm-summary (the sentence, fresh from the
 * server) / kill-reason (input) / confirm-button ·
 * kill-result (after revoking: `data-revocation-id`) · kill-warning.
 */
import { useState } from 'preact/hooks';
import { api, qs, ApiError } from '../api.js';
import { useApi } from '../hooks.js';
import { useLive } from '../live.js';
import { navigate, type Route } from '../router.js';
import { useCanWrite } from '../session.js';
import { when } from '../format.js';
import { ErrorBox } from '../components/error-box.js';
import { Link } from '../components/link.js';
import { Countdown } from '../components/countdown.js';
import { Confirm } from '../components/confirm.js';
import { EventsTable } from '../components/events-table.js';
import { usePaged } from '../components/use-paged.js';
import { describeKill, type KillPreview } from '../lib/describe.js';
import { scopeText } from '../lib/task-tree.js';
import { flatEvent, kindIn } from '../lib/events.js';

export interface AgentRow {
  spiffe_id: string;
  attestor: string;
  attributes: Record<string, string>;
  first_seen: string;
  last_seen: string;
  logins: number;
  live_credentials?: number;
  revoked?: boolean;
}

interface Credential {
  kind: 'agent_token' | 'task_token' | 'lease';
  id: string;
  expires_at: string | null;
  ttl_s?: number;
  detail?: unknown;
}

interface TaskRow {
  txn: string;
  root: string;
  parent: string | null;
  depth: number;
  state: string;
  actor: string;
  label: string | null;
  scope: string[] | string;
  purpose: string;
  user: string | null;
  expires_at: string;
}

interface RevocationRow {
  id: string;
  kind: string;
  target: string;
  reason: string | null;
  created_at: string;
  expires_at: string | null;
  lifted_at: string | null;
  active: boolean;
}

interface AgentDetail {
  agent: AgentRow;
  credentials: Credential[];
  tasks: TaskRow[];
  decisions: unknown[];
  revocations: RevocationRow[];
  kill_preview: KillPreview;
}

/** `POST /v1/admin/revocations` answer (src/revocations/routes.ts). */
interface RevocationResult {
  id: string;
  leases_revoked?: number;
  leases_retrying?: number;
  leases_irrevocable?: number;
  warning?: string;
}

export function AgentsPage({ route }: { route: Route }) {
  if (route.path === '/agents/detail') return <AgentDetailView id={route.query.get('id') ?? ''} />;
  if (route.path !== '/agents') return <ErrorBox error={new ApiError('CONSOLE_NOT_FOUND', `no console page ${route.path}; agent pages are /agents and /agents/detail?id=<SPIFFE ID>`, 404)} />;
  return <AgentList q={route.query.get('q') ?? ''} />;
}

/** A little over the server's agent-inventory write interval (1 s). */
const INVENTORY_WRITE_MS = 1500;

const CRED_LABEL: Record<Credential['kind'], string> = { agent_token: 'agent token', task_token: 'task token', lease: 'lease' };

function AgentList({ q }: { q: string }) {
  const [draft, setDraft] = useState(q);
  const list = usePaged<AgentRow>(`/v1/admin/agents${qs({ q, limit: 100 })}`, 'agents');
  // The agent inventory is written once a second (src/identity/agent-registry.ts), so a login's
  // event may arrive before its row: refetch on the event and once more after that interval.
  const reloadTwice = () => {
    list.reload();
    setTimeout(list.reload, INVENTORY_WRITE_MS);
  };
  useLive(kindIn(['auth.login', 'revocation.']), reloadTwice);
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Agents</h1>
      <form
        class="inline"
        role="search"
        data-testid="agents-search"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(`/agents${qs({ q: draft.trim() })}`, true);
        }}
      >
        <div>
          <label for="agents-q">Search by SPIFFE ID</label>
          <input id="agents-q" type="search" value={draft} placeholder="e.g. ns/ops" size={40} data-testid="agents-q" onInput={(e) => setDraft((e.target as HTMLInputElement).value)} />
        </div>
        <button type="submit">Search</button>
        {q && (
          <button type="button" onClick={() => { setDraft(''); navigate('/agents', true); }}>
            Clear
          </button>
        )}
      </form>
      <ErrorBox error={list.error} />
      {list.items.length > 0 ? (
        <table data-testid="agents-table">
          <caption class="sr-only">Agents{q ? ` whose SPIFFE ID contains ${q}` : ''}, most recently seen first</caption>
          <thead>
            <tr>
              <th scope="col">SPIFFE ID</th>
              <th scope="col">Attestor</th>
              <th scope="col" class="num">Live credentials</th>
              <th scope="col" class="num">Logins</th>
              <th scope="col">Last seen</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {list.items.map((a) => (
              <tr key={a.spiffe_id} data-testid="agent-row" data-spiffe-id={a.spiffe_id}>
                <td class="wrap">
                  <Link href={`/agents/detail${qs({ id: a.spiffe_id })}`} data-testid="agent-link">
                    {a.spiffe_id}
                  </Link>
                </td>
                <td>{a.attestor}</td>
                <td class="num" data-testid="agent-live">
                  {a.live_credentials ?? '—'}
                </td>
                <td class="num">{a.logins}</td>
                <td>{when(a.last_seen)}</td>
                <td>{a.revoked ? <span class="badge bad" data-testid="agent-revoked">revoked</span> : <span class="badge ok">active</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : list.loading ? (
        <p class="loading" role="status" data-testid="agents-loading">
          Loading agents…
        </p>
      ) : (
        !list.error && (
          <p class="muted" data-testid="agents-empty">
            {q ? `No agent's SPIFFE ID contains “${q}”.` : 'No agent has logged in yet. Agents appear here after their first login (tessera login, or the SDK).'}
          </p>
        )
      )}
      {list.hasMore && (
        <button type="button" onClick={list.more} disabled={list.loading} data-testid="agents-more">
          {list.loading ? 'Loading…' : 'Show more agents'}
        </button>
      )}
    </section>
  );
}

function credentialDetail(d: unknown): string {
  if (d === undefined || d === null) return '';
  if (typeof d === 'string') return d;
  if (typeof d === 'object') {
    return Object.entries(d as Record<string, unknown>)
      .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
      .map(([k, v]) => `${k}: ${String(v)}`)
      .join(' · ');
  }
  return String(d);
}

function AgentDetailView({ id }: { id: string }) {
  const path = id ? `/v1/admin/agents/detail${qs({ id })}` : undefined;
  const { data, error, loading, reload } = useApi<AgentDetail>(path);
  useLive((raw) => {
    const e = flatEvent(raw);
    return e.kind.startsWith('revocation.') || e.actor?.id === id || (e.actor?.chain ?? []).includes(id) || (typeof e.resource === 'string' && e.resource.includes(id));
  }, reload);
  if (!id) return <ErrorBox error={new ApiError('CONSOLE_AGENT_MISSING', 'no agent chosen: open an agent from the agents list', 400)} />;
  return (
    <section aria-labelledby="page-title" data-testid="agent-detail" data-spiffe-id={id} data-revoked={data ? String(Boolean(data.agent.revoked)) : undefined}>
      <p>
        <Link href="/agents">← Agents</Link>
      </p>
      <h1 id="page-title" class="wrap">
        {id}
      </h1>
      <ErrorBox error={error} />
      {!data && loading && (
        <p class="loading" role="status" data-testid="agent-loading">
          Loading the agent…
        </p>
      )}
      {data && <AgentBody d={data} id={id} reload={reload} />}
    </section>
  );
}

function AgentBody({ d, id, reload }: { d: AgentDetail; id: string; reload: () => void }) {
  const a = d.agent;
  const attrs = Object.entries(a.attributes ?? {});
  return (
    <>
      <dl class="uia-facts">
        <dt>State</dt>
        <dd>{a.revoked ? <span class="badge bad">revoked</span> : <span class="badge ok">active</span>}</dd>
        <dt>Attestor</dt>
        <dd>{a.attestor}</dd>
        <dt>First seen</dt>
        <dd>{when(a.first_seen)}</dd>
        <dt>Last seen</dt>
        <dd>{when(a.last_seen)}</dd>
        <dt>Logins</dt>
        <dd>{a.logins}</dd>
        {attrs.length > 0 && (
          <>
            <dt>Attributes</dt>
            <dd>
              {attrs.map(([k, v]) => (
                <code key={k} class="uia-chip">
                  {k}={v}
                </code>
              ))}
            </dd>
          </>
        )}
      </dl>

      <KillSwitch id={id} preview={d.kill_preview} onDone={reload} />

      <h2 id="creds">Live credentials</h2>
      {d.credentials.length === 0 ? (
        <p class="muted" data-testid="credentials-empty">
          No live credential: no agent token, task token or lease of this agent is usable now.
        </p>
      ) : (
        <table data-testid="credentials-table" aria-labelledby="creds">
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">Id</th>
              <th scope="col">Detail</th>
              <th scope="col">Expires in</th>
            </tr>
          </thead>
          <tbody>
            {d.credentials.map((c) => (
              <tr key={`${c.kind}:${c.id}`} data-testid="credential-row" data-kind={c.kind}>
                <td>{CRED_LABEL[c.kind] ?? c.kind}</td>
                <td>
                  <code class="wrap">{c.id}</code>
                </td>
                <td class="wrap">{credentialDetail(c.detail)}</td>
                <td>
                  <Countdown until={c.expires_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2 id="agent-tasks">Tasks</h2>
      {d.tasks.length === 0 ? (
        <p class="muted" data-testid="agent-tasks-empty">
          This agent acts in no task.
        </p>
      ) : (
        <table data-testid="agent-tasks" aria-labelledby="agent-tasks">
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">State</th>
              <th scope="col" class="num">Depth</th>
              <th scope="col">Scope</th>
              <th scope="col">Purpose</th>
              <th scope="col">Expires</th>
            </tr>
          </thead>
          <tbody>
            {d.tasks.map((t) => (
              <tr key={t.txn} data-testid="agent-task-row">
                <td>
                  <Link href={`/tasks/${t.root}${t.root === t.txn ? '' : qs({ select: t.txn })}`} data-testid="task-link">
                    <code>{t.txn}</code>
                  </Link>
                  {t.label && <span class="muted"> ({t.label})</span>}
                </td>
                <td>
                  <span class={`badge state-${t.state}`}>{t.state}</span>
                </td>
                <td class="num">{t.depth}</td>
                <td class="wrap">
                  <code>{scopeText(t.scope)}</code>
                </td>
                <td>{t.purpose}</td>
                <td>{t.state === 'active' ? <Countdown until={t.expires_at} /> : when(t.expires_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Recent decisions</h2>
      {d.decisions.length === 0 ? (
        <p class="muted" data-testid="agent-decisions-empty">
          No decision recorded for this agent.
        </p>
      ) : (
        <EventsTable events={d.decisions} testid="agent-decisions" label="Recent decisions" />
      )}

      <h2 id="agent-revs">Revocations</h2>
      {d.revocations.length === 0 ? (
        <p class="muted" data-testid="agent-revocations-empty">
          Never revoked.
        </p>
      ) : (
        <table data-testid="agent-revocations" aria-labelledby="agent-revs">
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Kind</th>
              <th scope="col">Reason</th>
              <th scope="col">Since</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {d.revocations.map((r) => (
              <tr key={r.id} data-testid="revocation-row" data-active={String(r.active)}>
                <td>
                  <code>{r.id}</code>
                </td>
                <td>{r.kind}</td>
                <td>{r.reason ?? ''}</td>
                <td>{when(r.created_at)}</td>
                <td>{r.active ? <span class="badge bad">in force</span> : r.lifted_at ? `lifted ${when(r.lifted_at)}` : 'expired'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** The kill switch: revoke the agent (admin role only), after a confirmation naming what goes. */
function KillSwitch({ id, preview, onDone }: { id: string; preview: KillPreview; onDone: () => void }) {
  const canWrite = useCanWrite();
  const [open, setOpen] = useState<KillPreview | undefined>();
  const [reason, setReason] = useState('');
  const [result, setResult] = useState<RevocationResult | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const openDialog = async () => {
    setError(undefined);
    // Fresh numbers: the confirmation must say what is revoked NOW, not when the page loaded.
    try {
      const fresh = await api.get<AgentDetail>(`/v1/admin/agents/detail${qs({ id })}`);
      setOpen(fresh.kill_preview);
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <section class="uia-kill" aria-labelledby="kill-title">
      <h2 id="kill-title">Kill switch</h2>
      <p>
        Revoking this agent now ends <strong data-testid="kill-preview">{describeKill(preview)}</strong>, and refuses its logins and every task it acts in until the revocation is lifted.
      </p>
      <button type="button" class="danger" disabled={!canWrite} aria-describedby={canWrite ? undefined : 'kill-disabled'} onClick={() => void openDialog()} data-testid="kill-switch">
        Revoke this agent…
      </button>
      {!canWrite && (
        <p id="kill-disabled" class="help" data-testid="kill-switch-disabled-reason">
          Your operator token has the auditor role, which may read but not change anything; an admin can revoke this agent.
        </p>
      )}
      <ErrorBox error={error} />
      {result && (
        <div class="notice" role="status" data-testid="kill-result" data-revocation-id={result.id}>
          Revoked: revocation <code>{result.id}</code>
          {result.leases_revoked !== undefined && `, ${result.leases_revoked} leases revoked at their backend`}
          {result.leases_retrying ? `, ${result.leases_retrying} still being revoked (retried)` : ''}
          {result.leases_irrevocable ? `, ${result.leases_irrevocable} IRREVOCABLE (see the leases page)` : ''}.
          {result.warning && (
            <p class="warn" data-testid="kill-warning">
              {result.warning}
            </p>
          )}
        </div>
      )}
      {open && (
        <Confirm
          title={`Revoke ${id}?`}
          confirmLabel="Revoke the agent"
          danger
          onClose={() => setOpen(undefined)}
          onConfirm={async () => {
            const r = await api.post<RevocationResult>('/v1/admin/revocations', { kind: 'agent', target: id, ...(reason.trim() ? { reason: reason.trim() } : {}) });
            setResult(r);
            setReason('');
            onDone();
          }}
        >
          <p>
            This revokes now: <strong data-testid="confirm-summary">{describeKill(open)}</strong>.
          </p>
          <p>Its next calls are refused, its leases are revoked at their backend, and it cannot log in again until the revocation is lifted (Revocations, or tessera revoke lift).</p>
          <label for="kill-reason">Reason (recorded in the audit log)</label>
          <input id="kill-reason" class="uia-wide" maxLength={1000} value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} data-testid="kill-reason" />
        </Confirm>
      )}
    </section>
  );
}
