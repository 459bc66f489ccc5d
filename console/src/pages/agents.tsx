import type { Route } from '../router.js';

/** Placeholder: the agents page (issue 11). */
export function AgentsPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Agents</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
