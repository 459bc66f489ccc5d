import { EventEmitter } from 'node:events';
import { accessSync, chmodSync, closeSync, constants, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { TesseraError } from '../../shared/errors.js';
import { checkChannel, checkLockName, checkPayload, runAsLeader } from '../fanout.js';
import { MIGRATIONS } from '../migrations.js';
import type { LeaderLock, Row, SqlExecutor, SqlValue, Store, TransactionOptions } from '../port.js';
import { MainThreadEngine, translate, type SqliteEngine } from './engine.js';

export interface SqliteStoreOptions {
  file: string;
  /**
   * How the connection runs (ADR 0005):
   *  - 'fsync-offload' (default): on the calling thread, with each commit's fsync done on libuv's
   *    thread pool before the commit resolves — durable like synchronous=FULL, without blocking
   *    the event loop on the disk;
   *  - 'main': synchronous=FULL, COMMIT fsyncs on the event loop (simplest; measured slower).
   * A connection on a worker thread was measured too and lost on 2 cores (ADR 0005).
   */
  engine?: SqliteEngineKind;
}
export type SqliteEngineKind = 'fsync-offload' | 'main';

/** SQLite adapter (better-sqlite3, WAL; a commit resolves only once it is durable on disk). */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  if (options.file !== ':memory:') {
    ensureWritableDir(dirname(options.file));
    privateDatabaseFiles(options.file);
  }
  const kind = options.engine ?? 'fsync-offload';
  const engine = new MainThreadEngine(options.file, { offloadFsync: kind === 'fsync-offload' });
  if (options.file !== ':memory:') privateDatabaseFiles(options.file);
  // SQLite is embedded: one process owns the file, so fan-out and leader locks only need to
  // reach the stores of this process that share the file (ADR 0003).
  return new SqliteStore(engine, options.file === ':memory:' ? null : resolve(options.file));
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

/**
 * The database and its -wal, -shm and -journal files are readable by Tessera's user only
 * (mode 0600): created so before SQLite opens it (SQLite gives its -wal and -shm files the mode
 * of the database, sqlite.org/src os_unix.c findCreateFileMode), and an older file with group or
 * other bits, owned by this user, is narrowed. Secrets are sealed in it, but tokens' hashes,
 * the audit log and lease data are not for other users (docs/security-model.md).
 */
export function privateDatabaseFiles(file: string): void {
  try {
    closeSync(openSync(file, 'a', 0o600));
  } catch {
    return; // unwritable or a directory: SQLite's own open reports it
  }
  const own = typeof process.getuid === 'function' ? process.getuid() : undefined;
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    try {
      const st = statSync(f);
      if ((st.mode & 0o077) !== 0 && st.isFile() && (own === undefined || st.uid === own)) chmodSync(f, st.mode & 0o700);
    } catch {
      // not there
    }
  }
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

function adaptDdl(sql: string): string {
  return sql.replace(/\bBIGINT\b/g, 'INTEGER');
}

class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  /** Tail of the queue of transactions; plain statements wait for it while a transaction is open. */
  private txTail: Promise<void> = Promise.resolve();
  private txOpen = false;
  private readonly direct: SqlExecutor;
  private readonly shared: Shared;
  private readonly myLocks = new Set<LocalLock>();
  private closed = false;

  constructor(
    private readonly engine: SqliteEngine,
    private readonly file: string | null,
  ) {
    this.shared = acquireShared(file);
    this.direct = {
      all: <T extends Row>(sql: string, params?: readonly SqlValue[]) => engine.exec('all', sql, params) as Promise<T[]>,
      get: <T extends Row>(sql: string, params?: readonly SqlValue[]) => engine.exec('get', sql, params) as Promise<T | undefined>,
      run: (sql: string, params?: readonly SqlValue[]) => engine.exec('run', sql, params) as Promise<{ changes: number }>,
    };
  }

  private async idle(): Promise<void> {
    while (this.txOpen) await this.txTail;
  }

  async all<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    if (this.txOpen) await this.idle();
    return this.engine.exec('all', sql, params) as Promise<T[]>;
  }
  async get<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    if (this.txOpen) await this.idle();
    return this.engine.exec('get', sql, params) as Promise<T | undefined>;
  }
  async run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    if (this.txOpen) await this.idle();
    return this.engine.exec('run', sql, params) as Promise<{ changes: number }>;
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const previous = this.txTail;
    let release!: () => void;
    this.txTail = new Promise<void>((r) => (release = r));
    await previous;
    this.txOpen = true;
    try {
      await this.engine.begin();
      try {
        const result = await fn(this.direct);
        await this.engine.commit(options?.durability);
        return result;
      } catch (e) {
        // After a failed COMMIT the engine has already rolled back; this is then a no-op.
        await this.engine.rollback().catch(() => undefined);
        throw e;
      }
    } catch (e) {
      throw translate(e);
    } finally {
      this.txOpen = false;
      release();
    }
  }

  sync(): Promise<void> {
    return this.engine.sync();
  }

  async migrate(): Promise<void> {
    await this.engine.migrate(MIGRATIONS.map((m) => ({ id: m.id, name: m.name, sql: m.sql.map(adaptDdl) })));
  }

  async ping(): Promise<boolean> {
    return this.engine.ping();
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
    return runAsLeader(await this.tryLeaderLock(name), fn);
  }

  async close(): Promise<void> {
    await this.idle();
    if (!this.closed) {
      this.closed = true;
      for (const lock of [...this.myLocks]) await lock.release();
      releaseShared(this.file, this.shared);
    }
    await this.engine.close();
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
