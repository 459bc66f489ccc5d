/** Time values as the API sends them: RFC 3339 strings, or (older routes) epoch milliseconds. */

/** Epoch ms of an RFC 3339 string or an epoch-ms number; `undefined` for null/absent/invalid. */
export function toMs(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v !== '') {
    const t = Date.parse(v);
    return Number.isFinite(t) ? t : undefined;
  }
  return undefined;
}

/** The same as an RFC 3339 string (what `<Countdown>` and `when()` take), or undefined. */
export function toIso(v: unknown): string | undefined {
  const ms = toMs(v);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}
