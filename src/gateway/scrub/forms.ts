/**
 * The encoded forms of one secret value that the scrubber looks for. Pure: no I/O.
 *
 * Every form is a `Literal`: the canonical text plus, per character, whether its case is
 * irrelevant (hex digits: RFC 4648 §8 and the `%XX` of RFC 3986 §2.1 are case-insensitive, and
 * so is the hex of a JSON `\uXXXX` escape, RFC 8259 §7). Plain text and base64 are matched
 * case-sensitively: a case change there is a different value.
 */

export type SecretForm = 'plain' | 'json-escaped' | 'base64' | 'base64url' | 'hex' | 'url';

export interface Literal {
  readonly form: SecretForm;
  readonly text: string;
  /**
   * Match ignoring ASCII letter case. True for the forms whose hex digits may be written in
   * either case (hex, `%XX`, `\uXXXX`); treating their other letters the same way can only
   * redact more (a case-changed secret), never less.
   */
  readonly ci: boolean;
}

/**
 * Base64 of `bytes` as it appears when the secret starts `offset` (0, 1 or 2) bytes into a
 * 3-byte group of some longer encoded stream (RFC 4648 §4). Only the characters whose 6 bits
 * come entirely from the secret are kept: the leading character(s) mix bits of the bytes before
 * it and the trailing one mixes bits of the bytes after it, so they differ from stream to stream.
 */
export function base64Core(bytes: Uint8Array, offset: 0 | 1 | 2, alphabet: 'base64' | 'base64url'): string {
  return coreOf(padded(bytes), bytes.length, offset, alphabet);
}

/** `bytes` with two zero bytes before and after, so every alignment is a subarray of one buffer. */
function padded(bytes: Uint8Array): Buffer {
  const buf = Buffer.alloc(bytes.length + 4);
  buf.set(bytes, 2);
  return buf;
}

function coreOf(pad: Buffer, n: number, offset: 0 | 1 | 2, alphabet: 'base64' | 'base64url'): string {
  // The secret starts `offset` bytes into the subarray; the zeros stand for unknown neighbours.
  const enc = pad.subarray(2 - offset).toString(alphabet);
  // Character i covers bits [6i, 6i+6); the secret covers bits [8·offset, 8·(offset+n)).
  const first = Math.ceil((8 * offset) / 6);
  const end = Math.floor((8 * (offset + n)) / 6); // exclusive
  return enc.slice(first, end);
}

function percentAll(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').toUpperCase().replace(/../g, '%$&');
}

function unicodeEscapeAll(value: string): string {
  const parts = new Array<string>(value.length);
  for (let i = 0; i < value.length; i++) parts[i] = '\\u' + value.charCodeAt(i).toString(16).padStart(4, '0');
  return parts.join('');
}

/** JSON string escaping (RFC 8259 §7) with every non-ASCII code unit as `\uXXXX` (Python's `ensure_ascii`). */
function jsonAsciiEscape(value: string): string {
  return JSON.stringify(value)
    .slice(1, -1)
    .replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** application/x-www-form-urlencoded (WHATWG URL §5.2): like URLSearchParams, space as "+". */
function formEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/%20/g, '+')
    .replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * Every form of `value` to scrub, most specific first. Duplicates (e.g. the URL encoding of a
 * value with only unreserved characters is the value itself) are removed by the caller.
 */
export function formsOf(value: string): Literal[] {
  const bytes = Buffer.from(value, 'utf8');
  const out: Literal[] = [{ form: 'plain', text: value, ci: false }];

  // JSON-escaped (RFC 8259 §7): as JSON.stringify writes it, with `\/` (PHP and others escape
  // the solidus), ASCII-only, every code unit as \uXXXX, and escaped twice (JSON text carried
  // inside a JSON string, e.g. a tool that returns a serialized object as text).
  // Fast paths (most secrets are random printable ASCII): skip variants equal to the value.
  if (!/^[\x20-\x7e]*$/.test(value) || /["\\/]/.test(value)) {
    const json = JSON.stringify(value).slice(1, -1);
    const ascii = jsonAsciiEscape(value);
    for (const t of [json, json.replace(/\//g, '\\/'), ascii, JSON.stringify(json).slice(1, -1), JSON.stringify(ascii).slice(1, -1)]) {
      if (t !== value) out.push({ form: 'json-escaped', text: t, ci: true });
    }
  }
  out.push({ form: 'json-escaped', text: unicodeEscapeAll(value), ci: true });

  // URL encodings (RFC 3986 §2.1): encodeURIComponent, the form encoding of
  // application/x-www-form-urlencoded (space as "+"), and every byte percent-encoded.
  if (!/^[A-Za-z0-9_.*-]*$/.test(value)) {
    for (const t of [encodeURIComponent(value), formEncode(value)]) if (t !== value) out.push({ form: 'url', text: t, ci: true });
  }
  out.push({ form: 'url', text: percentAll(bytes), ci: true });

  // Hex (RFC 4648 §8), either case.
  out.push({ form: 'hex', text: bytes.toString('hex'), ci: true });

  // Base64 and base64url (RFC 4648 §4, §5): the standalone encoding (with its padding or
  // trailing partial character), then the three alignment cores.
  // Standard alphabet first: a text valid in both alphabets is reported as `base64`.
  const std = bytes.toString('base64');
  const pad = padded(bytes);
  out.push({ form: 'base64', text: std, ci: false }, { form: 'base64', text: std.replace(/=+$/, ''), ci: false });
  for (const offset of [0, 1, 2] as const) out.push({ form: 'base64', text: coreOf(pad, bytes.length, offset, 'base64'), ci: false });
  out.push({ form: 'base64url', text: bytes.toString('base64url'), ci: false });
  for (const offset of [0, 1, 2] as const) out.push({ form: 'base64url', text: coreOf(pad, bytes.length, offset, 'base64url'), ci: false });
  return out;
}
