/**
 * The console's session cookie: a strict reader of the `Cookie` request header (RFC 6265 §4.2,
 * §5.4) and the `Set-Cookie` values Tessera sends (RFC 6265 §4.1; `__Host-` prefix, RFC 6265bis
 * §4.1.3.2). Pure functions; no dependency.
 */

/** The cookie name without, and with, the `__Host-` prefix (used when the cookie is `Secure`). */
export const SESSION_COOKIE = 'tessera_session';
export const SECURE_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;

/** The longest Cookie header read (Node's default limit for all headers together is 16 KiB). */
export const MAX_COOKIE_HEADER = 16_384;
/** A session value: 32 random bytes, base64url without padding (43 characters). */
const SESSION_VALUE = /^[A-Za-z0-9_-]{43}$/;

/**
 * What the request says about the session cookie:
 * - `absent`: no cookie of that name;
 * - `one`: exactly one, well-formed;
 * - `ambiguous`: the name appears more than once (a second cookie planted for a narrower path or
 *   a parent domain: "cookie tossing"), or the header is over MAX_COOKIE_HEADER;
 * - `malformed`: one, but its value is not a session value Tessera could have issued.
 */
export type SessionCookie =
  | { readonly kind: 'absent' }
  | { readonly kind: 'one'; readonly value: string }
  | { readonly kind: 'ambiguous' }
  | { readonly kind: 'malformed' };

/**
 * Reads the session cookie `name` from a `Cookie` header (a string, or the list Node gives when
 * the header was repeated; both are joined as one list of pairs). Other cookies are skipped,
 * whatever their syntax; only the named one is judged. Linear in the header length.
 */
export function readSessionCookie(header: string | readonly string[] | undefined, name: string): SessionCookie {
  if (header === undefined) return { kind: 'absent' };
  const text = typeof header === 'string' ? header : header.join('; ');
  if (text.length > MAX_COOKIE_HEADER) return { kind: 'ambiguous' };
  let found: string | undefined;
  let count = 0;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    // RFC 6265 §5.2 step 4-5: whitespace around the name and the value is dropped.
    if (part.slice(0, eq).trim() !== name) continue;
    count += 1;
    found = part.slice(eq + 1).trim();
  }
  if (count === 0) return { kind: 'absent' };
  if (count > 1) return { kind: 'ambiguous' };
  return found !== undefined && SESSION_VALUE.test(found) ? { kind: 'one', value: found } : { kind: 'malformed' };
}

export interface CookieOptions {
  /** `Secure` and the `__Host-` prefix (Tessera serves TLS or `server.public_url` is https). */
  readonly secure: boolean;
}

/** The cookie name for these options. */
export function sessionCookieName(options: CookieOptions): string {
  return options.secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
}

/** `Set-Cookie` for a new session: HttpOnly, SameSite=Strict, Path=/, Max-Age in seconds, Secure when `secure`. */
export function sessionSetCookie(value: string, maxAgeS: number, options: CookieOptions): string {
  if (!SESSION_VALUE.test(value)) throw new RangeError('not a session value');
  return [`${sessionCookieName(options)}=${value}`, 'Path=/', `Max-Age=${Math.max(0, Math.floor(maxAgeS))}`, 'HttpOnly', 'SameSite=Strict', ...(options.secure ? ['Secure'] : [])].join('; ');
}

/** `Set-Cookie` that removes the session cookie (RFC 6265 §3.1: same name and path, expired). */
export function clearSessionCookie(options: CookieOptions): string {
  return [`${sessionCookieName(options)}=`, 'Path=/', 'Max-Age=0', 'Expires=Thu, 01 Jan 1970 00:00:00 GMT', 'HttpOnly', 'SameSite=Strict', ...(options.secure ? ['Secure'] : [])].join('; ');
}
