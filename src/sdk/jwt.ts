/**
 * Local, UNVERIFIED decoding of a JWS compact serialization (RFC 7515 §7.1): header and
 * payload only. Used to read `exp`/`jti` for scheduling and display — never to make a trust
 * decision. The signature segment is deliberately dropped and never returned.
 */
export interface DecodedJwt {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

export function looksLikeJwt(value: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value.trim());
}

function decodeSegment(segment: string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new Error(`the token ${what} is not base64url-encoded JSON`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error(`the token ${what} is not a JSON object`);
  return json as Record<string, unknown>;
}

/** Throws a plain Error (message without any token material) when the value is not a JWT. */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.trim().split('.');
  if (parts.length !== 3 || !looksLikeJwt(token)) {
    throw new Error(parts.length === 5 ? 'the token is an encrypted JWT (JWE); it cannot be inspected locally' : 'the value is not a JWT (expected three base64url segments separated by dots)');
  }
  return { header: decodeSegment(parts[0]!, 'header'), claims: decodeSegment(parts[1]!, 'payload') };
}
