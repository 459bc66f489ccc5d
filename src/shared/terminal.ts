/**
 * Text for a person's terminal. Strings that come from storage or from the server (audit
 * events, tool names, agent attributes, error messages that echo a request) may carry what an
 * agent wrote; printed raw, control characters would let it move the cursor, rewrite or
 * forge lines (ANSI/ECMA-48 escape sequences), reorder text (Unicode bidi overrides, "Trojan
 * Source", CVE-2021-42574) or hide text (zero-width and tag characters).
 *
 * `escapeTerminal` makes every such character visible as an escape (`\x1b`, `\n`, `\u202e`,
 * `\u{e0041}`), so the operator sees that it is there and the terminal never acts on it.
 * `terminalJson` is JSON.stringify whose output also never carries them raw: still valid JSON
 * that decodes to the same values (RFC 8259 §7 allows `\uXXXX` for any character).
 *
 * Escaped: Unicode general categories Cc (C0, DEL, C1), Cf (format: bidi controls U+202A–E and
 * U+2066–9, marks U+200E/F and U+061C, zero-width U+200B–D, U+2060, U+FEFF, tags
 * U+E0000–7F, soft hyphen), Zl/Zp (U+2028/U+2029) and lone surrogates. A backslash is left as
 * is, so ordinary text reads unchanged.
 */

/** The characters escaped for a terminal (`u` flag: a lone surrogate is one code point). */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
/** The same minus C0 and lone surrogates, which JSON.stringify already escapes. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu;

const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(ch: string): string {
  const short = SHORT[ch];
  if (short) return short;
  const cp = ch.codePointAt(0)!;
  if (cp <= 0xff) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\u{${cp.toString(16)}}`;
}

/**
 * Escapes every control, format and separator character of `s` visibly. `keepNewlines` leaves
 * `\n` alone: for a whole block of output whose line breaks are the program's own (the values
 * inside it must have been escaped without it).
 */
export function escapeTerminal(s: string, options: { keepNewlines?: boolean } = {}): string {
  return s.replace(UNSAFE, (ch) => (options.keepNewlines && ch === '\n' ? ch : visible(ch)));
}

/** `\uXXXX` (a surrogate pair for astral characters), the JSON escape of one character. */
function jsonEscape(ch: string): string {
  let out = '';
  for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/**
 * JSON.stringify(value, null, space) with DEL, C1, format and separator characters written as
 * `\uXXXX` escapes. Such characters can only occur inside JSON strings, where the escape means
 * the same character: the result parses to exactly the same value.
 */
export function terminalJson(value: unknown, space?: number): string {
  const text = JSON.stringify(value, null, space);
  return text === undefined ? 'null' : text.replace(UNSAFE_IN_JSON, jsonEscape);
}
