import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, setCsrfToken, setUnauthorizedHandler } from './api.js';
import { closeLive } from './live.js';
import { useRoute, navigate, type Route } from './router.js';
import { SessionContext, type SessionInfo } from './session.js';
import { Link } from './components/link.js';
import { ErrorBox } from './components/error-box.js';
import { SignIn } from './pages/signin.js';
import { OverviewPage } from './pages/overview.js';
import { AgentsPage } from './pages/agents.js';
import { TasksPage } from './pages/tasks.js';
import { LeasesPage } from './pages/leases.js';
import { SecretsPage } from './pages/secrets.js';
import { PoliciesPage } from './pages/policies.js';
import { AuditPage } from './pages/audit.js';
import { ExposurePage } from './pages/exposure.js';
import { OperatorsPage } from './pages/operators.js';
import { DriftPage } from './pages/drift.js';

/** The pages, in navigation order; the first path segment selects one. */
const PAGES: { path: string; label: string; page: (p: { route: Route }) => preact.JSX.Element }[] = [
  { path: '/', label: 'Overview', page: OverviewPage },
  { path: '/agents', label: 'Agents', page: AgentsPage },
  { path: '/tasks', label: 'Tasks', page: TasksPage },
  { path: '/leases', label: 'Leases', page: LeasesPage },
  { path: '/secrets', label: 'Secrets', page: SecretsPage },
  { path: '/policies', label: 'Policies', page: PoliciesPage },
  { path: '/audit', label: 'Audit', page: AuditPage },
  { path: '/exposure', label: 'Exposure', page: ExposurePage },
  { path: '/drift', label: 'Drift', page: DriftPage },
  { path: '/operators', label: 'Operators', page: OperatorsPage },
];

function pageOf(path: string) {
  const first = `/${path.split('/')[1] ?? ''}`;
  return PAGES.find((p) => p.path === first) ?? (first === '/' ? PAGES[0] : undefined);
}

export function App() {
  const route = useRoute();
  const [session, setSession] = useState<SessionInfo | undefined>();
  const [checked, setChecked] = useState(false);
  const [notice, setNotice] = useState<string | undefined>();

  useEffect(() => {
    setUnauthorizedHandler(() => {
      closeLive();
      setCsrfToken(undefined);
      setSession((s) => {
        if (s) setNotice('Your session ended (signed out, expired, or its operator token was revoked). Sign in again.');
        return undefined;
      });
    });
    api.get<SessionInfo>('/v1/console/session').then(
      (s) => {
        setCsrfToken(s.csrf_token);
        setSession(s);
        setChecked(true);
      },
      () => setChecked(true),
    );
  }, []);

  if (!checked) return <p class="loading" role="status">Loading…</p>;
  if (!session) return <SignIn notice={notice} onSignedIn={(s) => { setNotice(undefined); setSession(s); }} />;

  const signOut = async () => {
    try {
      await api.del('/v1/console/session');
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) throw e;
    }
    closeLive();
    setCsrfToken(undefined);
    setSession(undefined);
    navigate('/', true);
  };

  const current = pageOf(route.path);
  const Page = current?.page;
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Tessera</span>
        <nav aria-label="Console">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <Link href={p.path} current={p === current} data-testid={`nav-${p.label.toLowerCase()}`}>
                  {p.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who" data-testid="operator">
          {session.operator.name} <span class={`role role-${session.operator.role}`}>{session.operator.role}</span>
        </span>
        <button type="button" onClick={() => void signOut()} data-testid="signout">
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {Page ? <Page route={route} /> : <ErrorBox error={new ApiError('CONSOLE_NOT_FOUND', `no console page ${route.path}`, 404)} />}
      </main>
    </SessionContext.Provider>
  );
}
