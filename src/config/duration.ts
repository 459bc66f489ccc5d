/**
 * Parses `90`, `"90s"`, `"5m"`, `"1h"`, `"7d"`, `"250ms"` into milliseconds; null when malformed
 * or beyond Number.MAX_SAFE_INTEGER ms (no later date arithmetic may lose precision or overflow).
 */
export function parseDuration(input: string | number): number | null {
  const ms = parseDurationUnbounded(input);
  return ms !== null && Number.isSafeInteger(ms) ? ms : null;
}

function parseDurationUnbounded(input: string | number): number | null {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? Math.round(input * 1000) : null;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(input.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1000;
  return Math.round(n * factor);
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
