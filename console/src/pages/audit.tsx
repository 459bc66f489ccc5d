import type { Route } from '../router.js';

/** Placeholder: the audit page (issue 11). */
export function AuditPage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Audit</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
