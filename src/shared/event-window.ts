/**
 * At most one audit event per key per window, without storms (docs/adr/0062-per-principal-limits.md,
 * docs/adr/0142-auth-failures-per-source.md): the first event of a key is written, the others
 * within `windowMs` of it are only counted, and the next one written after the window carries how
 * many were not (`suppressed`). Bounded: past 10 000 keys the oldest is forgotten (its next event
 * is then written, with the count lost: never a missing event, at worst a lower count).
 */
import type { Clock } from './clock.js';

export interface EventWindow {
  /**
   * An event of `key` now: `undefined` when one was written less than a window ago (this one is
   * counted), else the fields the written event carries in its details.
   */
  pass(key: string): { readonly suppressed: number; readonly window_s: number } | undefined;
}

const MAX_TRACKED = 10_000;

export function createEventWindow(clock: Clock, windowMs: number): EventWindow {
  const windowS = Math.round(windowMs / 1000);
  /** key → when the last event was written and the events since. Oldest first. */
  const last = new Map<string, { at: number; suppressed: number }>();
  return {
    pass(key) {
      const now = clock.now();
      const seen = last.get(key);
      if (seen && now - seen.at < windowMs) {
        seen.suppressed++;
        return undefined;
      }
      last.delete(key);
      if (last.size >= MAX_TRACKED) last.delete(last.keys().next().value!);
      last.set(key, { at: now, suppressed: 0 });
      return { suppressed: seen?.suppressed ?? 0, window_s: windowS };
    },
  };
}
