/**
 * The `drift_pins` table (migration 360): what was approved, per kind and subject, and what was
 * observed when it differs. Portable SQL for both store adapters; times are epoch ms.
 */
import type { SqlExecutor } from '../store/port.js';

export type PinKind = 'tool' | 'engine' | 'policy';

export interface Pin {
  readonly kind: PinKind;
  readonly subject: string;
  /** Null: seen but never approved (tools under `require_approval`). */
  readonly approvedDigest: string | null;
  readonly approvedParts: Readonly<Record<string, string>>;
  readonly approvedAt: number | null;
  readonly approvedBy: string | null;
  /** Set while what runs differs from the approval. */
  readonly observedDigest: string | null;
  readonly observedParts: Readonly<Record<string, string>>;
  readonly observedAt: number | null;
  readonly firstSeenAt: number;
}

interface PinRow {
  kind: string;
  subject: string;
  approved_digest: string | null;
  approved_parts: string | null;
  approved_at: number | null;
  approved_by: string | null;
  observed_digest: string | null;
  observed_parts: string | null;
  observed_at: number | null;
  first_seen_at: number;
  [k: string]: unknown;
}

/** Rows read back are checked field by field: a row not of this shape is skipped, never trusted. */
function parts(text: string | null): Record<string, string> {
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toPin(r: PinRow): Pin | undefined {
  if (r.kind !== 'tool' && r.kind !== 'engine' && r.kind !== 'policy') return undefined;
  return {
    kind: r.kind,
    subject: String(r.subject),
    approvedDigest: r.approved_digest ?? null,
    approvedParts: parts(r.approved_parts),
    approvedAt: num(r.approved_at),
    approvedBy: r.approved_by ?? null,
    observedDigest: r.observed_digest ?? null,
    observedParts: parts(r.observed_parts),
    observedAt: num(r.observed_at),
    firstSeenAt: Number(r.first_seen_at),
  };
}

/** At most this many pins are loaded per kind (a bound on memory; more are reported as such). */
export const MAX_PINS = 20_000;

export async function loadPins(db: SqlExecutor, kind: PinKind): Promise<Pin[]> {
  const rows = await db.all<PinRow>('SELECT * FROM drift_pins WHERE kind = ? ORDER BY subject LIMIT ?', [kind, MAX_PINS]);
  return rows.map(toPin).filter((p): p is Pin => p !== undefined);
}

export async function getPin(db: SqlExecutor, kind: PinKind, subject: string): Promise<Pin | undefined> {
  const r = await db.get<PinRow>('SELECT * FROM drift_pins WHERE kind = ? AND subject = ?', [kind, subject]);
  return r ? toPin(r) : undefined;
}

/**
 * First sight: inserts the subject approved (`approved` true: pinned as seen) or pending
 * (approved digest null, the digest observed). True when this call inserted it (then the caller
 * audits); false when a row existed (another replica was first).
 */
export async function insertPin(db: SqlExecutor, p: { kind: PinKind; subject: string; digest: string; parts: Record<string, string>; approved: boolean; by: string; now: number }): Promise<boolean> {
  const partsJson = JSON.stringify(p.parts);
  const r = await db.run(
    `INSERT INTO drift_pins (kind, subject, approved_digest, approved_parts, approved_at, approved_by, observed_digest, observed_parts, observed_at, first_seen_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, subject) DO NOTHING`,
    p.approved
      ? [p.kind, p.subject, p.digest, partsJson, p.now, p.by, null, null, null, p.now]
      : [p.kind, p.subject, null, null, null, null, p.digest, partsJson, p.now, p.now],
  );
  return r.changes === 1;
}

/**
 * Records a digest differing from the approval. True only for the first writer of this observed
 * digest (the row's observed digest was another one or none): that writer audits, once.
 */
export async function observePin(db: SqlExecutor, p: { kind: PinKind; subject: string; digest: string; parts: Record<string, string>; now: number }): Promise<boolean> {
  const r = await db.run(
    `UPDATE drift_pins SET observed_digest = ?, observed_parts = ?, observed_at = ?
     WHERE kind = ? AND subject = ? AND (observed_digest IS NULL OR observed_digest <> ?) AND (approved_digest IS NULL OR approved_digest <> ?)`,
    [p.digest, JSON.stringify(p.parts), p.now, p.kind, p.subject, p.digest, p.digest],
  );
  return r.changes === 1;
}

/** What runs matches the approval again: the observation is cleared. True when one was. */
export async function clearObserved(db: SqlExecutor, kind: PinKind, subject: string, approvedDigest: string): Promise<boolean> {
  const r = await db.run('UPDATE drift_pins SET observed_digest = NULL, observed_parts = NULL, observed_at = NULL WHERE kind = ? AND subject = ? AND approved_digest = ? AND observed_digest IS NOT NULL', [kind, subject, approvedDigest]);
  return r.changes === 1;
}

/**
 * Approves the observed digest (only when it is still `expected`: what the operator looked at).
 * True when approved; false when the row's observed digest is another one (or none).
 */
export async function approveObserved(db: SqlExecutor, p: { kind: PinKind; subject: string; expected: string; by: string; now: number }): Promise<boolean> {
  const r = await db.run(
    `UPDATE drift_pins SET approved_digest = observed_digest, approved_parts = observed_parts, approved_at = ?, approved_by = ?, observed_digest = NULL, observed_parts = NULL, observed_at = NULL
     WHERE kind = ? AND subject = ? AND observed_digest = ?`,
    [p.now, p.by, p.kind, p.subject, p.expected],
  );
  return r.changes === 1;
}

/** Sets the approval directly (the policy set's last recorded digest). */
export async function setApproved(db: SqlExecutor, p: { kind: PinKind; subject: string; digest: string; parts: Record<string, string>; by: string; now: number }): Promise<void> {
  await db.run(
    `INSERT INTO drift_pins (kind, subject, approved_digest, approved_parts, approved_at, approved_by, first_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (kind, subject) DO UPDATE SET approved_digest = excluded.approved_digest, approved_parts = excluded.approved_parts, approved_at = excluded.approved_at, approved_by = excluded.approved_by, observed_digest = NULL, observed_parts = NULL, observed_at = NULL`,
    [p.kind, p.subject, p.digest, JSON.stringify(p.parts), p.now, p.by, p.now],
  );
}

/** Moves the approval from `from` to `to` (the policy set's recorded digest). True for the one writer that moved it. */
export async function replaceApproved(db: SqlExecutor, p: { kind: PinKind; subject: string; from: string; to: string; by: string; now: number }): Promise<boolean> {
  const r = await db.run('UPDATE drift_pins SET approved_digest = ?, approved_at = ?, approved_by = ? WHERE kind = ? AND subject = ? AND approved_digest = ?', [p.to, p.now, p.by, p.kind, p.subject, p.from]);
  return r.changes === 1;
}
