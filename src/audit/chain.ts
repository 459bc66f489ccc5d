import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { AuditEvent } from './events.js';

/**
 * The pure core of the audit chain (no I/O, no clock): canonical serialization, the hash
 * chain, signed checkpoints and the verifier. See docs/audit.md for the design.
 *
 *   hash_n = SHA-256( prev_hash_hex || canonical({ event, seq, ts }) )   (hex)
 *
 * The first event links to GENESIS_HASH. A checkpoint signs canonical({ hash, key_id, seq, ts })
 * with Ed25519 (RFC 8032); the signed *head* is a checkpoint of the newest event, rewritten with
 * every committed batch so that truncation after the last periodic checkpoint is detected too.
 */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Canonical JSON in the spirit of RFC 8785 (JCS): object keys sorted by UTF-16 code units
 * (§3.2.3), no whitespace, ECMAScript number and string serialization (§3.2.2). `undefined`
 * members are omitted (as JSON.stringify does); non-finite numbers are refused because JSON
 * cannot represent them (RFC 8785 §3.2.2.3).
 */
export function canonicalize(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot represent a non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalize(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalize(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot represent a ${typeof value}`);
  }
}

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
  /** base64url Ed25519 signature over checkpointPayload(). */
  readonly signature: string;
}

export function checkpointPayload(c: { seq: number; ts: number; hash: string; keyId: string }): Buffer {
  return Buffer.from(canonicalize({ hash: c.hash, key_id: c.keyId, seq: c.seq, ts: c.ts, v: 'tessera-audit-checkpoint-1' }), 'utf8');
}

/** Ed25519 has no pre-hash parameter: node:crypto takes `null` as the algorithm (RFC 8032 §5.1.6). */
export function signCheckpoint(privateKey: KeyObject, c: { seq: number; ts: number; hash: string; keyId: string }): Checkpoint {
  return { ...c, signature: sign(null, checkpointPayload(c), privateKey).toString('base64url') };
}

export function verifyCheckpoint(publicKey: KeyObject, c: Checkpoint): boolean {
  try {
    return verify(null, checkpointPayload(c), publicKey, Buffer.from(c.signature, 'base64url'));
  } catch {
    return false;
  }
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

export type ProblemKind = 'modified' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'bad_checkpoint_signature';

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

interface Seen {
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  readonly selfOk: boolean;
}

/** At most this many problems are kept: past that, the log is clearly compromised. */
const MAX_PROBLEMS = 1000;

/**
 * A streaming verifier: push records in ascending stored-seq order (pages of any size), then
 * `finish()`. It keeps two records of look-behind and one pending broken link, so memory does
 * not grow with the log. Classification:
 *  - seq gap                                  → deleted (the missing seqs);
 *  - record does not hash to its stored hash  → modified;
 *  - a record links to the one *two* back     → the one in between was inserted;
 *  - two neighbours link to each other crosswise (A.prev = B.hash) → reordered;
 *  - seq going backwards (array input only)   → reordered;
 *  - a signed checkpoint's hash ≠ the record's → modified (the chain was rewritten before it);
 *  - newest checkpoint / signed head beyond the last record → truncated;
 *  - records after the signed head            → inserted;
 *  - checkpoint or head signature invalid     → bad_checkpoint_signature.
 */
export function createChainVerifier(opts: { publicKey: KeyObject | string; checkpoints: readonly Checkpoint[]; head?: Checkpoint | null }) {
  const publicKey = toPublicKey(opts.publicKey);
  const problems: Problem[] = [];
  const report = (p: Problem): void => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const validCheckpoints = new Map<number, Checkpoint>();
  for (const c of opts.checkpoints) {
    if (verifyCheckpoint(publicKey, c)) validCheckpoints.set(c.seq, c);
    else report({ seq: c.seq, kind: 'bad_checkpoint_signature', message: `checkpoint at seq ${c.seq} has an invalid signature (forged or altered checkpoint)` });
  }

  let checked = 0;
  let expected = 1;
  let shift = 0; // rows spliced in minus rows spliced out: stored seq − original seq
  let p1: Seen | undefined; // previous record
  let p2: Seen | undefined; // the one before
  let pending: Seen | undefined; // a record whose link was broken, not yet explained
  let last: Seen | undefined;
  const checkpointHit = new Set<number>();

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
      columnsOk = e.kind === r.kind && (e.actor?.id ?? null) === r.actor && (e.txn ?? null) === r.txn;
    } catch {
      event = undefined;
    }
    const selfAt = (seq: number): boolean => event !== undefined && chainHash(r.prevHash, seq, r.ts, event) === r.hash;
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
    if (!columnsOk) report({ seq: r.seq, kind: 'modified', message: `event ${r.seq}: the kind/actor/txn columns do not match the hashed body` });

    const logical = r.seq - shift;
    const cp = validCheckpoints.get(logical);
    if (cp) {
      checkpointHit.add(logical);
      if (cp.hash !== r.hash) report({ seq: logical, kind: 'modified', message: `event ${logical} differs from the signed checkpoint at seq ${logical}: the chain was rewritten at or before this event` });
    }
    p2 = p1;
    p1 = { ...cur, hash: linkHash, selfOk };
    last = p1;
  }

  /** `head`: the signed head read after the last record (it may be given here or up front). */
  function finish(headArg?: Checkpoint | null): VerifyResult {
    const head = headArg !== undefined ? headArg : (opts.head ?? null);
    const headValid = head ? verifyCheckpoint(publicKey, head) : false;
    if (head && !headValid) report({ seq: head.seq, kind: 'bad_checkpoint_signature', message: `the signed head (seq ${head.seq}) has an invalid signature` });
    resolvePending();
    const lastSeq = last ? last.seq - shift : 0;
    const newestCp = [...validCheckpoints.keys()].reduce((m, s) => Math.max(m, s), 0);
    if (newestCp > lastSeq) {
      report({ seq: lastSeq + 1, kind: 'truncated', message: `the log ends at seq ${lastSeq} but a signed checkpoint proves events up to ${newestCp} existed` });
    } else if (head && headValid) {
      if (head.seq > lastSeq) {
        report({ seq: lastSeq + 1, kind: 'truncated', message: `the log ends at seq ${lastSeq} but the signed head proves events up to ${head.seq} existed` });
      } else if (head.seq < lastSeq) {
        report({ seq: head.seq + 1, kind: 'inserted', message: `events ${head.seq + 1}..${lastSeq} were appended after the signed head (seq ${head.seq})` });
      } else if (last && head.hash !== last.hash) {
        report({ seq: head.seq, kind: 'modified', message: `event ${head.seq} differs from the signed head (the chain was rewritten)` });
      }
    } else if (!head && checked > 0) {
      report({ seq: lastSeq, kind: 'bad_checkpoint_signature', message: 'the signed head record is missing, so truncation after the last checkpoint cannot be ruled out' });
    }
    // Stable order: by seq, then kind; one problem per (seq, kind) (a checkpoint and the head may
    // both witness the same rewritten event).
    problems.sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
    const unique = problems.filter((p, i) => i === 0 || p.seq !== problems[i - 1]!.seq || p.kind !== problems[i - 1]!.kind);
    return { ok: unique.length === 0, checked, checkpoints: validCheckpoints.size, problems: unique };
  }

  return { push, finish };
}

/** Verifies a whole chain held in memory (tests, small logs). */
export function verifyChain(records: readonly StoredRecord[], checkpoints: readonly Checkpoint[], publicKey: KeyObject | string, head?: Checkpoint | null): VerifyResult {
  const v = createChainVerifier({ publicKey, checkpoints, head });
  for (const r of records) v.push(r);
  return v.finish();
}
