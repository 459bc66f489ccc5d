import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { AuditEvent } from './events.js';
import { canonicalize } from './canonical.js';
import { signStatement, signStatementAsync, verifyLegacyCheckpoint, verifyStatement } from './statements.js';

export { canonicalize };

/**
 * The pure core of the audit chain (no I/O, no clock): the hash chain, signed checkpoints and
 * heads, and the streaming verifier. See docs/audit.md for the design and ADR 0031.
 *
 *   hash_n = SHA-256( prev_hash_hex || canonical({ event, seq, ts }) )   (hex)
 *
 * The first event links to GENESIS_HASH. A checkpoint and the signed *head* both sign
 * { hash, key_id, seq, ts } with Ed25519 (RFC 8032), each under its own context string
 * (statements.ts), so one can never stand in for the other. The head is the newest event,
 * rewritten with every committed batch so that truncation after the last periodic checkpoint is
 * detected too.
 */
export const GENESIS_HASH = '0'.repeat(64);

export function chainHash(prevHash: string, seq: number, ts: number, event: AuditEvent | unknown): string {
  return chainHashOfBody(prevHash, seq, ts, canonicalize(event));
}

/** Same as chainHash for an already canonical event body: keys "event" < "seq" < "ts" are in JCS order. */
export function chainHashOfBody(prevHash: string, seq: number, ts: number, canonicalBody: string): string {
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(ts)) throw new TypeError('seq and ts must be safe integers');
  return createHash('sha256').update(prevHash, 'utf8').update(`{"event":${canonicalBody},"seq":${seq},"ts":${ts}}`, 'utf8').digest('hex');
}

/** A record as stored: `body` is the canonical JSON of the event. */
export interface StoredRecord {
  readonly seq: number;
  readonly ts: number;
  readonly kind: string;
  readonly actor: string | null;
  readonly txn: string | null;
  /**
   * The `result` column of a store row (migration 339): when set, it must equal the hashed body's
   * `result`. Null on rows written by a replica older than the migration; absent for records that
   * have no such column (JSONL sink lines, archive segments).
   */
  readonly result?: string | null;
  readonly body: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** Builds the next record of the chain. */
export function makeRecord(prevHash: string, seq: number, ts: number, event: AuditEvent, canonicalBody?: string): StoredRecord {
  const body = canonicalBody ?? canonicalize(event);
  return {
    seq,
    ts,
    kind: event.kind,
    actor: event.actor.id,
    txn: event.txn ?? null,
    result: event.result,
    body,
    prevHash,
    hash: chainHashOfBody(prevHash, seq, ts, body),
  };
}


export interface Checkpoint {
  readonly seq: number;
  readonly ts: number;
  readonly hash: string;
  readonly keyId: string;
  /** base64url Ed25519 signature of the statement (statements.ts): checkpoint or head context. */
  readonly signature: string;
}

function positionPayload(c: { seq: number; ts: number; hash: string; keyId: string }): Record<string, unknown> {
  return { hash: c.hash, key_id: c.keyId, seq: c.seq, ts: c.ts };
}

/** Signs a periodic checkpoint (context `tessera-audit-checkpoint-v2`). */
export function signCheckpoint(privateKey: KeyObject, c: { seq: number; ts: number; hash: string; keyId: string }): Checkpoint {
  return { seq: c.seq, ts: c.ts, hash: c.hash, keyId: c.keyId, signature: signStatement(privateKey, 'checkpoint', positionPayload(c)) };
}

/** Signs the head (context `tessera-audit-head-v2`): "`seq` is the newest event". */
export function signHead(privateKey: KeyObject, c: { seq: number; ts: number; hash: string; keyId: string }): Checkpoint {
  return { seq: c.seq, ts: c.ts, hash: c.hash, keyId: c.keyId, signature: signStatement(privateKey, 'head', positionPayload(c)) };
}

/** signCheckpoint / signHead with the signature computed off the event loop (statements.ts). */
export async function signPositionAsync(privateKey: KeyObject, type: 'checkpoint' | 'head', c: { seq: number; ts: number; hash: string; keyId: string }): Promise<Checkpoint> {
  return { seq: c.seq, ts: c.ts, hash: c.hash, keyId: c.keyId, signature: await signStatementAsync(privateKey, type, positionPayload(c)) };
}

/** How a checkpoint is signed: the current context, the legacy form (checkpoints only), or not validly. */
export function checkpointSignature(publicKey: KeyObject, c: Checkpoint): 'v2' | 'legacy' | null {
  if (verifyStatement(publicKey, 'checkpoint', positionPayload(c), c.signature)) return 'v2';
  return verifyLegacyCheckpoint(publicKey, c) ? 'legacy' : null;
}

/** A checkpoint verifies under the checkpoint context or the legacy form; never under the head context. */
export function verifyCheckpoint(publicKey: KeyObject, c: Checkpoint): boolean {
  return checkpointSignature(publicKey, c) !== null;
}

/** A head verifies only under the head context: a checkpoint (legacy or current) never does. */
export function verifyHead(publicKey: KeyObject, h: Checkpoint): boolean {
  return verifyStatement(publicKey, 'head', positionPayload(h), h.signature);
}

/** A short, stable id of a checkpoint public key (SHA-256 of its SPKI DER). */
export function checkpointKeyId(publicKey: KeyObject): string {
  return `ack_${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16)}`;
}

/** Accepts a KeyObject, a PEM string, or base64 of the SPKI DER (the form kept in meta). */
export function toPublicKey(key: KeyObject | string): KeyObject {
  if (typeof key !== 'string') return key.type === 'private' ? createPublicKey(key) : key;
  if (key.includes('-----BEGIN')) return createPublicKey(key);
  return createPublicKey({ key: Buffer.from(key, 'base64'), format: 'der', type: 'spki' });
}

export function privateKeyFromDer(der: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
}

/**
 * What verification can find. The kind is the stable code a script should match on
 * (docs/audit.md lists them with their meaning).
 */
export type ProblemKind =
  | 'modified'
  | 'deleted'
  | 'inserted'
  | 'reordered'
  | 'truncated'
  | 'bad_checkpoint_signature'
  | 'bad_head_signature'
  | 'head_missing'
  | 'head_legacy'
  | 'rolled_back'
  | 'forked'
  | 'witness_bad_signature'
  | 'bad_prune_signature'
  | 'prune_gap'
  | 'pruned_unverifiable'
  | 'archive_missing'
  | 'archive_modified'
  | 'bad_verified_signature';

export interface Problem {
  readonly seq: number;
  readonly kind: ProblemKind;
  readonly message: string;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly checked: number;
  readonly checkpoints: number;
  readonly problems: Problem[];
}

/**
 * Where verification starts when not at genesis: the record `seq + 1` must link to `hash`.
 * `source` names the signed statement it comes from, for messages ("the pruned segment 1..500").
 */
export interface Anchor {
  readonly seq: number;
  readonly hash: string;
  readonly source: string;
}

interface Seen {
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  readonly selfOk: boolean;
}

/** At most this many problems are kept: past that, the log is clearly compromised. */
export const MAX_PROBLEMS = 1000;

export interface ChainVerifier {
  /**
   * Validates checkpoint signatures at once; those ahead of the cursor are compared when their
   * record is pushed (`retain: false`: only counted, for checkpoints beyond the last record).
   */
  addCheckpoints(checkpoints: readonly Checkpoint[], options?: { retain?: boolean }): void;
  /** Continues after `anchor` (a missing archive segment): the next record must link to its hash. */
  skipTo(anchor: Anchor): void;
  push(record: StoredRecord): void;
  /** Adds a problem found outside the chain (prune statements, archives, witness). */
  report(problem: Problem): void;
  /** The last logical position pushed (or the anchor, or genesis). */
  position(): { seq: number; hash: string };
  /** The problems found so far, for a segment that has no head of its own (archive.ts). */
  settle(): Problem[];
  /** `head`: the signed head read after the last record (it may be given here or up front). */
  finish(head?: Checkpoint | null): VerifyResult;
}

/**
 * A streaming verifier: push records in ascending stored-seq order (pages of any size), add the
 * checkpoints of each page before its records, then `finish()`. Memory is two records of
 * look-behind, one pending broken link and the checkpoints not yet reached. Classification:
 *  - seq gap                                  → deleted (the missing seqs);
 *  - record does not hash to its stored hash  → modified;
 *  - a record links to the one *two* back     → the one in between was inserted;
 *  - two neighbours link to each other crosswise (A.prev = B.hash) → reordered;
 *  - seq going backwards (array input only)   → reordered;
 *  - a signed checkpoint's hash ≠ the record's → modified (the chain was rewritten before it);
 *  - newest checkpoint / signed head beyond the last record → truncated;
 *  - records after the signed head            → inserted;
 *  - the head older than a signed checkpoint or the anchor → rolled_back;
 *  - checkpoint signature invalid             → bad_checkpoint_signature;
 *  - head not a valid *head* statement        → bad_head_signature (head_legacy: pre-ADR-0031 form);
 *  - no head although events exist            → head_missing.
 */
export function createChainVerifier(opts: { publicKey: KeyObject | string; checkpoints?: readonly Checkpoint[]; head?: Checkpoint | null; anchor?: Anchor }): ChainVerifier {
  const publicKey = toPublicKey(opts.publicKey);
  const anchor = opts.anchor;
  const problems: Problem[] = [];
  const report = (p: Problem): void => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };

  let checked = 0;
  let expected = (anchor?.seq ?? 0) + 1;
  let shift = 0; // rows spliced in minus rows spliced out: stored seq − original seq
  let p1: Seen | undefined = anchor ? { seq: anchor.seq, hash: anchor.hash, prevHash: '', selfOk: true } : undefined; // previous record
  let p2: Seen | undefined; // the one before
  let pending: Seen | undefined; // a record whose link was broken, not yet explained
  let last: Seen | undefined = p1;

  // Checkpoints ahead of the cursor, ascending; `aheadAt` is the next one not yet reached.
  let ahead: Checkpoint[] = [];
  let aheadAt = 0;
  let validCheckpoints = 0;
  let newest: Checkpoint | undefined;

  function addCheckpoints(cps: readonly Checkpoint[], options: { retain?: boolean } = {}): void {
    const fresh: Checkpoint[] = [];
    const cursor = last ? last.seq - shift : 0;
    for (const c of cps) {
      if (!checkpointSignature(publicKey, c)) {
        report({ seq: c.seq, kind: 'bad_checkpoint_signature', message: `checkpoint at seq ${c.seq} has an invalid signature (forged or altered checkpoint, or another statement put in its place)` });
        continue;
      }
      validCheckpoints++;
      if (!newest || c.seq > newest.seq) newest = c;
      if (c.seq > cursor) {
        if (options.retain !== false) fresh.push(c);
      }
      else if (c.seq === cursor && last && c.hash !== last.hash) {
        report({ seq: c.seq, kind: 'modified', message: `event ${c.seq} differs from the signed checkpoint at seq ${c.seq}: the chain was rewritten at or before this event` });
      }
    }
    if (!fresh.length) return;
    ahead = ahead.slice(aheadAt).concat(fresh);
    aheadAt = 0;
    for (let i = 1; i < ahead.length; i++) {
      if (ahead[i]!.seq < ahead[i - 1]!.seq) {
        ahead.sort((a, b) => a.seq - b.seq);
        break;
      }
    }
  }

  function resolvePending(): void {
    if (!pending) return;
    report(
      pending.selfOk
        ? { seq: pending.seq, kind: 'inserted', message: `event ${pending.seq} hashes correctly but does not link to its predecessor (forged event)` }
        : { seq: pending.seq, kind: 'modified', message: `event ${pending.seq} does not match its hash and does not link to its predecessor` },
    );
    pending = undefined;
  }

  function push(r: StoredRecord): void {
    checked++;
    if (r.seq < expected) {
      report({ seq: r.seq, kind: 'reordered', message: `event ${r.seq} appears after event ${expected - 1} (sequence goes backwards)` });
    } else if (r.seq > expected && p1 !== undefined) {
      report({ seq: expected, kind: 'deleted', message: r.seq - expected === 1 ? `event ${expected} is missing` : `events ${expected}..${r.seq - 1} are missing` });
    } else if (r.seq > expected) {
      report({ seq: expected, kind: 'deleted', message: r.seq - expected === 1 ? `event ${expected} (the first) is missing` : `events ${expected}..${r.seq - 1} (the first) are missing` });
    }
    const gap = r.seq > expected;
    expected = Math.max(expected, r.seq + 1);

    let event: unknown;
    let columnsOk = true;
    try {
      event = JSON.parse(r.body);
      const e = event as AuditEvent;
      columnsOk = e.kind === r.kind && (e.actor?.id ?? null) === r.actor && (e.txn ?? null) === r.txn && (r.result === undefined || r.result === null || r.result === e.result);
    } catch {
      event = undefined;
    }
    const selfAt = (seq: number): boolean => {
      try {
        return event !== undefined && chainHash(r.prevHash, seq, r.ts, event) === r.hash;
      } catch {
        return false; // not a safe integer, or not representable: cannot be the hashed record
      }
    };
    let selfOk = selfAt(r.seq - shift);
    const expectedPrev = p1 ? p1.hash : r.seq - shift === 1 ? GENESIS_HASH : undefined;
    const linkOk = expectedPrev === undefined ? true : r.prevHash === expectedPrev;
    const cur: Seen = { seq: r.seq, hash: r.hash, prevHash: r.prevHash, selfOk };
    let linkHash = r.hash; // what the next record must link to

    if (linkOk) {
      resolvePending();
      if (!selfOk) report({ seq: r.seq, kind: 'modified', message: `event ${r.seq} does not match its stored hash (content altered)` });
    } else if (gap) {
      // Explained by the deletion reported above.
      resolvePending();
      if (!selfOk) report({ seq: r.seq, kind: 'modified', message: `event ${r.seq} does not match its stored hash (content altered)` });
    } else if (pending && r.hash === pending.prevHash && p2 && r.prevHash === p2.hash) {
      // p1 and r swapped places: each carries the other's link.
      report({ seq: pending.seq, kind: 'reordered', message: `events ${pending.seq} and ${r.seq} are swapped` });
      linkHash = pending.hash; // the swapped-forward record is logically the later one
      pending = undefined;
      selfOk = true; // explained by the swap: its hash used its original seq
    } else if (p2 && r.prevHash === p2.hash && p1) {
      // r links over p1: p1 was spliced in; later rows were shifted up by one.
      pending = undefined;
      report({ seq: p1.seq, kind: 'inserted', message: `event ${p1.seq} was inserted into the chain (event ${r.seq} links to event ${p2.seq})` });
      shift++;
      selfOk = selfAt(r.seq - shift);
      if (!selfOk) report({ seq: r.seq, kind: 'modified', message: `event ${r.seq} does not match its stored hash (content altered)` });
    } else {
      resolvePending();
      pending = cur;
    }
    if (!columnsOk) report({ seq: r.seq, kind: 'modified', message: `event ${r.seq}: the kind/actor/txn/result columns do not match the hashed body` });

    const logical = r.seq - shift;
    while (aheadAt < ahead.length && ahead[aheadAt]!.seq < logical) aheadAt++;
    if (aheadAt < ahead.length && ahead[aheadAt]!.seq === logical) {
      if (ahead[aheadAt]!.hash !== r.hash) report({ seq: logical, kind: 'modified', message: `event ${logical} differs from the signed checkpoint at seq ${logical}: the chain was rewritten at or before this event` });
      aheadAt++;
    }
    p2 = p1;
    p1 = { ...cur, hash: linkHash, selfOk };
    last = p1;
  }

  function skipTo(a: Anchor): void {
    resolvePending();
    const seen: Seen = { seq: a.seq + shift, hash: a.hash, prevHash: '', selfOk: true };
    expected = a.seq + shift + 1;
    p2 = undefined;
    p1 = seen;
    last = seen;
  }

  function position(): { seq: number; hash: string } {
    return last ? { seq: last.seq - shift, hash: last.hash } : { seq: 0, hash: GENESIS_HASH };
  }

  function finish(headArg?: Checkpoint | null): VerifyResult {
    const head = headArg !== undefined ? headArg : (opts.head ?? null);
    resolvePending();
    const { seq: lastSeq, hash: lastHash } = position();
    let headValid = false;
    if (head) {
      headValid = verifyHead(publicKey, head);
      if (!headValid) {
        report(
          verifyLegacyCheckpoint(publicKey, head)
            ? { seq: head.seq, kind: 'head_legacy', message: `the head (seq ${head.seq}) carries a pre-0031 signature, which a checkpoint also carries: if this store was just upgraded, start the server once so it signs a new head; otherwise an older checkpoint was put in the head's place` }
            : { seq: head.seq, kind: 'bad_head_signature', message: `the signed head (seq ${head.seq}) does not verify as a head of this log: it was forged or altered, or a checkpoint or another log's head was put in its place` },
        );
      }
    } else if (checked > 0 || lastSeq > 0) {
      report({ seq: lastSeq, kind: 'head_missing', message: 'the signed head is missing, so truncation after the last checkpoint cannot be ruled out' });
    }
    const newestSeq = newest?.seq ?? 0;
    const headSeq = headValid ? head!.seq : 0;
    let rolledBack = false;
    if (headValid && headSeq < newestSeq) {
      rolledBack = true;
      report({ seq: headSeq + 1, kind: 'rolled_back', message: `the signed head (seq ${headSeq}) is older than the signed checkpoint at seq ${newestSeq}: the head was replaced by an older one` });
    }
    if (headValid && anchor && headSeq < anchor.seq) {
      rolledBack = true;
      report({ seq: headSeq + 1, kind: 'rolled_back', message: `the signed head (seq ${headSeq}) is older than ${anchor.source} (seq ${anchor.seq})` });
    }
    const proven = Math.max(newestSeq, headSeq);
    if (proven > lastSeq) {
      const byHead = headValid && headSeq >= newestSeq;
      report({ seq: lastSeq + 1, kind: 'truncated', message: `the log ends at seq ${lastSeq} but ${byHead ? 'the signed head' : 'a signed checkpoint'} proves events up to ${proven} existed` });
    } else if (headValid && !rolledBack && headSeq < lastSeq) {
      report({ seq: headSeq + 1, kind: 'inserted', message: `events ${headSeq + 1}..${lastSeq} were appended after the signed head (seq ${headSeq})` });
    } else if (headValid && headSeq === lastSeq && lastSeq > 0 && head!.hash !== lastHash) {
      report({ seq: headSeq, kind: 'modified', message: `event ${headSeq} differs from the signed head (the chain was rewritten)` });
    }
    // Stable order: by seq, then kind; one problem per (seq, kind) (a checkpoint and the head may
    // both witness the same rewritten event).
    problems.sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
    const unique = problems.filter((p, i) => i === 0 || p.seq !== problems[i - 1]!.seq || p.kind !== problems[i - 1]!.kind);
    return { ok: unique.length === 0, checked, checkpoints: validCheckpoints, problems: unique };
  }
  if (opts.checkpoints) addCheckpoints(opts.checkpoints);
  function settle(): Problem[] {
    resolvePending();
    return [...problems].sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
  }

  return { addCheckpoints, skipTo, push, report, position, settle, finish };
}

/** Verifies a whole chain held in memory (tests, small logs). */
export function verifyChain(records: readonly StoredRecord[], checkpoints: readonly Checkpoint[], publicKey: KeyObject | string, head?: Checkpoint | null): VerifyResult {
  const v = createChainVerifier({ publicKey, checkpoints, head });
  for (const r of records) v.push(r);
  return v.finish();
}
