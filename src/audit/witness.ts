import type { KeyObject } from 'node:crypto';
import type { SqlExecutor } from '../store/port.js';
import { TesseraError } from '../shared/errors.js';
import { MAX_PROBLEMS, verifyHead, type Checkpoint, type Problem } from './chain.js';
import { readLines } from './jsonl.js';
import { prunePayloadSchema } from './prune.js';
import { HEAD_LINE_TYPE, parseSignedLine } from './sinks/lines.js';
import { verifyStatement } from './statements.js';

/**
 * The witness check of `tessera audit verify --witness` (ADR 0031). A witness is the output of an
 * external sink (file, stdout, http collector): it holds every signed head the server exported.
 * Rolling the store back to an earlier genuine state cannot be seen from inside the store; it is
 * seen here, because the store must hold at least everything the witness saw:
 *
 *  - every witnessed head of this log (same key id) carries a valid *head* signature, else
 *    `witness_bad_signature`;
 *  - its seq is in the store (or in a pruned segment), else `rolled_back` (beyond the store's
 *    last event) or `deleted` (a gap);
 *  - the store's event at that seq has the witnessed hash, else `forked` (the store holds a
 *    different history: rolled back and continued, or rewritten).
 *
 * Heads inside pruned segments are compared only at segment ends (the signed prune statement's
 * `to_hash`); the others are counted as `not_checked_pruned`.
 */
export interface WitnessReport {
  /** Heads of this log with a valid head signature that were compared. */
  readonly heads: number;
  /** Heads of this log seen (valid or not); 0 means the witness proves nothing. */
  readonly heads_of_log: number;
  /** The newest seq the witness saw (valid heads). */
  readonly max_seq: number;
  /** Heads of other logs (another key id: another installation) skipped. */
  readonly other_logs: number;
  /** Heads inside pruned segments that could not be compared hash-for-hash. */
  readonly not_checked_pruned: number;
  /** Lines that named a head but could not be parsed (e.g. a torn last line). */
  readonly unreadable_lines: number;
  /** The store's newest event when last looked at. */
  readonly store_last_seq: number;
  readonly problems: Problem[];
}

/** Heads per store query (an `IN` list). */
export const WITNESS_BATCH = 128;

export interface WitnessChecker {
  /** Checks a batch of heads (any size; queried WITNESS_BATCH at a time). */
  check(heads: readonly Checkpoint[]): Promise<void>;
  /** Adds lines that looked like heads but did not parse. */
  unreadable(n: number): void;
  report(): WitnessReport;
}

export function createWitnessChecker(deps: { db: SqlExecutor; publicKey: KeyObject; keyId: string }): WitnessChecker {
  const { db, publicKey, keyId } = deps;
  const problems: Problem[] = [];
  const seen = new Set<string>(); // "seq:kind" of problems reported, to keep one per seq and kind
  let heads = 0;
  let headsOfLog = 0;
  let maxSeq = 0;
  let otherLogs = 0;
  let notCheckedPruned = 0;
  let unreadableLines = 0;
  let storeLast = 0;

  const report = (p: Problem): void => {
    const k = `${p.seq}:${p.kind}`;
    if (problems.length >= MAX_PROBLEMS || seen.has(k)) return;
    seen.add(k);
    problems.push(p);
  };

  async function boundary(): Promise<number> {
    // The newest prune statement with a valid signature (verify reports forged ones).
    const rows = await db.all<{ to_seq: number; statement: string; signature: string }>('SELECT to_seq, statement, signature FROM audit_prunes ORDER BY to_seq DESC LIMIT 16');
    for (const r of rows) if (validPrune(r)) return Number(r.to_seq);
    return 0;
  }

  function validPrune(r: { to_seq: number; statement: string; signature: string }): { to_hash: string } | null {
    try {
      const p = prunePayloadSchema.safeParse(JSON.parse(r.statement));
      if (p.success && p.data.to_seq === Number(r.to_seq) && verifyStatement(publicKey, 'prune', p.data, r.signature)) return p.data;
    } catch {
      // invalid
    }
    return null;
  }

  async function checkBatch(batch: readonly Checkpoint[]): Promise<void> {
    const valid = new Map<number, Checkpoint[]>();
    for (const h of batch) {
      if (h.keyId !== keyId) {
        otherLogs++;
        continue;
      }
      headsOfLog++;
      if (!verifyHead(publicKey, h)) {
        report({ seq: h.seq, kind: 'witness_bad_signature', message: `the witness holds a head for seq ${h.seq} that does not verify as a head of this log: the witness was tampered with, or a checkpoint was put in it` });
        continue;
      }
      heads++;
      maxSeq = Math.max(maxSeq, h.seq);
      const list = valid.get(h.seq) ?? [];
      if (!list.some((x) => x.hash === h.hash)) list.push(h);
      valid.set(h.seq, list);
    }
    if (valid.size === 0) return;
    const seqs = [...valid.keys()];
    const rows = await db.all<{ seq: number; hash: string }>(`SELECT seq, hash FROM audit_events WHERE seq IN (${seqs.map(() => '?').join(',')})`, seqs);
    const stored = new Map(rows.map((r) => [Number(r.seq), r.hash]));
    const last = await db.get<{ m: number | null }>('SELECT MAX(seq) AS m FROM audit_events');
    storeLast = Math.max(storeLast, Number(last?.m ?? 0));
    const pruned = await boundary();
    const ends = new Map<number, string>();
    if (seqs.some((s) => s <= pruned && !stored.has(s))) {
      const candidates = seqs.filter((s) => s <= pruned);
      const prows = await db.all<{ to_seq: number; statement: string; signature: string }>(`SELECT to_seq, statement, signature FROM audit_prunes WHERE to_seq IN (${candidates.map(() => '?').join(',')})`, candidates);
      for (const r of prows) {
        const p = validPrune(r);
        if (p) ends.set(Number(r.to_seq), p.to_hash);
      }
    }
    for (const [seq, hs] of valid) {
      for (const h of hs) {
        const when = new Date(h.ts).toISOString();
        const hash = stored.get(seq) ?? ends.get(seq);
        if (hash === undefined && seq <= pruned) {
          notCheckedPruned++;
        } else if (hash === undefined && seq > Math.max(storeLast, pruned)) {
          report({ seq, kind: 'rolled_back', message: `the witness saw a signed head at seq ${seq} (${when}) but the store ends at seq ${Math.max(storeLast, pruned)}: the log was truncated or the store rolled back` });
        } else if (hash === undefined) {
          report({ seq, kind: 'deleted', message: `event ${seq}, which the witness saw as a signed head (${when}), is missing from the store` });
        } else if (hash !== h.hash) {
          report({ seq, kind: 'forked', message: `the witness saw event ${seq} with hash ${h.hash.slice(0, 12)}… (signed head of ${when}); the store's event ${seq} has ${hash.slice(0, 12)}…: the store holds a different history (rolled back and continued, restored from a backup, or rewritten)` });
        }
      }
    }
  }

  return {
    async check(hs) {
      for (let i = 0; i < hs.length; i += WITNESS_BATCH) await checkBatch(hs.slice(i, i + WITNESS_BATCH));
    },
    unreadable(n) {
      unreadableLines += n;
    },
    report() {
      const sorted = [...problems].sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
      return { heads, heads_of_log: headsOfLog, max_seq: maxSeq, other_logs: otherLogs, not_checked_pruned: notCheckedPruned, unreadable_lines: unreadableLines, store_last_seq: storeLast, problems: sorted };
    },
  };
}

/**
 * Streams the head lines of a witness file (any sink output: JSONL from the file/stdout/http
 * sinks, or syslog lines carrying them) in bounded memory, WITNESS_BATCH heads at a time.
 * Lines that are not heads (events, other logs' lines) are skipped.
 */
export async function* readWitnessHeads(path: string): AsyncGenerator<{ heads: Checkpoint[]; unreadable: number }> {
  let heads: Checkpoint[] = [];
  let unreadable = 0;
  try {
    for await (const line of readLines(path)) {
      if (line === null || !line.includes(HEAD_LINE_TYPE)) continue;
      const h = parseSignedLine(line, HEAD_LINE_TYPE);
      if (h) heads.push(h);
      else unreadable++;
      if (heads.length >= WITNESS_BATCH) {
        yield { heads, unreadable };
        heads = [];
        unreadable = 0;
      }
    }
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    throw new TesseraError('TESSERA_AUDIT_WITNESS_UNREADABLE', `the witness file ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (heads.length || unreadable) yield { heads, unreadable };
}

/** Checks a whole witness file against the store; refuses a witness with no head of this log. */
export async function checkWitnessFile(path: string, checker: WitnessChecker): Promise<WitnessReport> {
  for await (const { heads, unreadable } of readWitnessHeads(path)) {
    checker.unreadable(unreadable);
    await checker.check(heads);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const r = checker.report();
  requireWitnessHeads(r, path);
  return r;
}

export function requireWitnessHeads(r: WitnessReport, what: string): void {
  if (r.heads_of_log === 0) {
    throw new TesseraError('TESSERA_AUDIT_WITNESS_EMPTY', `the witness ${what} holds no signed head of this audit log${r.other_logs ? ` (${r.other_logs} heads of other logs)` : ''}: it proves nothing; pass the output of a file, stdout or http audit sink of this installation`);
  }
}

/** Merges the witness report into a verification result: problems joined, the rollback note replaced. */
export function withWitness<R extends { ok: boolean; problems: Problem[]; notes: string[] }>(result: R, w: WitnessReport, noteToDrop: string): R & { witness: Omit<WitnessReport, 'problems'> } {
  const problems = [...result.problems, ...w.problems].sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
  const unique = problems.filter((p, i) => i === 0 || p.seq !== problems[i - 1]!.seq || p.kind !== problems[i - 1]!.kind);
  const { problems: _omit, ...summary } = w;
  void _omit;
  const notes = result.notes.filter((n) => n !== noteToDrop);
  if (w.not_checked_pruned) notes.push(`${w.not_checked_pruned} witnessed heads fall inside pruned segments and were compared only at segment ends`);
  if (w.unreadable_lines) notes.push(`${w.unreadable_lines} witness lines named a head but could not be parsed (e.g. a torn last line)`);
  notes.push(`witness: ${w.heads} signed heads of this log checked, up to seq ${w.max_seq}`);
  return { ...result, ok: result.ok && unique.length === 0, problems: unique.slice(0, MAX_PROBLEMS), notes, witness: summary };
}

/** An empty report, to fold per-request reports into (the CLI's online `--witness`). */
export function emptyWitnessReport(): WitnessReport {
  return { heads: 0, heads_of_log: 0, max_seq: 0, other_logs: 0, not_checked_pruned: 0, unreadable_lines: 0, store_last_seq: 0, problems: [] };
}

/** Folds two reports: counts add up, maxima are kept, problems are joined (one per seq and kind, at most MAX_PROBLEMS). */
export function mergeWitnessReports(a: WitnessReport, b: WitnessReport): WitnessReport {
  const all = [...a.problems, ...b.problems].sort((x, y) => x.seq - y.seq || x.kind.localeCompare(y.kind));
  const problems = all.filter((p, i) => i === 0 || p.seq !== all[i - 1]!.seq || p.kind !== all[i - 1]!.kind).slice(0, MAX_PROBLEMS);
  return {
    heads: a.heads + b.heads,
    heads_of_log: a.heads_of_log + b.heads_of_log,
    max_seq: Math.max(a.max_seq, b.max_seq),
    other_logs: a.other_logs + b.other_logs,
    not_checked_pruned: a.not_checked_pruned + b.not_checked_pruned,
    unreadable_lines: a.unreadable_lines + b.unreadable_lines,
    store_last_seq: Math.max(a.store_last_seq, b.store_last_seq),
    problems,
  };
}
