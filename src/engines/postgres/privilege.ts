import { fail } from '../../shared/errors.js';
import { lexStatement, type Token } from './lexer.js';

/**
 * What an engine role may give its database users (docs/adr/0064-engine-role-privileges.md).
 * A dynamic user must be unable to outlast or escape its revocation: no attribute that creates
 * or reaches other roles or bypasses the database's rules, no option that lets it pass
 * privileges on, no member that inherits from it, no statement on another role.
 *
 * Two lines of defence:
 * 1. `checkStatementForm` (pure, at save time and when a stored role is loaded): each custom
 *    statement, read with the PostgreSQL lexer (lexer.ts, so nothing inside quotes, dollar
 *    quotes or comments counts), must be one of the known forms acting on `{{name}}` and must
 *    not carry a privileged attribute or option.
 * 2. `PRIVILEGE_PROBLEMS_SQL` (on the database, after the user is created, in the same
 *    transaction — the save-time dry run and every issuance): the created user's attributes,
 *    memberships (transitively) and members, whatever statement or later change of a group
 *    role produced them.
 */

/** Role attributes that must never reach a dynamic user (PostgreSQL manual, CREATE ROLE). */
export const PRIVILEGED_ATTRIBUTES = ['superuser', 'createrole', 'createdb', 'replication', 'bypassrls'] as const;

/**
 * Words refused anywhere outside quotes: the attributes above, `createuser` (their obsolete
 * spelling for SUPERUSER), and `admin` (`CREATE ROLE … ADMIN r`, `GRANT … WITH ADMIN OPTION`,
 * `WITH ADMIN TRUE`: the power to grant the role on).
 */
const REFUSED_WORDS = new Set<string>([...PRIVILEGED_ATTRIBUTES, 'createuser', 'admin']);

export type StatementField = 'creation_statements' | 'revocation_statements';

/** The statement forms a role may use, by field. */
export const STATEMENT_FORMS: Readonly<Record<StatementField, readonly string[]>> = {
  creation_statements: ['CREATE ROLE|USER {{name}} …', 'GRANT … TO {{name}}', 'REVOKE … FROM {{name}}', 'ALTER ROLE|USER {{name}} …', 'COMMENT ON ROLE {{name}} IS …'],
  revocation_statements: ['REASSIGN OWNED BY {{name}} TO …', 'DROP OWNED BY {{name}}', 'REVOKE … FROM {{name}}', 'ALTER ROLE|USER {{name}} …', 'COMMENT ON ROLE {{name}} IS …'],
};

interface Sig {
  readonly t: Token;
  /** Lowercase text of a word token, '' otherwise. */
  readonly word: string;
  /**
   * The identifier a word or quoted identifier names (a word folded to lowercase, a quoted one
   * unquoted as written: PostgreSQL's grammar matches role options such as `"superuser"` by the
   * identifier's text, quoted or not), '' for other tokens.
   */
  readonly ident: string;
  readonly isName: boolean;
}

/** Options of `checkStatementForm`. */
export interface StatementFormOptions {
  /** The role sets `allow_privileged_groups`: `pg_*` built-in roles may be granted. */
  readonly allowBuiltin?: boolean;
  /** The management role's name (never a group of, or a REASSIGN target for, a dynamic user). */
  readonly manager?: string;
}

/** The identifier a word or `"quoted"` token names; '' otherwise (U&"…" is refused before). */
function identOf(statement: string, t: Token): string {
  const text = statement.slice(t.start, t.end);
  if (t.kind === 'word') return text.toLowerCase();
  if (t.kind === 'qident' && text.startsWith('"')) return text.slice(1, -1).replace(/""/g, '"');
  return '';
}

function refuse(field: StatementField, index: number, why: string, at?: number): never {
  throw fail('TESSERA_ENGINE_ROLE_PRIVILEGED', `${field}[${index}]${at === undefined ? '' : ` at position ${at + 1}`}: ${why}`, {
    field: `${field}.${index}`,
    ...(at === undefined ? {} : { position: at + 1 }),
  });
}

/**
 * Refuses a statement (already accepted by `parseTemplate`: one statement, lexically sound)
 * that is not one of `STATEMENT_FORMS[field]` or that would give the user a privileged
 * attribute or option, with TESSERA_ENGINE_ROLE_PRIVILEGED naming the field and position.
 */
export function checkStatementForm(statement: string, index: number, field: StatementField, options: StatementFormOptions = {}): void {
  const tokens = lexStatement(statement);
  const semi = tokens.findIndex((t) => t.kind === 'semicolon');
  const sig: Sig[] = (semi < 0 ? tokens : tokens.slice(0, semi))
    .filter((t) => t.kind !== 'space' && t.kind !== 'comment')
    .map((t) => ({ t, word: t.kind === 'word' ? statement.slice(t.start, t.end).toLowerCase() : '', ident: identOf(statement, t), isName: t.kind === 'placeholder' && t.name === 'name' }));
  const bad = (why: string, at?: number): never => refuse(field, index, why, at);
  for (const s of sig) {
    if (s.t.kind === 'qident' && !statement.startsWith('"', s.t.start)) {
      bad('a Unicode-escaped identifier (U&"…") could spell any role or option; write the name plainly or in plain double quotes', s.t.start);
    }
    // `"superuser"` is the SUPERUSER option to PostgreSQL's grammar (gram.y matches role options
    // and GRANT's `WITH <option>` by the identifier's text), so the quoted spelling counts; a
    // quoted name with capitals (`"Admin"`) is an object name, not an option.
    const refused = REFUSED_WORDS.has(s.ident) ? s.ident : '';
    if (refused) {
      bad(`${refused.toUpperCase()} would give the dynamic user ${refused === 'admin' ? 'the power to grant a role on' : `the ${refused.toUpperCase()} attribute`}, which outlives or escapes revocation (a user that can create roles can leave one behind)`, s.t.start);
    }
    if (s.word === 'grant' && sig[sig.indexOf(s) + 1]?.word === 'option') bad('WITH GRANT OPTION would let the dynamic user grant its privileges to other roles', s.t.start);
  }
  /** Refuses a role name given to the user as a group (or as a REASSIGN target): pg_* built-ins without the opt-in, the management role always. */
  const roleName = (i: number, what: string): void => {
    const r = sig[i];
    if (!r || !r.ident) return;
    if (options.manager !== undefined && r.ident === options.manager) bad(`${what} "${r.ident}" is the management role: a member could SET ROLE to it and create roles (objects handed to it would run with its privileges)`, r.t.start);
    if (!options.allowBuiltin && r.ident.toLowerCase().startsWith('pg_')) {
      bad(`${what} "${r.ident}" is a PostgreSQL built-in role (pg_*): it gives powers beyond one database's data (reading or writing server files, running programs, reading everything); refused unless the role sets allow_privileged_groups: true (dangerous)`, r.t.start);
    }
  };
  const w = (i: number): string => sig[i]?.word ?? '';
  const forms = `allowed forms: ${STATEMENT_FORMS[field].join('; ')}`;
  const nameAt = (i: number, what: string): void => {
    if (!sig[i]?.isName) bad(`${what} must act on {{name}} (the dynamic user) only; ${forms}`, sig[i]?.t.start ?? sig[0]?.t.start);
  };
  const head = `${w(0)} ${w(1)}`;
  if (field === 'creation_statements' && w(0) === 'create' && (w(1) === 'role' || w(1) === 'user')) {
    nameAt(2, `${head.toUpperCase()}`);
    for (let i = 3; i < sig.length; i++) {
      // ROLE r / USER r add r as a MEMBER of the new user (it would inherit the user's privileges
      // and keep them after revocation); IN ROLE / IN GROUP (the user joins groups) are fine.
      if ((w(i) === 'role' || w(i) === 'user' || w(i) === 'group') && w(i - 1) !== 'in') bad(`${w(i).toUpperCase()} … in CREATE ROLE makes other roles members of the dynamic user; use IN ROLE for groups the user joins`, sig[i]!.t.start);
      if (w(i) === 'in' && w(i + 1) !== 'role' && w(i + 1) !== 'group') bad('IN must be followed by ROLE or GROUP', sig[i]!.t.start);
      if (w(i) === 'in') {
        // IN ROLE a, "b", c: every listed role is a group the user joins.
        for (let j = i + 2; j < sig.length; j += 2) {
          roleName(j, 'IN ROLE');
          if (statement.slice(sig[j + 1]?.t.start ?? 0, sig[j + 1]?.t.end ?? 0) !== ',') break;
        }
      }
    }
    return;
  }
  if (w(0) === 'alter' && (w(1) === 'role' || w(1) === 'user')) {
    nameAt(2, `${head.toUpperCase()}`);
    for (let i = 3; i < sig.length; i++) {
      if (w(i) === 'rename') bad('RENAME would take the user out of Tessera\'s username prefix: reconciliation could no longer find it', sig[i]!.t.start);
      if (w(i) === 'set' && (w(i + 1) === 'role' || w(i + 1) === 'session_authorization')) bad(`SET ${w(i + 1)} would make the user's sessions switch to another role`, sig[i]!.t.start);
    }
    return;
  }
  if (w(0) === 'comment' && w(1) === 'on' && w(2) === 'role') {
    nameAt(3, 'COMMENT ON ROLE');
    return;
  }
  if (w(0) === 'grant' && field === 'creation_statements') {
    // GRANT <privileges or roles> … TO {{name}} [WITH INHERIT|SET TRUE|FALSE …]
    const to = sig.map((s) => s.word).lastIndexOf('to');
    if (to < 0) bad(`GRANT without TO; ${forms}`);
    nameAt(to + 1, 'GRANT … TO');
    if (sig.slice(1, to).some((s) => s.isName)) bad('GRANT {{name}} TO … would make another role a member of the dynamic user', sig[1]!.t.start);
    // Without ON, GRANT lists roles (membership): each is a group the user joins.
    if (!sig.slice(1, to).some((s) => s.word === 'on')) for (let i = 1; i < to; i++) roleName(i, 'GRANT of role');
    // PostgreSQL 16: `WITH option value [, option value …]` (gram.y grant_role_opt_list).
    let i = to + 2;
    if (i < sig.length && w(i) === 'with') {
      i++;
      for (;;) {
        const opt = w(i);
        if (!((opt === 'inherit' || opt === 'set') && ['true', 'false', 'on', 'off'].includes(w(i + 1)))) break;
        i += 2;
        if (sig[i]?.t.kind === 'other' && statement.slice(sig[i]!.t.start, sig[i]!.t.end) === ',') i++;
        else break;
      }
    }
    if (i < sig.length || w(sig.length - 1) === 'with') {
      bad(`only {{name}} may follow TO in a GRANT (optionally WITH INHERIT|SET TRUE|FALSE): one grantee, no GRANTED BY, no grant or admin option`, sig[Math.min(i, sig.length - 1)]!.t.start);
    }
    return;
  }
  if (w(0) === 'revoke') {
    const from = sig.map((s) => s.word).lastIndexOf('from');
    if (from < 0) bad(`REVOKE without FROM; ${forms}`);
    nameAt(from + 1, 'REVOKE … FROM');
    const rest = sig.slice(from + 2);
    if (rest.length > 1 || (rest.length === 1 && rest[0]!.word !== 'cascade' && rest[0]!.word !== 'restrict')) bad('only {{name}} (and CASCADE or RESTRICT) may follow FROM in a REVOKE', rest[0]!.t.start);
    return;
  }
  if (field === 'revocation_statements' && w(0) === 'reassign' && w(1) === 'owned' && w(2) === 'by') {
    nameAt(3, 'REASSIGN OWNED BY');
    if (w(4) !== 'to' || sig.length !== 6) bad('REASSIGN OWNED BY {{name}} TO <one role>', sig[4]?.t.start);
    roleName(5, 'REASSIGN OWNED target');
    return;
  }
  if (field === 'revocation_statements' && w(0) === 'drop' && w(1) === 'owned' && w(2) === 'by') {
    nameAt(3, 'DROP OWNED BY');
    if (sig.length > 5 || (sig.length === 5 && w(4) !== 'cascade' && w(4) !== 'restrict')) bad('DROP OWNED BY {{name}} [CASCADE | RESTRICT]', sig[4]?.t.start);
    return;
  }
  const why =
    w(0) === 'do' ? 'a DO block runs code as the management role that Tessera cannot check' :
    w(0) === 'set' || w(0) === 'reset' ? 'SET/RESET changes the management session (SET ROLE, SET SESSION AUTHORIZATION)' :
    w(0) === 'drop' && w(1) === 'role' ? 'Tessera drops the user itself after the owned-object rule (DROP ROLE in a statement would make that fail)' :
    `this kind of statement is not one Tessera can check`;
  bad(`${why}; ${forms}`, sig[0]?.t.start);
}

/**
 * One row per problem of the user named `$1`, for the management session that just created it
 * (in the creating transaction): `kind` is `attribute` (its own privileged attribute),
 * `admin` (an ADMIN option on a role), `member` (another role is a member of it: it inherits the
 * user's privileges), or `group` (a role it is a member of, directly or through others, is a
 * `pg_*` built-in role — oid below FirstNormalObjectId, 16384 — or carries CREATEDB,
 * REPLICATION or BYPASSRLS: a member may `SET ROLE` to it; allowed with
 * `allow_privileged_groups`), or `escape` (such a group is the management role itself or has
 * SUPERUSER or CREATEROLE: never allowed, the user could create roles that outlive revocation).
 * The management role's own membership in the user (PostgreSQL ≥ 16 grants the creator one) is
 * not a problem.
 */
export const PRIVILEGE_PROBLEMS_SQL = `
WITH RECURSIVE u AS (SELECT oid, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = $1),
up(roleid, depth) AS (
  SELECT a.roleid, 1 FROM pg_auth_members a JOIN u ON a.member = u.oid
  UNION
  SELECT a.roleid, up.depth + 1 FROM pg_auth_members a JOIN up ON a.member = up.roleid WHERE up.depth < 32
)
SELECT 'attribute' AS kind, x.attr AS what FROM u, LATERAL (VALUES ('SUPERUSER', u.rolsuper), ('CREATEROLE', u.rolcreaterole), ('CREATEDB', u.rolcreatedb), ('REPLICATION', u.rolreplication), ('BYPASSRLS', u.rolbypassrls)) AS x(attr, yes) WHERE x.yes
UNION ALL
SELECT 'admin', r.rolname FROM pg_auth_members a JOIN u ON a.member = u.oid JOIN pg_roles r ON r.oid = a.roleid WHERE a.admin_option
UNION ALL
SELECT 'member', m.rolname FROM pg_auth_members a JOIN u ON a.roleid = u.oid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname <> current_user
UNION ALL
SELECT DISTINCT 'escape', r.rolname || CASE WHEN r.rolname = current_user THEN ' (the management role)' WHEN r.rolsuper THEN ' (SUPERUSER)' ELSE ' (CREATEROLE)' END
FROM up JOIN pg_roles r ON r.oid = up.roleid
WHERE r.rolname = current_user OR r.rolsuper OR r.rolcreaterole
UNION ALL
SELECT DISTINCT 'group', r.rolname || CASE WHEN r.oid < 16384 THEN ' (built-in)' ELSE ' (' || concat_ws(', ', CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END, CASE WHEN r.rolcreatedb THEN 'CREATEDB' END, CASE WHEN r.rolreplication THEN 'REPLICATION' END, CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END) || ')' END
FROM up JOIN pg_roles r ON r.oid = up.roleid
WHERE (r.oid < 16384 OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls) AND NOT (r.rolname = current_user OR r.rolsuper OR r.rolcreaterole)`;

export interface PrivilegeProblem {
  /** `escape`: a group (transitively) that is the management role or has SUPERUSER or CREATEROLE — never allowed. */
  readonly kind: 'attribute' | 'admin' | 'member' | 'group' | 'escape';
  readonly what: string;
}

/** The problems that count for a role: `group` ones only without `allow_privileged_groups`. */
export function relevantProblems(rows: readonly PrivilegeProblem[], allowPrivilegedGroups: boolean): PrivilegeProblem[] {
  return rows.filter((p) => p.kind !== 'group' || !allowPrivilegedGroups);
}

/** Words for a list of problems, e.g. `the attribute CREATEROLE; membership of pg_read_server_files (built-in)`. */
export function describeProblems(problems: readonly PrivilegeProblem[]): string {
  const say = (p: PrivilegeProblem): string =>
    p.kind === 'attribute' ? `the attribute ${p.what}` :
    p.kind === 'admin' ? `the ADMIN option on role "${p.what}"` :
    p.kind === 'member' ? `role "${p.what}" as a member (it inherits the user's privileges)` :
    p.kind === 'escape' ? `membership of ${p.what}, never allowed (a member can SET ROLE to it and create roles that outlive revocation)` :
    `membership of ${p.what}`;
  return problems.slice(0, 5).map(say).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
}

/** `groups` entries that name PostgreSQL's built-in roles (`pg_*`), refused without `allow_privileged_groups`. */
export function builtinGroups(names: readonly string[]): string[] {
  return names.filter((g) => g.toLowerCase().startsWith('pg_'));
}

/** The role names a `REASSIGN OWNED BY {{name}} TO <role>` statement hands objects to ([] for other statements). */
export function reassignTargets(statement: string): string[] {
  const sig = lexStatement(statement).filter((t) => t.kind !== 'space' && t.kind !== 'comment' && t.kind !== 'semicolon');
  const w = (i: number): string => (sig[i]?.kind === 'word' ? statement.slice(sig[i]!.start, sig[i]!.end).toLowerCase() : '');
  if (w(0) !== 'reassign' || w(1) !== 'owned' || w(4) !== 'to' || !sig[5]) return [];
  const name = identOf(statement, sig[5]);
  return name ? [name] : [];
}
