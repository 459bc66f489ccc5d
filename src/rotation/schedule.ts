/**
 * Pure scheduling rules of the rotation job (no I/O; times are epoch ms from the caller's Clock).
 *
 * - Due: a secret with a rotator and a rotation period is due at the creation of its current
 *   version + the period (the operator's own `kv put` restarts the period, as a rotation does).
 * - A failed attempt waits `backoff(failures)`: initial · 2^(failures−1), capped at `max`.
 * - The previous credential is retired at rotation time + the grace period.
 */
export interface RetryPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

export interface ScheduleRow {
  readonly periodMs: number | null;
  /** Creation time of the current version. */
  readonly versionCreatedAt: number;
  readonly failures: number;
  readonly nextAttemptAt: number | null;
}

/** When the current version is due for rotation, or null without a period. */
export function dueAt(row: Pick<ScheduleRow, 'periodMs' | 'versionCreatedAt'>): number | null {
  return row.periodMs === null ? null : row.versionCreatedAt + row.periodMs;
}

/** Whether the job should attempt this secret now: due, and past any backoff. */
export function shouldAttempt(row: ScheduleRow, now: number): boolean {
  const due = dueAt(row);
  if (due === null || due > now) return false;
  return row.failures === 0 || row.nextAttemptAt === null || row.nextAttemptAt <= now;
}

/** Delay before the next attempt after `failures` consecutive failures (≥ 1). */
export function backoffMs(failures: number, policy: RetryPolicy): number {
  const n = Math.max(1, Math.min(failures, 40));
  return Math.min(policy.maxMs, policy.initialMs * 2 ** (n - 1));
}

/** The next time anything happens for a secret: the rotation due time, a retry, or a retirement. */
export function nextEventAt(row: ScheduleRow & { retireAt: number | null }): number | null {
  const due = dueAt(row);
  const attempt = due === null ? null : row.failures > 0 && row.nextAttemptAt !== null ? Math.max(due, row.nextAttemptAt) : due;
  const candidates = [attempt, row.retireAt].filter((t): t is number => t !== null);
  return candidates.length ? Math.min(...candidates) : null;
}

/** Runs `fn` over `items` with at most `limit` at once; resolves when all settled (errors are `fn`'s to handle). */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
