/**
 * Durations for people: `describeDuration(7_200_000)` → "2h", `5_400_000` → "1h 30m",
 * `1500` → "1s 500ms", `0` → "0s". The one helper for every duration a message or an output
 * line shows (never a bare millisecond count such as "7200000ms"). `maxParts` keeps only the
 * largest units (the CLI's "expires in 4m 59s"); the rest is dropped, not rounded.
 */
const UNITS: readonly (readonly [string, number])[] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]];

export function describeDuration(ms: number, maxParts = UNITS.length): string {
  if (!Number.isFinite(ms)) return String(ms);
  let rest = Math.round(Math.abs(ms));
  const parts: string[] = [];
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n}${unit}`);
  }
  return parts.length ? `${ms < 0 ? '-' : ''}${parts.slice(0, maxParts).join(' ')}` : '0s';
}
