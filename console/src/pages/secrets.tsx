/**
 * Secrets (issue 11): METADATA ONLY, from `GET /v1/admin/secrets?prefix=` — path, current
 * version, mode, owner, rotation period and when the next rotation is due (badge: ok / due soon /
 * overdue). There is deliberately no code path here (or anywhere in the console) that fetches a
 * value: `GET /v1/admin/secrets/<path>` is never called (test/console/no-secret-values.test.ts),
 * and the server refuses it to a console session anyway (TESSERA_CONSOLE_SECRET_HIDDEN).
 * Browse by prefix (breadcrumbs, sub-folders); at most PAGE_SIZE rows in the DOM.
 *
 * data-testids: secrets-filters, secrets-prefix, secrets-apply, secrets-rotation, secrets-crumbs,
 * secrets-crumb, secrets-folders, secrets-folder, secrets-loading, secrets-empty, secrets-truncated,
 * secrets-table, secret-row (data-path), secret-path, secret-version, secret-mode,
 * secret-rotation-period, secret-due, secret-rotation (data-state none|ok|due_soon|overdue),
 * secrets-pager (-prev, -next, -page), error, error-code.
 */
import { useEffect, useState } from 'preact/hooks';
import { qs } from '../api.js';
import type { Route } from '../router.js';
import { navigate } from '../router.js';
import { useApi, useNow } from '../hooks.js';
import { useLive } from '../live.js';
import { duration, when } from '../format.js';
import { ErrorBox } from '../components/error-box.js';
import { Countdown } from '../components/countdown.js';
import { Link } from '../components/link.js';
import { UibPager, pageSlice } from '../components/uib-pager.js';
import { childFolders, cleanPrefix, crumbs, rotationState, type RotationState, type SecretMeta } from '../lib/secrets-model.js';
import { toIso } from '../lib/time.js';

const PAGE_SIZE = 100;
/** The server's maximum per list call. */
const LIST_LIMIT = 1000;

const ROTATION_LABEL: Record<RotationState, string> = { none: 'no rotation period', ok: 'rotation ok', due_soon: 'rotation due soon', overdue: 'rotation overdue' };
const ROTATION_CLASS: Record<RotationState, string> = { none: 'muted', ok: 'ok', due_soon: 'warn', overdue: 'bad' };

export function SecretsPage({ route }: { route: Route }) {
  const prefix = route.query.get('prefix') ?? '';
  const rotation = (route.query.get('rotation') ?? '') as '' | RotationState | 'due';
  const [draft, setDraft] = useState(prefix);
  const [draftRotation, setDraftRotation] = useState<string>(rotation);
  const [problem, setProblem] = useState<string | undefined>();
  const [page, setPage] = useState(1);
  const now = useNow();
  // The URL changed (a crumb, a folder, back/forward): the form and the paging follow it.
  useEffect(() => {
    setDraft(prefix);
    setDraftRotation(rotation);
    setPage(1);
  }, [prefix, rotation]);
  const list = useApi<{ secrets: SecretMeta[]; truncated: boolean }>(`/v1/admin/secrets${qs({ prefix, limit: LIST_LIMIT })}`);
  useLive(['secret.'], list.reload);

  const go = (p: string, rot: string = rotation) => {
    setPage(1);
    setDraft(p);
    navigate(`/secrets${qs({ prefix: p, rotation: rot })}`, true);
  };
  const apply = (e: Event) => {
    e.preventDefault();
    const c = cleanPrefix(draft);
    if ('error' in c) {
      setProblem(c.error);
      return;
    }
    setProblem(undefined);
    go(c.prefix, draftRotation);
  };

  const all = list.data?.secrets ?? [];
  const shown = rotation ? all.filter((s) => {
    const st = rotationState(s, now);
    return rotation === 'due' ? st === 'due_soon' || st === 'overdue' : st === rotation;
  }) : all;
  const { rows, pages, page: p } = pageSlice(shown, page, PAGE_SIZE);
  const folders = childFolders(all.map((s) => s.path), prefix);
  const overdue = all.filter((s) => rotationState(s, now) === 'overdue').length;

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Secrets</h1>
      <p class="help">Metadata only. Secret values are never shown in the console, not even to admins; use <code>tessera kv get</code> with an admin token where a value is truly needed.</p>
      <form class="inline" onSubmit={apply} data-testid="secrets-filters" aria-label="Browse secrets">
        <div>
          <label for="secrets-prefix">Path prefix</label>
          <input id="secrets-prefix" class="uib-wide" value={draft} placeholder="e.g. prod/db" aria-describedby={problem ? 'secrets-prefix-problem' : undefined} aria-invalid={problem ? true : undefined} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} data-testid="secrets-prefix" />
        </div>
        <div>
          <label for="secrets-rotation">Rotation</label>
          <select id="secrets-rotation" value={draftRotation} onChange={(e) => setDraftRotation((e.target as HTMLSelectElement).value)} data-testid="secrets-rotation">
            <option value="">any</option>
            <option value="due">due soon or overdue</option>
            <option value="overdue">overdue</option>
            <option value="due_soon">due soon</option>
            <option value="ok">ok</option>
            <option value="none">no rotation period</option>
          </select>
        </div>
        <button type="submit" class="primary" data-testid="secrets-apply">
          Show
        </button>
      </form>
      {problem && (
        <p class="error" id="secrets-prefix-problem" role="alert">
          {problem}
        </p>
      )}
      <nav aria-label="Secret path" class="uib-crumbs" data-testid="secrets-crumbs">
        <Link href="/secrets" data-testid="secrets-crumb">
          all secrets
        </Link>
        {crumbs(prefix).map((c) => (
          <span key={c.prefix}>
            {' / '}
            <Link href={`/secrets${qs({ prefix: c.prefix })}`} current={c.prefix === prefix} data-testid="secrets-crumb">
              {c.label}
            </Link>
          </span>
        ))}
      </nav>
      <ErrorBox error={list.error} />
      {list.loading && !list.data && (
        <p class="loading" role="status" data-testid="secrets-loading">
          Loading secrets…
        </p>
      )}
      {list.data && (
        <p class="muted" data-testid="secrets-summary">
          {all.length} secret{all.length === 1 ? '' : 's'}
          {prefix ? ` under ${prefix}` : ''}
          {overdue > 0 && (
            <>
              {' · '}
              <span class="badge bad">{overdue} overdue for rotation</span>
            </>
          )}
        </p>
      )}
      {list.data?.truncated && (
        <p class="notice" data-testid="secrets-truncated">
          Only the first {LIST_LIMIT} secrets under this prefix are listed; choose a longer prefix (a folder below) to see the rest.
        </p>
      )}
      {folders.length > 0 && (
        <div>
          <h2 id="folders-title">Folders</h2>
          <ul class="uib-folders" aria-labelledby="folders-title" data-testid="secrets-folders">
            {folders.map((f) => (
              <li key={f.prefix}>
                <Link href={`/secrets${qs({ prefix: f.prefix, rotation })}`} data-testid="secrets-folder">
                  {f.name}/
                </Link>{' '}
                <span class="muted">({f.count})</span>
              </li>
            ))}
          </ul>
        </div>
      )}
      {list.data && shown.length === 0 && (
        <p class="muted" data-testid="secrets-empty">
          {all.length ? 'No secret here matches this rotation filter.' : prefix ? `No secrets under ${prefix}.` : 'No secrets yet. Write one with tessera kv put <path> <value>.'}
        </p>
      )}
      {rows.length > 0 && (
        <div class="uib-scroll">
          <table data-testid="secrets-table">
            <caption class="uib-sr">Secrets{prefix ? ` under ${prefix}` : ''} (metadata only)</caption>
            <thead>
              <tr>
                <th scope="col">Path</th>
                <th scope="col" class="num">
                  Versions
                </th>
                <th scope="col">Mode</th>
                <th scope="col">Rotation period</th>
                <th scope="col">Rotation due</th>
                <th scope="col">Status</th>
                <th scope="col">Owner</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => {
                const st = rotationState(s, now);
                const due = toIso(s.rotation_due_at);
                return (
                  <tr key={s.path} data-testid="secret-row" data-path={s.path}>
                    <td>
                      <code data-testid="secret-path">{s.path}</code>
                      {s.description && <div class="help">{s.description}</div>}
                    </td>
                    <td class="num" data-testid="secret-version">
                      {s.current_version}
                    </td>
                    <td>
                      <span class="badge" data-testid="secret-mode" title={s.mode === 'read' ? 'agents may read it if policy allows' : 'injected by the proxy/gateway, never returned to an agent'}>
                        {s.mode}
                      </span>
                    </td>
                    <td data-testid="secret-rotation-period">{s.rotation_period_s ? duration(s.rotation_period_s) : <span class="muted">—</span>}</td>
                    <td data-testid="secret-due">
                      {due ? (
                        <>
                          {when(due)}
                          <br />
                          {st === 'overdue' ? <span class="bad">overdue by {duration((now - Date.parse(due)) / 1000)}</span> : <Countdown until={due} />}
                        </>
                      ) : (
                        <span class="muted">—</span>
                      )}
                    </td>
                    <td>
                      <span class={`badge ${ROTATION_CLASS[st]}`} data-testid="secret-rotation" data-state={st}>
                        {ROTATION_LABEL[st]}
                      </span>
                    </td>
                    <td>{s.owner ?? <span class="muted">—</span>}</td>
                    <td>{when(toIso(s.updated_at))}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {pages > 1 && (
        <UibPager label="Secrets" testid="secrets-pager" page={p} summary={`${pages} pages of ${PAGE_SIZE}`} hasPrev={p > 1} hasNext={p < pages} onPrev={() => setPage(p - 1)} onNext={() => setPage(p + 1)} />
      )}
    </section>
  );
}
