import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, setCsrfToken } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import type { SessionInfo } from '../session.js';

/** Sign-in with an operator token (`tsr_admin_…`), or with the configured OIDC provider. */
export function SignIn({ onSignedIn, notice }: { onSignedIn: (s: SessionInfo) => void; notice?: string }) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const [oidc, setOidc] = useState(false);
  useEffect(() => {
    api.get<{ oidc: boolean }>('/v1/console/config').then((c) => setOidc(c.oidc), () => setOidc(false));
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const s = await api.post<SessionInfo>('/v1/console/session', { token: token.trim() });
      setToken('');
      setCsrfToken(s.csrf_token);
      onSignedIn(s);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <h1>Tessera console</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} data-testid="signin-form">
        <label for="token">Operator token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          aria-describedby="token-help"
        />
        <p id="token-help" class="help">
          A token printed by <code>tessera dev</code> or <code>tessera init</code>, or one made with <code>tessera operator-token create</code>. It is sent once and
          exchanged for a session cookie; the console never stores it.
        </p>
        <button type="submit" class="primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      {oidc && (
        <p>
          <a class="button" href="/v1/console/oidc/login" data-testid="oidc-login">
            Sign in with your identity provider
          </a>
        </p>
      )}
      <ErrorBox error={error} />
    </main>
  );
}
