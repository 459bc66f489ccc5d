/**
 * `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3, RFC 9728 §5.1) built from parameters
 * whose values may carry text Tessera did not write (a tool name in a scope, an error message
 * with "…"). Every value is made a valid quoted-string for its parameter, so a challenge can
 * never make Node refuse the header (ERR_INVALID_CHAR, which would answer 500):
 *
 * - `error_description`, `scope`: RFC 6750 §3 allows only %x20-21 / %x23-5B / %x5D-7E;
 *   anything else (quotes, backslashes, non-ASCII, controls) becomes "?" (and "…" becomes "...").
 * - other values (`realm`, `error`, `resource_metadata`): the same character set.
 *
 * `bearerChallenge({ error: 'invalid_token', resource_metadata: url })`
 *   → `Bearer error="invalid_token", resource_metadata="https://…"`.
 */
export function bearerChallenge(params: Readonly<Record<string, string | undefined>>): string {
  return challenge('Bearer', params);
}

/** A challenge of any scheme (`Bearer`, RFC 9449 §7.1 `DPoP`) with the same value rules. */
export function challenge(scheme: 'Bearer' | 'DPoP', params: Readonly<Record<string, string | undefined>>): string {
  const parts = Object.entries(params)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}="${challengeValue(v)}"`);
  return parts.length ? `${scheme} ${parts.join(', ')}` : scheme;
}

/** One value restricted to RFC 6750 §3's quoted-string characters (see above). */
export function challengeValue(value: string): string {
  return value.replace(/…/g, '...').replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?');
}
