import { sign, verify, type KeyObject } from 'node:crypto';
import { canonicalize } from './chain.js';

/**
 * Domain-separated signed statements of the audit log (pure; ADR 0031).
 *
 * Every statement type signs its own versioned context string, a newline, then the canonical
 * JSON (RFC 8785 style) of its payload:
 *
 *   message = UTF-8( context || "\n" || canonical(payload) )        Ed25519, RFC 8032 §5.1.6
 *
 * Contexts contain no newline and canonical JSON escapes every newline, so no message of one
 * type is also a message of another: a checkpoint can never verify as a head, a head never as
 * a prune statement, and so on.
 *
 * Legacy (before ADR 0031): checkpoints and heads both signed the bare canonical JSON
 * `{hash,key_id,seq,ts,v:"tessera-audit-checkpoint-1"}`, so one could stand in for the other.
 * Verifiers accept that legacy form for *checkpoints only* — a checkpoint asserts nothing but
 * "event `seq` had hash `hash`", which an old head asserts too — and never for a head.
 */
export const STATEMENT_CONTEXTS = {
  /** A periodic checkpoint: event `seq` had hash `hash`. */
  checkpoint: 'tessera-audit-checkpoint-v2',
  /** The signed head: `seq` is the newest event and had hash `hash` (nothing after it yet). */
  head: 'tessera-audit-head-v2',
  /** Events `from_seq..to_seq` were archived to `archive` and removed from the store. */
  prune: 'tessera-audit-prune-v1',
  /** The server verified the chain up to `seq` (hash `hash`): where incremental verification resumes. */
  verified: 'tessera-audit-verified-v1',
  /** The outcome of a verify/archive job as stored in `audit_jobs`, read by other replicas. */
  job: 'tessera-audit-job-v1',
} as const;

export type StatementType = keyof typeof STATEMENT_CONTEXTS;

/** The exact bytes signed for a statement of `type` with `payload`. */
export function statementMessage(type: StatementType, payload: unknown): Buffer {
  return Buffer.from(`${STATEMENT_CONTEXTS[type]}\n${canonicalize(payload)}`, 'utf8');
}

/** base64url Ed25519 signature of the statement. */
export function signStatement(privateKey: KeyObject, type: StatementType, payload: unknown): string {
  return sign(null, statementMessage(type, payload), privateKey).toString('base64url');
}

/**
 * The same signature computed on the libuv pool (node:crypto's callback form): the audit log
 * signs a head with every committed batch, and off the event loop that Ed25519 signature
 * (≈ 30–50 µs) overlaps with request work instead of delaying it (docs/adr/0122-hot-path-crypto-and-audit.md).
 */
export function signStatementAsync(privateKey: KeyObject, type: StatementType, payload: unknown): Promise<string> {
  const message = statementMessage(type, payload);
  return new Promise((resolve, reject) => {
    sign(null, message, privateKey, (err, sig) => (err ? reject(err) : resolve(sig.toString('base64url'))));
  });
}

/** True only when `signature` is a valid signature of exactly this statement type and payload. */
export function verifyStatement(publicKey: KeyObject, type: StatementType, payload: unknown, signature: string): boolean {
  try {
    return verify(null, statementMessage(type, payload), publicKey, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

/** The pre-ADR-0031 message, shared by checkpoints and heads (accepted for checkpoints only). */
export function legacyCheckpointMessage(c: { seq: number; ts: number; hash: string; keyId: string }): Buffer {
  return Buffer.from(canonicalize({ hash: c.hash, key_id: c.keyId, seq: c.seq, ts: c.ts, v: 'tessera-audit-checkpoint-1' }), 'utf8');
}

export function verifyLegacyCheckpoint(publicKey: KeyObject, c: { seq: number; ts: number; hash: string; keyId: string; signature: string }): boolean {
  try {
    return verify(null, legacyCheckpointMessage(c), publicKey, Buffer.from(c.signature, 'base64url'));
  } catch {
    return false;
  }
}
