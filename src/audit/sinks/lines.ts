import type { Checkpoint, StoredRecord } from '../chain.js';

/**
 * The JSON lines every external sink writes (file, stdout, http, syslog) and that
 * `tessera audit verify --witness` and the archive reader parse. One object per line:
 *
 *   record:     {"seq":1,"ts":…,"prev_hash":"…","hash":"…","event":{…}}
 *   head:       {"type":"tessera.audit.head","seq":…,"ts":…,"hash":"…","key_id":"…","signature":"…"}
 *   checkpoint: {"type":"tessera.audit.checkpoint", same fields}            (archives only)
 *
 * Records carry no `type` (the format predates it); every other line does.
 */
export const HEAD_LINE_TYPE = 'tessera.audit.head';
export const CHECKPOINT_LINE_TYPE = 'tessera.audit.checkpoint';

/** JSONL line of a record: what the file and stdout sinks write, and what `tail` returns. */
export function recordLine(r: StoredRecord): string {
  return `{"seq":${r.seq},"ts":${r.ts},"prev_hash":"${r.prevHash}","hash":"${r.hash}","event":${r.body}}\n`;
}

function signedLine(type: string, c: Checkpoint): string {
  return `${JSON.stringify({ type, seq: c.seq, ts: c.ts, hash: c.hash, key_id: c.keyId, signature: c.signature })}\n`;
}

/** JSONL line of a signed head (the witness of `verify --witness`). */
export function headLine(h: Checkpoint): string {
  return signedLine(HEAD_LINE_TYPE, h);
}

/** JSONL line of a signed checkpoint (archive segments). */
export function checkpointLine(c: Checkpoint): string {
  return signedLine(CHECKPOINT_LINE_TYPE, c);
}

/** One committed batch: its records, then the head signed with it (when the store committed it). */
export interface SinkBatch {
  readonly records: readonly StoredRecord[];
  readonly head?: Checkpoint;
}

export function batchLines(batch: SinkBatch): string[] {
  const lines = batch.records.map(recordLine);
  if (batch.head) lines.push(headLine(batch.head));
  return lines;
}

/**
 * Parses a signed line (head or checkpoint) into a Checkpoint; null when the line is not one.
 * Lenient about what surrounds the JSON (a syslog header, a collector's prefix): the signature,
 * not the framing, is what makes a line count.
 */
export function parseSignedLine(line: string, type: string): Checkpoint | null {
  const at = line.indexOf('{');
  if (at < 0 || !line.includes(type)) return null;
  let v: unknown;
  try {
    v = JSON.parse(line.slice(at));
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if (o.type !== type) return null;
  if (!Number.isSafeInteger(o.seq) || !Number.isSafeInteger(o.ts) || typeof o.hash !== 'string' || typeof o.key_id !== 'string' || typeof o.signature !== 'string') return null;
  return { seq: o.seq as number, ts: o.ts as number, hash: o.hash, keyId: o.key_id, signature: o.signature };
}
