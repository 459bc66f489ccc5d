import { open, stat, type FileHandle } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { batchLines } from './lines.js';
import type { AuditSink } from './types.js';

/** JSONL appended to `path` (mode 0600) and fsynced before `write` resolves. */
export function fileSink(path: string): AuditSink {
  let fh: FileHandle | null = null;
  let ino = 0;
  return {
    name: 'file',
    durable: true,
    async write(batch) {
      try {
        // Log rotation: when the path no longer names the open file (moved away by logrotate,
        // or deleted), reopen it so events go where operators look for them.
        if (fh) {
          const current = await stat(path).catch(() => null);
          if (!current || current.ino !== ino) {
            const old = fh;
            fh = null;
            await old.close().catch(() => undefined);
          }
        }
        if (!fh) {
          mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
          fh = await open(path, 'a', 0o600);
          ino = (await fh.stat()).ino;
        }
        await fh.appendFile(batchLines(batch).join(''), 'utf8');
        await fh.sync(); // durable before append() resolves
      } catch (e) {
        const h = fh;
        fh = null;
        await h?.close().catch(() => undefined);
        throw e;
      }
    },
    async close() {
      const h = fh;
      fh = null;
      await h?.close();
    },
  };
}
