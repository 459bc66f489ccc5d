/**
 * Rewrites portable `?` placeholders to PostgreSQL's `$1, $2, ...` (PostgreSQL §4.2.2), leaving
 * alone every `?` inside a string constant ('...', E'...' with backslash escapes, $tag$...$tag$),
 * a quoted identifier ("..."), or a comment (-- to end of line, nested /* ... *\/) — the lexical
 * rules of PostgreSQL §4.1.2 and §4.1.5. Pure; results are cached per SQL text.
 */
const cache = new Map<string, { text: string; count: number }>();
const IDENT_CHAR = /[A-Za-z0-9_$]/;

export function toPgPlaceholders(sql: string): { text: string; count: number } {
  const hit = cache.get(sql);
  if (hit) return hit;
  const result = convert(sql);
  if (cache.size > 1000) cache.clear();
  cache.set(sql, result);
  return result;
}

function convert(sql: string): { text: string; count: number } {
  let out = '';
  let n = 0;
  let i = 0;
  const len = sql.length;
  while (i < len) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === '?') {
      out += `$${++n}`;
      i++;
      continue;
    }
    let end = i + 1;
    if (c === "'") {
      const prev = sql[i - 1];
      const escapes = (prev === 'E' || prev === 'e') && !IDENT_CHAR.test(sql[i - 2] ?? ' ');
      end = skipQuoted(sql, i, "'", escapes);
    } else if (c === '"') {
      end = skipQuoted(sql, i, '"', false);
    } else if (c === '-' && next === '-') {
      const nl = sql.indexOf('\n', i);
      end = nl === -1 ? len : nl + 1;
    } else if (c === '/' && next === '*') {
      end = skipBlockComment(sql, i);
    } else if (c === '$' && !IDENT_CHAR.test(sql[i - 1] ?? ' ')) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 130));
      if (m) {
        const tag = m[0];
        const close = sql.indexOf(tag, i + tag.length);
        end = close === -1 ? len : close + tag.length;
      }
    }
    out += sql.slice(i, end);
    i = end;
  }
  return { text: out, count: n };
}

/** Index just past the closing quote; a doubled quote is an escaped one. */
function skipQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return sql.length;
}

function skipBlockComment(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else {
      i++;
    }
  }
  return sql.length;
}
