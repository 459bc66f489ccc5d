import Database from 'better-sqlite3';
import { closeSync, fdatasync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { TesseraError } from '../../shared/errors.js';
import type { Row, SqlValue } from '../port.js';

/**
 * Where the SQLite connection runs (ADR 0005). Both engines run requests strictly in call order,
 * map values identically (integers ↔ number refusing |v| > 2^53-1, BLOB ↔ Buffer) and reject
 * with the same TesseraError codes; the store above them (index.ts) serializes transactions.
 */
export interface SqliteEngine {
  exec(op: 'all' | 'get' | 'run', sql: string, params?: readonly SqlValue[]): Promise<unknown>;
  begin(): Promise<void>;
  /**
   * On failure the transaction is rolled back before the promise rejects. `deferred`: written to
   * the WAL (survives a crash of this process), synced by the next sync() or flushed commit.
   */
  commit(durability?: 'flush' | 'deferred'): Promise<void>;
  /** fdatasync of the WAL when a deferred commit is not yet synced; never gates other requests. */
  sync(): Promise<void>;
  /** No-op when no transaction is open (SQLite may have rolled back by itself). */
  rollback(): Promise<void>;
  migrate(migrations: readonly { id: number; name: string; sql: readonly string[] }[]): Promise<void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

type Statement = Database.Statement<unknown[], unknown>;

/** `PRAGMA wal_autocheckpoint` of the fsync-offload engine, in pages (SQLite's default: 1000). */
export const WAL_AUTOCHECKPOINT_PAGES = 4000;

/**
 * The connection on the calling thread.
 *
 * `offloadFsync: false` (the former adapter): synchronous=FULL, so every COMMIT fsyncs the WAL
 * while the event loop waits.
 *
 * `offloadFsync: true`: synchronous=NORMAL — a COMMIT appends its WAL frames with write() only —
 * and the engine then fdatasync()s the -wal file on libuv's thread pool before the commit (or
 * autocommit write) resolves. Once those frames are on disk the commit survives a crash or power
 * loss, which is exactly what FULL adds over NORMAL in WAL mode (sqlite.org/pragma.html#pragma_synchronous:
 * FULL syncs the WAL "before each transaction commit"; NORMAL only at checkpoints, which still
 * sync the WAL and then the database). Until that sync completes, every later request of this
 * store waits (FIFO), so nothing is read from it that is not yet durable — the visibility
 * contract of FULL. Statements still run on the event loop (microseconds each); checkpoints
 * (every WAL_AUTOCHECKPOINT_PAGES pages, 16 MiB of WAL) still sync on it. The -wal file keeps its inode while this
 * connection is open (SQLite deletes it only when the last connection closes).
 */
export class MainThreadEngine implements SqliteEngine {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Statement>();
  private walFd: number | null = null;
  /** Set while an fsync (and the requests queued behind it) is outstanding. */
  private gate: Promise<void> | null = null;
  /** A deferred commit wrote WAL frames that no fdatasync started since has covered. */
  private unsynced = false;

  constructor(file: string, options: { offloadFsync?: boolean } = {}) {
    const offload = options.offloadFsync === true && file !== ':memory:';
    let db: Database.Database | undefined;
    try {
      this.db = db = new Database(file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(offload ? 'synchronous = NORMAL' : 'synchronous = FULL');
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('foreign_keys = ON');
      if (offload) {
        // SQLite's automatic checkpoint (copy the WAL into the database, sync both) runs inside the
        // COMMIT that crosses this many pages, on the event loop. 4000 pages (16 MiB at 4 KiB) instead
        // of the default 1000: a quarter as many stalls, and a page rewritten by many commits (index
        // pages, the audit head) is copied once per checkpoint, not four times
        // (docs/adr/0190-task-token-hot-path.md). Durability is unchanged: each commit's WAL
        // frames are still synced before it resolves, and checkpoints still sync.
        this.db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
        // The first read in WAL mode creates the -wal file (next to the database, same path + suffix).
        this.db.prepare('SELECT count(*) FROM sqlite_master').get();
        this.walFd = openSync(`${resolve(file)}-wal`, 'r');
      }
    } catch (e) {
      if (db?.open) db.close();
      throw new TesseraError('TESSERA_STORE_UNAVAILABLE', `cannot open SQLite database ${file}: ${(e as Error).message}`, undefined, { cause: e });
    }
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

  /**
   * Runs `fn` now when no fsync is outstanding (so statements execute synchronously, in call
   * order), else after it and after every request queued before this one.
   */
  private enqueue<T>(fn: () => T | Promise<T>): Promise<T> {
    if (!this.gate) {
      try {
        return Promise.resolve(fn());
      } catch (e) {
        return Promise.reject(translate(e));
      }
    }
    const result = this.gate.then(fn).catch((e: unknown) => Promise.reject(translate(e)));
    this.hold(result);
    return result;
  }

  /** Later requests wait for `p` (settled either way). */
  private hold(p: Promise<unknown>): void {
    const g = p.then(
      () => undefined,
      () => undefined,
    );
    this.gate = g;
    void g.then(() => {
      if (this.gate === g) this.gate = null;
    });
  }

  /** After a write that committed (COMMIT, autocommit write, migration): make it durable. */
  private durable(): Promise<void> | undefined {
    if (this.walFd === null) return undefined;
    const synced = this.syncWal(this.walFd);
    // Run synchronously (no gate): later requests must wait for this sync. Run from the queue:
    // the gate already ends with this request's result, which includes the sync; replacing it
    // would let a newer request overtake the ones queued behind this one.
    if (!this.gate) this.hold(synced);
    return synced;
  }

  /** One fdatasync of the WAL: covers every frame written before it starts (deferred commits too). */
  private syncWal(fd: number): Promise<void> {
    this.unsynced = false;
    return new Promise<void>((res, rej) =>
      fdatasync(fd, (err) => {
        if (!err) return res();
        this.unsynced = true; // still owed: the next sync() tries again
        rej(new TesseraError('TESSERA_STORE_UNAVAILABLE', `cannot sync the SQLite WAL to disk (${err.code ?? 'error'}): ${err.message}`, undefined, { cause: err }));
      }),
    );
  }

  sync(): Promise<void> {
    // Not through the gate: it makes nothing visible, so nothing needs to wait for it.
    if (this.walFd === null || !this.unsynced) return Promise.resolve();
    return this.syncWal(this.walFd);
  }

  exec(op: 'all' | 'get' | 'run', sql: string, params?: readonly SqlValue[]): Promise<unknown> {
    return this.enqueue(() => {
      const stmt = this.prepare(sql);
      const args = bindMain(params);
      let value: unknown;
      if (op === 'all') value = (stmt.all(...args) as Row[]).map(narrowRow);
      else if (op === 'get') {
        const row = stmt.get(...args) as Row | undefined;
        value = row === undefined ? undefined : narrowRow(row);
      } else if (stmt.reader) value = { changes: stmt.all(...args).length };
      else value = { changes: stmt.run(...args).changes };
      const synced = !stmt.readonly && !this.db.inTransaction ? this.durable() : undefined;
      return synced ? synced.then(() => value) : value;
    });
  }

  begin(): Promise<void> {
    return this.enqueue(() => void this.db.exec('BEGIN IMMEDIATE'));
  }
  commit(durability: 'flush' | 'deferred' = 'flush'): Promise<void> {
    return this.enqueue(() => {
      try {
        this.db.exec('COMMIT');
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
      if (durability === 'deferred' && this.walFd !== null) {
        // Written to the WAL with write(): in the kernel's page cache, so it survives a crash of
        // this process; a power loss may take it until sync() or a flushed commit covers it.
        this.unsynced = true;
        return undefined;
      }
      return this.durable();
    });
  }
  rollback(): Promise<void> {
    return this.enqueue(() => {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
    });
  }

  migrate(migrations: readonly { id: number; name: string; sql: readonly string[] }[]): Promise<void> {
    return this.enqueue(() => {
      this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
      const applied = new Set((this.db.prepare('SELECT id FROM schema_migrations').all() as { id: number }[]).map((r) => r.id));
      for (const m of migrations) {
        if (applied.has(m.id)) continue;
        this.db.transaction(() => {
          for (const stmt of m.sql) this.db.exec(stmt);
          this.db.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)').run(m.id, m.name, Date.now());
        })();
      }
      return this.durable();
    });
  }

  async ping(): Promise<boolean> {
    try {
      this.db.prepare('SELECT 1').get();
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    return this.enqueue(() => {
      if (this.db.open) this.db.close();
      if (this.walFd !== null) closeSync(this.walFd);
      this.walFd = null;
    });
  }
}

function bindMain(params: readonly SqlValue[] | undefined): unknown[] {
  if (!params) return [];
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

function narrowRow(row: Row): Row {
  for (const key in row) {
    const v = row[key];
    if (typeof v === 'bigint') {
      if (v > MAX_SAFE || v < MIN_SAFE) {
        throw new TesseraError('TESSERA_STORE_VALUE_OUT_OF_RANGE', `the store returned the integer ${v}, beyond ±(2^53-1); it cannot be represented as a JavaScript number`);
      }
      row[key] = Number(v);
    }
  }
  return row;
}

/** SQLite result codes → the port's codes (same mapping on both engines). */
export function translate(e: unknown): unknown {
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
