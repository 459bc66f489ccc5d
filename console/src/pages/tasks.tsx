import type { Route } from '../router.js';

/** Placeholder: the tasks page (issue 11). */
export function TasksPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Tasks</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
