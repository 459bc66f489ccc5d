import type { Route } from '../router.js';

/** Placeholder: the exposure page (issue 11). */
export function ExposurePage(_props: { route: Route }) {
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Exposure</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
