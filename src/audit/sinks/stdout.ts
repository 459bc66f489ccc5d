import { batchLines } from './lines.js';
import type { AuditSink } from './types.js';

/** The same JSONL on standard output, for a log collector. */
export function stdoutSink(out: { write(chunk: string): unknown }): AuditSink {
  return {
    name: 'stdout',
    durable: true,
    async write(batch) {
      out.write(batchLines(batch).join(''));
    },
  };
}
