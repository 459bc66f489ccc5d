import type { Route } from '../router.js';

/** Placeholder: the overview page (issue 11). */
export function OverviewPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Overview</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
