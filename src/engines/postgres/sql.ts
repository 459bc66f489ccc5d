import { fail } from '../../shared/errors.js';
import { lexStatement, LexError, type Token } from './lexer.js';

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
/** Characters that would glue onto a substituted placeholder and change how PostgreSQL reads it. */
const GLUE = /[A-Za-z0-9_$\u0080-\uffff'"&{}\\]/;

/** A refused template, naming the statement and the 1-based character position (as PostgreSQL does). */
function invalid(index: number, statement: string, why: string, offset?: number, field = 'statement'): never {
  const where = offset === undefined ? '' : ` at position ${offset + 1}`;
  const near = offset === undefined ? statement.slice(0, 120) : statement.slice(Math.max(0, offset - 20), offset + 40);
  const label = field === 'statement' ? `statement ${index + 1}` : `${field}[${index}]`;
  throw fail('TESSERA_ENGINE_TEMPLATE_INVALID', `${label}${where}: ${why} (near ${JSON.stringify(near)})`, {
    field: field === 'statement' ? `statement.${index}` : `${field}.${index}`,
    ...(offset === undefined ? {} : { position: offset + 1 }),
  });
}

const isLiteral = (t: Token): boolean => t.kind === 'placeholder' && (PLACEHOLDERS as Record<string, string>)[t.name ?? ''] === 'literal';
const significant = (t: Token): boolean => t.kind !== 'space' && t.kind !== 'comment';

/** Placeholders must stand alone: nothing glued on either side, and a literal never next to a string PostgreSQL would join it with. */
function checkPlaceholder(s: string, tokens: readonly Token[], k: number, fail_: (why: string, at: number) => never): void {
  const t = tokens[k]!;
  if (!(t.name! in PLACEHOLDERS)) fail_(`an unknown placeholder {{${t.name}}}; known: ${Object.keys(PLACEHOLDERS).map((p) => `{{${p}}}`).join(', ')}`, t.start);
  const before = s[t.start - 1];
  const after = s[t.end];
  if ((before !== undefined && GLUE.test(before)) || (after !== undefined && GLUE.test(after))) {
    fail_(`a placeholder glued to the text next to it; put a space or punctuation around {{${t.name}}}`, t.start);
  }
  if (!isLiteral(t)) return;
  const prev = tokens.slice(0, k).reverse().find(significant);
  const next = tokens.slice(k + 1).find(significant);
  if ((prev && (prev.kind === 'string' || isLiteral(prev))) || (next && (next.kind === 'string' || isLiteral(next)))) {
    fail_(`{{${t.name}}} next to another string literal (PostgreSQL joins string literals separated by a newline)`, t.start);
  }
}

/**
 * Parses one custom statement into literal text and placeholders, refusing at save time what
 * would not run as exactly one statement. The lexer (lexer.ts) reads token boundaries exactly
 * as PostgreSQL does: dollar quotes (and `$` inside names), standard and E'' strings, quoted
 * identifiers, nested block comments. Refused, with the 1-based position: anything after a
 * top-level `;` but whitespace, comments and further `;` (a second statement); unterminated
 * quotes and comments; `$n` parameters; placeholders inside quotes or comments (they could not
 * be substituted safely there), unknown ones, and ones glued to neighbouring text. The
 * rendered statement stops before the `;`. It is then still sent with the extended protocol,
 * which refuses a second command (PostgreSQL protocol §55.2.3), and the role is dry-run
 * against the database when saved.
 */
export function parseTemplate(statement: string, index = 0, field = 'statement'): TemplatePart[] {
  if (typeof statement !== 'string' || statement.trim().length === 0) invalid(index, String(statement ?? ''), 'it is empty', undefined, field);
  if (statement.length > MAX_TEMPLATE) invalid(index, statement, `it is longer than ${MAX_TEMPLATE} characters`, undefined, field);
  const bad = (why: string, at: number): never => invalid(index, statement, why, at, field);
  let tokens: Token[];
  try {
    tokens = lexStatement(statement);
  } catch (e) {
    if (e instanceof LexError) bad(e.why, e.offset);
    throw e;
  }
  for (const t of tokens) {
    if ((t.kind === 'string' || t.kind === 'qident' || t.kind === 'dollar' || t.kind === 'comment') && statement.slice(t.start, t.end).includes('{{')) {
      bad('a placeholder inside quotes or a comment; placeholders are substituted (quoted) by Tessera and must stand outside quotes', t.start);
    }
  }
  const semi = tokens.findIndex((t) => t.kind === 'semicolon');
  const body = semi < 0 ? tokens : tokens.slice(0, semi);
  if (semi >= 0) {
    const extra = tokens.slice(semi + 1).find((t) => significant(t) && t.kind !== 'semicolon');
    if (extra) bad('a second statement after `;`; give each statement as its own array element', extra.start);
  }
  if (!body.some(significant)) invalid(index, statement, 'it holds no statement (only whitespace, comments or `;`)', undefined, field);
  const parts: TemplatePart[] = [];
  let text = '';
  body.forEach((t, k) => {
    if (t.kind !== 'placeholder') {
      text += statement.slice(t.start, t.end);
      return;
    }
    checkPlaceholder(statement, tokens, k, bad);
    if (text) parts.push({ text });
    text = '';
    parts.push({ placeholder: t.name as PlaceholderName });
  });
  if (text.trim()) parts.push({ text });
  const first = parts[0];
  if (first && 'text' in first) parts[0] = { text: first.text.trimStart() };
  const last = parts.at(-1);
  if (last && 'text' in last) parts[parts.length - 1] = { text: last.text.trimEnd() };
  return parts.filter((p) => !('text' in p) || p.text.length > 0);
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
