import { createReadStream } from 'node:fs';
import type { Hash } from 'node:crypto';

/** Lines longer than this are not audit lines (events are at most 64 KiB): they are skipped, not buffered. */
export const MAX_LINE_BYTES = 1024 * 1024;

/**
 * Streams the lines of a file (without the trailing "\n"; "\r\n" tolerated) in bounded memory:
 * one chunk plus one line at a time. An overlong line yields `null` once and is skipped. Every
 * byte read also goes into `digest` when given, so a caller can check the file's SHA-256 in the
 * same pass. Errors (missing file, permissions) reject the iteration.
 */
export async function* readLines(path: string, opts: { digest?: Hash; maxLineBytes?: number } = {}): AsyncGenerator<string | null> {
  const max = opts.maxLineBytes ?? MAX_LINE_BYTES;
  let carry: Buffer[] = [];
  let carryLen = 0;
  let skipping = false;
  for await (const chunk of createReadStream(path, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
    opts.digest?.update(chunk);
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const part = chunk.subarray(start, nl);
      start = nl + 1;
      if (skipping) {
        skipping = false;
        continue;
      }
      if (carryLen + part.length > max) {
        carry = [];
        carryLen = 0;
        yield null;
        continue;
      }
      const line = carryLen ? Buffer.concat([...carry, part]) : part;
      carry = [];
      carryLen = 0;
      yield decode(line);
    }
    const rest = chunk.subarray(start);
    if (skipping || rest.length === 0) continue;
    if (carryLen + rest.length > max) {
      carry = [];
      carryLen = 0;
      skipping = true;
      yield null;
      continue;
    }
    carry.push(Buffer.from(rest));
    carryLen += rest.length;
  }
  if (carryLen && !skipping) yield decode(Buffer.concat(carry));
}

function decode(b: Buffer): string {
  const s = b.toString('utf8');
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}
