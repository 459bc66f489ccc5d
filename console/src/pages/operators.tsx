import type { Route } from '../router.js';

/** Placeholder: the operators page (issue 11). */
export function OperatorsPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Operators</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
