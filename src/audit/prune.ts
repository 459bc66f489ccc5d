import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { SqlExecutor } from '../store/port.js';
import { GENESIS_HASH, type Problem } from './chain.js';
import { verifyStatement } from './statements.js';

/**
 * Signed prune statements (context `tessera-audit-prune-v1`): "events from_seq..to_seq, which
 * linked from `from_prev_hash` and ended in `to_hash`, were archived to the file `archive.name`
 * (SHA-256 `archive.sha256`) and removed from the store". They are kept in `audit_prunes`, one per
 * archived segment, contiguous from seq 1; the newest one's `to_seq`/`to_hash` is where the
 * store's chain starts.
 */
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export const ARCHIVE_NAME = /^tessera-audit-[A-Za-z0-9_]{1,64}-\d{16}-\d{16}\.jsonl$/;

export const prunePayloadSchema = z.object({
  key_id: z.string().min(1).max(64),
  from_seq: seq,
  to_seq: seq,
  from_prev_hash: hex64,
  to_hash: hex64,
  /** When the segment was pruned, epoch ms. */
  ts: z.number().int().min(0),
  archive: z.object({
    name: z.string().regex(ARCHIVE_NAME),
    sha256: hex64,
    bytes: z.number().int().min(0),
    records: z.number().int().min(0),
    checkpoints: z.number().int().min(0),
  }).strict(),
}).strict().refine((p) => p.to_seq >= p.from_seq, 'to_seq must not be before from_seq');

export type PrunePayload = z.output<typeof prunePayloadSchema>;

export interface PruneStatement {
  readonly payload: PrunePayload;
  readonly signature: string;
}

/** `tessera-audit-<key id>-<from, 16 digits>-<to, 16 digits>.jsonl`: sorts by seq. */
export function archiveFileName(keyId: string, from: number, to: number): string {
  return `tessera-audit-${keyId}-${String(from).padStart(16, '0')}-${String(to).padStart(16, '0')}.jsonl`;
}

export interface PruneChain {
  /** The valid, contiguous statements in order. */
  readonly statements: PruneStatement[];
  /** Where the store's chain starts (seq 0 / genesis when nothing was pruned). */
  readonly boundary: { seq: number; hash: string };
  readonly problems: Problem[];
}

/**
 * Reads and checks every prune statement: each must carry a valid prune signature and continue
 * exactly where the previous one ended (from_seq = previous to_seq + 1, from_prev_hash = its
 * to_hash; the first from seq 1 and genesis). Statements are few (one per archive run), so they
 * are read at once.
 */
export async function loadPruneChain(db: SqlExecutor, publicKey: KeyObject): Promise<PruneChain> {
  const rows = await db.all<{ to_seq: number; statement: string; signature: string }>('SELECT to_seq, statement, signature FROM audit_prunes ORDER BY to_seq');
  const statements: PruneStatement[] = [];
  const problems: Problem[] = [];
  let boundary = { seq: 0, hash: GENESIS_HASH };
  for (const row of rows) {
    let payload: PrunePayload | undefined;
    try {
      const parsed = prunePayloadSchema.safeParse(JSON.parse(row.statement));
      if (parsed.success) payload = parsed.data;
    } catch {
      payload = undefined;
    }
    if (!payload || payload.to_seq !== Number(row.to_seq) || !verifyStatement(publicKey, 'prune', payload, row.signature)) {
      problems.push({ seq: payload?.from_seq ?? Number(row.to_seq), kind: 'bad_prune_signature', message: `the prune statement ending at seq ${Number(row.to_seq)} is not a valid signed prune statement of this log (forged or altered)` });
      continue;
    }
    if (payload.from_seq !== boundary.seq + 1 || payload.from_prev_hash !== boundary.hash) {
      problems.push({ seq: boundary.seq + 1, kind: 'prune_gap', message: `the prune statement for events ${payload.from_seq}..${payload.to_seq} does not continue the previous one (which ends at seq ${boundary.seq}): a prune statement is missing or the chain was rewritten` });
      if (payload.from_seq <= boundary.seq) continue; // overlapping: keep the earlier boundary
    }
    statements.push({ payload, signature: row.signature });
    boundary = { seq: payload.to_seq, hash: payload.to_hash };
  }
  return { statements, boundary, problems };
}
