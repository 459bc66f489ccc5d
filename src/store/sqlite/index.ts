import Database from 'better-sqlite3';
import { EventEmitter } from 'node:events';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { TesseraError } from '../../shared/errors.js';
import { checkChannel, checkLockName, checkPayload } from '../fanout.js';
import { MIGRATIONS } from '../migrations.js';
import type { LeaderLock, Row, SqlExecutor, SqlValue, Store } from '../port.js';

type Statement = Database.Statement<unknown[], unknown>;

/** SQLite adapter (better-sqlite3, WAL, synchronous=FULL so a committed event is durable). */
export function openSqliteStore(options: { file: string }): Store {
  if (options.file !== ':memory:') ensureWritableDir(dirname(options.file));
  let db: Database.Database;
  try {
    db = new Database(options.file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  } catch (e) {
    throw new TesseraError('TESSERA_STORE_UNAVAILABLE', `cannot open SQLite database ${options.file}: ${(e as Error).message}`, undefined, { cause: e });
  }
  // SQLite is embedded: one process owns the file, so fan-out and leader locks only need to
  // reach the stores of this process that share the file (ADR 0003).
  return new SqliteStore(db, options.file === ':memory:' ? null : resolve(options.file));
}

interface Shared {
  readonly events: EventEmitter;
  readonly locks: Set<string>;
  refs: number;
}
const sharedByFile = new Map<string, Shared>();

function acquireShared(file: string | null): Shared {
  const fresh = (): Shared => {
    const events = new EventEmitter();
    events.setMaxListeners(0);
    return { events, locks: new Set(), refs: 0 };
  };
  if (file === null) return { ...fresh(), refs: 1 };
  let shared = sharedByFile.get(file);
  if (!shared) sharedByFile.set(file, (shared = fresh()));
  shared.refs++;
  return shared;
}

function releaseShared(file: string | null, shared: Shared): void {
  if (file === null) return;
  if (--shared.refs <= 0) sharedByFile.delete(file);
}

function ensureWritableDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (e) {
    throw new TesseraError(
      'TESSERA_DATA_DIR_NOT_WRITABLE',
      `data directory ${dir} is not writable (${(e as NodeJS.ErrnoException).code ?? 'error'}); choose another with --data-dir or fix its permissions`,
      { dir },
      { cause: e },
    );
  }
}

function bind(params: readonly SqlValue[] | undefined): unknown[] {
  if (!params) return [];
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));
}

function adaptDdl(sql: string): string {
  return sql.replace(/\bBIGINT\b/g, 'INTEGER');
}

class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  private readonly statements = new Map<string, Statement>();
  /** Tail of the queue of transactions; plain statements wait for it while a transaction is open. */
  private txTail: Promise<void> = Promise.resolve();
  private txOpen = false;
  private readonly direct: SqlExecutor;
  private readonly shared: Shared;
  private readonly myLocks = new Set<LocalLock>();
  private closed = false;

  constructor(
    private readonly db: Database.Database,
    private readonly file: string | null,
  ) {
    this.shared = acquireShared(file);
    this.direct = {
      all: async <T extends Row>(sql: string, params?: readonly SqlValue[]) => this.exec('all', sql, params) as T[],
      get: async <T extends Row>(sql: string, params?: readonly SqlValue[]) => this.exec('get', sql, params) as T | undefined,
      run: async (sql: string, params?: readonly SqlValue[]) => this.exec('run', sql, params) as { changes: number },
    };
  }

  private prepare(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      // Read integers as BigInt and narrow them in fromRow(), so a value beyond 2^53-1 is an
      // error (as on PostgreSQL) instead of a silently rounded number.
      if (stmt.reader) stmt.safeIntegers(true);
      if (this.statements.size > 500) this.statements.clear();
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private exec(mode: 'all' | 'get' | 'run', sql: string, params?: readonly SqlValue[]): unknown {
    try {
      const stmt = this.prepare(sql);
      const args = bind(params);
      if (mode === 'all') return (stmt.all(...args) as Row[]).map(fromRow);
      if (mode === 'get') {
        const row = stmt.get(...args) as Row | undefined;
        return row === undefined ? undefined : fromRow(row);
      }
      if (stmt.reader) {
        const rows = stmt.all(...args);
        return { changes: rows.length };
      }
      const info = stmt.run(...args);
      return { changes: info.changes };
    } catch (e) {
      throw translate(e);
    }
  }

  private async idle(): Promise<void> {
    while (this.txOpen) await this.txTail;
  }

  async all<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    if (this.txOpen) await this.idle();
    return this.exec('all', sql, params) as T[];
  }
  async get<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    if (this.txOpen) await this.idle();
    return this.exec('get', sql, params) as T | undefined;
  }
  async run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    if (this.txOpen) await this.idle();
    return this.exec('run', sql, params) as { changes: number };
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const previous = this.txTail;
    let release!: () => void;
    this.txTail = new Promise<void>((r) => (release = r));
    await previous;
    this.txOpen = true;
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(this.direct);
        this.db.exec('COMMIT');
        return result;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
    } catch (e) {
      throw translate(e);
    } finally {
      this.txOpen = false;
      release();
    }
  }

  async migrate(): Promise<void> {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const applied = new Set((this.db.prepare('SELECT id FROM schema_migrations').all() as { id: number }[]).map((r) => r.id));
    for (const m of MIGRATIONS) {
      if (applied.has(m.id)) continue;
      const apply = this.db.transaction(() => {
        for (const stmt of m.sql) this.db.exec(adaptDdl(stmt));
        this.db.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)').run(m.id, m.name, Date.now());
      });
      apply();
    }
  }

  async ping(): Promise<boolean> {
    try {
      this.db.prepare('SELECT 1').get();
      return true;
    } catch {
      return false;
    }
  }

  async publish(channel: string, payload: string): Promise<void> {
    checkChannel(channel);
    checkPayload(payload);
    // Asynchronous like a NOTIFY round trip, so publishers never run subscriber code inline.
    setImmediate(() => this.shared.events.emit(channel, payload));
  }

  async subscribe(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>> {
    checkChannel(channel);
    const listener = (payload: string): void => {
      try {
        onMessage(payload);
      } catch {
        // A failing subscriber must not break the publisher or other subscribers.
      }
    };
    this.shared.events.on(channel, listener);
    return async () => {
      this.shared.events.off(channel, listener);
    };
  }

  async tryLeaderLock(name: string): Promise<LeaderLock | null> {
    checkLockName(name);
    if (this.closed) throw new TesseraError('TESSERA_STORE_UNAVAILABLE', 'the store is closed');
    if (this.shared.locks.has(name)) return null;
    this.shared.locks.add(name);
    const lock = new LocalLock(name, () => {
      this.shared.locks.delete(name);
      this.myLocks.delete(lock);
    });
    this.myLocks.add(lock);
    return lock;
  }

  async withLeaderLock<T>(name: string, fn: (lock: LeaderLock) => Promise<T>): Promise<{ leader: true; value: T } | { leader: false }> {
    const lock = await this.tryLeaderLock(name);
    if (!lock) return { leader: false };
    try {
      return { leader: true, value: await fn(lock) };
    } finally {
      await lock.release();
    }
  }

  async close(): Promise<void> {
    await this.idle();
    if (!this.closed) {
      this.closed = true;
      for (const lock of [...this.myLocks]) await lock.release();
      releaseShared(this.file, this.shared);
    }
    if (this.db.open) this.db.close();
  }
}

class LocalLock implements LeaderLock {
  private isHeld = true;
  private resolveLost!: () => void;
  readonly lost = new Promise<void>((r) => (this.resolveLost = r));
  constructor(
    readonly name: string,
    private readonly onRelease: () => void,
  ) {}
  held(): boolean {
    return this.isHeld;
  }
  async release(): Promise<void> {
    if (!this.isHeld) return;
    this.isHeld = false;
    this.onRelease();
    this.resolveLost();
  }
}

function fromRow(row: Row): Row {
  for (const key of Object.keys(row)) {
    const v = row[key];
    if (typeof v === 'bigint') {
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new TesseraError('TESSERA_STORE_VALUE_OUT_OF_RANGE', `the store returned the integer ${v}, beyond ±(2^53-1); it cannot be represented as a JavaScript number`);
      }
      row[key] = Number(v);
    }
  }
  return row;
}

function translate(e: unknown): unknown {
  if (e instanceof TesseraError) return e;
  const err = e as { code?: string; message?: string };
  if (typeof err.code === 'string' && err.code.startsWith('SQLITE_CONSTRAINT')) {
    return new TesseraError('TESSERA_STORE_CONFLICT', `write conflicts with existing data: ${err.message ?? ''}`, undefined, { cause: e });
  }
  if (typeof err.code === 'string' && err.code.startsWith('SQLITE_')) {
    return new TesseraError('TESSERA_STORE_UNAVAILABLE', `store error ${err.code}: ${err.message ?? ''}`, undefined, { cause: e });
  }
  return e;
}
