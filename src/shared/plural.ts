/**
 * Counts in messages, spelled right for every number: `count(1, 'signed checkpoint')` →
 * "1 signed checkpoint", `count(2, 'policy', 'policies')` → "2 policies". The one helper for every
 * message and output line that puts a number before a noun (no "(s)", no "1 events").
 * `n` is shown as given (a count from a server response is printed as it came).
 */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

/** The noun alone, for sentences that put the number elsewhere ("3 of 4 cases failed"). */
export function noun(n: number, singular: string, plural = `${singular}s`): string {
  return n === 1 ? singular : plural;
}

/** A verb that agrees with a count: `verb(1, 'is', 'are')` → "is". */
export const verb = noun;
