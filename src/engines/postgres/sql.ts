import { fail } from '../../shared/errors.js';

/**
 * Safe SQL text for statements PostgreSQL cannot parameterise (utility statements such as
 * CREATE ROLE take no bind parameters). Identifiers are quoted like `quote_ident()` and values
 * like `quote_literal()` (PostgreSQL manual §9.4 "String Functions", §4.1.1/§4.1.2.1 on
 * identifier and string-constant syntax). Names are additionally restricted to strict charsets
 * at the API edge, so quoting is the second line of defence, not the only one.
 */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0')) throw fail('TESSERA_ENGINE_NAME_INVALID', 'an SQL identifier must be non-empty and contain no NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw fail('TESSERA_ENGINE_NAME_INVALID', 'an SQL literal must contain no NUL character');
  // Like quote_literal(): with a backslash, use the E'' form so the value means the same whatever
  // standard_conforming_strings says.
  const body = value.replace(/'/g, "''");
  return value.includes('\\') ? ` E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}

/** Placeholders a custom statement may use, and how each is substituted. */
export const PLACEHOLDERS = {
  /** The new user, as a quoted identifier. */
  name: 'identifier',
  /** The SCRAM-SHA-256 verifier (never the password itself), as a literal: use it after PASSWORD. */
  password: 'literal',
  /** `VALID UNTIL` timestamp (ISO 8601, UTC), as a literal. */
  expiration: 'literal',
  /** The role's group roles, as a comma-separated list of quoted identifiers. */
  groups: 'identifier-list',
} as const;
export type PlaceholderName = keyof typeof PLACEHOLDERS;

export type TemplatePart = { readonly text: string } | { readonly placeholder: PlaceholderName };

export interface TemplateValues {
  readonly name: string;
  readonly password: string;
  readonly expiration: string;
  readonly groups: readonly string[];
}

const MAX_TEMPLATE = 4096;

function invalid(index: number, statement: string, why: string): never {
  throw fail('TESSERA_ENGINE_TEMPLATE_INVALID', `statement ${index + 1} ${why}; got: ${statement.slice(0, 120)}`);
}

/**
 * Parses one custom statement into literal text and placeholders. A lexer that knows quoted
 * strings, quoted identifiers, dollar quotes and line comments decides what is "outside
 * quotes": there a `;` (a second statement) is refused, except one at the very end, and `{{x}}`
 * is a placeholder. A placeholder inside quotes or a comment is refused, because it could not be
 * substituted safely there. Backslashes (E'' escapes), block comments and `$n` parameters are
 * refused outright, which keeps the lexer's view identical to the server's. The statement is
 * then also sent with the extended protocol, which refuses more than one command (PostgreSQL
 * protocol §55.2.3), so a template can never smuggle a second statement.
 */
export function parseTemplate(statement: string, index = 0): TemplatePart[] {
  if (typeof statement !== 'string' || statement.trim().length === 0) invalid(index, statement ?? '', 'is empty');
  if (statement.length > MAX_TEMPLATE) invalid(index, statement, `is longer than ${MAX_TEMPLATE} characters`);
  if (statement.includes('\0')) invalid(index, statement, 'contains a NUL character');
  if (statement.includes('\\')) invalid(index, statement, 'contains a backslash (E\'\' escapes are not accepted in templates)');
  const s = statement.trim().replace(/;\s*$/, '').trimEnd();
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  const inside = (what: string, from: number, to: number): void => {
    if (s.slice(from, to).includes('{{')) invalid(index, statement, `has a placeholder inside ${what}; placeholders are substituted (quoted) by Tessera and must stand outside quotes`);
  };
  while (i < s.length) {
    const c = s[i]!;
    if (c === "'" || c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= s.length) invalid(index, statement, `has an unterminated ${c === "'" ? 'string' : 'quoted identifier'}`);
        if (s[j] === c) {
          if (s[j + 1] === c) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      inside(c === "'" ? 'a string' : 'a quoted identifier', i, j + 1);
      text += s.slice(i, j + 1);
      i = j + 1;
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(s.slice(i));
      if (!m) invalid(index, statement, 'uses a `$n` parameter or a stray `$`; use the {{...}} placeholders');
      const tag = m[0];
      const end = s.indexOf(tag, i + tag.length);
      if (end < 0) invalid(index, statement, `has an unterminated dollar quote ${tag}`);
      inside('a dollar-quoted string', i, end + tag.length);
      text += s.slice(i, end + tag.length);
      i = end + tag.length;
    } else if (c === '-' && s[i + 1] === '-') {
      const nl = s.indexOf('\n', i);
      const end = nl < 0 ? s.length : nl;
      inside('a comment', i, end);
      text += s.slice(i, end);
      i = end;
    } else if (c === '/' && s[i + 1] === '*') {
      invalid(index, statement, 'has a block comment (/* */); use -- comments');
    } else if (c === ';') {
      invalid(index, statement, 'contains a statement separator `;`; give each statement as its own array element');
    } else if (c === '{' && s[i + 1] === '{') {
      const m = /^\{\{\s*([a-z_]+)\s*\}\}/.exec(s.slice(i));
      if (!m || !(m[1]! in PLACEHOLDERS)) invalid(index, statement, `has an unknown placeholder; known: ${Object.keys(PLACEHOLDERS).map((p) => `{{${p}}}`).join(', ')}`);
      if (text) parts.push({ text });
      text = '';
      parts.push({ placeholder: m[1] as PlaceholderName });
      i += m[0].length;
    } else {
      text += c;
      i++;
    }
  }
  if (text) parts.push({ text });
  return parts;
}

export function renderTemplate(parts: readonly TemplatePart[], values: TemplateValues): string {
  return parts
    .map((p) => {
      if ('text' in p) return p.text;
      switch (p.placeholder) {
        case 'name':
          return quoteIdent(values.name);
        case 'password':
          return quoteLiteral(values.password);
        case 'expiration':
          return quoteLiteral(values.expiration);
        case 'groups':
          if (values.groups.length === 0) throw fail('TESSERA_ENGINE_TEMPLATE_INVALID', 'a statement uses {{groups}} but the role has no group roles');
          return values.groups.map(quoteIdent).join(', ');
      }
      return '';
    })
    .join('');
}

export function templateUses(parts: readonly TemplatePart[], placeholder: PlaceholderName): boolean {
  return parts.some((p) => 'placeholder' in p && p.placeholder === placeholder);
}
