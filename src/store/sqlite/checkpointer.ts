import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a worker thread (docs/adr/0123-wal-checkpoints-off-the-event-loop.md).
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses `wal_autocheckpoint` pages
 * (≈ 4 MiB): it copies the WAL's pages into the database and syncs the WAL before and the
 * database after (sqlite.org/wal.html#ckpt, pragma.html#pragma_synchronous) — 5–35 ms on the
 * event loop on a shared disk, every few hundred requests. Here the engine's connection sets
 * `wal_autocheckpoint = 0` and this worker, with a connection of its own to the same file, runs
 * `PRAGMA wal_checkpoint(PASSIVE)` when asked: PASSIVE never blocks the writer (it copies the
 * frames committed when it started, then stops), and the writer's next transaction restarts the
 * WAL once a checkpoint has copied all of it (sqlite.org/c3ref/wal_checkpoint_v2.html).
 * The worker's connection uses synchronous = FULL, so each checkpoint syncs as SQLite's own does.
 *
 * One checkpoint at a time; asks while one runs are coalesced into one more afterwards. If the
 * worker cannot start or fails, `onFailure` is called once and every later ask is ignored: the
 * engine then turns SQLite's automatic checkpoints back on (the WAL never grows without bound).
 */
export interface CheckpointResult {
  /** SQLITE_BUSY: another connection held the checkpoint lock. */
  readonly busy: boolean;
  /** Frames in the WAL when the checkpoint ran. */
  readonly log: number;
  /** Frames copied into the database (all of them: `checkpointed === log`). */
  readonly checkpointed: number;
}

const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db;
try {
  db = new Database(workerData.file, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.pragma('synchronous = FULL');
  parentPort.postMessage({ ready: true });
} catch (e) {
  parentPort.postMessage({ error: String((e && e.message) || e) });
}
parentPort.on('message', (m) => {
  if (m === 'close') {
    try { if (db && db.open) db.close(); } catch {}
    parentPort.postMessage({ closed: true });
    return;
  }
  if (!db) return;
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    parentPort.postMessage({ result: { busy: r.busy === 1, log: r.log, checkpointed: r.checkpointed } });
  } catch (e) {
    parentPort.postMessage({ error: String((e && e.message) || e) });
  }
});
`;

export interface WalCheckpointerOptions {
  /** The database file (absolute path); it must exist (the engine opened it first). */
  readonly file: string;
  /** Called once when the worker cannot run checkpoints (start-up or a checkpoint failed). */
  readonly onFailure: (message: string) => void;
  /** Each finished checkpoint (tests, metrics). */
  readonly onResult?: (r: CheckpointResult) => void;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private running = false;
  private again = false;
  private failed = false;
  private closing: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  /** Checkpoints finished (tests). */
  completed = 0;

  constructor(private readonly options: WalCheckpointerOptions) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SRC, { eval: true, workerData: { file: options.file, driver } });
    // An idle store must not keep its process alive (the connection itself does not).
    this.worker.unref();
    this.worker.on('message', (m: { ready?: true; result?: CheckpointResult; error?: string; closed?: true }) => {
      if (m.error !== undefined) return this.fail(m.error);
      if (m.result) {
        this.completed++;
        this.options.onResult?.(m.result);
        this.running = false;
        if (this.again && !this.closing) {
          this.again = false;
          this.start();
        } else this.settleIdle();
      }
    });
    this.worker.on('error', (e: unknown) => this.fail(e instanceof Error ? e.message : String(e)));
    this.worker.on('exit', () => {
      if (!this.closing) this.fail('the checkpoint worker exited');
    });
  }

  /** Whether checkpoints run here (false once the worker failed: the engine checkpoints itself). */
  get active(): boolean {
    return !this.failed;
  }

  /** Asks for a checkpoint; returns at once (one runs at a time, asks meanwhile coalesce). */
  request(): void {
    if (this.failed || this.closing) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.start();
  }

  /** Resolves when no checkpoint is running or asked for (tests; close()). */
  idle(): Promise<void> {
    if (!this.running || this.failed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits for a running checkpoint, closes the worker's connection, ends the worker. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.idle();
      if (!this.failed) {
        await new Promise<void>((resolve) => {
          this.worker.once('message', () => resolve());
          this.worker.once('exit', () => resolve());
          this.worker.postMessage('close');
        });
      }
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private start(): void {
    this.running = true;
    this.worker.postMessage('checkpoint');
  }

  private settleIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }

  private fail(message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.running = false;
    this.settleIdle();
    this.options.onFailure(message);
  }
}
