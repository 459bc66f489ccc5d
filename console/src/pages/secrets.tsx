import type { Route } from '../router.js';

/** Placeholder: the secrets page (issue 11). */
export function SecretsPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Secrets</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
