/**
 * A lexer for one PostgreSQL statement template, faithful to the server's own lexer
 * (`src/backend/parser/scan.l`, PostgreSQL 13–17) in what decides safety: where quoted strings,
 * quoted identifiers, dollar quotes and comments begin and end, and so where a statement ends.
 * It is not a parser: it finds token boundaries, nothing more. Pure, no I/O.
 *
 * Rules mirrored from scan.l (PostgreSQL manual §4.1 "Lexical Structure"):
 * - identifiers `[A-Za-z\200-\377_][A-Za-z\200-\377_0-9$]*`: a `$` after a name continues the
 *   name (`grp$a$` is ONE identifier), it does not open a dollar quote;
 * - dollar quotes `$tag$ … $tag$` with a tag of `[A-Za-z\200-\377_][A-Za-z\200-\377_0-9]*` or
 *   empty; `$1` is a parameter, never a tag; the body ends at the first exact `$tag$`;
 * - strings `'…'` with `''` (standard_conforming_strings on: a backslash is an ordinary
 *   character — the engine's connections force it on), `E'…'` with backslash escapes,
 *   `B'…'`, `X'…'`, `N'…'`, `U&'…'`; the prefix counts only at the start of a token
 *   (`xE'…'` is the identifier `xE` then a standard string); a string followed by whitespace
 *   containing a newline and another `'` continues in the same mode (§4.1.2.1);
 * - quoted identifiers `"…"` and `U&"…"` with `""`, never empty;
 * - `--` comments to the end of the line, `/* … *\/` comments that nest.
 *
 * Where PostgreSQL versions disagree (a number run directly followed by `$`, `'` or `"`:
 * `1_000$a$`, `1E'…'`, `0x1F$…`) the lexer refuses instead of guessing. Control characters other
 * than tab, newline and carriage return, a NUL, and a backslash outside quotes are refused too.
 */

export type TokenKind = 'space' | 'comment' | 'word' | 'number' | 'string' | 'qident' | 'dollar' | 'placeholder' | 'semicolon' | 'other';

export interface Token {
  readonly kind: TokenKind;
  /** 0-based offsets into the statement, `end` exclusive. */
  readonly start: number;
  readonly end: number;
  /** For `placeholder`: the name between the braces. */
  readonly name?: string;
}

/** A lexical error at a 0-based offset. */
export class LexError extends Error {
  constructor(
    readonly offset: number,
    readonly why: string,
  ) {
    super(why);
  }
}

const isNewline = (c: string | undefined): boolean => c === '\n' || c === '\r';
const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || isNewline(c);
const isHorizSpace = (c: string | undefined): boolean => c === ' ' || c === '\t';
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
/** `[A-Za-z\200-\377_]`: in UTF-8 every non-ASCII code point is made of bytes ≥ 0x80. */
const isIdentStart = (c: string | undefined): boolean => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c >= '\u0080');
const isIdentCont = (c: string | undefined): boolean => isIdentStart(c) || isDigit(c) || c === '$';
const DOLLAR_TAG = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;
const PLACEHOLDER = /^\{\{\s*([a-z_]+)\s*\}\}/;

/**
 * After a closing quote at `i - 1`: the offset of the `'` that continues the string
 * (`{whitespace_with_newline}{quote}` in scan.l), or -1 when the string ends there.
 */
function continuation(s: string, i: number): number {
  let k = i;
  for (;;) {
    if (isHorizSpace(s[k])) k++;
    else if (s[k] === '-' && s[k + 1] === '-') while (k < s.length && !isNewline(s[k])) k++;
    else break;
  }
  if (!isNewline(s[k])) return -1;
  k++;
  for (;;) {
    if (isSpace(s[k])) {
      k++;
      continue;
    }
    if (s[k] === '-' && s[k + 1] === '-') {
      let m = k;
      while (m < s.length && !isNewline(s[m])) m++;
      if (m >= s.length) break; // a comment needs its newline to count here
      k = m + 1;
      continue;
    }
    break;
  }
  return s[k] === "'" ? k : -1;
}

/** A string opened by the quote at `open`; `escapes` for E'' strings. Returns its end. */
function stringEnd(s: string, open: number, escapes: boolean, tokenStart: number): number {
  let j = open + 1;
  for (;;) {
    if (j >= s.length) throw new LexError(tokenStart, 'an unterminated quoted string');
    const c = s[j];
    if (escapes && c === '\\') {
      if (j + 1 >= s.length) throw new LexError(tokenStart, 'an unterminated quoted string');
      j += 2;
      continue;
    }
    if (c === "'") {
      if (s[j + 1] === "'") {
        j += 2;
        continue;
      }
      const next = continuation(s, j + 1);
      if (next < 0) return j + 1;
      j = next + 1;
      continue;
    }
    j++;
  }
}

function quotedIdentEnd(s: string, open: number, tokenStart: number): number {
  let j = open + 1;
  for (;;) {
    if (j >= s.length) throw new LexError(tokenStart, 'an unterminated quoted identifier');
    if (s[j] === '"') {
      if (s[j + 1] === '"') {
        j += 2;
        continue;
      }
      break;
    }
    j++;
  }
  if (j === open + 1) throw new LexError(tokenStart, 'a zero-length quoted identifier ("")');
  return j + 1;
}

function blockCommentEnd(s: string, start: number): number {
  let depth = 0;
  let j = start + 2;
  for (;;) {
    if (j >= s.length) throw new LexError(start, 'an unterminated /* comment');
    if (s[j] === '/' && s[j + 1] === '*') {
      depth++;
      j += 2;
    } else if (s[j] === '*' && s[j + 1] === '/') {
      if (depth === 0) return j + 2;
      depth--;
      j += 2;
    } else j++;
  }
}

function lineCommentEnd(s: string, start: number): number {
  let j = start;
  while (j < s.length && !isNewline(s[j])) j++;
  return j;
}

/** A token that starts with an identifier character: a prefixed string, a quoted identifier, or a word. */
function wordToken(s: string, i: number): Token {
  const c = s[i]!;
  const lower = c.toLowerCase();
  if (s[i + 1] === "'" && 'ebxn'.includes(lower)) return { kind: 'string', start: i, end: stringEnd(s, i + 1, lower === 'e', i) };
  if (lower === 'u' && s[i + 1] === '&') {
    if (s[i + 2] === "'") return { kind: 'string', start: i, end: stringEnd(s, i + 2, false, i) };
    if (s[i + 2] === '"') return { kind: 'qident', start: i, end: quotedIdentEnd(s, i + 2, i) };
  }
  let j = i + 1;
  while (isIdentCont(s[j])) j++;
  return { kind: 'word', start: i, end: j };
}

function numberToken(s: string, i: number): Token {
  let j = i + 1;
  // Digits, then whatever PostgreSQL versions read as part of a number or as trailing junk
  // (`1.5e3`, `0x1F`, `1_000`, `12abc`): none of it can open a quote.
  while (isDigit(s[j]) || isIdentStart(s[j]) || s[j] === '.') j++;
  const next = s[j];
  if (next === '$' || next === "'" || next === '"') {
    throw new LexError(j, `a ${next === '$' ? '`$`' : 'quote'} right after a number, which PostgreSQL versions read differently; put a space before it`);
  }
  return { kind: 'number', start: i, end: j };
}

function dollarToken(s: string, i: number): Token {
  if (isDigit(s[i + 1])) throw new LexError(i, 'a `$n` parameter (templates take no bind parameters; use the {{...}} placeholders)');
  const m = DOLLAR_TAG.exec(s.slice(i));
  if (!m) throw new LexError(i, 'a stray `$` that opens no dollar quote');
  const tag = m[0];
  const end = s.indexOf(tag, i + tag.length);
  if (end < 0) throw new LexError(i, `an unterminated dollar-quoted string (no closing ${tag})`);
  return { kind: 'dollar', start: i, end: end + tag.length };
}

/** Splits `s` into tokens; throws `LexError` at the first lexical problem. */
export function lexStatement(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    const next = s[i + 1];
    let t: Token;
    if (c < ' ' && c !== '\t' && c !== '\n' && c !== '\r') throw new LexError(i, 'a control character');
    if (c === '\u007f') throw new LexError(i, 'a control character');
    if (isSpace(c)) {
      let j = i + 1;
      while (isSpace(s[j])) j++;
      t = { kind: 'space', start: i, end: j };
    } else if (c === '-' && next === '-') t = { kind: 'comment', start: i, end: lineCommentEnd(s, i) };
    else if (c === '/' && next === '*') t = { kind: 'comment', start: i, end: blockCommentEnd(s, i) };
    else if (c === '{' && next === '{') {
      const m = PLACEHOLDER.exec(s.slice(i));
      if (!m) throw new LexError(i, 'a `{{` that is not a placeholder such as {{name}}');
      t = { kind: 'placeholder', start: i, end: i + m[0].length, name: m[1]! };
    } else if (c === "'") t = { kind: 'string', start: i, end: stringEnd(s, i, false, i) };
    else if (c === '"') t = { kind: 'qident', start: i, end: quotedIdentEnd(s, i, i) };
    else if (isIdentStart(c)) t = wordToken(s, i);
    else if (isDigit(c)) t = numberToken(s, i);
    else if (c === '$') t = dollarToken(s, i);
    else if (c === ';') t = { kind: 'semicolon', start: i, end: i + 1 };
    else if (c === '\\') throw new LexError(i, 'a backslash outside quotes');
    else t = { kind: 'other', start: i, end: i + 1 };
    out.push(t);
    i = t.end;
  }
  return out;
}
