/**
 * Storage of the rotation job (tables from migration 350): one row per rotated secret
 * (`rotation_state`) and the intent row of a rotation under way (`rotation_intents`).
 * Rows read back are checked field by field (numbers from BIGINT columns may come as strings).
 */
import type { SqlExecutor } from '../store/port.js';

export interface SecretRotationRow {
  readonly path: string;
  readonly rotator: string;
  readonly currentVersion: number;
  readonly periodMs: number | null;
  readonly versionCreatedAt: number;
  readonly state: StateRow;
  readonly intent: IntentInfo | null;
}

export interface StateRow {
  readonly lastRotatedAt: number | null;
  readonly lastAttemptAt: number | null;
  readonly failures: number;
  readonly nextAttemptAt: number | null;
  readonly lastErrorCode: string | null;
  readonly lastError: string | null;
  readonly retireVersion: number | null;
  readonly retireRef: string | null;
  readonly retireAt: number | null;
  readonly currentRef: string | null;
  readonly rotatedAt: number | null;
  readonly alertedVersion: number | null;
}

export interface IntentInfo {
  readonly fromVersion: number;
  /** Run id of the rotation holding it; '' once released after a failure (resumable at once). */
  readonly owner: string;
  readonly hasValue: boolean;
  readonly updatedAt: number;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

const SELECT = `SELECT s.path, s.rotator, s.current_version, s.rotation_period_s, v.created_at AS version_created_at,
  st.last_rotated_at, st.last_attempt_at, st.failures, st.next_attempt_at, st.last_error_code, st.last_error,
  st.retire_version, st.retire_ref, st.retire_at, st.current_ref, st.rotated_at, st.alerted_version,
  i.from_version AS i_from, i.owner AS i_owner, i.updated_at AS i_updated, CASE WHEN i.sealed IS NULL THEN 0 ELSE 1 END AS i_has_value
FROM secrets s
JOIN secret_versions v ON v.path = s.path AND v.version = s.current_version
LEFT JOIN rotation_state st ON st.path = s.path
LEFT JOIN rotation_intents i ON i.path = s.path`;

function toRow(r: Record<string, unknown>): SecretRotationRow {
  return {
    path: String(r.path),
    rotator: String(r.rotator ?? ''),
    currentVersion: Number(r.current_version),
    periodMs: r.rotation_period_s === null || r.rotation_period_s === undefined ? null : Number(r.rotation_period_s) * 1000,
    versionCreatedAt: Number(r.version_created_at),
    state: {
      lastRotatedAt: num(r.last_rotated_at),
      lastAttemptAt: num(r.last_attempt_at),
      failures: Number(r.failures ?? 0),
      nextAttemptAt: num(r.next_attempt_at),
      lastErrorCode: str(r.last_error_code),
      lastError: str(r.last_error),
      retireVersion: num(r.retire_version),
      retireRef: str(r.retire_ref),
      retireAt: num(r.retire_at),
      currentRef: str(r.current_ref),
      rotatedAt: num(r.rotated_at),
      alertedVersion: num(r.alerted_version),
    },
    intent: r.i_from === null || r.i_from === undefined ? null : { fromVersion: Number(r.i_from), owner: String(r.i_owner ?? ''), hasValue: Number(r.i_has_value) === 1, updatedAt: Number(r.i_updated) },
  };
}

/** Every secret with a rotator, ordered by path (at most `limit`). */
export async function loadRotated(ex: SqlExecutor, limit: number): Promise<SecretRotationRow[]> {
  const rows = await ex.all(`${SELECT} WHERE s.rotator IS NOT NULL ORDER BY s.path LIMIT ?`, [limit]);
  return rows.map(toRow);
}

/** One secret (with or without a rotator), or undefined. */
export async function loadOne(ex: SqlExecutor, path: string): Promise<(SecretRotationRow & { hasRotator: boolean }) | undefined> {
  const r = await ex.get(`${SELECT} WHERE s.path = ?`, [path]);
  if (!r) return undefined;
  return { ...toRow(r), hasRotator: r.rotator !== null && r.rotator !== undefined };
}

type StatePatch = Partial<Record<'last_rotated_at' | 'last_attempt_at' | 'failures' | 'next_attempt_at' | 'last_error_code' | 'last_error' | 'retire_version' | 'retire_ref' | 'retire_at' | 'current_ref' | 'rotated_at' | 'alerted_version', string | number | null>>;

/** Inserts or updates the state row with the given columns. */
export async function patchState(ex: SqlExecutor, path: string, patch: StatePatch, now: number): Promise<void> {
  const cols = Object.keys(patch) as (keyof StatePatch)[];
  const values = cols.map((c) => patch[c] ?? null);
  const insertCols = ['path', ...cols, 'updated_at'];
  const updates = [...cols.map((c) => `${c} = excluded.${c}`), 'updated_at = excluded.updated_at'];
  await ex.run(
    `INSERT INTO rotation_state (${insertCols.join(', ')}) VALUES (${insertCols.map(() => '?').join(', ')}) ON CONFLICT (path) DO UPDATE SET ${updates.join(', ')}`,
    [path, ...values, now],
  );
}

export interface IntentRow {
  readonly fromVersion: number;
  readonly owner: string;
  readonly sealed: Buffer | null;
  readonly masterKeyId: string | null;
  readonly ref: string | null;
}

export async function readIntent(ex: SqlExecutor, path: string): Promise<IntentRow | undefined> {
  const r = await ex.get<{ from_version: number; owner: string; sealed: Buffer | null; master_key_id: string | null; ref: string | null }>('SELECT from_version, owner, sealed, master_key_id, ref FROM rotation_intents WHERE path = ?', [path]);
  return r ? { fromVersion: Number(r.from_version), owner: String(r.owner), sealed: r.sealed ? Buffer.from(r.sealed) : null, masterKeyId: r.master_key_id, ref: r.ref } : undefined;
}
