/**
 * When each secret was last read or injected (`secrets.last_read_at`, migration 361), for the
 * "never read" hygiene finding (docs/drift.md "Secret hygiene").
 *
 * Off the request path: `note(path)` is a Map lookup; a path is queued at most once per
 * `resolutionMs` (default 1 h, the finding's resolution) and the queue is written in one batched
 * UPDATE every `flushMs` (default 10 s) and at close. A lost batch (crash, store down) costs
 * at most that much precision; it never fails a read. The map is bounded (`maxPaths`): when
 * full, it is cleared (paths are then simply noted again).
 */
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Store } from '../store/port.js';

export interface ReadRecorder {
  note(path: string): void;
  /** Writes what is queued now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

const BATCH = 200;

export function createReadRecorder(deps: { store: Store; clock: Clock; logger: Logger; resolutionMs?: number; flushMs?: number; maxPaths?: number }): ReadRecorder {
  const resolution = deps.resolutionMs ?? 3_600_000;
  const maxPaths = deps.maxPaths ?? 100_000;
  const noted = new Map<string, number>();
  let queue = new Map<string, number>();
  let flushing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => void flush(), deps.flushMs ?? 10_000);
  timer.unref();

  async function write(batch: Map<string, number>): Promise<void> {
    const entries = [...batch];
    for (let i = 0; i < entries.length; i += BATCH) {
      const part = entries.slice(i, i + BATCH);
      // One statement per batch; `last_read_at` only moves forward.
      await deps.store.transaction(async (tx) => {
        for (const [path, at] of part) await tx.run('UPDATE secrets SET last_read_at = ? WHERE path = ? AND (last_read_at IS NULL OR last_read_at < ?)', [at, path, at]);
      }, { durability: 'deferred' });
    }
  }

  function flush(): Promise<void> {
    if (queue.size === 0) return flushing;
    const batch = queue;
    queue = new Map();
    flushing = flushing.then(() => write(batch)).catch((e: unknown) => deps.logger.warn({ err: (e as Error).message }, 'drift: recording secret reads failed'));
    return flushing;
  }

  return {
    note(path) {
      const now = deps.clock.now();
      const last = noted.get(path);
      if (last !== undefined && now - last < resolution) return;
      if (noted.size >= maxPaths) noted.clear();
      noted.set(path, now);
      queue.set(path, now);
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
