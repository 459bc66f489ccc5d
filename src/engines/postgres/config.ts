import { z } from 'zod';
import { fail } from '../../shared/errors.js';
import { refuseCredentialLike } from '../../shared/credential-like.js';
import { parseDuration } from '../../config/duration.js';
import { parseTemplate, templateUses, type TemplatePart } from './sql.js';
import { DEFAULT_SCRAM_ITERATIONS, MAX_SCRAM_ITERATIONS } from './scram.js';
import { OWNED_OBJECT_RULES, type OwnedObjectRule } from './owned-objects.js';
import { builtinGroups, checkStatementForm } from './privilege.js';
import { verb } from '../../shared/plural.js';
import { describeDuration } from '../../shared/duration.js';

/**
 * Engine configuration and roles: validation of what the admin API accepts. Pure, no I/O.
 *
 * Naming: role names are global across every postgres configuration, because the issuance path
 * is `/v1/creds/postgres/<role>` (and the policy resource / scope `cred:postgres/<role>`): a role
 * names exactly one configuration. See docs/engine-postgres.md.
 */

/** Same charset as `/v1/creds/:engine/:role` accepts, so every role is reachable there. */
export const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Group roles are pre-created by the operator; quoting makes any name safe, the charset keeps them boring. */
export const GROUP_RE = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;
/** Username prefix; 30 characters leaves 32 for the per-lease part within NAMEDATALEN-1 = 63. */
export const PREFIX_RE = /^[a-z][a-z0-9_]{0,29}$/;
export const DEFAULT_PREFIX = 'tsr_';

export interface PgConfig {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly prefix: string;
  readonly scramIterations: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export { OWNED_OBJECT_RULES, type OwnedObjectRule } from './owned-objects.js';

export interface PgRole {
  readonly name: string;
  readonly config: string;
  readonly groups: readonly string[];
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly renewable: boolean;
  readonly creationStatements: readonly string[];
  readonly revocationStatements: readonly string[];
  readonly creation: readonly (readonly TemplatePart[])[];
  readonly revocation: readonly (readonly TemplatePart[])[];
  readonly ownedObjects: OwnedObjectRule;
  /** The role that receives the user's objects when `ownedObjects` is `reassign`. */
  readonly reassignTo: string | null;
  /**
   * Groups (and `reassign_to`) may be `pg_*` built-in roles or roles with privileged attributes
   * (docs/engine-postgres.md: dangerous, off by default).
   */
  readonly allowPrivilegedGroups: boolean;
  /** Set when stored revocation statements no longer pass validation: issuance and cleanup refuse with it. */
  readonly invalid?: string;
  /** Set when stored creation statements no longer pass validation: issuance refuses with it (cleanup still runs). */
  readonly invalidCreation?: string;
  /** A stored creation statement would give the user a privilege (privilege.ts): issuance answers TESSERA_ENGINE_USER_PRIVILEGED. */
  readonly invalidCreationPrivileged?: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export function checkName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) throw fail('TESSERA_ENGINE_NAME_INVALID', `${field} must be 1–63 characters of lowercase letters, digits, "_" and "-", starting with a letter or digit`, { field });
  // Names are audited in clear and form /v1/creds/postgres/<role> (ADR 0041).
  refuseCredentialLike(value, field);
  return value;
}

export function checkPrefix(value: unknown): string {
  if (typeof value !== 'string' || !PREFIX_RE.test(value) || value.startsWith('pg_')) {
    throw fail('TESSERA_ENGINE_NAME_INVALID', 'username_prefix must be 1–30 characters of lowercase letters, digits and "_", starting with a letter, and must not start with "pg_" (reserved by PostgreSQL)', { field: 'username_prefix' });
  }
  return value;
}

export function checkGroup(value: unknown, index: number, field?: string): string {
  if (typeof value !== 'string' || !GROUP_RE.test(value)) {
    const label = field ?? `groups[${index}]`;
    throw fail('TESSERA_ENGINE_NAME_INVALID', `${label} must be an existing role name of letters, digits, "_" and "-" (1–63 characters, not starting with a digit or "-")`, { field: field ?? `groups.${index}` });
  }
  return value;
}

const DURATION = z.union([z.number().positive().max(10 * 365 * 86400), z.string().min(1).max(32)]);

function durationMs(value: number | string | undefined, field: string, fallback: number, code: 'TESSERA_ENGINE_TTL_INVALID' | 'TESSERA_REQUEST_INVALID'): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === null || ms <= 0) throw fail(code, `${field} must be a positive number of seconds or a duration such as "15m"`, { field });
  return ms;
}

export const configBody = z.strictObject({
  connection_url: z.string().min(1).max(2048),
  pool_size: z.number().int().min(1).max(100).optional(),
  connect_timeout: DURATION.optional(),
  statement_timeout: DURATION.optional(),
  username_prefix: z.unknown().optional(),
  scram_iterations: z.number().int().min(1).max(MAX_SCRAM_ITERATIONS).optional(),
});

export type ParsedConfig = Omit<PgConfig, 'name' | 'createdAt' | 'updatedAt'> & { readonly url: string };

/** Validates a config body (after zod). The URL's password is kept only in `url` (sealed at rest). */
export function parseConfigBody(body: z.output<typeof configBody>): ParsedConfig {
  let u: URL;
  try {
    u = new URL(body.connection_url);
  } catch {
    throw fail('TESSERA_REQUEST_INVALID', 'connection_url must be a URL such as postgres://tessera_mgmt:<password>@db.example:5432/app', { field: 'connection_url' });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw fail('TESSERA_REQUEST_INVALID', 'connection_url must use the postgres:// or postgresql:// scheme', { field: 'connection_url' });
  if (!u.hostname) throw fail('TESSERA_REQUEST_INVALID', 'connection_url must name a host (unix sockets are not supported)', { field: 'connection_url' });
  const decode = (v: string, what: string): string => {
    let out: string;
    try {
      out = decodeURIComponent(v);
    } catch {
      throw fail('TESSERA_REQUEST_INVALID', `connection_url: the ${what} has a malformed %-escape`, { field: 'connection_url' });
    }
    // A NUL or another control character would reach the server in the startup packet (08P01).
    if ([...out].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) throw fail('TESSERA_REQUEST_INVALID', `connection_url: the ${what} contains a control character`, { field: 'connection_url' });
    return out;
  };
  for (const pair of u.search.slice(1).split('&').filter(Boolean)) {
    const [k = '', v = ''] = pair.split('=', 2);
    const name = decode(k, 'name of a parameter');
    decode(v.replace(/\+/g, ' '), `parameter "${/^[A-Za-z0-9_]{1,64}$/.test(name) ? name : '…'}"`);
  }
  decode(u.password, 'password');
  decode(u.pathname, 'database name');
  const user = decode(u.username, 'user name');
  if (!user) throw fail('TESSERA_REQUEST_INVALID', 'connection_url must name the management user (a role with CREATEROLE)', { field: 'connection_url' });
  const port = u.port ? Number(u.port) : 5432;
  const database = decode(u.pathname.replace(/^\//, ''), 'database name') || user;
  const connectTimeoutMs = durationMs(body.connect_timeout, 'connect_timeout', 2000, 'TESSERA_REQUEST_INVALID');
  const statementTimeoutMs = durationMs(body.statement_timeout, 'statement_timeout', 5000, 'TESSERA_REQUEST_INVALID');
  if (connectTimeoutMs > 60_000 || statementTimeoutMs > 60_000) throw fail('TESSERA_REQUEST_INVALID', 'connect_timeout and statement_timeout must be at most 60 s (issuance must fail fast)', { field: 'timeout' });
  const prefix = body.username_prefix === undefined ? DEFAULT_PREFIX : checkPrefix(body.username_prefix);
  return {
    url: body.connection_url,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port,
    database,
    user,
    poolSize: body.pool_size ?? 8,
    connectTimeoutMs,
    statementTimeoutMs,
    prefix,
    scramIterations: body.scram_iterations ?? DEFAULT_SCRAM_ITERATIONS,
  };
}

export const roleBody = z.strictObject({
  groups: z.array(z.unknown()).max(32).optional(),
  default_ttl: DURATION.optional(),
  max_ttl: DURATION.optional(),
  renewable: z.boolean().optional(),
  creation_statements: z.array(z.unknown()).max(16).optional(),
  revocation_statements: z.array(z.unknown()).max(16).optional(),
  owned_objects: z.enum(OWNED_OBJECT_RULES).optional(),
  reassign_to: z.unknown().optional(),
  allow_privileged_groups: z.boolean().optional(),
});

export interface ParsedRole {
  readonly groups: readonly string[];
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly renewable: boolean;
  readonly creationStatements: readonly string[];
  readonly revocationStatements: readonly string[];
  readonly ownedObjects: OwnedObjectRule;
  readonly reassignTo: string | null;
  readonly allowPrivilegedGroups: boolean;
}

function statements(list: readonly unknown[] | undefined, field: string): string[] {
  return (list ?? []).map((s, i) => {
    if (typeof s !== 'string') throw fail('TESSERA_ENGINE_TEMPLATE_INVALID', `${field}[${i}] must be a string holding one SQL statement`);
    parseTemplate(s, i, field);
    return s;
  });
}

/** `manager`: the management role's name (never a group of, or REASSIGN target for, a user). */
export function parseRoleBody(body: z.output<typeof roleBody>, manager?: string): ParsedRole {
  const groups = (body.groups ?? []).map((g, i) => checkGroup(g, i));
  if (new Set(groups).size !== groups.length) throw fail('TESSERA_REQUEST_INVALID', 'groups must not repeat a role', { field: 'groups' });
  const defaultTtlMs = durationMs(body.default_ttl, 'default_ttl', 15 * 60_000, 'TESSERA_ENGINE_TTL_INVALID');
  const maxTtlMs = durationMs(body.max_ttl, 'max_ttl', Math.max(3_600_000, defaultTtlMs), 'TESSERA_ENGINE_TTL_INVALID');
  if (defaultTtlMs > maxTtlMs) throw fail('TESSERA_ENGINE_TTL_INVALID', `default_ttl (${describeDuration(defaultTtlMs)}) must not exceed max_ttl (${describeDuration(maxTtlMs)})`, { field: 'default_ttl' });
  if (maxTtlMs > 366 * 86_400_000) throw fail('TESSERA_ENGINE_TTL_INVALID', 'max_ttl must be at most 366 days', { field: 'max_ttl' });
  const creationStatements = statements(body.creation_statements, 'creation_statements');
  const revocationStatements = statements(body.revocation_statements, 'revocation_statements');
  if (creationStatements.length > 0) {
    const parsed = creationStatements.map((s, i) => parseTemplate(s, i, 'creation_statements'));
    if (!parsed.some((p) => templateUses(p, 'name')) || !parsed.some((p) => templateUses(p, 'password'))) {
      throw fail('TESSERA_ENGINE_TEMPLATE_INVALID', 'creation_statements must create the user named {{name}} with PASSWORD {{password}} (the SCRAM verifier Tessera computed)');
    }
  }
  if (revocationStatements.some((s, i) => !templateUses(parseTemplate(s, i, 'revocation_statements'), 'name'))) {
    throw fail('TESSERA_ENGINE_TEMPLATE_INVALID', 'every revocation statement must act on {{name}} (e.g. `REASSIGN OWNED BY {{name}} TO app_owner` or `DROP OWNED BY {{name}}`)');
  }
  // After the lexical and placeholder rules: what each statement may do (privilege.ts).
  const form = { allowBuiltin: body.allow_privileged_groups === true, ...(manager === undefined ? {} : { manager }) };
  creationStatements.forEach((s, i) => checkStatementForm(s, i, 'creation_statements', form));
  revocationStatements.forEach((s, i) => checkStatementForm(s, i, 'revocation_statements', form));
  const ownedObjects = body.owned_objects ?? 'drop';
  let reassignTo: string | null = null;
  if (ownedObjects === 'reassign') {
    if (body.reassign_to === undefined) throw fail('TESSERA_REQUEST_INVALID', 'owned_objects "reassign" needs reassign_to: the existing role that receives the objects of revoked users', { field: 'reassign_to' });
    reassignTo = checkGroup(body.reassign_to, 0, 'reassign_to');
  } else if (body.reassign_to !== undefined) {
    throw fail('TESSERA_REQUEST_INVALID', 'reassign_to is only used with owned_objects "reassign"', { field: 'reassign_to' });
  }
  const allowPrivilegedGroups = body.allow_privileged_groups ?? false;
  const builtin = builtinGroups([...groups, ...(reassignTo ? [reassignTo] : [])]);
  if (builtin.length && !allowPrivilegedGroups) {
    const n = builtin.length;
    throw fail('TESSERA_ENGINE_ROLE_PRIVILEGED', `${builtin.join(', ')} ${verb(n, 'is a PostgreSQL built-in role', 'are PostgreSQL built-in roles')} (pg_*): ${verb(n, 'it gives', 'they give')} powers beyond one database's data (reading or writing server files, running programs, ending sessions, reading everything). Refused unless the role sets allow_privileged_groups: true (dangerous, see docs/engine-postgres.md)`, { field: groups.some((g) => builtin.includes(g)) ? 'groups' : 'reassign_to' });
  }
  return { groups, defaultTtlMs, maxTtlMs, renewable: body.renewable ?? true, creationStatements, revocationStatements, ownedObjects, reassignTo, allowPrivilegedGroups };
}
