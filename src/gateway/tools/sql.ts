/**
 * A lexical scan of a `postgres` tool statement, at config load. It does not parse SQL; it
 * only walks the lexical structures of PostgreSQL (docs §4.1 "Lexical Structure") that can hide
 * a `;` or a `$n`: '...' strings (with '' escapes), E'...' strings (with backslash escapes),
 * "..." identifiers, $tag$...$tag$ dollar quotes (§4.1.2.4), -- line comments and nested
 * /* *\/ block comments (§4.1.5). Outside those it collects the positional parameters `$n`
 * (§4.2.1) and refuses a `;` that is followed by anything but whitespace or comments.
 *
 * This is defence in depth: the statement also runs through the extended query protocol
 * (Parse/Bind/Execute, protocol §55.2.3), whose Parse message refuses more than one statement
 * ("cannot insert multiple commands into a prepared statement").
 */

export interface StatementInfo {
  /** Highest `$n` used (0 when none). */
  readonly maxParam: number;
  /** Every distinct `$n` used. */
  readonly params: ReadonlySet<number>;
}

const isIdentChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

/** Throws Error naming the problem and the character offset. */
export function scanStatement(sql: string): StatementInfo {
  const params = new Set<number>();
  let i = 0;
  let terminated = -1; // offset of a top-level ';'
  const n = sql.length;
  const at = (pos: number): string => `at offset ${pos}`;
  // Every branch advances i by at least one character, so the loop is bounded by n.
  while (i < n) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (terminated !== -1 && !/\s/.test(c) && !(c === '-' && next === '-') && !(c === '/' && next === '*')) {
      throw new Error(`only one statement is allowed: found text after ";" ${at(terminated)}`);
    }
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i + 2);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (sql[j] === '/' && sql[j + 1] === '*') { depth++; j += 2; }
        else if (sql[j] === '*' && sql[j + 1] === '/') { depth--; j += 2; }
        else j++;
      }
      if (depth > 0) throw new Error(`unterminated block comment ${at(i)}`);
      i = j;
    } else if (c === "'" || ((c === 'E' || c === 'e') && next === "'" && !isIdentChar(sql[i - 1]))) {
      const escapes = c !== "'";
      let j = escapes ? i + 2 : i + 1;
      let closed = false;
      while (j < n) {
        if (escapes && sql[j] === '\\') { j += 2; continue; }
        if (sql[j] === "'") {
          if (sql[j + 1] === "'") { j += 2; continue; }
          closed = true;
          j++;
          break;
        }
        j++;
      }
      if (!closed) throw new Error(`unterminated string literal ${at(i)}`);
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      let closed = false;
      while (j < n) {
        if (sql[j] === '"') {
          if (sql[j + 1] === '"') { j += 2; continue; }
          closed = true;
          j++;
          break;
        }
        j++;
      }
      if (!closed) throw new Error(`unterminated quoted identifier ${at(i)}`);
      i = j;
    } else if (c === '$' && !isIdentChar(sql[i - 1])) {
      const m = /^\$(\d+)/.exec(sql.slice(i, i + 12));
      const tag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 70));
      if (m) {
        const num = Number(m[1]);
        if (num < 1 || num > 65_535) throw new Error(`parameter $${m[1]} ${at(i)} is out of range`);
        params.add(num);
        i += m[0].length;
      } else if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        if (end === -1) throw new Error(`unterminated dollar-quoted string ${tag[0]} ${at(i)}`);
        i = end + tag[0].length;
      } else {
        i++;
      }
    } else if (c === ';') {
      terminated = i;
      i++;
    } else {
      i++;
    }
  }
  if (sql.slice(0, terminated === -1 ? n : terminated).trim() === '') throw new Error('the statement is empty');
  return { maxParam: params.size ? Math.max(...params) : 0, params };
}
