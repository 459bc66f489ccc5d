import { randomInt } from 'node:crypto';
import pg from 'pg';
import { TesseraError } from '../../shared/errors.js';
import { checkChannel, checkLockName, checkPayload, runAsLeader } from '../fanout.js';
import { MIGRATIONS } from '../migrations.js';
import type { LeaderLock, Row, SqlExecutor, SqlValue, Store, TransactionOptions } from '../port.js';
import { toPgPlaceholders } from './placeholders.js';

export { toPgPlaceholders } from './placeholders.js';

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database (libpq URL; `?sslmode=` etc. honoured by pg). */
  readonly url: string;
  /** Connections in the query pool (default 10). Listener and leader locks use their own. */
  readonly poolSize?: number;
  /** Server-side statement_timeout for pool queries, in ms (default 30000; 0 disables). */
  readonly statementTimeoutMs?: number;
  /** How long to wait for a connection, in ms (default 5000). */
  readonly connectTimeoutMs?: number;
  /** Attempts of a transaction that keeps failing serialization (default 30). */
  readonly maxTransactionAttempts?: number;
}

/**
 * PostgreSQL adapter (pg). Transactions are SERIALIZABLE and re-run on serialization failure
 * (SQLSTATE 40001/40P01) because features write read-modify-write in portable SQL, which has no
 * `SELECT ... FOR UPDATE` (SQLite lacks it); see docs/adr/0003-postgres-store.md.
 */
export function openPostgresStore(options: PostgresStoreOptions): Store {
  const target = describeTarget(options.url);
  const base: pg.ClientConfig = {
    connectionString: options.url,
    types: { getTypeParser } as unknown as pg.CustomTypesConfig,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
  return new PostgresStore(options, base, target);
}

// --- value mapping ---------------------------------------------------------------------------

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** int8 (BIGINT, COUNT(*)) → number; refusing to lose precision silently (port contract). */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new TesseraError('TESSERA_STORE_VALUE_OUT_OF_RANGE', `the store returned the integer ${text}, beyond ±(2^53-1); it cannot be represented as a JavaScript number`);
  }
  return n;
}

/** numeric (SUM of BIGINT, AVG) → number, so aggregates read the same as on SQLite. */
function parseNumeric(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || (Number.isInteger(n) && !/[.eE]/.test(text) && !Number.isSafeInteger(n))) {
    throw new TesseraError('TESSERA_STORE_VALUE_OUT_OF_RANGE', `the store returned the number ${text}, which a JavaScript number cannot hold exactly`);
  }
  return n;
}

function getTypeParser(oid: number, format?: 'text' | 'binary'): unknown {
  if (format !== 'binary') {
    if (oid === INT8_OID) return parseInt8;
    if (oid === NUMERIC_OID) return parseNumeric;
  }
  return (pg.types.getTypeParser as (o: number, f?: string) => unknown)(oid, format);
}

function bind(params: readonly SqlValue[] | undefined): unknown[] {
  if (!params) return [];
  return params.map((p) => {
    if (typeof p === 'bigint') return p.toString();
    if (p instanceof Uint8Array && !Buffer.isBuffer(p)) return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    return p;
  });
}

/** Portable DDL → PostgreSQL: BLOB is BYTEA; BIGINT stays. */
export function adaptDdlForPostgres(sql: string): string {
  return sql.replace(/\bBLOB\b/g, 'BYTEA');
}

// --- errors ------------------------------------------------------------------------------------

interface Target {
  /** host:port (or socket dir), never the password. */
  readonly where: string;
  readonly password: string;
}

function describeTarget(url: string): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TesseraError('TESSERA_STORE_UNAVAILABLE', 'the PostgreSQL URL is not valid: expected postgres://user:password@host:port/database');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new TesseraError('TESSERA_STORE_UNAVAILABLE', `the PostgreSQL URL must start with postgres:// or postgresql:// (got ${u.protocol}//)`);
  }
  const host = u.hostname || u.searchParams.get('host') || 'localhost';
  const port = u.port || u.searchParams.get('port') || '5432';
  let password: string;
  try {
    password = decodeURIComponent(u.password);
  } catch {
    password = u.password;
  }
  return { where: `${host}:${port}`, password };
}

const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE', 'ENOENT']);
const RETRYABLE = new Set(['40001', '40P01']);

function isConnectionError(e: { code?: unknown; message?: unknown }): boolean {
  const code = typeof e.code === 'string' ? e.code : '';
  if (CONNECTION_ERRNOS.has(code)) return true;
  // Class 08 connection exception, 28 auth, 3D000 no such database, 53300 too many connections,
  // 57P01-57P03 server shutting down (PostgreSQL Appendix A).
  if (/^(08|28)/.test(code) || code === '3D000' || code === '53300' || /^57P0[123]$/.test(code)) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|not queryable/i.test(msg);
}

function scrub(message: string, target: Target): string {
  return target.password ? message.split(target.password).join('***') : message;
}

function translate(e: unknown, target: Target): unknown {
  if (e instanceof TesseraError) return e;
  if (typeof e !== 'object' || e === null) return e;
  const err = e as { code?: unknown; message?: unknown; constraint?: unknown };
  const code = typeof err.code === 'string' ? err.code : '';
  const message = scrub(typeof err.message === 'string' ? err.message : String(e), target);
  // Class 23 integrity constraint violation (23505 unique, 23502 not null, 23503 FK, 23514
  // check) maps like SQLITE_CONSTRAINT does. The DETAIL (which echoes key values) is left out.
  if (code.startsWith('23')) return new TesseraError('TESSERA_STORE_CONFLICT', `write conflicts with existing data: ${message}`, { sqlstate: code }, { cause: e });
  if (RETRYABLE.has(code)) {
    return new TesseraError('TESSERA_STORE_CONFLICT', `the transaction kept conflicting with concurrent transactions (${code}); retry the request`, { sqlstate: code }, { cause: e });
  }
  if (code === '57014') return new TesseraError('TESSERA_STORE_UNAVAILABLE', `a PostgreSQL statement at ${target.where} was cancelled (statement timeout): ${message}`, { sqlstate: code }, { cause: e });
  if (isConnectionError(err)) {
    return new TesseraError('TESSERA_STORE_UNAVAILABLE', `cannot use PostgreSQL at ${target.where}: ${message}; check that the server is up and the URL, user and password are right`, undefined, { cause: e });
  }
  if (/^[0-9A-Z]{5}$/.test(code)) return new TesseraError('TESSERA_STORE_UNAVAILABLE', `store error ${code}: ${message}`, { sqlstate: code }, { cause: e });
  return e;
}

function sqlstateOf(e: unknown): string {
  let cur: unknown = e;
  for (let i = 0; i < 3 && typeof cur === 'object' && cur !== null; i++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string' && c.length === 5) return c;
    cur = (cur as { cause?: unknown }).cause;
  }
  return '';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Advisory lock key: 64-bit hash of a namespaced name (hashtextextended, PostgreSQL ≥ 11). */
const LOCK_KEY_SQL = 'hashtextextended($1, 0)';
const MIGRATE_LOCK = 'tessera:migrate';
const leaderKey = (name: string): string => `tessera:leader:${name}`;

// --- the store ---------------------------------------------------------------------------------

class PostgresStore implements Store {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly listener: Listener;
  private readonly locks = new Map<string, PgLock>();
  private readonly maxAttempts: number;
  private closed = false;

  constructor(
    options: PostgresStoreOptions,
    private readonly base: pg.ClientConfig,
    private readonly target: Target,
  ) {
    const statementTimeout = options.statementTimeoutMs ?? 30_000;
    this.pool = new pg.Pool({
      ...base,
      max: options.poolSize ?? 10,
      idleTimeoutMillis: 30_000,
      application_name: 'tessera',
      ...(statementTimeout > 0 ? { statement_timeout: statementTimeout } : {}),
    });
    // An idle pooled connection that dies (server restart) must not crash the process; the
    // pool drops it and the next query opens a new one.
    this.pool.on('error', () => undefined);
    this.maxAttempts = Math.max(1, options.maxTransactionAttempts ?? 30);
    this.listener = new Listener(() => this.newClient('tessera-listener'), target);
  }

  private newClient(applicationName: string, extra: Partial<pg.ClientConfig> = {}): pg.Client {
    const client = new pg.Client({ ...this.base, application_name: applicationName, ...extra });
    return client;
  }

  private assertOpen(): void {
    if (this.closed) throw new TesseraError('TESSERA_STORE_UNAVAILABLE', `the PostgreSQL store for ${this.target.where} is closed`);
  }

  private async query(runner: pg.Pool | pg.PoolClient, sql: string, params?: readonly SqlValue[]): Promise<pg.QueryResult> {
    const text = toPgPlaceholders(sql).text;
    try {
      return await runner.query({ text, values: bind(params) });
    } catch (e) {
      throw translate(e, this.target);
    }
  }

  async all<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    this.assertOpen();
    return (await this.query(this.pool, sql, params)).rows as T[];
  }
  async get<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    this.assertOpen();
    return (await this.query(this.pool, sql, params)).rows[0] as T | undefined;
  }
  async run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    this.assertOpen();
    const r = await this.query(this.pool, sql, params);
    // rowCount is null for utility statements; SELECT/RETURNING count rows like the SQLite adapter.
    return { changes: r.rowCount ?? 0 };
  }

  /** `options.durability` is not used: every commit is the server's (its `synchronous_commit`). */
  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, _options?: TransactionOptions): Promise<T> {
    this.assertOpen();
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (e) {
        throw translate(e, this.target);
      }
      let destroy: Error | undefined;
      let sawRetryable = false;
      let ended = false;
      const exec = async (sql: string, params?: readonly SqlValue[]): Promise<pg.QueryResult> => {
        if (ended) throw new TesseraError('TESSERA_STORE_UNAVAILABLE', 'a transaction executor was used after its transaction ended');
        try {
          return await this.query(client, sql, params);
        } catch (e) {
          if (RETRYABLE.has(sqlstateOf(e))) sawRetryable = true;
          throw e;
        }
      };
      const tx: SqlExecutor = {
        all: async <R extends Row>(sql: string, params?: readonly SqlValue[]) => (await exec(sql, params)).rows as R[],
        get: async <R extends Row>(sql: string, params?: readonly SqlValue[]) => (await exec(sql, params)).rows[0] as R | undefined,
        run: async (sql: string, params?: readonly SqlValue[]) => ({ changes: (await exec(sql, params)).rowCount ?? 0 }),
      };
      try {
        await this.query(client, 'BEGIN ISOLATION LEVEL SERIALIZABLE');
        const value = await fn(tx);
        ended = true;
        await this.query(client, 'COMMIT');
        return value;
      } catch (e) {
        ended = true;
        try {
          await client.query('ROLLBACK');
        } catch (re) {
          destroy = re as Error;
        }
        const retry = sawRetryable || RETRYABLE.has(sqlstateOf(e));
        if (retry && attempt < this.maxAttempts && !this.closed) {
          // Jittered exponential backoff (capped) so that hot-row contenders spread out.
          await sleep(randomInt(0, Math.min(100, 2 ** attempt) + 1));
          continue;
        }
        throw translate(e, this.target);
      } finally {
        client.release(destroy);
      }
    }
  }

  /** Nothing is owed: every commit resolved only once the server committed it (open or closed). */
  async sync(): Promise<void> {}

  async migrate(): Promise<void> {
    this.assertOpen();
    // A dedicated session: the advisory lock is session-scoped and waiting for it must not be
    // cut by statement_timeout while another replica migrates.
    const client = this.newClient('tessera-migrate');
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query(`SELECT pg_advisory_lock(${LOCK_KEY_SQL})`, [MIGRATE_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      const applied = new Set((await client.query<{ id: number }>('SELECT id FROM schema_migrations')).rows.map((r) => r.id));
      for (const m of MIGRATIONS) {
        if (applied.has(m.id)) continue;
        await client.query('BEGIN');
        try {
          // PostgreSQL DDL is transactional: a failing migration leaves nothing half-applied.
          for (const stmt of m.sql) await client.query(adaptDdlForPostgres(stmt));
          await client.query('INSERT INTO schema_migrations (id, name, applied_at) VALUES ($1, $2, $3)', [m.id, m.name, Date.now()]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          const t = translate(e, this.target);
          if (t instanceof TesseraError) throw new TesseraError(t.code, `migration ${m.id} (${m.name}) failed: ${t.message}`, t.details ? { ...t.details } : undefined, { cause: e });
          throw t;
        }
      }
      await client.query(`SELECT pg_advisory_unlock(${LOCK_KEY_SQL})`, [MIGRATE_LOCK]);
    } catch (e) {
      throw translate(e, this.target);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      await this.pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  async publish(channel: string, payload: string): Promise<void> {
    checkChannel(channel);
    checkPayload(payload);
    this.assertOpen();
    await this.query(this.pool, 'SELECT pg_notify(?, ?)', [channel, payload]);
  }

  async subscribe(channel: string, onMessage: (payload: string) => void, options?: { onResync?: () => void }): Promise<() => Promise<void>> {
    checkChannel(channel);
    this.assertOpen();
    return this.listener.subscribe(channel, onMessage, options?.onResync);
  }

  async tryLeaderLock(name: string): Promise<LeaderLock | null> {
    checkLockName(name);
    this.assertOpen();
    if (this.locks.get(name)?.held()) return null;
    // One session per lock, outside the pool: a long-held lock must not take a pool slot, and
    // advisory locks are re-entrant within a session (PostgreSQL §9.27.10).
    const client = this.newClient('tessera-leader', { query_timeout: 5000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const r = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY_SQL}) AS ok`, [leaderKey(name)]);
      if (!r.rows[0]?.ok) {
        await client.end().catch(() => undefined);
        return null;
      }
    } catch (e) {
      await client.end().catch(() => undefined);
      throw translate(e, this.target);
    }
    const lock = new PgLock(name, client, () => {
      if (this.locks.get(name) === lock) this.locks.delete(name);
    });
    this.locks.set(name, lock);
    return lock;
  }

  async withLeaderLock<T>(name: string, fn: (lock: LeaderLock) => Promise<T>): Promise<{ leader: true; value: T } | { leader: false }> {
    return runAsLeader(await this.tryLeaderLock(name), fn);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.listener.close();
    await Promise.all([...this.locks.values()].map((l) => l.release()));
    await this.pool.end().catch(() => undefined);
  }
}

// --- leader lock --------------------------------------------------------------------------------

const HEARTBEAT_MS = 5000;

class PgLock implements LeaderLock {
  private isHeld = true;
  private resolveLost!: () => void;
  readonly lost = new Promise<void>((r) => (this.resolveLost = r));
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly name: string,
    private readonly client: pg.Client,
    private readonly onGone: () => void,
  ) {
    client.on('error', () => this.markLost());
    client.on('end', () => this.markLost());
    // A heartbeat notices a dead session within seconds (TCP keepalive alone can take minutes);
    // the server then releases the lock and another replica may take over.
    this.timer = setInterval(() => {
      this.client.query('SELECT 1').catch(() => this.markLost());
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  held(): boolean {
    return this.isHeld;
  }

  private markLost(): void {
    if (!this.isHeld) return;
    this.isHeld = false;
    clearInterval(this.timer);
    this.onGone();
    this.resolveLost();
    void this.client.end().catch(() => undefined);
  }

  async release(): Promise<void> {
    if (!this.isHeld) return;
    try {
      // Unlock explicitly: ending the session alone releases the lock only once the backend
      // has exited, so a replica trying right after could still see it held.
      await this.client.query(`SELECT pg_advisory_unlock(${LOCK_KEY_SQL})`, [leaderKey(this.name)]);
    } catch {
      // The session is gone; the server released the lock with it.
    }
    this.markLost();
  }
}

// --- LISTEN/NOTIFY -------------------------------------------------------------------------------

interface Subscriber {
  readonly onMessage: (payload: string) => void;
  readonly onResync: (() => void) | undefined;
}

/** One dedicated LISTEN session per store, re-established (with backoff) when it drops. */
class Listener {
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  private readonly channels = new Map<string, { subs: Set<Subscriber>; listening: Promise<void> }>();
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectAttempt = 0;

  constructor(
    private readonly makeClient: () => pg.Client,
    private readonly target: Target,
  ) {}

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    if (!this.connecting) {
      this.connecting = (async () => {
        const client = this.makeClient();
        client.on('error', () => this.dropped(client));
        client.on('end', () => this.dropped(client));
        client.on('notification', (msg) => this.deliver(msg.channel, msg.payload ?? ''));
        try {
          await client.connect();
        } catch (e) {
          await client.end().catch(() => undefined);
          throw translate(e, this.target);
        }
        this.client = client;
        return client;
      })().finally(() => {
        this.connecting = null;
      });
    }
    return this.connecting;
  }

  private deliver(channel: string, payload: string): void {
    const entry = this.channels.get(channel);
    if (!entry) return;
    for (const s of entry.subs) {
      try {
        s.onMessage(payload);
      } catch {
        // One failing subscriber must not starve the others.
      }
    }
  }

  private dropped(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    void client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer || this.channels.size === 0) return;
    const delay = Math.min(5000, 50 * 2 ** this.reconnectAttempt);
    this.reconnectAttempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.reconnect();
    }, delay);
    this.reconnectTimer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.closed || this.channels.size === 0) return;
    try {
      const client = await this.connect();
      for (const channel of this.channels.keys()) await client.query(`LISTEN "${channel}"`);
      this.reconnectAttempt = 0;
    } catch {
      if (this.client) this.dropped(this.client);
      else this.scheduleReconnect();
      return;
    }
    // Anything published while we were away is lost: tell subscribers to reload from the store.
    for (const entry of this.channels.values()) {
      for (const s of entry.subs) {
        try {
          s.onResync?.();
        } catch {
          // as in deliver()
        }
      }
    }
  }

  async subscribe(channel: string, onMessage: (payload: string) => void, onResync: (() => void) | undefined): Promise<() => Promise<void>> {
    const sub: Subscriber = { onMessage, onResync };
    let entry = this.channels.get(channel);
    if (!entry) {
      const created: { subs: Set<Subscriber>; listening: Promise<void> } = { subs: new Set(), listening: Promise.resolve() };
      // checkChannel() allows only [a-z0-9_], so quoting the identifier is safe.
      created.listening = this.connect().then(async (c) => {
        await c.query(`LISTEN "${channel}"`);
      });
      this.channels.set(channel, created);
      entry = created;
      entry.listening.catch(() => {
        if (this.channels.get(channel) === created && created.subs.size === 0) this.channels.delete(channel);
      });
    }
    try {
      await entry.listening;
    } catch (e) {
      throw translate(e, this.target);
    }
    entry.subs.add(sub);
    const current = entry;
    return async () => {
      current.subs.delete(sub);
      if (current.subs.size === 0 && this.channels.get(channel) === current) {
        this.channels.delete(channel);
        if (this.client) await this.client.query(`UNLISTEN "${channel}"`).catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.channels.clear();
    const c = this.client ?? (this.connecting ? await this.connecting.catch(() => null) : null);
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }
}
