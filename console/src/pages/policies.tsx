/**
 * Policies (issue 11): the loaded Cedar policy set and the errors of the last reload
 * (`GET /v1/admin/policy/status`), and a what-if form (`POST /v1/admin/policy/check`, body of
 * src/policy/check.ts) answering the decision, the deciding policies (file:line) and an
 * explanation in words. The what-if changes nothing, so auditors may use it (route readOnly).
 * Refetches the status when a `policy.reloaded` audit event arrives.
 *
 * data-testids: policy-status, policy-ready, policy-count, policy-files, policy-loaded-at,
 * policy-dir, policy-errors, policy-error-row, policy-no-errors, policy-ids, policy-loading,
 * whatif-form, whatif-principal, whatif-action, whatif-resource, whatif-more (details), whatif-attestor-kind,
 * whatif-attestor, whatif-attributes, whatif-scope,
 * whatif-task, whatif-user, whatif-purpose, whatif-dpop, whatif-context, whatif-submit,
 * whatif-form-error, whatif-result, whatif-decision (data-decision allow|deny),
 * whatif-explanation, whatif-policies, whatif-policy-row, whatif-eval-errors, error, error-code.
 */
import { useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import type { Route } from '../router.js';
import { useApi } from '../hooks.js';
import { useLive } from '../live.js';
import { when } from '../format.js';
import { ErrorBox } from '../components/error-box.js';
import { ATTESTOR_KINDS, EMPTY_WHAT_IF, POLICY_ACTIONS, buildCheckBody, explainDecision, type CheckAnswer, type WhatIfForm } from '../lib/policy-model.js';

interface PolicyFileError {
  file: string;
  line: number;
  column: number;
  message: string;
  code?: string;
}

interface PolicyStatus {
  ready: boolean;
  dir: string;
  demo?: boolean;
  configured_dir?: string;
  policies: number;
  policy_ids: string[];
  files: string[];
  last_good_at: string | null;
  last_error: PolicyFileError | null;
  errors: PolicyFileError[];
}

function StatusPanel() {
  const status = useApi<PolicyStatus>('/v1/admin/policy/status');
  useLive(['policy.reloaded'], status.reload);
  const s = status.data;
  return (
    <section aria-labelledby="status-title" data-testid="policy-status">
      <h2 id="status-title">Loaded policy set</h2>
      <ErrorBox error={status.error} />
      {status.loading && !s && (
        <p class="loading" role="status" data-testid="policy-loading">
          Loading the policy status…
        </p>
      )}
      {s && (
        <>
          <div class="cards">
            <div class="card">
              <div class={`value ${s.ready ? 'ok' : 'bad'}`} data-testid="policy-ready">
                {s.ready ? 'serving' : 'not ready'}
              </div>
              <div class="label">{s.ready ? 'a valid set is loaded' : 'no valid set: every decision is deny'}</div>
            </div>
            <div class="card">
              <div class="value" data-testid="policy-count">
                {s.policies}
              </div>
              <div class="label">policies</div>
            </div>
            <div class="card">
              <div class="value" data-testid="policy-files">
                {s.files.length}
              </div>
              <div class="label">files</div>
            </div>
            <div class="card">
              <div class={`value ${s.errors.length ? 'bad' : 'ok'}`} data-testid="policy-error-count">
                {s.errors.length}
              </div>
              <div class="label">errors in the last reload</div>
            </div>
          </div>
          <p>
            Directory <code data-testid="policy-dir">{s.dir}</code>
            {s.demo && <> <span class="badge warn">demo policies (configured: {s.configured_dir ?? '—'})</span></>} · last good load{' '}
            <span data-testid="policy-loaded-at">{when(s.last_good_at)}</span>
          </p>
          {s.errors.length > 0 ? (
            <div class="uib-scroll">
              <table data-testid="policy-errors">
                <caption>Errors of the last reload{s.ready ? ' (the previous good set is still serving)' : ''}</caption>
                <thead>
                  <tr>
                    <th scope="col">File</th>
                    <th scope="col" class="num">
                      Line
                    </th>
                    <th scope="col" class="num">
                      Column
                    </th>
                    <th scope="col">Problem</th>
                  </tr>
                </thead>
                <tbody>
                  {s.errors.map((e, i) => (
                    <tr key={`${e.file}:${e.line}:${e.column}:${i}`} data-testid="policy-error-row">
                      <td>
                        <code>{e.file}</code>
                      </td>
                      <td class="num">{e.line || '—'}</td>
                      <td class="num">{e.column || '—'}</td>
                      <td>
                        {e.message}
                        {e.code && (
                          <>
                            {' '}
                            <code>{e.code}</code>
                          </>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <p class="ok" data-testid="policy-no-errors">
              The last reload had no errors.
            </p>
          )}
          {s.policy_ids.length > 0 && (
            <details>
              <summary>
                Policy ids ({s.policy_ids.length}) in {s.files.length} file{s.files.length === 1 ? '' : 's'}
              </summary>
              <ul class="uib-columns" data-testid="policy-ids">
                {s.policy_ids.map((id) => (
                  <li key={id}>
                    <code>{id}</code>
                  </li>
                ))}
              </ul>
            </details>
          )}
        </>
      )}
    </section>
  );
}

function Field(props: { id: keyof WhatIfForm; label: string; help?: string; form: WhatIfForm; set: (f: WhatIfForm) => void; invalid: boolean; multiline?: boolean; placeholder?: string }) {
  const id = `whatif-${props.id}`;
  const value = String(props.form[props.id]);
  const onInput = (e: Event) => props.set({ ...props.form, [props.id]: (e.target as HTMLInputElement | HTMLTextAreaElement).value });
  const describedBy = [props.help ? `${id}-help` : '', props.invalid ? 'whatif-form-error' : ''].filter(Boolean).join(' ') || undefined;
  const testid = props.id === 'spiffeId' ? 'whatif-principal' : `whatif-${props.id}`;
  return (
    <div class="uib-field">
      <label for={id}>{props.label}</label>
      {props.multiline ? (
        <textarea id={id} rows={3} value={value} onInput={onInput} aria-describedby={describedBy} aria-invalid={props.invalid || undefined} placeholder={props.placeholder} spellcheck={false} data-testid={testid} />
      ) : (
        <input id={id} value={value} onInput={onInput} aria-describedby={describedBy} aria-invalid={props.invalid || undefined} placeholder={props.placeholder} spellcheck={false} data-testid={testid} />
      )}
      {props.help && (
        <span class="help" id={`${id}-help`}>
          {props.help}
        </span>
      )}
    </div>
  );
}

function WhatIf() {
  const [form, setForm] = useState<WhatIfForm>(EMPTY_WHAT_IF);
  const [formError, setFormError] = useState<{ field: keyof WhatIfForm; error: string } | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const [answer, setAnswer] = useState<CheckAnswer | undefined>();
  const [more, setMore] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const built = buildCheckBody(form);
    setAnswer(undefined);
    setError(undefined);
    if ('error' in built) {
      setFormError(built);
      if (!['spiffeId', 'resource', 'action', 'attestor', 'attestorKind'].includes(built.field)) setMore(true);
      setTimeout(() => document.getElementById(`whatif-${built.field}`)?.focus(), 0);
      return;
    }
    setFormError(undefined);
    setBusy(true);
    try {
      setAnswer(await api.post<CheckAnswer>('/v1/admin/policy/check', built.body));
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError('CONSOLE_ERROR', String(err), 0));
    } finally {
      setBusy(false);
    }
  };
  const inv = (f: keyof WhatIfForm) => formError?.field === f;
  return (
    <section aria-labelledby="whatif-title">
      <h2 id="whatif-title">What if…</h2>
      <p class="help">Asks the loaded policy set whether a principal may do an action on a resource, without issuing anything. Nothing is changed (auditors may use it too).</p>
      <form onSubmit={submit} class="uib-form" data-testid="whatif-form" aria-labelledby="whatif-title" noValidate>
        <Field id="spiffeId" label="Principal (SPIFFE ID)" form={form} set={setForm} invalid={inv('spiffeId')} placeholder="spiffe://example.org/agent/reader" />
        <div class="uib-field">
          <label for="whatif-attestorKind">Attestor kind</label>
          <select id="whatif-attestorKind" value={form.attestorKind} onChange={(e) => setForm({ ...form, attestorKind: (e.target as HTMLSelectElement).value })} data-testid="whatif-attestor-kind">
            <option value="">none</option>
            {ATTESTOR_KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </div>
        <Field id="attestor" label="Attestor (its name in tessera.yaml)" form={form} set={setForm} invalid={inv('attestor')} placeholder="join_token" />
        <div class="uib-field">
          <label for="whatif-action">Action</label>
          <select id="whatif-action" value={form.action} onChange={(e) => setForm({ ...form, action: (e.target as HTMLSelectElement).value })} data-testid="whatif-action">
            {POLICY_ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        <Field id="resource" label="Resource" help="Type::id — Secret::prod/db/password, Role::postgres/readonly, Tool::github/create_issue, Route::openai" form={form} set={setForm} invalid={inv('resource')} placeholder="Secret::prod/db/password" />
        <details data-testid="whatif-more" class="uib-more" open={more} onToggle={(e) => setMore((e.target as HTMLDetailsElement).open)}>
          <summary>More about the principal and the context</summary>
          <Field id="attributes" label="Attributes" help="One key=value per line (attestor-proven attributes)" form={form} set={setForm} invalid={inv('attributes')} multiline />
          <Field id="scope" label="Token scope" help="Space-separated scope entries; empty: the token is not narrowed" form={form} set={setForm} invalid={inv('scope')} />
          <Field id="task" label="Task (txn)" form={form} set={setForm} invalid={inv('task')} />
          <Field id="user" label="On behalf of user" form={form} set={setForm} invalid={inv('user')} />
          <Field id="purpose" label="Purpose" form={form} set={setForm} invalid={inv('purpose')} />
          <div class="uib-field uib-check">
            <input id="whatif-dpop" type="checkbox" checked={form.dpop} onChange={(e) => setForm({ ...form, dpop: (e.target as HTMLInputElement).checked })} data-testid="whatif-dpop" />
            <label for="whatif-dpop">The token is DPoP-bound</label>
          </div>
          <Field id="context" label="Context (JSON)" help='e.g. {"args": {"repo": "tessera"}}' form={form} set={setForm} invalid={inv('context')} multiline />
        </details>
        {formError && (
          <p class="error" id="whatif-form-error" role="alert" data-testid="whatif-form-error">
            {formError.error}
          </p>
        )}
        <div>
          <button type="submit" class="primary" disabled={busy} data-testid="whatif-submit">
            {busy ? 'Checking…' : 'Check'}
          </button>
        </div>
      </form>
      <ErrorBox error={error} />
      {answer && (
        <div class="uib-result" data-testid="whatif-result" role="status">
          <p>
            Decision:{' '}
            <strong class={`badge ${answer.decision}`} data-testid="whatif-decision" data-decision={answer.decision}>
              {answer.decision}
            </strong>
          </p>
          <p data-testid="whatif-explanation">{explainDecision(answer)}</p>
          {answer.policies.length > 0 && (
            <table data-testid="whatif-policies">
              <caption>Deciding policies</caption>
              <thead>
                <tr>
                  <th scope="col">Policy</th>
                  <th scope="col">Effect</th>
                  <th scope="col">Where</th>
                </tr>
              </thead>
              <tbody>
                {answer.policies.map((p) => (
                  <tr key={p.id} data-testid="whatif-policy-row">
                    <td>
                      <code>{p.id}</code>
                    </td>
                    <td class={p.effect === 'permit' ? 'allow' : 'deny'}>{p.effect}</td>
                    <td>
                      <code>
                        {p.file}
                        {p.line ? `:${p.line}` : ''}
                      </code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {answer.errors.length > 0 && (
            <div data-testid="whatif-eval-errors">
              <h3>Evaluation errors</h3>
              <ul>
                {answer.errors.map((m, i) => (
                  <li key={i}>{m}</li>
                ))}
              </ul>
            </div>
          )}
        </div>
      )}
    </section>
  );
}

export function PoliciesPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Policies</h1>
      <StatusPanel />
      <WhatIf />
    </section>
  );
}
