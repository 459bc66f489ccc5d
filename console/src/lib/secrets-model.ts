/**
 * The secrets page's model (metadata only: `GET /v1/admin/secrets?prefix=`, src/secrets/routes.ts).
 * Nothing here handles a secret value: the list carries none, and the console never calls
 * `GET /v1/admin/secrets/<path>` (that route reads a value). Pure (test/console/secrets-model.test.ts).
 */
import { toMs } from './time.js';

/** One row of `GET /v1/admin/secrets` (times: RFC 3339 or epoch ms). */
export interface SecretMeta {
  readonly path: string;
  readonly current_version: number;
  readonly mode: string;
  readonly description?: string | null;
  readonly owner?: string | null;
  readonly rotation_period_s?: number | null;
  readonly rotation_due_at?: string | number | null;
  readonly rotation_overdue?: boolean;
  readonly created_at?: string | number;
  readonly updated_at?: string | number;
}

export type RotationState = 'none' | 'ok' | 'due_soon' | 'overdue';

/** "Due soon": within a tenth of the period, at most 7 days. */
export function dueSoonWindowMs(periodS: number | null | undefined): number {
  if (!periodS || periodS <= 0) return 0;
  return Math.min(7 * 86_400_000, periodS * 100);
}

/**
 * The rotation badge: `none` without a period; `overdue` when the server says so or the due
 * time has passed; `due_soon` inside the window before it; else `ok`.
 */
export function rotationState(m: SecretMeta, now: number): RotationState {
  const due = toMs(m.rotation_due_at);
  if (!m.rotation_period_s && due === undefined) return 'none';
  if (m.rotation_overdue === true || (due !== undefined && due <= now)) return 'overdue';
  if (due !== undefined && due - now <= dueSoonWindowMs(m.rotation_period_s)) return 'due_soon';
  return 'ok';
}

/**
 * A prefix as the server accepts it: segments of `A-Z a-z 0-9 . _ -` joined by `/`, no leading
 * or trailing `/`, no empty, `.` or `..` segment. Returns the cleaned prefix or an error text.
 */
export function cleanPrefix(raw: string): { prefix: string } | { error: string } {
  const p = raw.trim().replace(/^\/+|\/+$/g, '');
  if (p === '') return { prefix: '' };
  for (const seg of p.split('/')) {
    if (seg === '') return { error: 'a prefix has no empty segment ("//")' };
    if (seg === '.' || seg === '..') return { error: 'a prefix has no "." or ".." segment' };
    if (!/^[A-Za-z0-9._-]+$/.test(seg)) return { error: 'allowed characters are A-Z a-z 0-9 . _ - and "/" between segments' };
  }
  return { prefix: p };
}

/** Breadcrumbs of a prefix: `a/b/c` → `[{label:'a',prefix:'a'}, {label:'b',prefix:'a/b'}, …]`. */
export function crumbs(prefix: string): { label: string; prefix: string }[] {
  if (!prefix) return [];
  const parts = prefix.split('/');
  return parts.map((label, i) => ({ label, prefix: parts.slice(0, i + 1).join('/') }));
}

/**
 * The folders directly below `prefix` among the listed paths (to browse deeper), with the number
 * of secrets each holds in this listing.
 */
export function childFolders(paths: readonly string[], prefix: string): { name: string; prefix: string; count: number }[] {
  const base = prefix ? `${prefix}/` : '';
  const counts = new Map<string, number>();
  for (const p of paths) {
    if (!p.startsWith(base)) continue;
    const rest = p.slice(base.length);
    const i = rest.indexOf('/');
    if (i <= 0) continue;
    const name = rest.slice(0, i);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, count]) => ({ name, prefix: base + name, count }));
}
