import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Store } from '../../store/port.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { Sealer } from '../../secrets/sealer.js';
import type { AuditWriter } from '../../audit/port.js';
import type { AuditActor, AuditWhere } from '../../audit/events.js';
import type { MetricsRegistry, Counter } from '../../shared/metrics.js';
import { TesseraError, fail, isTesseraError } from '../../shared/errors.js';
import { sha256Hex } from '../../shared/crypto.js';
import type { CreatedCredential, DynamicEngine, EngineData, LeaseContext, ReconcileLease, ReconcileResult, RoleSpec } from '../../leases/engine.js';
import { checkName, parseConfigBody, parseRoleBody, configBody, roleBody, type OwnedObjectRule, type PgConfig, type PgRole } from './config.js';
import { parseTemplate, quoteIdent, quoteLiteral, renderTemplate, type TemplatePart } from './sql.js';
import { encodePassword, scramSha256Verifier, SCRAM_SALT_BYTES } from './scram.js';
import { checkStatementForm, describeProblems, PRIVILEGE_PROBLEMS_SQL, reassignTargets, relevantProblems, type PrivilegeProblem } from './privilege.js';
import type { z } from 'zod';
import { count, noun, verb } from '../../shared/plural.js';
import { NEXT_STEPS } from '../../shared/next-steps.js';

export const ENGINE_NAME = 'postgres';
/** Meta key (and AAD) of a config's sealed management URL; `sealed:` makes master-key rotation re-wrap it. */
export const urlMetaKey = (config: string): string => `sealed:engine/${ENGINE_NAME}/${config}/url`;
const CHANNEL = 'engine_postgres';
/** Users per transaction in `disableMany` / `revokeMany`. */
const REVOKE_BATCH = 500;
/** Rounds of pg_terminate_backend + check before a session that will not end fails the step. */
const SESSION_END_ROUNDS = 20;
/** How long a disable statement first waits for a lock before Tessera looks for who holds it (ms). */
const LOCK_PROBE_MS = 250;
/** How often the blocker watch polls `pg_blocking_pids` while a disable statement waits (ms). */
const LOCK_WATCH_MS = 25;
/** Leases whose database user may exist (a `disabled` one awaits its cleanup). */
const OPEN_STATES = `('pending', 'active', 'revoking', 'disabled')`;

/**
 * Usernames of this engine's open leases (pending intents included: their user may exist
 * already). A malformed `engine_data` row names no user. Used by the reconcile and by drift.
 */
export async function openLeaseUsernames(store: Store): Promise<Set<string>> {
  const rows = await store.all<{ engine_data: string }>(`SELECT engine_data FROM leases WHERE engine = ? AND state IN ${OPEN_STATES}`, [ENGINE_NAME]);
  const out = new Set<string>();
  for (const r of rows) {
    try {
      const u = (JSON.parse(r.engine_data) as { username?: unknown }).username;
      if (typeof u === 'string') out.add(u);
    } catch {
      // a malformed row names no user
    }
  }
  return out;
}

/** What `prepare` persists (non-secret): which configuration, which role, which database user. */
export interface PgEngineData extends EngineData {
  readonly config: string;
  readonly role: string;
  readonly username: string;
}

export interface PostgresEngineDeps {
  readonly store: Store;
  readonly sealer: Sealer;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly audit: AuditWriter;
  readonly metrics?: MetricsRegistry;
  /** Randomness for passwords and salts (default crypto.randomBytes). */
  readonly random?: (n: number) => Buffer;
}

export interface CallCtx {
  readonly actor?: AuditActor;
  readonly where?: AuditWhere;
}

export interface PostgresDynamicEngine extends DynamicEngine {
  /**
   * Disables many users, in batches of up to 500 per round trip: `NOLOGIN VALID UNTIL
   * '-infinity'`, every session ended, memberships both ways revoked. Idempotent like `disable`.
   * Resolves with the indexes of the items that could not be disabled.
   */
  disableMany(items: readonly EngineData[], signal?: AbortSignal): Promise<{ failed: { index: number; error: TesseraError }[] }>;
  /**
   * Cleans up many (disabled) users with one transaction per batch of up to 500: the owned-object
   * rule (`REASSIGN OWNED` / `DROP OWNED`), then one `DROP ROLE a, b, ...`, then ends any session
   * that slipped in. Idempotent like `revoke`. Resolves with the indexes of the items that could
   * not be dropped (the rest are gone).
   */
  revokeMany(items: readonly EngineData[], signal?: AbortSignal): Promise<{ failed: { index: number; error: TesseraError }[] }>;
}

/** One engine configuration's health (the console's overview). */
export interface EngineHealth {
  readonly name: string;
  readonly kind: 'postgres';
  readonly healthy: boolean;
  /** Why not healthy: the engine error's code and message (never the connection URL's password). */
  readonly detail?: string;
}

/**
 * What one configuration's database holds for the engine's group roles and users, read-only
 * (drift, src/drift/engine-drift.ts, docs/drift.md "Engine drift"). Privileges come from the
 * catalogs' ACLs (`aclexplode`), which every role may read: tables, views, sequences (relations),
 * schemas, the current database, functions.
 */
export interface EngineInspection {
  readonly config: string;
  readonly prefix: string;
  /** Each role of this configuration and the groups it declares. */
  readonly roles: readonly { readonly role: string; readonly groups: readonly string[] }[];
  readonly groups: readonly {
    readonly name: string;
    readonly exists: boolean;
    /** Attributes that are set (`superuser`, `createrole`, `createdb`, `replication`, `bypassrls`, `login`, `noinherit`). */
    readonly attributes: readonly string[];
    /** Roles this group is a member of. */
    readonly memberOf: readonly string[];
    /** Members that are not engine users (no prefix): people or applications granted the group by hand. */
    readonly members: readonly string[];
    /** `<object kind> <name>: <privilege>`, sorted. */
    readonly privileges: readonly string[];
  }[];
  /** Roles with the engine's username prefix, and the roles each is a member of. */
  readonly users: readonly { readonly name: string; readonly memberOf: readonly string[] }[];
  /** Set when the database could not be read (the rest is then empty). */
  readonly error?: { readonly code: string; readonly message: string };
}

export interface PostgresEngine {
  readonly engine: PostgresDynamicEngine;
  /** Reads every configuration's group roles and users (drift); a database that fails is reported in its entry, never thrown. */
  inspect(signal?: AbortSignal): Promise<EngineInspection[]>;
  /** Loads configurations and roles from the store and follows changes made by other replicas. Call before `leases.recover()`. */
  start(): Promise<void>;
  /** Runs `leases.reconcile()` every `intervalMs` (no overlapping passes); start() must have run. */
  startReconciler(leases: { reconcile(): Promise<unknown> }, intervalMs: number): void;
  stop(): Promise<void>;
  reload(): Promise<void>;
  configure(name: string, body: unknown, ctx?: CallCtx): Promise<Record<string, unknown>>;
  getConfig(name: string): Record<string, unknown>;
  listConfigs(): Record<string, unknown>[];
  /**
   * Whether each configuration's management connection answers (`SELECT 1` through its pool,
   * bounded by its connect and statement timeouts). Results are reused for `maxAgeMs` (default
   * 10 s) and concurrent callers share one probe, so a dashboard never loads the databases.
   */
  health(maxAgeMs?: number): Promise<EngineHealth[]>;
  deleteConfig(name: string, ctx?: CallCtx): Promise<void>;
  putRole(config: string, role: string, body: unknown, ctx?: CallCtx): Promise<Record<string, unknown>>;
  getRole(config: string, role: string): Record<string, unknown>;
  listRoles(config: string): Record<string, unknown>[];
  deleteRole(config: string, role: string, ctx?: CallCtx): Promise<void>;
  /** Rotation (src/rotation, docs/rotation.md): password operations on roles the engine did not create. */
  readonly passwords: EnginePasswords;
}

/**
 * What the rotators need of a configuration (docs/rotation.md). Passwords travel as SCRAM-SHA-256
 * verifiers computed here (scram.ts), never in clear to the server.
 */
export interface EnginePasswords {
  /** Whether the configuration exists. */
  has(config: string): boolean;
  /**
   * `ALTER ROLE <role> PASSWORD '<verifier>'` on a pre-existing role. TESSERA_ROTATION_ROLE_INVALID
   * when it does not exist, is the management role, a superuser, or carries the username prefix.
   */
  setRolePassword(config: string, role: string, password: string, signal?: AbortSignal): Promise<void>;
  /** Ends the role's sessions that started before `before` (epoch ms); resolves with how many. */
  endSessionsBefore(config: string, role: string, before: number, signal?: AbortSignal): Promise<number>;
  /** The management role's name. */
  rootUsername(config: string): string;
  /** True when a fresh login with the configured URL but `password` succeeds; false when the server refuses the password. */
  tryRootPassword(config: string, password: string): Promise<boolean>;
  /** `ALTER ROLE CURRENT_USER PASSWORD '<verifier>'` through the management connection. */
  changeRootPassword(config: string, password: string, signal?: AbortSignal): Promise<void>;
  /** Stores the connection URL with the new password (sealed, as `configure` does), audited; every replica reloads. */
  commitRootPassword(config: string, password: string, ctx?: CallCtx): Promise<void>;
}

interface ConfigRow {
  name: string;
  host: string;
  port: number;
  dbname: string;
  username: string;
  pool_size: number;
  connect_timeout_ms: number;
  statement_timeout_ms: number;
  prefix: string;
  scram_iterations: number;
  created_at: number;
  updated_at: number;
}

interface RoleRow {
  name: string;
  config: string;
  group_roles: string;
  default_ttl_ms: number;
  max_ttl_ms: number;
  renewable: number;
  creation_statements: string;
  revocation_statements: string;
  owned_objects: string | null;
  reassign_to: string | null;
  allow_privileged_groups: number | null;
  created_at: number;
  updated_at: number;
}

interface Live {
  cfg: PgConfig;
  url: string;
  pool?: pg.Pool;
  /** server_version_num, learned on first use. */
  version?: number;
}

/**
 * Where an engine error happened (docs/adr/0065-engine-error-classes.md). `configure`: checking
 * a `connection_url` that is being saved — what goes wrong is that input's (4xx), except the
 * server's momentary state (too many connections, shutting down: 503). `use`: a saved
 * configuration at work — the database not answering, refusing or misconfigured is a dependency
 * failure, named (503), never blamed on the caller.
 */
export type EnginePhase = 'configure' | 'use';

export interface EngineErrorOptions {
  readonly phase?: EnginePhase;
  /** The error came from opening the connection (so a SQLSTATE is about the connection's parameters, not a statement). */
  readonly connecting?: boolean;
}

type CauseKind = 'dns' | 'refused' | 'timeout' | 'tls' | 'file' | 'protocol' | 'database' | 'parameter' | 'auth' | 'busy' | 'lost';

const DNS_ERRNO = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);
const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const LOST_ERRNO = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const FILE_ERRNO = new Set(['ENOENT', 'EACCES', 'EISDIR', 'EPERM', 'ENOTDIR']);
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|EPROTO$|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_|CERT_|ERR_OSSL_)/;

/** What kind of connection problem an error is, with words for it; undefined when it is not one. */
function connectionCause(err: { code?: string; message?: string; syscall?: string }, connecting: boolean): { kind: CauseKind; text: string } | undefined {
  const code = err.code ?? '';
  const msg = String(err.message ?? '');
  if (DNS_ERRNO.has(code)) return { kind: 'dns', text: `the host name does not resolve (${code})` };
  if (UNREACHABLE_ERRNO.has(code)) return { kind: 'refused', text: `nothing accepts connections there (${code})` };
  if (code === 'ETIMEDOUT' || /timeout exceeded when trying to connect|connection timeout|^timeout expired$/i.test(msg)) return { kind: 'timeout', text: 'no answer within connect_timeout' };
  if (/^Query read timeout$/i.test(msg)) return { kind: 'lost', text: 'no answer within statement_timeout (the connection went silent)' };
  if (/does not support SSL/i.test(msg)) return { kind: 'tls', text: 'the server does not accept TLS, but the URL asks for it (sslmode / ssl parameter)' };
  if (TLS_CODE.test(code) || /certificate|self[- ]signed|SSL routines|TLS/i.test(code ? '' : msg)) return { kind: 'tls', text: `the TLS handshake failed (${code || msg.slice(0, 120)})` };
  if (FILE_ERRNO.has(code) && connecting) return { kind: 'file', text: `a file the URL names (sslcert, sslkey, sslrootcert) cannot be read (${code})` };
  if (LOST_ERRNO.has(code) || /Connection terminated/i.test(msg)) return { kind: 'lost', text: `the connection was closed (${code || 'terminated'})` };
  if (/^08/.test(code)) return { kind: connecting ? 'protocol' : 'lost', text: `the server refused the connection (${code}: ${msg.slice(0, 160)})` };
  if (/^53/.test(code) || /^57P0/.test(code)) return { kind: 'busy', text: `the server cannot take a connection now (${code}: ${msg.slice(0, 160)})` };
  if (code === '28P01' || code === '28000') return { kind: 'auth', text: `the server refused the management credentials (${code})` };
  if (!connecting) return undefined;
  if (code === '3D000') return { kind: 'database', text: `the database does not exist (${code})` };
  if (/^[0-9A-Z]{5}$/.test(code)) return { kind: 'parameter', text: `the server refused a connection parameter (${code}: ${msg.slice(0, 160)})` };
  return undefined;
}

/** Programming errors: never reported as the database's doing. */
const isBug = (e: unknown): boolean => e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;

/** Maps a driver or server error to the engine contract's codes; never includes the URL. */
export function engineError(e: unknown, what: string, cfg?: { host: string; port: number }, options: EngineErrorOptions = {}): TesseraError {
  if (isTesseraError(e)) return e;
  if (isBug(e)) return new TesseraError('TESSERA_INTERNAL', `${what}: internal error; the request id finds it in the server log`, undefined, { cause: e });
  const err = e as { code?: string; message?: string; where?: string; syscall?: string };
  const where = cfg ? ` at ${cfg.host}:${cfg.port}` : '';
  const msg = String(err?.message ?? e).slice(0, 300);
  const code = err?.code ?? '';
  const phase = options.phase ?? 'use';
  // A wait for a lock (55P03 lock_not_available under lock_timeout, or 57014 while waiting on a
  // row or relation: PostgreSQL says where in `where`) is not an outage: name the real cause.
  if (code === '55P03' || (code === '57014' && /tuple|relation/i.test(String(err.where ?? '')))) {
    const on = /relation "([^"]+)"/.exec(String(err.where ?? ''))?.[1];
    return new TesseraError('TESSERA_ENGINE_LOCK_TIMEOUT', `${what}: PostgreSQL${where} waited for a lock${on ? ` on ${on}` : ''} held by another transaction until ${code === '55P03' ? 'lock_timeout' : 'statement_timeout'} (${code}); retry later`, undefined, { cause: e });
  }
  const cause = err && typeof err === 'object' ? connectionCause(err, options.connecting === true) : undefined;
  if (cause) {
    if (phase === 'configure' && cause.kind === 'auth') return new TesseraError('TESSERA_ENGINE_AUTH_FAILED', `${what}: the database${where} refused the management credentials (${code}); check the user and password in connection_url, and pg_hba.conf`, undefined, { cause: e });
    if (phase === 'configure' && cause.kind !== 'busy' && cause.kind !== 'lost') {
      return new TesseraError('TESSERA_ENGINE_CONNECTION_INVALID', `${what}: connection_url does not work${where}: ${cause.text}; fix it and configure again`, { reason: cause.kind }, { cause: e });
    }
    const fix = cause.kind === 'auth' || cause.kind === 'tls' || cause.kind === 'file' || cause.kind === 'database' || cause.kind === 'parameter' || cause.kind === 'protocol' ? '; an operator must fix the configuration' : '; retry later';
    return new TesseraError('TESSERA_ENGINE_UNAVAILABLE', `${what}: the database${where} cannot be used: ${cause.text}${fix}`, { reason: cause.kind }, { cause: e });
  }
  // 57014 (statement timeout) outside a lock wait: the server is too slow right now.
  if (code === '57014') return new TesseraError('TESSERA_ENGINE_UNAVAILABLE', `${what}: the database${where} did not finish within statement_timeout (${code}); retry later`, { reason: 'timeout' }, { cause: e });
  return new TesseraError('TESSERA_ENGINE_FAILED', `${what}: PostgreSQL${where} said ${code ? `[${code}] ` : ''}${msg}`, undefined, { cause: e });
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function configView(c: PgConfig): Record<string, unknown> {
  // The connection URL (and its password) is never returned: only its non-secret parts.
  return {
    name: c.name,
    host: c.host,
    port: c.port,
    database: c.database,
    username: c.user,
    pool_size: c.poolSize,
    connect_timeout_ms: c.connectTimeoutMs,
    statement_timeout_ms: c.statementTimeoutMs,
    username_prefix: c.prefix,
    scram_iterations: c.scramIterations,
    created_at: iso(c.createdAt),
    updated_at: iso(c.updatedAt),
  };
}

function roleView(r: PgRole): Record<string, unknown> {
  return {
    name: r.name,
    config: r.config,
    groups: r.groups,
    default_ttl_ms: r.defaultTtlMs,
    max_ttl_ms: r.maxTtlMs,
    renewable: r.renewable,
    creation_statements: r.creationStatements,
    revocation_statements: r.revocationStatements,
    owned_objects: r.ownedObjects,
    reassign_to: r.reassignTo,
    allow_privileged_groups: r.allowPrivilegedGroups,
    ...(r.invalidCreation || r.invalid ? { invalid: r.invalidCreation ?? r.invalid } : {}),
    path: `${ENGINE_NAME}/${r.name}`,
    created_at: iso(r.createdAt),
    updated_at: iso(r.updatedAt),
  };
}

function toConfig(r: ConfigRow): PgConfig {
  return {
    name: r.name,
    host: r.host,
    port: Number(r.port),
    database: r.dbname,
    user: r.username,
    poolSize: Number(r.pool_size),
    connectTimeoutMs: Number(r.connect_timeout_ms),
    statementTimeoutMs: Number(r.statement_timeout_ms),
    prefix: r.prefix,
    scramIterations: Number(r.scram_iterations),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function toRole(r: RoleRow): PgRole {
  const creationStatements = JSON.parse(r.creation_statements) as string[];
  const revocationStatements = JSON.parse(r.revocation_statements) as string[];
  let creation: TemplatePart[][] = [];
  let revocation: TemplatePart[][] = [];
  let invalid: string | undefined;
  let invalidCreation: string | undefined;
  let invalidCreationPrivileged = false;
  // Saved under an older, laxer validator: keep the role (its leases must stay revocable) but
  // refuse to issue with creation statements that would not run as one statement each or that
  // give the user a privilege (privilege.ts), and to clean up with such revocation statements.
  const why = (e: unknown): string => `role "${r.name}" has a statement that no longer passes validation (${(e as Error).message}); save the role again with fixed statements`;
  try {
    creation = creationStatements.map((s, i) => parseTemplate(s, i, 'creation_statements'));
    creationStatements.forEach((s, i) => checkStatementForm(s, i, 'creation_statements', { allowBuiltin: Number(r.allow_privileged_groups ?? 0) === 1 }));
  } catch (e) {
    invalidCreation = why(e);
    invalidCreationPrivileged = isTesseraError(e) && e.code === 'TESSERA_ENGINE_ROLE_PRIVILEGED';
  }
  try {
    revocation = revocationStatements.map((s, i) => parseTemplate(s, i, 'revocation_statements'));
    revocationStatements.forEach((s, i) => checkStatementForm(s, i, 'revocation_statements', { allowBuiltin: Number(r.allow_privileged_groups ?? 0) === 1 }));
  } catch (e) {
    invalid = why(e);
  }
  const ownedObjects: OwnedObjectRule = r.owned_objects === 'reassign' ? 'reassign' : 'drop';
  return {
    name: r.name,
    config: r.config,
    groups: JSON.parse(r.group_roles) as string[],
    defaultTtlMs: Number(r.default_ttl_ms),
    maxTtlMs: Number(r.max_ttl_ms),
    renewable: Number(r.renewable) === 1,
    creationStatements,
    revocationStatements,
    creation,
    revocation,
    ownedObjects,
    reassignTo: ownedObjects === 'reassign' ? r.reassign_to : null,
    allowPrivilegedGroups: Number(r.allow_privileged_groups ?? 0) === 1,
    ...(invalid ? { invalid } : {}),
    ...(invalidCreation ? { invalidCreation, invalidCreationPrivileged } : {}),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function dataOf(d: EngineData): PgEngineData {
  const { config, role, username } = d as Record<string, unknown>;
  if (typeof config !== 'string' || typeof username !== 'string' || typeof role !== 'string') {
    throw fail('TESSERA_ENGINE_FAILED', 'lease engine data does not name a postgres config, role and username');
  }
  return { config, role, username };
}

const SYSTEM: AuditActor = { id: 'system' };

export function createPostgresEngine(deps: PostgresEngineDeps): PostgresEngine {
  const { store, sealer, clock, logger, audit } = deps;
  const random = deps.random ?? randomBytes;
  const live = new Map<string, Live>();
  const roles = new Map<string, PgRole>();
  let unsubscribe: (() => Promise<void>) | undefined;
  let healthCache: { at: number; configs: number; value: EngineHealth[] } | undefined;
  let healthProbe: Promise<EngineHealth[]> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<unknown> | undefined;
  let issued: Counter | undefined;
  let orphans: Counter | undefined;
  if (deps.metrics) {
    issued = deps.metrics.counter('tessera_pg_engine_users_created_total', 'Database users created by the postgres engine');
    orphans = deps.metrics.counter('tessera_pg_engine_orphans_dropped_total', 'Database users with the engine prefix and no lease, dropped by reconciliation');
  }

  function poolOf(l: Live): pg.Pool {
    if (l.pool) return l.pool;
    const c = l.cfg;
    const pool = new pg.Pool({
      connectionString: l.url,
      max: c.poolSize,
      // Bounds both the TCP/auth handshake and waiting for a free pooled connection.
      connectionTimeoutMillis: c.connectTimeoutMs,
      // Server-side bound on every statement, plus a client-side one for a silent network.
      statement_timeout: c.statementTimeoutMs,
      query_timeout: c.statementTimeoutMs + 1000,
      idle_in_transaction_session_timeout: c.statementTimeoutMs * 2,
      idleTimeoutMillis: 30_000,
      application_name: 'tessera-engine',
      allowExitOnIdle: true,
    });
    pool.on('error', (e) => logger.warn({ engine: ENGINE_NAME, config: c.name, err: e.message }, 'idle management connection failed'));
    l.pool = pool;
    return pool;
  }

  function liveOf(config: string): Live {
    const l = live.get(config);
    if (!l) {
      const step = NEXT_STEPS.configurePostgres(config);
      throw fail('TESSERA_ENGINE_NOT_FOUND', `no postgres engine configuration "${config}"; configure it with ${step.route}`, { next_step: step });
    }
    return l;
  }

  /**
   * Roles are cluster-wide in PostgreSQL: a role that another engine configuration manages (its
   * management role, or a lease user with its prefix) must not be rotated through this one — it
   * would lock that engine out or pull a lease user from under its lease. Names are compared
   * across every configuration whatever its host (fail closed: two servers may be one).
   */
  function otherEngineRole(config: string, roleName: string): string | undefined {
    for (const [name, o] of live) {
      if (name === config) continue;
      if (o.cfg.user === roleName) return `role "${roleName}" is the management role of engine configuration "${name}"; rotate it with the engine-root rotator of that configuration`;
      if (roleName.startsWith(o.cfg.prefix)) return `role "${roleName}" carries the username prefix "${o.cfg.prefix}" of engine configuration "${name}" (a lease user)`;
    }
    return undefined;
  }

  async function withClient<T>(l: Live, what: string, signal: AbortSignal | undefined, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    signal?.throwIfAborted();
    let client: pg.PoolClient;
    try {
      client = await poolOf(l).connect();
    } catch (e) {
      throw engineError(e, what, l.cfg, { connecting: true });
    }
    let broken = false;
    try {
      signal?.throwIfAborted();
      if (l.version === undefined) {
        const v = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
        l.version = Number(v.rows[0]?.v ?? 0);
      }
      return await fn(client);
    } catch (e) {
      const mapped = engineError(e, what, l.cfg);
      broken = mapped.code === 'TESSERA_ENGINE_UNAVAILABLE';
      throw mapped;
    } finally {
      client.release(broken);
    }
  }

  /** BEGIN … COMMIT. Templates run with standard_conforming_strings on, as the template lexer (lexer.ts) reads them. */
  async function inTransaction(c: pg.PoolClient, fn: () => Promise<void>): Promise<void> {
    await c.query('BEGIN');
    try {
      await c.query('SET LOCAL standard_conforming_strings = on');
      await fn();
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  }

  /** One statement through the extended protocol: the server refuses a second command in it. */
  function single(c: pg.PoolClient, text: string): Promise<pg.QueryResult> {
    return c.query({ text, values: [], queryMode: 'extended' } as pg.QueryConfig);
  }

  /** Runs the role's creation statements (inside the caller's transaction), or the default CREATE ROLE. `stage` names the statement running. */
  async function createUser(c: pg.PoolClient, role: PgRole, username: string, verifier: string, expiration: string, stage?: (s: string) => void): Promise<void> {
    // Re-checked at every issuance: a role saved by an older version (or written to the store
    // directly) whose creation statement would give the user a privilege issues nothing.
    if (role.invalidCreationPrivileged) throw fail('TESSERA_ENGINE_USER_PRIVILEGED', `nothing was issued: ${role.invalidCreation}`);
    const invalid = role.invalidCreation ?? role.invalid;
    if (invalid) throw fail('TESSERA_ENGINE_FAILED', invalid);
    if (role.creation.length === 0) {
      stage?.('the default CREATE ROLE');
      const groups = role.groups.length ? ` IN ROLE ${role.groups.map(quoteIdent).join(', ')}` : '';
      await c.query(
        `CREATE ROLE ${quoteIdent(username)} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${quoteLiteral(verifier)} VALID UNTIL ${quoteLiteral(expiration)}${groups}`,
      );
      return;
    }
    for (const [i, parts] of role.creation.entries()) {
      stage?.(`creation_statements[${i}]`);
      await single(c, renderTemplate(parts, { name: username, password: verifier, expiration, groups: role.groups }));
    }
  }

  /**
   * Inside the creating transaction: what the new user may not have (privilege.ts) — its own
   * privileged attributes, an ADMIN option, members, and (unless the role allows privileged
   * groups) privileged or built-in groups, however the statements or a later change of a group
   * role produced them.
   */
  async function privilegeProblems(c: pg.PoolClient, role: PgRole, username: string): Promise<PrivilegeProblem[]> {
    const r = await c.query<{ kind: PrivilegeProblem['kind']; what: string }>(PRIVILEGE_PROBLEMS_SQL, [username]);
    return relevantProblems(r.rows, role.allowPrivilegedGroups);
  }

  /** One pass of pg_terminate_backend over the users' sessions (every database), each waited for on PostgreSQL ≥ 14 unless `signalOnly`. */
  async function terminateSessions(c: pg.ClientBase, l: Live, oids: readonly string[], signalOnly = false): Promise<void> {
    const wait = !signalOnly && (l.version ?? 0) >= 140000 ? `, ${Math.min(5000, l.cfg.statementTimeoutMs)}` : '';
    await c.query(`SELECT pg_terminate_backend(pid${wait}) FROM pg_stat_activity WHERE usesysid = ANY($1::oid[]) AND pid <> pg_backend_pid()`, [oids]);
  }

  /**
   * Ends every session of the users `oids` (pg_stat_activity is cluster-wide: every database)
   * and waits until they are gone — PostgreSQL ≥ 14 inside pg_terminate_backend(pid, timeout),
   * older servers by polling. A session inside a transaction is ended too (rolled back). Throws
   * when a session is still there after the bound: the caller must not report success.
   */
  async function endSessions(c: pg.PoolClient, l: Live, oids: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    for (let round = 1; ; round++) {
      await terminateSessions(c, l, oids);
      const left = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usesysid = ANY($1::oid[]) AND pid <> pg_backend_pid()`, [oids]);
      const n = Number(left.rows[0]?.n ?? 0);
      if (n === 0) return;
      if (round >= SESSION_END_ROUNDS || signal?.aborted) throw fail('TESSERA_ENGINE_FAILED', `${count(n, 'session')} of the revoked database users ${verb(n, 'is', 'are')} still running after pg_terminate_backend; the revocation is retried`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A connection of its own (not from the pool: the pool may have one connection, busy with the statement being watched), to `database` when given. */
  async function sideClient(l: Live, database?: string): Promise<pg.Client> {
    let url = l.url;
    if (database !== undefined) {
      const u = new URL(l.url);
      u.pathname = `/${encodeURIComponent(database)}`;
      url = u.toString();
    }
    const c = l.cfg;
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: c.connectTimeoutMs, statement_timeout: c.statementTimeoutMs, query_timeout: c.statementTimeoutMs + 1000, application_name: 'tessera-engine' });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    return client;
  }

  /**
   * Rolls back every prepared transaction (`PREPARE TRANSACTION`) of the users `names`, in every
   * database. A prepared transaction outlives its session — pg_terminate_backend cannot end it —
   * and keeps its locks: an uncommitted `ALTER ROLE CURRENT_USER …` in one holds the user's
   * pg_authid row and would block the disable forever. Only its owner (or a superuser) may
   * finish it (PostgreSQL manual, ROLLBACK PREPARED), in its own database: the management role
   * takes the user's membership (as the cleanup does) and `SET ROLE`s to it. Returns how many.
   */
  async function rollbackPrepared(c: pg.ClientBase, l: Live, names: readonly string[]): Promise<number> {
    if (names.length === 0) return 0;
    const px = await c.query<{ gid: string; owner: string; database: string; here: boolean }>(
      `SELECT gid, owner, database, database = current_database() AS here FROM pg_prepared_xacts WHERE owner = ANY($1::text[]) ORDER BY database, gid`,
      [names],
    );
    const byDb = new Map<string, { gid: string; owner: string }[]>();
    for (const r of px.rows) byDb.set(r.here ? '' : r.database, [...(byDb.get(r.here ? '' : r.database) ?? []), r]);
    for (const [database, list] of byDb) {
      let side: pg.Client | undefined;
      try {
        side = database === '' ? undefined : await sideClient(l, database);
      } catch (e) {
        throw new TesseraError(
          'TESSERA_ENGINE_FAILED',
          `${noun(list.length, 'prepared transaction')} of the revoked database ${noun(list.length, 'user')} (${list.map((x) => x.gid).join(', ')}) in database "${database}" hold locks, and Tessera cannot connect there to roll ${noun(list.length, 'it', 'them')} back (${(e as Error).message}); run ROLLBACK PREPARED there as a superuser. The revocation is retried`,
          undefined,
          { cause: e },
        );
      }
      const db: pg.ClientBase = side ?? c;
      try {
        for (const x of list) {
          await db.query(`GRANT ${quoteIdent(x.owner)} TO CURRENT_USER`);
          await db.query(`SET ROLE ${quoteIdent(x.owner)}`);
          try {
            await db.query(`ROLLBACK PREPARED ${quoteLiteral(x.gid)}`);
          } catch (e) {
            if ((e as { code?: string }).code !== '42704') throw e; // already finished meanwhile
          } finally {
            await db.query('RESET ROLE');
          }
        }
      } finally {
        await side?.end().catch(() => undefined);
      }
    }
    return px.rows.length;
  }

  /** Runs `sql` in a transaction whose lock waits end after `lockMs` (55P03). */
  async function underLockTimeout(c: pg.ClientBase, lockMs: number, sql: string): Promise<void> {
    await c.query('BEGIN');
    try {
      await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockMs))}`);
      await c.query(sql);
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  }

  /**
   * Runs a disable statement on the users `oids`/`names` past any lock THEY hold. First with a
   * short lock_timeout; when it has to wait, again while a second connection watches
   * `pg_blocking_pids()` of the waiting statement and removes each blocker that belongs to the
   * users — their session is ended (its transaction rolls back), their prepared transaction
   * rolled back — until the statement gets the lock (PostgreSQL queues lock requests: a user
   * that logs in again queues behind it). A blocker of another role is not touched: the
   * statement fails with TESSERA_ENGINE_LOCK_TIMEOUT naming it, and the revocation is retried.
   */
  async function runPastUserLocks(c: pg.PoolClient, l: Live, sql: string, oids: readonly string[], names: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    try {
      await underLockTimeout(c, LOCK_PROBE_MS, sql);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== '55P03') throw e;
    }
    const pid = Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
    const watcher = await sideClient(l);
    const others = new Map<number, string>();
    try {
      let done = false;
      const wait = Math.max(LOCK_PROBE_MS, Math.min(l.cfg.statementTimeoutMs - 500, 5000));
      const run = underLockTimeout(c, wait, sql).finally(() => (done = true));
      run.catch(() => undefined);
      while (!done && !signal?.aborted) {
        await new Promise((r) => setTimeout(r, LOCK_WATCH_MS));
        if (done) break;
        const blockers = await watcher.query<{ pid: number; usesysid: string | null; usename: string | null; state: string | null; xact_start: Date | null }>(
          `SELECT b.pid, a.usesysid::text AS usesysid, a.usename, a.state, a.xact_start FROM unnest(pg_blocking_pids($1)) AS b(pid) LEFT JOIN pg_stat_activity a ON a.pid = b.pid`,
          [pid],
        );
        for (const b of blockers.rows) {
          if (b.pid === 0) await rollbackPrepared(watcher, l, names); // a prepared transaction (pid 0)
          else if (b.usesysid !== null && oids.includes(b.usesysid)) await watcher.query('SELECT pg_terminate_backend($1)', [b.pid]);
          else {
            // State and start are visible only with pg_read_all_stats: named when known.
            const how = [b.state, b.xact_start ? `since ${b.xact_start.toISOString()}` : undefined].filter(Boolean).join(', ');
            others.set(b.pid, `session ${b.pid} of role ${b.usename === null ? '(unknown)' : JSON.stringify(b.usename)}${how ? ` (${how})` : ''}`);
          }
        }
      }
      try {
        await run;
      } catch (e) {
        const code = (e as { code?: string }).code;
        if ((code === '55P03' || code === '57014') && others.size > 0) {
          throw new TesseraError(
            'TESSERA_ENGINE_LOCK_TIMEOUT',
            `a lock is held by ${[...others.values()].slice(0, 3).join('; ')}, not a revoked user, so Tessera did not end it; retried until that transaction ends`,
            undefined,
            { cause: e },
          );
        }
        throw e;
      }
    } finally {
      await watcher.end().catch(() => undefined);
    }
  }

  /**
   * Revocation step 1 (disable): makes the users unusable without deleting anything, so it
   * works whatever they own, and whatever they hold. (1) their prepared transactions rolled
   * back and their sessions ended — a transaction of the user may hold the lock on its own
   * pg_authid row (`BEGIN; ALTER ROLE CURRENT_USER PASSWORD …` left open) that the next step
   * needs; (2) `NOLOGIN VALID UNTIL '-infinity'` — no new login, whatever the password — past
   * any lock the users still hold (`runPastUserLocks`); (3) every session ended again (a
   * session outlives NOLOGIN; a login may have raced step 2), waiting until gone;
   * (4) memberships revoked both ways — the user leaves its groups, so views and SECURITY
   * DEFINER functions it owns lose the group's privileges, and no other role can SET ROLE to it
   * (the management role keeps a membership it may hold for the cleanup). Steps 3 and 4 run
   * even when step 2 failed (a lock held by another role): the user then keeps LOGIN but no
   * session and no group, and the error says so; the lease stays not disabled and is retried.
   * Idempotent.
   */
  async function disableUsers(l: Live, users: readonly PgEngineData[], signal: AbortSignal | undefined): Promise<void> {
    await withClient(l, `disabling ${count(users.length, 'database user')}`, signal, async (c) => {
      const found = await c.query<{ oid: string; rolname: string }>(`SELECT oid::text AS oid, rolname FROM pg_roles WHERE rolname = ANY($1::text[])`, [users.map((u) => u.username)]);
      if (found.rows.length === 0) return; // never created, or already dropped
      const oids = found.rows.map((r) => r.oid);
      const names = found.rows.map((r) => r.rolname);
      // Every step is tried even when an earlier one failed: each one alone takes something away.
      const errors: unknown[] = [];
      const step = async (fn: () => Promise<unknown>): Promise<boolean> => {
        try {
          await fn();
          return true;
        } catch (e) {
          errors.push(e);
          return false;
        }
      };
      // Best effort: it only clears the way (a user logging in again and again keeps a session
      // count above zero here); what decides is the steps after it.
      const before = await step(async () => {
        await rollbackPrepared(c, l, names);
        // Signalled, not waited for: a user opening sessions as fast as it can must not keep
        // this statement busy; a session still exiting holds its locks a moment longer, and
        // the watch in runPastUserLocks deals with that.
        await terminateSessions(c, l, oids, true);
      });
      const preErrors = errors.splice(0);
      // Every user in one transaction.
      const altered = await step(() => runPastUserLocks(c, l, found.rows.map((r) => `ALTER ROLE ${quoteIdent(r.rolname)} NOLOGIN VALID UNTIL '-infinity'`).join('; '), oids, names, signal));
      const ended = await step(() => endSessions(c, l, oids, signal));
      const left = await step(async () => {
        const members = await c.query<{ role: string; member: string }>(
          `SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
           WHERE (a.member = ANY($1::oid[]) OR a.roleid = ANY($1::oid[])) AND m.rolname <> current_user`,
          [oids],
        );
        if (members.rows.length > 0) await runPastUserLocks(c, l, members.rows.map((m) => `REVOKE ${quoteIdent(m.role)} FROM ${quoteIdent(m.member)}`).join('; '), oids, names, signal);
      });
      if (errors.length === 0) return;
      if (!before) errors.push(...preErrors);
      const first = errors[0];
      if (!altered && ended && left && isTesseraError(first)) {
        throw new TesseraError(first.code, `NOLOGIN not applied yet (sessions ended, groups revoked; the user can still log in): ${first.message}`, first.details, { cause: first });
      }
      throw first;
    });
  }

  /**
   * Inside the caller's transaction: the cleanup of (disabled) users — the roles' revocation
   * statements, the owned-object rule (`REASSIGN OWNED BY … TO <reassign_to>` for `reassign`,
   * then `DROP OWNED BY` for every user: objects under `drop`, remaining privileges under both),
   * then `DROP ROLE`. REASSIGN/DROP OWNED need the privileges of the user (PostgreSQL manual,
   * DROP OWNED), so the management role takes its membership first (undone by DROP ROLE).
   * Both act in the connected database only (and on shared objects): objects in other
   * databases make DROP ROLE fail (2BP01), see `explainCleanupFailure`.
   */
  async function runCleanup(c: pg.PoolClient, items: readonly { username: string; role: PgRole | undefined }[], stage?: (s: string) => void): Promise<void> {
    const names = items.map((i) => quoteIdent(i.username)).join(', ');
    stage?.('taking the privileges of the user (GRANT … TO CURRENT_USER)');
    await c.query(`GRANT ${names} TO CURRENT_USER`);
    for (const it of items) {
      if (it.role?.invalid) throw fail('TESSERA_ENGINE_FAILED', it.role.invalid);
      for (const [i, parts] of (it.role?.revocation ?? []).entries()) {
        stage?.(`revocation_statements[${i}]`);
        await single(c, renderTemplate(parts, { name: it.username, password: '', expiration: '', groups: it.role?.groups ?? [] }));
      }
    }
    const byTarget = new Map<string, string[]>();
    for (const it of items) {
      if (it.role?.ownedObjects === 'reassign' && it.role.reassignTo) byTarget.set(it.role.reassignTo, [...(byTarget.get(it.role.reassignTo) ?? []), it.username]);
    }
    for (const [target, users] of byTarget) {
      stage?.(`owned_objects "reassign": REASSIGN OWNED BY … TO ${target}`);
      await c.query(`REASSIGN OWNED BY ${users.map(quoteIdent).join(', ')} TO ${quoteIdent(target)}`);
    }
    stage?.('owned_objects: DROP OWNED BY');
    await c.query(`DROP OWNED BY ${names}`);
    stage?.('DROP ROLE');
    await c.query(`DROP ROLE ${names}`);
  }

  /** A cleanup that failed because the users still own or hold something in OTHER databases: say where, and what to do. */
  async function explainCleanupFailure(c: pg.PoolClient, l: Live, e: unknown, oids: readonly string[], usernames: readonly string[]): Promise<unknown> {
    if ((e as { code?: string })?.code !== '2BP01') return e;
    const elsewhere = await c
      .query<{ datname: string; n: number }>(
        `SELECT d.datname, count(*)::int AS n FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
         WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = ANY($1::oid[]) AND d.datname <> current_database() GROUP BY 1 ORDER BY 1`,
        [oids],
      )
      .catch(() => undefined);
    if (!elsewhere || elsewhere.rows.length === 0) return e;
    const where = elsewhere.rows.map((r) => `${r.datname} (${r.n})`).join(', ');
    const who = usernames.slice(0, 3).join(', ') + (usernames.length > 3 ? ', …' : '');
    return new TesseraError(
      'TESSERA_ENGINE_FAILED',
      `${noun(usernames.length, 'database user')} ${who} still ${verb(usernames.length, 'owns', 'own')} objects or ${verb(usernames.length, 'holds', 'hold')} privileges in ${noun(elsewhere.rows.length, 'another database', 'other databases')}: ${where}. REASSIGN OWNED / DROP OWNED act only in "${l.cfg.database}", the database the engine connects to; ` +
        `connect to each of those as a privileged role and run DROP OWNED BY (or REASSIGN OWNED BY … TO …), then revoke the lease again. The user stays disabled (no login, no session) meanwhile`,
      undefined,
      { cause: e },
    );
  }

  /** Revocation step 2 (cleanup), after `disableUsers`: see `runCleanup`. Then ends any session that slipped in before NOLOGIN committed. Idempotent. */
  async function cleanupUsers(l: Live, users: readonly PgEngineData[], signal: AbortSignal | undefined): Promise<void> {
    await withClient(l, `dropping ${count(users.length, 'database user')}`, signal, async (c) => {
      const found = await c.query<{ oid: string; rolname: string }>(`SELECT oid::text AS oid, rolname FROM pg_roles WHERE rolname = ANY($1::text[])`, [users.map((u) => u.username)]);
      if (found.rows.length === 0) return; // never created, or already dropped
      const present = new Set(found.rows.map((r) => r.rolname));
      const oids = found.rows.map((r) => r.oid);
      const items = users.filter((u) => present.has(u.username)).map((u) => ({ username: u.username, role: roles.get(u.role) }));
      try {
        await inTransaction(c, () => runCleanup(c, items));
      } catch (e) {
        throw await explainCleanupFailure(c, l, e, oids, [...present]);
      }
      // PostgreSQL lets a session outlive its dropped role: end what a racing login may have opened.
      await endSessions(c, l, oids, signal);
    });
  }

  /**
   * Applies `op` to many users, grouped by configuration, `REVOKE_BATCH` per call. A failed
   * batch is retried user by user (one user that cannot be handled must not hold back the
   * rest), except when the database is unreachable. Resolves with the failed indexes.
   */
  async function batched(
    items: readonly EngineData[],
    signal: AbortSignal | undefined,
    what: string,
    op: (l: Live, users: readonly PgEngineData[], signal: AbortSignal | undefined) => Promise<void>,
  ): Promise<{ failed: { index: number; error: TesseraError }[] }> {
    const failed: { index: number; error: TesseraError }[] = [];
    const byConfig = new Map<string, { index: number; data: PgEngineData }[]>();
    items.forEach((d, index) => {
      try {
        const data = dataOf(d);
        const list = byConfig.get(data.config) ?? [];
        list.push({ index, data });
        byConfig.set(data.config, list);
      } catch (e) {
        failed.push({ index, error: engineError(e, what) });
      }
    });
    for (const [config, list] of byConfig) {
      let l: Live;
      try {
        l = liveOf(config);
      } catch (e) {
        for (const it of list) failed.push({ index: it.index, error: engineError(e, what) });
        continue;
      }
      for (let i = 0; i < list.length; i += REVOKE_BATCH) {
        const batch = list.slice(i, i + REVOKE_BATCH);
        try {
          await op(l, batch.map((b) => b.data), signal);
        } catch (e) {
          if (batch.length === 1 || engineError(e, '').code === 'TESSERA_ENGINE_UNAVAILABLE') {
            for (const it of batch) failed.push({ index: it.index, error: engineError(e, what, l.cfg) });
            continue;
          }
          for (const it of batch) {
            try {
              await op(l, [it.data], signal);
            } catch (e2) {
              failed.push({ index: it.index, error: engineError(e2, what, l.cfg) });
            }
          }
        }
      }
    }
    return { failed };
  }

  const disableMany = (items: readonly EngineData[], signal?: AbortSignal) => batched(items, signal, 'disable', disableUsers);
  const revokeMany = (items: readonly EngineData[], signal?: AbortSignal) => batched(items, signal, 'revoke', cleanupUsers);

  /** Maps a failure of a role's dry run (rolled back) to a stable code naming the statement and PostgreSQL's answer. */
  function dryRunError(e: unknown, stage: string, l: Live): unknown {
    const err = e as { code?: string; message?: string; position?: string };
    if (isTesseraError(e) || typeof err?.code !== 'string' || !/^[0-9A-Z]{5}$/.test(err.code) || engineError(e, '', l.cfg).code !== 'TESSERA_ENGINE_FAILED') return e;
    const said = `PostgreSQL said [${err.code}] ${String(err.message).slice(0, 300)}${err.position ? ` (position ${err.position})` : ''}`;
    if (err.code === '42501') {
      return new TesseraError('TESSERA_ENGINE_PRIVILEGE_MISSING', `the management role "${l.cfg.user}" lacks a privilege for ${stage} (dry run, rolled back): ${said}. See docs/engine-postgres.md §1`, undefined, { cause: e });
    }
    // A dry run only fails because of what the role says (its statements, groups, rule): the
    // operator's input, so 400 — never a 502 (docs/adr/0065-engine-error-classes.md).
    const code = /statements\[/.test(stage) ? 'TESSERA_ENGINE_TEMPLATE_INVALID' : 'TESSERA_ENGINE_ROLE_INVALID';
    const field = /statements\[/.test(stage) ? stage.replace(/\[(\d+)\]$/, '.$1') : /CREATE ROLE/.test(stage) ? 'groups' : /reassign/i.test(stage) ? 'reassign_to' : 'owned_objects';
    return new TesseraError(code, `${stage} failed in a dry run of the role (rolled back): ${said}`, { field }, { cause: e });
  }

  /**
   * Saving a role runs it once against the database, in a transaction that is rolled back:
   * its creation statements (or the default CREATE ROLE) for a throwaway user, then the cleanup
   * a revocation runs (revocation statements, owned-object rule, DROP ROLE). What PostgreSQL
   * refuses is refused when the role is saved, not at every issuance.
   */
  async function dryRun(l: Live, role: PgRole): Promise<void> {
    const username = `${l.cfg.prefix}dryrun_${random(8).toString('hex')}`;
    const verifier = scramSha256Verifier(encodePassword(random(32)), random(SCRAM_SALT_BYTES), l.cfg.scramIterations);
    let stage = 'starting the dry run';
    const track = (s: string) => void (stage = s);
    await withClient(l, 'checking the role against the database', undefined, async (c) => {
      await c.query('BEGIN');
      try {
        await c.query('SET LOCAL standard_conforming_strings = on');
        // Who receives a revoked user's objects (reassign_to, REASSIGN OWNED … TO x): its SECURITY
        // DEFINER functions and views then run with that role's privileges.
        const targets = [...(role.reassignTo ? [['reassign_to', role.reassignTo] as const] : []), ...role.revocationStatements.flatMap((st, i) => reassignTargets(st).map((t) => [`revocation_statements.${i}`, t] as const))];
        for (const [field, target] of targets) {
          track(`checking ${field}`);
          const t = await c.query<{ escape: boolean; privileged: boolean }>(
            `SELECT (rolname = current_user OR rolsuper OR rolcreaterole) AS escape, (oid < 16384 OR rolcreatedb OR rolreplication OR rolbypassrls) AS privileged FROM pg_roles WHERE rolname = $1`,
            [target],
          );
          const row = t.rows[0];
          if (row?.escape || (row?.privileged && !role.allowPrivilegedGroups)) {
            throw fail('TESSERA_ENGINE_ROLE_PRIVILEGED', `${field} "${target}" ${row.escape ? 'is the management role or carries SUPERUSER or CREATEROLE (never allowed)' : 'is a built-in role or carries CREATEDB, REPLICATION or BYPASSRLS (allowed only with allow_privileged_groups: true, dangerous)'}: objects of revoked users handed to it (SECURITY DEFINER functions, views) would run with its privileges. Name a role made for the purpose`, { field });
          }
        }
        await createUser(c, role, username, verifier, iso(clock.now() + role.defaultTtlMs), track);
        track('checking what the user was given');
        const problems = await privilegeProblems(c, role, username);
        if (problems.length > 0) {
          throw fail('TESSERA_ENGINE_ROLE_PRIVILEGED', `the role would give its database users ${describeProblems(problems)} (found in a dry run, rolled back). A user with these can outlast or escape its revocation; ${problems.every((p) => p.kind === 'group') ? 'groups that are pg_* built-in roles or carry CREATEDB, REPLICATION or BYPASSRLS need allow_privileged_groups: true (dangerous, see docs/engine-postgres.md)' : 'remove what gives it'}`, { field: problems.every((p) => p.kind === 'group' || p.kind === 'escape') && role.groups.length > 0 ? 'groups' : 'creation_statements' });
        }
        await runCleanup(c, [{ username, role }], track);
      } catch (e) {
        throw dryRunError(e, stage, l);
      } finally {
        await c.query('ROLLBACK').catch(() => undefined);
      }
    });
  }

  const engine: PostgresDynamicEngine = {
    name: ENGINE_NAME,

    role(name: string): RoleSpec | undefined {
      const r = roles.get(name);
      if (!r || !live.has(r.config)) return undefined;
      return { defaultTtlMs: r.defaultTtlMs, maxTtlMs: r.maxTtlMs, renewable: r.renewable };
    },

    prepare(lease: LeaseContext): EngineData {
      const r = roles.get(lease.role);
      const l = r && live.get(r.config);
      if (!r || !l) throw fail('TESSERA_ENGINE_NOT_FOUND', `engine "postgres" has no role "${lease.role}"`);
      // Deterministic, unique per lease, within NAMEDATALEN-1 (63) with a ≤ 30-character prefix.
      const username = `${l.cfg.prefix}${sha256Hex(lease.id).slice(0, 32)}`;
      return { config: r.config, role: r.name, username } satisfies PgEngineData;
    },

    async create(lease: LeaseContext, engineData: EngineData, signal: AbortSignal): Promise<CreatedCredential> {
      const data = dataOf(engineData);
      const l = liveOf(data.config);
      const role = roles.get(data.role);
      if (!role) throw fail('TESSERA_ENGINE_NOT_FOUND', `engine "postgres" has no role "${data.role}"`);
      const password = encodePassword(random(32));
      const verifier = scramSha256Verifier(password, random(SCRAM_SALT_BYTES), l.cfg.scramIterations);
      // VALID UNTIL is the backstop should the reaper never run (RFC-free: PostgreSQL CREATE ROLE).
      const expiration = iso(lease.expiresAt);
      await withClient(l, `creating database user for ${ENGINE_NAME}/${role.name}`, signal, async (c) => {
        // One transaction: the user is checked before it exists for anyone else, and rolled back
        // when it came out privileged (a group role changed in the database since the role was saved).
        await inTransaction(c, async () => {
          await createUser(c, role, data.username, verifier, expiration);
          const problems = await privilegeProblems(c, role, data.username);
          if (problems.length > 0) {
            throw fail('TESSERA_ENGINE_USER_PRIVILEGED', `the database user for ${ENGINE_NAME}/${role.name} came out with ${describeProblems(problems)}; it was rolled back and nothing was issued. A group role was probably changed in the database since the role was saved: an operator must fix it (or the role)`);
          }
        });
      });
      issued?.inc({ config: data.config });
      const { host, port, database } = l.cfg;
      const hostPart = host.includes(':') ? `[${host}]` : host;
      const uri = `postgresql://${encodeURIComponent(data.username)}:${encodeURIComponent(password)}@${hostPart}:${port}/${encodeURIComponent(database)}`;
      return { data: { username: data.username, password, host, port, database, uri } };
    },

    async renew(engineData: EngineData, newExpiresAt: number, signal: AbortSignal): Promise<void> {
      const data = dataOf(engineData);
      const l = liveOf(data.config);
      await withClient(l, 'extending VALID UNTIL', signal, async (c) => {
        try {
          await underLockTimeout(c, Math.max(LOCK_PROBE_MS, Math.min(l.cfg.statementTimeoutMs - 500, 2000)), `ALTER ROLE ${quoteIdent(data.username)} VALID UNTIL ${quoteLiteral(iso(newExpiresAt))}`);
        } catch (e) {
          if ((e as { code?: string }).code !== '55P03') throw e;
          // The user's own transaction holding its pg_authid row is the agent's doing, not an outage.
          const own = await c.query<{ n: number }>(
            `SELECT (SELECT count(*) FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid WHERE k.relation = 'pg_authid'::regclass AND a.usename = $1)
                  + (SELECT count(*) FROM pg_prepared_xacts WHERE owner = $1) AS n`,
            [data.username],
          );
          if (Number(own.rows[0]?.n ?? 0) > 0) {
            throw fail('TESSERA_ENGINE_USER_BUSY', `the database user of this lease holds a lock on its own role (an uncommitted ALTER ROLE CURRENT_USER …, or a prepared transaction), so VALID UNTIL cannot be extended; commit or roll back that transaction and renew again`);
          }
          throw e;
        }
      });
    },

    async disable(engineData: EngineData, signal: AbortSignal): Promise<void> {
      const { failed } = await disableMany([engineData], signal);
      if (failed[0]) throw failed[0].error;
    },

    disableMany,

    async revoke(engineData: EngineData, signal: AbortSignal): Promise<void> {
      const { failed } = await revokeMany([engineData], signal);
      if (failed[0]) throw failed[0].error;
    },

    revokeMany,

    async reconcile(leases: readonly ReconcileLease[], signal: AbortSignal): Promise<ReconcileResult> {
      const known = new Map<string, ReconcileLease & { data: PgEngineData }>();
      for (const lease of leases) {
        try {
          const data = dataOf(lease.engineData);
          known.set(data.username, { ...lease, data });
        } catch {
          // Not ours to judge: a malformed row stays as it is.
        }
      }
      let orphansDropped = 0;
      const missing: string[] = [];
      for (const l of live.values()) {
        signal.throwIfAborted();
        try {
          const mine = [...known.values()].filter((k) => k.data.config === l.cfg.name);
          // One connection per configuration: a silent database costs one connect_timeout, not two.
          const found = await withClient(l, 'listing database users', signal, async (c) => {
            // Sessions whose role was dropped but which were not ended (a crash between DROP ROLE
            // and pg_terminate_backend): a login whose role no longer exists is ended here.
            await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usesysid IS NOT NULL AND backend_type = 'client backend' AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = usesysid)`);
            return c.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE left(rolname, length($1)) = $1 OR rolname = ANY($2::text[])`, [l.cfg.prefix, mine.map((k) => k.data.username)]);
          });
          const present = new Set(found.rows.map((r) => r.rolname));
          // A pending intent may not have reached CREATE ROLE yet: only active/revoking/disabled leases can be "missing".
          for (const k of mine) if (k.state !== 'pending' && !present.has(k.data.username)) missing.push(k.id);
          let candidates = [...present].filter((u) => u.startsWith(l.cfg.prefix) && !known.has(u));
          if (candidates.length > 0) {
            // The lease list was read before the role list: re-read it, so a lease whose intent
            // was written in between (and whose user now exists) is never taken for an orphan.
            const fresh = await openLeaseUsernames(store);
            candidates = candidates.filter((u) => !fresh.has(u));
          }
          if (candidates.length > 0) {
            // Disable first, as for a lease: an orphan that cannot be dropped is at least unusable.
            const items = candidates.map((username) => ({ config: l.cfg.name, role: '', username }));
            const off = await disableMany(items, signal);
            const notDisabled = new Set(off.failed.map((f) => f.index));
            const disabled = items.filter((_, k) => !notDisabled.has(k));
            const { failed } = await revokeMany(disabled, signal);
            const dropped = disabled.length - failed.length;
            orphansDropped += dropped;
            orphans?.inc({ config: l.cfg.name }, dropped);
            for (const f of [...off.failed, ...failed]) logger.warn({ engine: ENGINE_NAME, config: l.cfg.name, code: f.error.code, err: f.error.message }, 'could not disable or drop an orphaned database user');
            logger.info({ engine: ENGINE_NAME, config: l.cfg.name, dropped }, 'reconcile dropped database users no lease accounts for');
          }
        } catch (e) {
          // One unreachable database must not stop reconciling the others (nor the server start).
          const err = engineError(e, 'reconcile', l.cfg);
          logger.warn({ engine: ENGINE_NAME, config: l.cfg.name, code: err.code, err: err.message }, 'reconcile skipped a configuration');
        }
      }
      return { orphansDropped, missing };
    },
  };



  async function openLeaseCount(roleNames: readonly string[]): Promise<number> {
    if (roleNames.length === 0) return 0;
    const row = await store.get<{ n: number }>(
      `SELECT COUNT(*) AS n FROM leases WHERE engine = ? AND state IN ${OPEN_STATES} AND role IN (${roleNames.map(() => '?').join(', ')})`,
      [ENGINE_NAME, ...roleNames],
    );
    return Number(row?.n ?? 0);
  }

  async function reload(): Promise<void> {
    const cfgRows = await store.all<ConfigRow & Record<string, unknown>>(`SELECT * FROM pg_engine_configs`);
    const roleRows = await store.all<RoleRow & Record<string, unknown>>(`SELECT * FROM pg_engine_roles`);
    const next = new Map<string, Live>();
    for (const r of cfgRows) {
      const cfg = toConfig(r);
      const meta = await store.get<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, [urlMetaKey(cfg.name)]);
      if (!meta) {
        logger.error({ engine: ENGINE_NAME, config: cfg.name }, 'postgres engine configuration has no sealed connection URL; configure it again');
        continue;
      }
      const url = sealer.open(Buffer.from(meta.value, 'base64'), urlMetaKey(cfg.name)).toString('utf8');
      const old = live.get(cfg.name);
      if (old && old.url === url && old.cfg.updatedAt === cfg.updatedAt) next.set(cfg.name, old);
      else next.set(cfg.name, { cfg, url });
    }
    for (const [name, old] of live) {
      if (next.get(name) !== old) void old.pool?.end().catch(() => undefined);
    }
    live.clear();
    for (const [k, v] of next) live.set(k, v);
    roles.clear();
    for (const r of roleRows) roles.set(r.name, toRole(r));
  }

  async function changed(): Promise<void> {
    await reload();
    await store.publish(CHANNEL, 'changed').catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'could not notify other replicas of an engine change'));
  }

  /** The event a configuration change commits with (ADR 0041: audited or it does not happen). */
  function engineEvent(kind: 'engine.configured' | 'engine.deleted', config: string, role: string | undefined, ctx: CallCtx) {
    return {
      kind,
      actor: ctx.actor ?? SYSTEM,
      action: kind === 'engine.configured' ? 'engine.configure' : 'engine.delete',
      resource: role ? `${ENGINE_NAME}/${role}` : `${ENGINE_NAME}:${config}`,
      result: 'success',
      ...(ctx.where ? { where: ctx.where } : {}),
      details: { engine: ENGINE_NAME, config, ...(role ? { role } : {}) },
    } as const;
  }

  /** Connects with the candidate settings and checks the management role's privileges. */
  async function probe(p: ReturnType<typeof parseConfigBody>): Promise<void> {
    const where = { host: p.host, port: p.port };
    let client: pg.Client | undefined;
    try {
      client = new pg.Client({ connectionString: p.url, connectionTimeoutMillis: p.connectTimeoutMs, statement_timeout: p.statementTimeoutMs, query_timeout: p.statementTimeoutMs + 1000, application_name: 'tessera-engine' });
      client.on('error', () => undefined);
      await client.connect();
    } catch (e) {
      await client?.end().catch(() => undefined);
      throw engineError(e, 'connecting with connection_url', where, { phase: 'configure', connecting: true });
    }
    try {
      const r = await client.query<{ rolsuper: boolean; rolcreaterole: boolean; can_signal: boolean; who: string }>(
        `SELECT r.rolsuper, r.rolcreaterole, pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS can_signal, current_user AS who FROM pg_roles r WHERE r.rolname = current_user`,
      );
      const row = r.rows[0];
      if (!row || (!row.rolsuper && !row.rolcreaterole)) {
        throw fail('TESSERA_ENGINE_PRIVILEGE_MISSING', `the management role "${p.user}" has neither CREATEROLE nor superuser; run \`ALTER ROLE ${quoteIdent(p.user)} CREATEROLE\` and configure again`);
      }
      if (!row.rolsuper && !row.can_signal) {
        throw fail('TESSERA_ENGINE_PRIVILEGE_MISSING', `the management role "${p.user}" cannot end sessions of revoked users; run \`GRANT pg_signal_backend TO ${quoteIdent(p.user)}\` and configure again`);
      }
      if (row.who.startsWith(p.prefix)) throw fail('TESSERA_ENGINE_NAME_INVALID', `the management role "${row.who}" starts with the username prefix "${p.prefix}"; reconciliation would drop it. Choose another prefix`, { field: 'username_prefix' });
    } catch (e) {
      throw engineError(e, 'checking the management role', where, { phase: 'configure' });
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  const service: PostgresEngine = {
    engine,
    async start() {
      await reload();
      if (!unsubscribe) {
        unsubscribe = await store.subscribe(CHANNEL, () => void reload().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'reloading postgres engine configuration failed')), {
          onResync: () => void reload().catch(() => undefined),
        });
      }
    },

    startReconciler(leases, intervalMs) {
      if (timer) return;
      if (!Number.isInteger(intervalMs) || intervalMs < 100) throw fail('TESSERA_CONFIG_INVALID', 'the postgres reconcile interval must be at least 100 ms');
      timer = setInterval(() => {
        if (pass) return;
        pass = leases
          .reconcile()
          .catch((e: unknown) => logger.warn({ engine: ENGINE_NAME, err: (e as Error).message }, 'periodic reconcile failed'))
          .finally(() => (pass = undefined));
      }, intervalMs);
      timer.unref();
    },

    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await pass;
      await unsubscribe?.().catch(() => undefined);
      unsubscribe = undefined;
      const pools = [...live.values()].map((l) => l.pool?.end().catch(() => undefined));
      for (const l of live.values()) l.pool = undefined;
      await Promise.all(pools);
    },

    reload,

    async configure(name, body, ctx = {}) {
      checkName(name, 'engine configuration name');
      const parsed = configBody.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw fail('TESSERA_REQUEST_INVALID', `invalid request body: ${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'malformed'}`, { field: issue?.path.join('.') ?? 'body' });
      }
      const p = parseConfigBody(parsed.data);
      const existing = live.get(name);
      if (existing && (existing.cfg.host !== p.host || existing.cfg.port !== p.port || existing.cfg.prefix !== p.prefix)) {
        const open = await openLeaseCount([...roles.values()].filter((r) => r.config === name).map((r) => r.name));
        if (open > 0) throw fail('TESSERA_ENGINE_IN_USE', `configuration "${name}" has ${count(open, 'open lease')}; the server and prefix cannot change until they are revoked`);
      }
      await probe(p);
      const now = clock.now();
      const createdAt = existing?.cfg.createdAt ?? now;
      const updatedAt = Math.max(now, (existing?.cfg.updatedAt ?? 0) + 1);
      const sealed = sealer.seal(Buffer.from(p.url, 'utf8'), urlMetaKey(name)).toString('base64');
      await audit.commit(store, async (tx) => {
        await tx.run(
          `INSERT INTO pg_engine_configs (name, host, port, dbname, username, pool_size, connect_timeout_ms, statement_timeout_ms, prefix, scram_iterations, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET host = excluded.host, port = excluded.port, dbname = excluded.dbname, username = excluded.username, pool_size = excluded.pool_size,
             connect_timeout_ms = excluded.connect_timeout_ms, statement_timeout_ms = excluded.statement_timeout_ms, prefix = excluded.prefix, scram_iterations = excluded.scram_iterations, updated_at = excluded.updated_at`,
          [name, p.host, p.port, p.database, p.user, p.poolSize, p.connectTimeoutMs, p.statementTimeoutMs, p.prefix, p.scramIterations, createdAt, updatedAt],
        );
        await tx.run(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [urlMetaKey(name), sealed]);
      }, engineEvent('engine.configured', name, undefined, ctx));
      await changed();
      return configView(liveOf(name).cfg);
    },

    getConfig(name) {
      checkName(name, 'engine configuration name');
      return configView(liveOf(name).cfg);
    },

    listConfigs() {
      return [...live.values()].map((l) => configView(l.cfg)).sort((a, b) => String(a.name).localeCompare(String(b.name)));
    },

    async inspect(signal) {
      const out: EngineInspection[] = [];
      for (const l of [...live.values()].sort((a, b) => a.cfg.name.localeCompare(b.cfg.name))) {
        const mine = [...roles.values()].filter((r) => r.config === l.cfg.name).sort((a, b) => a.name.localeCompare(b.name));
        const declared = { config: l.cfg.name, prefix: l.cfg.prefix, roles: mine.map((r) => ({ role: r.name, groups: [...r.groups] })) };
        const groupNames = [...new Set(mine.flatMap((r) => r.groups))].sort();
        try {
          out.push({ ...declared, ...(await withClient(l, 'inspecting group roles', signal, (c) => inspectDatabase(c, l.cfg.prefix, groupNames))) });
        } catch (e) {
          const err = engineError(e, 'inspect', l.cfg);
          out.push({ ...declared, groups: [], users: [], error: { code: err.code, message: err.message } });
        }
      }
      return out;
    },

    async health(maxAgeMs = 10_000) {
      const now = clock.now();
      if (healthCache && now - healthCache.at < maxAgeMs && healthCache.configs === live.size) return healthCache.value;
      healthProbe ??= (async () => {
        try {
          const value = await Promise.all([...live.values()].sort((a, b) => a.cfg.name.localeCompare(b.cfg.name)).map(async (l): Promise<EngineHealth> => {
            try {
              await withClient(l, 'checking the management connection', undefined, (c) => c.query('SELECT 1'));
              return { name: l.cfg.name, kind: 'postgres', healthy: true };
            } catch (e) {
              const err = isTesseraError(e) ? e : undefined;
              return { name: l.cfg.name, kind: 'postgres', healthy: false, detail: err ? `${err.code}: ${err.message}` : 'the check failed' };
            }
          }));
          healthCache = { at: clock.now(), configs: live.size, value };
          return value;
        } finally {
          healthProbe = undefined;
        }
      })();
      return healthProbe;
    },

    async deleteConfig(name, ctx = {}) {
      checkName(name, 'engine configuration name');
      liveOf(name);
      const own = [...roles.values()].filter((r) => r.config === name);
      if (own.length > 0) throw fail('TESSERA_ENGINE_IN_USE', `configuration "${name}" still has ${noun(own.length, 'role')} ${own.map((r) => r.name).join(', ')}; delete ${noun(own.length, 'it', 'them')} first`);
      await audit.commit(store, async (tx) => {
        await tx.run(`DELETE FROM pg_engine_configs WHERE name = ?`, [name]);
        await tx.run(`DELETE FROM meta WHERE key = ?`, [urlMetaKey(name)]);
      }, engineEvent('engine.deleted', name, undefined, ctx));
      await changed();
    },

    async putRole(config, roleName, body, ctx = {}) {
      checkName(config, 'engine configuration name');
      checkName(roleName, 'role name');
      const l = liveOf(config);
      const other = roles.get(roleName);
      if (other && other.config !== config) throw fail('TESSERA_ENGINE_ROLE_CONFLICT', `role "${roleName}" belongs to configuration "${other.config}"; role names are global (they form /v1/creds/postgres/<role>). Pick another name`);
      const parsed = roleBody.safeParse(body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw fail('TESSERA_REQUEST_INVALID', `invalid request body: ${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'malformed'}`, { field: issue?.path.join('.') ?? 'body' });
      }
      const r = parseRoleBody(parsed.data as z.output<typeof roleBody>, l.cfg.user);
      const named = [...r.groups, ...(r.reassignTo ? [r.reassignTo] : [])];
      if (named.includes(l.cfg.user)) {
        throw fail('TESSERA_ENGINE_ROLE_PRIVILEGED', `group or reassign_to "${l.cfg.user}" is the management role itself: a member could SET ROLE to it and create or alter roles (and objects reassigned to it would run with its privileges). Name a role made for the purpose`, { field: r.groups.includes(l.cfg.user) ? 'groups' : 'reassign_to' });
      }
      const prefixed = named.filter((g) => g.startsWith(l.cfg.prefix));
      if (prefixed.length) throw fail('TESSERA_ENGINE_GROUP_NOT_FOUND', `group or reassign_to ${noun(prefixed.length, 'role')} ${prefixed.join(', ')} ${verb(prefixed.length, 'starts', 'start')} with the username prefix "${l.cfg.prefix}"; reconciliation would drop ${noun(prefixed.length, 'it', 'them')}. Rename ${noun(prefixed.length, 'it', 'them')}`);
      if (named.length) {
        const found = await withClient(l, 'checking group roles', undefined, (c) => c.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])`, [named]));
        const have = new Set(found.rows.map((x) => x.rolname));
        const absent = named.filter((g) => !have.has(g));
        if (absent.length) throw fail('TESSERA_ENGINE_GROUP_NOT_FOUND', `${noun(absent.length, 'role')} ${absent.join(', ')} ${verb(absent.length, 'does', 'do')} not exist in ${l.cfg.host}:${l.cfg.port}; create ${noun(absent.length, 'it', 'them')} first (CREATE ROLE <group> NOLOGIN; GRANT ... TO <group>)`);
      }
      const now = clock.now();
      const createdAt = other?.createdAt ?? now;
      // Run it once, rolled back: what PostgreSQL refuses is refused now, not at every issuance.
      await dryRun(l, {
        name: roleName,
        config,
        ...r,
        creation: r.creationStatements.map((st, i) => parseTemplate(st, i, 'creation_statements')),
        revocation: r.revocationStatements.map((st, i) => parseTemplate(st, i, 'revocation_statements')),
        createdAt,
        updatedAt: now,
      });
      await audit.commit(store, (tx) => tx.run(
        `INSERT INTO pg_engine_roles (name, config, group_roles, default_ttl_ms, max_ttl_ms, renewable, creation_statements, revocation_statements, owned_objects, reassign_to, allow_privileged_groups, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET group_roles = excluded.group_roles, default_ttl_ms = excluded.default_ttl_ms, max_ttl_ms = excluded.max_ttl_ms, renewable = excluded.renewable,
           creation_statements = excluded.creation_statements, revocation_statements = excluded.revocation_statements, owned_objects = excluded.owned_objects, reassign_to = excluded.reassign_to,
           allow_privileged_groups = excluded.allow_privileged_groups, updated_at = excluded.updated_at`,
        [roleName, config, JSON.stringify(r.groups), r.defaultTtlMs, r.maxTtlMs, r.renewable ? 1 : 0, JSON.stringify(r.creationStatements), JSON.stringify(r.revocationStatements), r.ownedObjects, r.reassignTo, r.allowPrivilegedGroups ? 1 : 0, createdAt, now],
      ), engineEvent('engine.configured', config, roleName, ctx));
      await changed();
      return roleView(roles.get(roleName)!);
    },

    getRole(config, roleName) {
      checkName(config, 'engine configuration name');
      checkName(roleName, 'role name');
      liveOf(config);
      const r = roles.get(roleName);
      if (!r || r.config !== config) throw fail('TESSERA_ENGINE_NOT_FOUND', `configuration "${config}" has no role "${roleName}"`);
      return roleView(r);
    },

    listRoles(config) {
      checkName(config, 'engine configuration name');
      liveOf(config);
      return [...roles.values()].filter((r) => r.config === config).map(roleView).sort((a, b) => String(a.name).localeCompare(String(b.name)));
    },

    passwords: {
      has: (config) => live.has(config),
      async setRolePassword(config, roleName, password, signal) {
        const l = liveOf(config);
        await withClient(l, `setting the password of role ${roleName}`, signal, async (c) => {
          const found = await c.query<{ rolsuper: boolean; me: string }>('SELECT r.rolsuper, current_user AS me FROM pg_roles r WHERE r.rolname = $1', [roleName]);
          const row = found.rows[0];
          const invalid = !row ? `role "${roleName}" does not exist in ${l.cfg.database}@${l.cfg.host}:${l.cfg.port}`
            : row.me === roleName ? `role "${roleName}" is the engine's management role; rotate it with the engine-root rotator`
              : row.rolsuper ? `role "${roleName}" is a superuser; Tessera does not rotate superuser passwords through an engine`
                : roleName.startsWith(l.cfg.prefix) ? `role "${roleName}" carries the engine's username prefix "${l.cfg.prefix}" (a lease user)`
                  : otherEngineRole(config, roleName);
          if (invalid) throw fail('TESSERA_ROTATION_ROLE_INVALID', invalid, { role: roleName });
          const verifier = scramSha256Verifier(password, random(SCRAM_SALT_BYTES), l.cfg.scramIterations);
          try {
            await single(c, `ALTER ROLE ${quoteIdent(roleName)} PASSWORD ${quoteLiteral(verifier)}`);
          } catch (e) {
            if ((e as { code?: string }).code === '42501') throw fail('TESSERA_ROTATION_ROLE_INVALID', `the management role may not alter role "${roleName}" (42501); on PostgreSQL 16+ grant it ADMIN OPTION on that role`, { role: roleName });
            throw e;
          }
        });
      },
      async endSessionsBefore(config, roleName, before, signal) {
        const l = liveOf(config);
        return withClient(l, `ending sessions of role ${roleName}`, signal, async (c) => {
          const r = await c.query<{ ended: boolean }>(
            // backend_start is visible to the management role only with pg_read_all_stats (or the
            // role's privileges); where it is hidden (NULL) the session cannot be dated and is ended
            // too — it reconnects with the current password (docs/rotation.md).
            'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid() AND (backend_start IS NULL OR backend_start < to_timestamp($2::double precision / 1000))',
            [roleName, before],
          );
          return r.rows.filter((x) => x.ended).length;
        });
      },
      rootUsername: (config) => liveOf(config).cfg.user,
      async tryRootPassword(config, password) {
        const l = liveOf(config);
        const u = new URL(l.url);
        u.password = encodeURIComponent(password);
        const client = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: l.cfg.connectTimeoutMs, query_timeout: l.cfg.statementTimeoutMs + 1000, application_name: 'tessera-engine' });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('SELECT 1');
          return true;
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (code === '28P01' || code === '28000') return false;
          throw engineError(e, 'logging in with the new management password', l.cfg, { connecting: true });
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      async changeRootPassword(config, password, signal) {
        const l = liveOf(config);
        const verifier = scramSha256Verifier(password, random(SCRAM_SALT_BYTES), l.cfg.scramIterations);
        await withClient(l, 'changing the management password', signal, (c) => single(c, `ALTER ROLE CURRENT_USER PASSWORD ${quoteLiteral(verifier)}`));
      },
      async commitRootPassword(config, password, ctx = {}) {
        const l = liveOf(config);
        const u = new URL(l.url);
        u.password = encodeURIComponent(password);
        const sealed = sealer.seal(Buffer.from(u.toString(), 'utf8'), urlMetaKey(config)).toString('base64');
        await audit.commit(store, (tx) => tx.run(`UPDATE meta SET value = ? WHERE key = ?`, [sealed, urlMetaKey(config)]), {
          kind: 'engine.root_rotated',
          actor: ctx.actor ?? SYSTEM,
          action: 'engine.rotate_root',
          resource: `${ENGINE_NAME}:${config}`,
          result: 'success',
          ...(ctx.where ? { where: ctx.where } : {}),
          details: { engine: ENGINE_NAME, config, username: l.cfg.user },
        });
        await changed();
      },
    },

    async deleteRole(config, roleName, ctx = {}) {
      service.getRole(config, roleName);
      const open = await openLeaseCount([roleName]);
      if (open > 0) throw fail('TESSERA_ENGINE_IN_USE', `role "${roleName}" has ${count(open, 'open lease')}; revoke ${noun(open, 'it', 'them')} first (e.g. revoke by prefix postgres/${roleName}/)`);
      await audit.commit(store, (tx) => tx.run(`DELETE FROM pg_engine_roles WHERE name = ? AND config = ?`, [roleName, config]), engineEvent('engine.deleted', config, roleName, ctx));
      await changed();
    },
  };
  return service;
}

/** At most this many privilege rows are read per configuration (a bound on one inspection). */
const MAX_INSPECTED_PRIVILEGES = 5000;

/** The read-only catalog queries behind `inspect` (one connection, no transaction needed). */
async function inspectDatabase(c: pg.PoolClient, prefix: string, groupNames: readonly string[]): Promise<Pick<EngineInspection, 'groups' | 'users'>> {
  const attrs = await c.query<{ rolname: string; rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean; rolreplication: boolean; rolbypassrls: boolean; rolcanlogin: boolean; rolinherit: boolean }>(
    'SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin, rolinherit FROM pg_roles WHERE rolname = ANY($1::text[])', [groupNames]);
  const memberships = await c.query<{ role: string; member: string }>(
    `SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
     WHERE r.rolname = ANY($1::text[]) OR m.rolname = ANY($1::text[]) OR left(m.rolname, length($2)) = $2`, [groupNames, prefix]);
  const privileges = await c.query<{ grantee: string; what: string }>(
    `SELECT g.rolname AS grantee, x.what FROM (
       SELECT a.grantee, (CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' ELSE 'table' END) || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ': ' || a.privilege_type AS what
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(c.relacl) a WHERE c.relacl IS NOT NULL
       UNION ALL SELECT a.grantee, 'schema ' || quote_ident(n.nspname) || ': ' || a.privilege_type FROM pg_namespace n, LATERAL aclexplode(n.nspacl) a WHERE n.nspacl IS NOT NULL
       UNION ALL SELECT a.grantee, 'database ' || quote_ident(d.datname) || ': ' || a.privilege_type FROM pg_database d, LATERAL aclexplode(d.datacl) a WHERE d.datname = current_database() AND d.datacl IS NOT NULL
       UNION ALL SELECT a.grantee, 'function ' || p.oid::regprocedure::text || ': ' || a.privilege_type FROM pg_proc p, LATERAL aclexplode(p.proacl) a WHERE p.proacl IS NOT NULL
     ) x JOIN pg_roles g ON g.oid = x.grantee WHERE g.rolname = ANY($1::text[]) ORDER BY 1, 2 LIMIT ${MAX_INSPECTED_PRIVILEGES}`, [groupNames]);
  const users = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE left(rolname, length($1)) = $1 ORDER BY rolname LIMIT 10000', [prefix]);
  const byName = new Map(attrs.rows.map((r) => [r.rolname, r]));
  const isUser = (n: string): boolean => n.startsWith(prefix);
  const groups = groupNames.map((name) => {
    const a = byName.get(name);
    const flags = a ? [a.rolsuper && 'superuser', a.rolcreaterole && 'createrole', a.rolcreatedb && 'createdb', a.rolreplication && 'replication', a.rolbypassrls && 'bypassrls', a.rolcanlogin && 'login', !a.rolinherit && 'noinherit'].filter((x): x is string => typeof x === 'string') : [];
    return {
      name,
      exists: a !== undefined,
      attributes: flags,
      memberOf: memberships.rows.filter((m) => m.member === name).map((m) => m.role).sort(),
      members: memberships.rows.filter((m) => m.role === name && !isUser(m.member)).map((m) => m.member).sort(),
      privileges: privileges.rows.filter((p) => p.grantee === name).map((p) => p.what).sort(),
    };
  });
  const userList = users.rows.map((u) => ({ name: u.rolname, memberOf: memberships.rows.filter((m) => m.member === u.rolname).map((m) => m.role).sort() }));
  return { groups, users: userList };
}
