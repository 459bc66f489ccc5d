/**
 * Operator tokens (issue 11 item 2, the console side): list, create (name, role, lifetime) with
 * the new value shown ONCE, and revoke. Changes need the admin role; auditors see the list only.
 * Source: `GET/POST /v1/admin/operator-tokens`, `DELETE /v1/admin/operator-tokens/:id`.
 *
 * data-testids: operators-table · operator-row (`data-id`, `data-role`, `data-state` =
 * active|revoked|expired, `data-current`) · operator-current (the "you" badge) · operator-revoke
 * (button per active row) · operators-empty · operators-loading · operators-readonly (auditor
 * notice) · create-form · create-name · create-role · create-ttl · create-submit · new-token
 * (the box showing the value once) · new-token-value (readonly input) · new-token-copy ·
 * new-token-copied · new-token-done · confirm-dialog / confirm-button · error.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { useApi } from '../hooks.js';
import { useLive } from '../live.js';
import type { Route } from '../router.js';
import { useCanWrite } from '../session.js';
import { when } from '../format.js';
import { ErrorBox } from '../components/error-box.js';
import { Confirm } from '../components/confirm.js';
import { Countdown } from '../components/countdown.js';
import { kindIn } from '../lib/events.js';

export interface OperatorToken {
  id: string;
  name: string;
  role: 'admin' | 'auditor';
  created_at: string;
  expires_at: string | null;
  created_by: string;
  revoked_at: string | null;
  current: boolean;
}

interface Created {
  id: string;
  name: string;
  role: 'admin' | 'auditor';
  expires_at: string | null;
  token: string;
}

/** Lifetimes offered (the API takes `30d`/`12h`…, default 90d, max 365d). */
const TTLS: { value: string; label: string }[] = [
  { value: '1h', label: '1 hour' },
  { value: '12h', label: '12 hours' },
  { value: '1d', label: '1 day' },
  { value: '7d', label: '7 days' },
  { value: '30d', label: '30 days' },
  { value: '90d', label: '90 days' },
  { value: '365d', label: '365 days' },
];

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

function stateOf(t: OperatorToken, now: number): 'active' | 'revoked' | 'expired' {
  if (t.revoked_at) return 'revoked';
  if (t.expires_at && new Date(t.expires_at).getTime() <= now) return 'expired';
  return 'active';
}

export function OperatorsPage(_props: { route: Route }) {
  const canWrite = useCanWrite();
  const { data, error, loading, reload } = useApi<{ tokens: OperatorToken[] }>('/v1/admin/operator-tokens');
  useLive(kindIn(['admin_token.', 'console.session_']), reload);
  const [revoking, setRevoking] = useState<OperatorToken | undefined>();
  const [created, setCreated] = useState<Created | undefined>();
  const now = Date.now();
  const tokens = data?.tokens ?? [];
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Operators</h1>
      <p class="help">
        Operator tokens sign in to this console and call the operator API (<code>tessera operator-token</code> does the same from a shell). <strong>admin</strong> may change
        everything; <strong>auditor</strong> may read but not change anything. The console never shows a token's value except once, right after it is created.
      </p>
      {!canWrite && (
        <p class="notice" data-testid="operators-readonly">
          Your token has the auditor role: you can see the operators but not create or revoke tokens.
        </p>
      )}
      <ErrorBox error={error} />

      {created && <NewToken created={created} onDone={() => setCreated(undefined)} />}
      {canWrite && !created && (
        <CreateForm
          onCreated={(c) => {
            setCreated(c);
            reload();
          }}
        />
      )}

      <h2 id="tokens-title">Tokens</h2>
      {tokens.length > 0 ? (
        <table data-testid="operators-table" aria-labelledby="tokens-title">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">By</th>
              <th scope="col">Expires in</th>
              <th scope="col">State</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => {
              const state = stateOf(t, now);
              return (
                <tr key={t.id} data-testid="operator-row" data-id={t.id} data-role={t.role} data-state={state} data-current={String(t.current)}>
                  <td>
                    {t.name}
                    {t.current && (
                      <span class="badge uia-you" data-testid="operator-current">
                        you
                      </span>
                    )}
                  </td>
                  <td>
                    <code>{t.id}</code>
                  </td>
                  <td>
                    <span class={`role role-${t.role}`}>{t.role}</span>
                  </td>
                  <td>{when(t.created_at)}</td>
                  <td class="wrap">{t.created_by}</td>
                  <td>{state === 'active' ? <Countdown until={t.expires_at} /> : '—'}</td>
                  <td>{state === 'revoked' ? <span class="bad">revoked {when(t.revoked_at)}</span> : state === 'expired' ? <span class="muted">expired</span> : <span class="ok">active</span>}</td>
                  <td>
                    {canWrite && state === 'active' && (
                      <button type="button" class="danger" onClick={() => setRevoking(t)} aria-label={`Revoke operator token ${t.name} (${t.id})`} data-testid="operator-revoke">
                        Revoke…
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : loading ? (
        <p class="loading" role="status" data-testid="operators-loading">
          Loading operator tokens…
        </p>
      ) : (
        !error && (
          <p class="muted" data-testid="operators-empty">
            No operator token.
          </p>
        )
      )}

      {revoking && (
        <Confirm
          title={`Revoke operator token ${revoking.name}?`}
          confirmLabel="Revoke the token"
          danger
          onClose={() => setRevoking(undefined)}
          onConfirm={async () => {
            await api.del(`/v1/admin/operator-tokens/${encodeURIComponent(revoking.id)}`);
            reload();
          }}
        >
          <p>
            <code>{revoking.id}</code> ({revoking.role}) stops working at once, and every console session signed in with it ends.
            {revoking.current && <strong> This is the token you are signed in with: you will be signed out.</strong>}
          </p>
          <p>This cannot be undone; create a new token if it is needed again.</p>
        </Confirm>
      )}
    </section>
  );
}

function CreateForm({ onCreated }: { onCreated: (c: Created) => void }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState<'admin' | 'auditor'>('auditor');
  const [ttl, setTtl] = useState('90d');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const nameOk = NAME.test(name);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!nameOk) return;
    setBusy(true);
    setError(undefined);
    try {
      const c = await api.post<Created>('/v1/admin/operator-tokens', { name, role, ttl });
      setName('');
      onCreated(c);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError('CONSOLE_ERROR', String(err), 0));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h2 id="create-title">Create a token</h2>
      <form class="inline" onSubmit={submit} aria-labelledby="create-title" data-testid="create-form">
        <div>
          <label for="create-name">Name</label>
          <input
            id="create-name"
            required
            maxLength={64}
            pattern="[A-Za-z0-9._@\-]{1,64}"
            aria-describedby="create-name-help"
            aria-invalid={name !== '' && !nameOk}
            value={name}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
            data-testid="create-name"
          />
        </div>
        <div>
          <label for="create-role">Role</label>
          <select id="create-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as 'admin' | 'auditor')} data-testid="create-role">
            <option value="auditor">auditor (read only)</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <div>
          <label for="create-ttl">Lifetime</label>
          <select id="create-ttl" value={ttl} onChange={(e) => setTtl((e.target as HTMLSelectElement).value)} data-testid="create-ttl">
            {TTLS.map((t) => (
              <option key={t.value} value={t.value}>
                {t.label}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" class="primary" disabled={busy || !nameOk} data-testid="create-submit">
          {busy ? 'Creating…' : 'Create token'}
        </button>
      </form>
      <p id="create-name-help" class="help">
        Name: 1–64 letters, digits or <code>. _ @ -</code>, unique among active tokens (e.g. <code>alice@ops</code>).
      </p>
      <ErrorBox error={error} />
    </>
  );
}

/** The new token's value, shown once; cleared from memory when dismissed or the page is left. */
function NewToken({ created, onDone }: { created: Created; onDone: () => void }) {
  const [copied, setCopied] = useState<'yes' | 'failed' | undefined>();
  const value = useRef<HTMLInputElement>(null);
  // The form that had focus is gone: move focus to the value (selected, ready to copy).
  useEffect(() => value.current?.focus(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.token);
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
  };
  return (
    <div class="uia-newtoken" role="region" aria-labelledby="new-token-title" data-testid="new-token">
      <h2 id="new-token-title">
        Token <code>{created.name}</code> created ({created.role})
      </h2>
      <p class="warn">
        <strong>Copy it now: this is the only time Tessera shows it.</strong> Only its hash is stored; if it is lost, revoke it and create another. Store it in a password manager or
        secret store, never in a chat or a ticket.
      </p>
      <label for="new-token-value">Token value</label>
      <div class="uia-copyrow">
        <input ref={value} id="new-token-value" class="mono uia-wide" readOnly value={created.token} autocomplete="off" spellcheck={false} onFocus={(e) => (e.target as HTMLInputElement).select()} data-testid="new-token-value" />
        <button type="button" onClick={() => void copy()} data-testid="new-token-copy">
          Copy
        </button>
      </div>
      <p role="status" data-testid="new-token-copied">
        {copied === 'yes' ? 'Copied to the clipboard.' : copied === 'failed' ? 'The browser refused the clipboard: select the value and copy it by hand.' : ''}
      </p>
      <p class="muted">
        Id <code>{created.id}</code> · expires {created.expires_at ? when(created.expires_at) : 'never'}
      </p>
      <button type="button" class="primary" onClick={onDone} data-testid="new-token-done">
        I have stored it — hide the value
      </button>
    </div>
  );
}
