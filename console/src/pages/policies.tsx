import type { Route } from '../router.js';

/** Placeholder: the policies page (issue 11). */
export function PoliciesPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Policies</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
