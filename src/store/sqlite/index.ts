import Database from 'better-sqlite3';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { TesseraError } from '../../shared/errors.js';
import { MIGRATIONS } from '../migrations.js';
import type { Row, SqlExecutor, SqlValue, Store } from '../port.js';

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
  return new SqliteStore(db);
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

  constructor(private readonly db: Database.Database) {
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
      if (this.statements.size > 500) this.statements.clear();
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private exec(mode: 'all' | 'get' | 'run', sql: string, params?: readonly SqlValue[]): unknown {
    try {
      const stmt = this.prepare(sql);
      const args = bind(params);
      if (mode === 'all') return stmt.all(...args);
      if (mode === 'get') return stmt.get(...args);
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

  async close(): Promise<void> {
    await this.idle();
    if (this.db.open) this.db.close();
  }
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
