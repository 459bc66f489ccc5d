/**
 * Tasks (issue 11 item 5): the task list (`GET /v1/admin/tasks` with filters) and one task tree
 * (`/ui/tasks/<txn>`, from `GET /v1/admin/tasks/:txn`) drawn as a graph; selecting a node shows
 * its tool calls, leases and decisions; "Revoke this subtree" (admin role) revokes it and the
 * graph redraws the revoked nodes. `?select=<txn>` preselects a node of the tree.
 *
 * data-testids — list: tasks-filters (form) · tasks-state (select) · tasks-agent · tasks-user ·
 * tasks-roots (checkbox) · tasks-table · task-row (`data-txn`, `data-state`) · task-link ·
 * tasks-empty · tasks-loading · tasks-more · error.
 * Tree: task-tree (`data-root`, `data-nodes`) · tree-loading · tree-truncated · task-graph ·
 * task-node (each node: `data-txn`, `data-state`, class `revoked` when revoked; a focusable
 * button) · task-panel (`data-txn`) · panel-state · panel-scope · panel-leases (rows lease-row) ·
 * panel-leases-empty · panel-tools (rows event-row) · panel-tools-empty · panel-decisions (rows
 * event-row) · panel-decisions-empty · revoke-subtree (button; disabled for auditors, reason in
 * revoke-subtree-disabled-reason) · confirm-dialog / confirm-summary / revoke-reason /
 * confirm-button · revoke-result (`data-revocation-id`) · parent-link.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
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
import { TaskGraph } from '../components/task-graph.js';
import { usePaged } from '../components/use-paged.js';
import { findNode, scopeText, subtreeCounts, type TaskNodeJson } from '../lib/task-tree.js';
import { describeSubtree } from '../lib/describe.js';
import { flatEvent, kindIn } from '../lib/events.js';

const TXN = /^task_[A-Za-z0-9_-]{22}$/;

export function TasksPage({ route }: { route: Route }) {
  const rest = route.path.slice('/tasks'.length).replace(/^\//, '');
  if (rest === '') return <TaskList query={route.query} />;
  if (!TXN.test(rest)) return <ErrorBox error={new ApiError('TESSERA_TASK_NOT_FOUND', `“${rest}” is not a task id (task_ followed by 22 characters); open a task from the list`, 404)} />;
  return <TaskTreeView txn={rest} select={route.query.get('select') ?? undefined} />;
}

/* ---------------------------------------------------------------- list */

const STATES = ['active', 'expired', 'revoked'] as const;

function TaskList({ query }: { query: URLSearchParams }) {
  const state = query.get('state') ?? '';
  const agent = query.get('agent') ?? '';
  const user = query.get('user') ?? '';
  const roots = query.get('roots') === 'true';
  const [draft, setDraft] = useState({ state, agent, user, roots });
  useEffect(() => setDraft({ state, agent, user, roots }), [state, agent, user, roots]);
  const list = usePaged<TaskNodeJson>(`/v1/admin/tasks${qs({ state, agent, user, roots: roots ? 'true' : undefined, limit: 100 })}`, 'tasks', 'before');
  useLive(kindIn(['task.', 'revocation.']), list.reload);
  const apply = (e: Event) => {
    e.preventDefault();
    navigate(`/tasks${qs({ state: draft.state, agent: draft.agent.trim(), user: draft.user.trim(), roots: draft.roots ? 'true' : undefined })}`, true);
  };
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Tasks</h1>
      <form class="inline" onSubmit={apply} data-testid="tasks-filters" aria-label="Filter tasks">
        <div>
          <label for="tasks-state">State</label>
          <select id="tasks-state" value={draft.state} onChange={(e) => setDraft({ ...draft, state: (e.target as HTMLSelectElement).value })} data-testid="tasks-state">
            <option value="">any</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="tasks-agent">Acting agent (SPIFFE ID)</label>
          <input id="tasks-agent" size={36} value={draft.agent} onInput={(e) => setDraft({ ...draft, agent: (e.target as HTMLInputElement).value })} data-testid="tasks-agent" />
        </div>
        <div>
          <label for="tasks-user">User</label>
          <input id="tasks-user" size={16} value={draft.user} onInput={(e) => setDraft({ ...draft, user: (e.target as HTMLInputElement).value })} data-testid="tasks-user" />
        </div>
        <div class="uia-check">
          <input id="tasks-roots" type="checkbox" checked={draft.roots} onChange={(e) => setDraft({ ...draft, roots: (e.target as HTMLInputElement).checked })} data-testid="tasks-roots" />
          <label for="tasks-roots">Root tasks only</label>
        </div>
        <button type="submit">Apply</button>
      </form>
      <ErrorBox error={list.error} />
      {list.items.length > 0 ? (
        <table data-testid="tasks-table">
          <caption class="sr-only">Tasks, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">State</th>
              <th scope="col" class="num">Depth</th>
              <th scope="col">Acting agent</th>
              <th scope="col">User</th>
              <th scope="col">Scope</th>
              <th scope="col">Purpose</th>
              <th scope="col">Expires</th>
            </tr>
          </thead>
          <tbody>
            {list.items.map((t) => (
              <tr key={t.txn} data-testid="task-row" data-txn={t.txn} data-state={t.state}>
                <td>
                  <Link href={`/tasks/${t.root}${t.root === t.txn ? '' : qs({ select: t.txn })}`} data-testid="task-link">
                    <code>{t.txn}</code>
                  </Link>
                  {t.parent === null && <span class="muted"> (root)</span>}
                </td>
                <td>
                  <span class={`badge state-${t.state}`}>{t.state}</span>
                </td>
                <td class="num">{t.depth}</td>
                <td class="wrap">
                  <Link href={`/agents/detail${qs({ id: t.actor })}`}>{t.actor}</Link>
                  {t.label && <span class="muted"> ({t.label})</span>}
                </td>
                <td>{t.user ?? '—'}</td>
                <td class="wrap">
                  <code>{scopeText(t.scope)}</code>
                </td>
                <td>{t.purpose}</td>
                <td>{t.state === 'active' ? <Countdown until={t.expires_at} /> : when(t.expires_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : list.loading ? (
        <p class="loading" role="status" data-testid="tasks-loading">
          Loading tasks…
        </p>
      ) : (
        !list.error && (
          <p class="muted" data-testid="tasks-empty">
            {state || agent || user || roots ? 'No task matches these filters.' : 'No task yet. Agents open tasks with the SDK (client.openTask) or POST /v1/oauth/token; see docs/tasks.md.'}
          </p>
        )
      )}
      {list.hasMore && (
        <button type="button" onClick={list.more} disabled={list.loading} data-testid="tasks-more">
          {list.loading ? 'Loading…' : 'Show older tasks'}
        </button>
      )}
    </section>
  );
}

/* ---------------------------------------------------------------- tree */

interface TreeAnswer {
  task: TaskNodeJson;
  nodes: number;
  truncated: { nodes: boolean; events: boolean; leases: boolean };
}

function allTxns(n: TaskNodeJson, into = new Set<string>()): Set<string> {
  into.add(n.txn);
  for (const c of n.children ?? []) allTxns(c, into);
  return into;
}

function TaskTreeView({ txn, select }: { txn: string; select: string | undefined }) {
  const { data, error, loading, reload } = useApi<TreeAnswer>(`/v1/admin/tasks/${txn}`);
  const [selected, setSelected] = useState<string | undefined>(select);
  useEffect(() => setSelected(select ?? txn), [txn, select]);
  const txns = useRef(new Set<string>());
  txns.current = data ? allTxns(data.task) : new Set();
  useLive((raw) => {
    const e = flatEvent(raw);
    return e.kind.startsWith('revocation.') || (typeof e.txn === 'string' && txns.current.has(e.txn));
  }, reload);
  const node = data && selected ? (findNode(data.task, selected) ?? data.task) : data?.task;
  const t = data?.truncated;
  return (
    <section aria-labelledby="page-title" data-testid="task-tree" data-root={txn} data-nodes={data?.nodes}>
      <p>
        <Link href="/tasks">← Tasks</Link>
        {data?.task.parent && (
          <>
            {' · '}
            <Link href={`/tasks/${data.task.root}${qs({ select: txn })}`} data-testid="parent-link">
              whole tree from its root
            </Link>
          </>
        )}
      </p>
      <h1 id="page-title">
        Task tree <code>{txn}</code>
      </h1>
      <ErrorBox error={error} />
      {!data && loading && (
        <p class="loading" role="status" data-testid="tree-loading">
          Loading the task tree…
        </p>
      )}
      {data && (
        <>
          <p class="muted">
            {data.nodes} {data.nodes === 1 ? 'task' : 'tasks'} · purpose “{data.task.purpose}” · created {when(data.task.created_at)}. Select a task (Tab, then Enter) to see what it did.
          </p>
          {t && (t.nodes || t.events || t.leases) && (
            <p class="notice" data-testid="tree-truncated">
              Shown in part: {[t.nodes && 'tasks', t.events && 'events', t.leases && 'leases'].filter(Boolean).join(', ')} beyond the server's limit are left out. Use <code>tessera task tree {txn} --json</code> for a subtree.
            </p>
          )}
          <a class="skip" href="#task-panel">
            Skip the graph to the selected task
          </a>
          <div class="uia-tree">
            <TaskGraph root={data.task} selected={node?.txn} onSelect={setSelected} />
            {node && <TaskPanel node={node} onRevoked={reload} />}
          </div>
        </>
      )}
    </section>
  );
}

interface RevocationResult {
  id: string;
  leases_revoked?: number;
  leases_retrying?: number;
  leases_irrevocable?: number;
  warning?: string;
}

function TaskPanel({ node, onRevoked }: { node: TaskNodeJson; onRevoked: () => void }) {
  const canWrite = useCanWrite();
  const [confirm, setConfirm] = useState(false);
  const [reason, setReason] = useState('');
  const [result, setResult] = useState<RevocationResult | undefined>();
  useEffect(() => setResult(undefined), [node.txn]);
  const events = (node.events ?? []).map(flatEvent);
  const tools = events.filter((e) => e.kind.startsWith('gateway.') || e.kind.startsWith('proxy.'));
  const decisions = events.filter((e) => !tools.includes(e));
  const leases = node.leases ?? [];
  const counts = subtreeCounts(node);
  return (
    <aside id="task-panel" class="uia-panel" aria-labelledby="panel-title" data-testid="task-panel" data-txn={node.txn} tabIndex={-1}>
      <h2 id="panel-title">
        <code>{node.txn}</code>
      </h2>
      <dl class="uia-facts">
        <dt>State</dt>
        <dd data-testid="panel-state">
          <span class={`badge state-${node.state}`}>{node.state}</span>
        </dd>
        <dt>Acting agent</dt>
        <dd class="wrap">
          <Link href={`/agents/detail${qs({ id: node.actor })}`}>{node.actor}</Link>
          {node.label && <span class="muted"> (sub-agent “{node.label}”)</span>}
        </dd>
        <dt>For</dt>
        <dd class="wrap">{node.user ? `user ${node.user}` : node.sub}</dd>
        <dt>Scope</dt>
        <dd class="wrap" data-testid="panel-scope">
          <code>{scopeText(node.scope)}</code>
        </dd>
        <dt>Depth</dt>
        <dd>
          {node.depth} of at most {node.max_depth}
        </dd>
        <dt>Purpose</dt>
        <dd>{node.purpose}</dd>
        <dt>Expires</dt>
        <dd>{node.state === 'active' ? <Countdown until={node.expires_at} /> : when(node.expires_at)}</dd>
        {node.parent && (
          <>
            <dt>Parent</dt>
            <dd>
              <code>{node.parent}</code>
            </dd>
          </>
        )}
      </dl>

      <h3>Revoke</h3>
      <button type="button" class="danger" disabled={!canWrite || counts.total === 0} aria-describedby={canWrite ? 'revoke-help' : 'revoke-disabled'} onClick={() => setConfirm(true)} data-testid="revoke-subtree">
        Revoke this subtree…
      </button>
      <p id="revoke-help" class="help">
        Ends {describeSubtree(counts)} (this task and the {counts.total - 1} below it).
      </p>
      {!canWrite && (
        <p id="revoke-disabled" class="help" data-testid="revoke-subtree-disabled-reason">
          Your operator token has the auditor role, which may read but not change anything; an admin can revoke this subtree.
        </p>
      )}
      {result && (
        <div class="notice" role="status" data-testid="revoke-result" data-revocation-id={result.id}>
          Revoked: revocation <code>{result.id}</code>
          {result.leases_revoked !== undefined && `, ${result.leases_revoked} leases revoked at their backend`}
          {result.leases_retrying ? `, ${result.leases_retrying} still being revoked (retried)` : ''}
          {result.leases_irrevocable ? `, ${result.leases_irrevocable} IRREVOCABLE (see the leases page)` : ''}.
          {result.warning && <p class="warn">{result.warning}</p>}
        </div>
      )}
      {confirm && (
        <Confirm
          title="Revoke this subtree?"
          confirmLabel="Revoke the subtree"
          danger
          onClose={() => setConfirm(false)}
          onConfirm={async () => {
            const r = await api.post<RevocationResult>('/v1/admin/revocations', { kind: 'task', target: node.txn, ...(reason.trim() ? { reason: reason.trim() } : {}) });
            setResult(r);
            setReason('');
            onRevoked();
          }}
        >
          <p>
            Revoking <code>{node.txn}</code> ends now: <strong data-testid="confirm-summary">{describeSubtree(counts)}</strong>
            {counts.total > counts.tasks ? ` (${counts.total} tasks in the subtree; the others are already expired or revoked)` : ''}.
          </p>
          <p>Every token of this task and of every task below it is refused from now on, and their leases are revoked at their backend. The parent and sibling tasks are untouched.</p>
          <label for="revoke-reason">Reason (recorded in the audit log)</label>
          <input id="revoke-reason" class="uia-wide" maxLength={1000} value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} data-testid="revoke-reason" />
        </Confirm>
      )}

      <h3 id="panel-leases-title">Leases</h3>
      {leases.length === 0 ? (
        <p class="muted" data-testid="panel-leases-empty">
          No lease issued under this task.
        </p>
      ) : (
        <table data-testid="panel-leases" aria-labelledby="panel-leases-title">
          <thead>
            <tr>
              <th scope="col">Lease</th>
              <th scope="col">Engine / role</th>
              <th scope="col">State</th>
              <th scope="col">Expires in</th>
            </tr>
          </thead>
          <tbody>
            {leases.map((l) => (
              <tr key={l.lease_id} data-testid="lease-row" data-state={l.state}>
                <td>
                  <code class="wrap">{l.lease_id}</code>
                </td>
                <td>
                  {l.engine}/{l.role}
                </td>
                <td>
                  {l.state}
                  {l.revoke_cause ? ` (${l.revoke_cause})` : ''}
                </td>
                <td>{l.state === 'active' ? <Countdown until={l.expires_at} /> : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h3>Tool calls</h3>
      {tools.length === 0 ? (
        <p class="muted" data-testid="panel-tools-empty">
          No tool call through the MCP gateway or the proxy.
        </p>
      ) : (
        <EventsTable events={tools} testid="panel-tools" label="Tool calls" compact />
      )}

      <h3>Decisions and other events</h3>
      {decisions.length === 0 ? (
        <p class="muted" data-testid="panel-decisions-empty">
          No event recorded for this task.
        </p>
      ) : (
        <EventsTable events={decisions} testid="panel-decisions" label="Decisions and other events" compact />
      )}
    </aside>
  );
}
