/** Previous / next controls for a paged list (ui-b pages: leases, secrets, exposure, audit). */
export function UibPager(props: { label: string; page: number; hasPrev: boolean; hasNext: boolean; onPrev: () => void; onNext: () => void; testid: string; summary?: string }) {
  return (
    <nav class="uib-pager" aria-label={`${props.label} pages`} data-testid={props.testid}>
      <button type="button" onClick={props.onPrev} disabled={!props.hasPrev} data-testid={`${props.testid}-prev`}>
        ← Previous
      </button>
      <span aria-live="polite" data-testid={`${props.testid}-page`}>
        Page {props.page}
        {props.summary ? ` · ${props.summary}` : ''}
      </span>
      <button type="button" onClick={props.onNext} disabled={!props.hasNext} data-testid={`${props.testid}-next`}>
        Next →
      </button>
    </nav>
  );
}

/** Client-side paging of an array already in memory: the slice for `page` (1-based). */
export function pageSlice<T>(items: readonly T[], page: number, size: number): { rows: readonly T[]; pages: number; page: number } {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const p = Math.min(Math.max(1, page), pages);
  return { rows: items.slice((p - 1) * size, p * size), pages, page: p };
}

/** The reason shown next to every disabled write control for an auditor. */
export const AUDITOR_REASON = 'Your operator token has the auditor role: it may read everything here but change nothing. Sign in with an admin token to act.';

/** A visible note explaining why the page's actions are disabled (`id` is referenced by aria-describedby). */
export function UibReadOnlyNote({ id }: { id: string }) {
  return (
    <p class="notice" id={id} data-testid="readonly-note">
      {AUDITOR_REASON}
    </p>
  );
}
