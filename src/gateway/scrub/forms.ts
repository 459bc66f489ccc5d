/**
 * The encoded forms of one secret value that the scrubber looks for (docs/gateway-scrubbing.md
 * "What is scrubbed"). Pure: no I/O.
 *
 * Every form is a `Literal`: a text plus whether ASCII letter case is irrelevant when matching
 * it. Three families:
 *  - **one encoding** of the value: plain, JSON-escaped (several ways, and twice), URL, hex,
 *    base64 and base64url (standalone and inside a longer stream);
 *  - **two encodings**: every one-encoding form (except plain) encoded once more with base64,
 *    base64url, hex, URL or JSON escaping (`base64-of-url`, `hex-of-base64`, ...);
 *  - **case-changed**: plain, JSON-escaped and URL forms match in any letter case (a tool that
 *    upper-cases its output); the hex, base64 and base64url forms of the value upper-cased and
 *    lower-cased as a whole are added, since their text is not a case change of the original's.
 * Hex digits (RFC 4648 §8), `%XX` (RFC 3986 §2.1) and `\uXXXX` (RFC 8259 §7) are matched in
 * either case; base64 is case-sensitive by nature.
 */

/** One encoding of the value. */
export type BaseForm = 'plain' | 'json-escaped' | 'base64' | 'base64url' | 'hex' | 'url';
/** The second encoding applied to a one-encoding form. */
export type OuterForm = 'json-escaped' | 'base64' | 'base64url' | 'hex' | 'url';
export type SecretForm = BaseForm | `${OuterForm}-of-${Exclude<BaseForm, 'plain'>}`;

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
 * value with only unreserved characters is the value itself) are removed by the caller, which
 * keeps the first: a text that is both a one-encoding and a two-encoding form is named after
 * the former.
 */
export function formsOf(value: string): Literal[] {
  const single = singleForms(value);
  const out: Literal[] = [...single];
  // Case-changed: the value upper- and lower-cased as a whole, in every one-encoding form (ASCII
  // case is already ignored by the ci forms; this adds hex and base64, and non-ASCII letters).
  for (const variant of new Set([value.toUpperCase(), value.toLowerCase()])) {
    if (variant === value) continue;
    for (const lit of singleForms(variant)) if (lit.form !== 'plain' || !/^[ -~]*$/.test(variant)) out.push(lit);
  }
  // Two encodings: each distinct one-encoding text encoded once more. The inner text also with
  // its hex digits in the other case (hex upper-cased, `%xx` lower-cased, `\uXXXX` upper-cased):
  // the second encoding is case-sensitive (base64) or turns the case into other bytes (hex).
  const inners = new Map<string, Exclude<BaseForm, 'plain'>>();
  for (const l of single) {
    if (l.form === 'plain') continue;
    const form = l.form as Exclude<BaseForm, 'plain'>;
    const other = form === 'hex' ? l.text.toUpperCase()
      : form === 'url' ? l.text.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())
        : form === 'json-escaped' ? l.text.replace(/\\u[0-9a-f]{4}/g, (m) => '\\u' + m.slice(2).toUpperCase()) : l.text;
    for (const t of [l.text, other]) if (!inners.has(t)) inners.set(t, form);
  }
  for (const [text, form] of inners) out.push(...outerForms(text, form));
  return out;
}

/** `text` (itself a form of the secret) encoded once more, every way the scrubber knows. */
function outerForms(text: string, inner: Exclude<BaseForm, 'plain'>): Literal[] {
  const bytes = Buffer.from(text, 'utf8');
  const out: Literal[] = [];
  const json = JSON.stringify(text).slice(1, -1);
  if (json !== text) out.push({ form: `json-escaped-of-${inner}`, text: json, ci: true });
  if (json.includes('/')) out.push({ form: `json-escaped-of-${inner}`, text: json.replace(/\//g, '\\/'), ci: true });
  for (const t of new Set([encodeURIComponent(text), formEncode(text)])) if (t !== text) out.push({ form: `url-of-${inner}`, text: t, ci: true });
  out.push({ form: `hex-of-${inner}`, text: bytes.toString('hex'), ci: true });
  const pad = padded(bytes);
  for (const alphabet of ['base64', 'base64url'] as const) {
    const std = bytes.toString(alphabet);
    const form = `${alphabet}-of-${inner}` as const;
    out.push({ form, text: std, ci: false });
    if (std.endsWith('=')) out.push({ form, text: std.replace(/=+$/, ''), ci: false });
    for (const offset of [0, 1, 2] as const) out.push({ form, text: coreOf(pad, bytes.length, offset, alphabet), ci: false });
  }
  return out;
}

/** The one-encoding forms of `value`. */
function singleForms(value: string): Literal[] {
  const bytes = Buffer.from(value, 'utf8');
  // Plain: any letter case (a tool that upper- or lower-cases what it prints).
  const out: Literal[] = [{ form: 'plain', text: value, ci: true }];

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
  const everyChar = unicodeEscapeAll(value);
  out.push({ form: 'json-escaped', text: everyChar, ci: true }, { form: 'json-escaped', text: JSON.stringify(everyChar).slice(1, -1), ci: true });

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
