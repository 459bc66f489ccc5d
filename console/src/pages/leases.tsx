import type { Route } from '../router.js';

/** Placeholder: the leases page (issue 11). */
export function LeasesPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Leases</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
