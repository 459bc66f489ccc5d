/**
 * The console's rows (migration 336): sessions and OIDC sign-ins in progress. Digests only:
 * `id_hash` = SHA-256 (hex) of the session cookie value, `csrf_hash` of the CSRF token,
 * `state_hash` / `binding_hash` of the OIDC `state` and of the browser-binding cookie.
 */
import type { SqlExecutor } from '../store/port.js';

export type SessionVia = 'token' | 'oidc';
export type OperatorRole = 'admin' | 'auditor';
/** Why a session ended (the `console.session_ended` event's `cause`). */
export type EndCause = 'signed_out' | 'expired' | 'idle' | 'token_revoked' | 'token_expired';

export interface SessionRow {
  readonly id_hash: string;
  readonly operator_id: string;
  readonly name: string;
  readonly role: OperatorRole;
  readonly via: SessionVia;
  readonly csrf_hash: string;
  readonly token_id: string | null;
  readonly created_at: number;
  readonly expires_at: number;
  readonly last_seen_at: number;
  readonly revoked_at: number | null;
  readonly end_cause: string | null;
  /** From the operator token (null when the session is not from one, or the token row is gone). */
  readonly token_revoked_at?: number | null;
  /** The operator token's expiry (null: none, or not from a token). */
  readonly token_expires_at?: number | null;
}

const COLUMNS = 's.id_hash, s.operator_id, s.name, s.role, s.via, s.csrf_hash, s.token_id, s.created_at, s.expires_at, s.last_seen_at, s.revoked_at, s.end_cause';

export async function insertSession(db: SqlExecutor, row: Omit<SessionRow, 'revoked_at' | 'end_cause' | 'token_revoked_at' | 'token_expires_at'>): Promise<void> {
  await db.run('INSERT INTO console_sessions (id_hash, operator_id, name, role, via, csrf_hash, token_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    row.id_hash, row.operator_id, row.name, row.role, row.via, row.csrf_hash, row.token_id, row.created_at, row.expires_at, row.last_seen_at,
  ]);
}

/** The session with this id digest, with its operator token's revocation read in the same query. */
export async function findSession(db: SqlExecutor, idHash: string): Promise<SessionRow | undefined> {
  const row = await db.get<SessionRow & Record<string, unknown>>(
    `SELECT ${COLUMNS}, t.revoked_at AS token_revoked_at, t.expires_at AS token_expires_at FROM console_sessions s LEFT JOIN admin_tokens t ON t.id = s.token_id WHERE s.id_hash = ?`,
    [idHash],
  );
  return row === undefined ? undefined : { ...row, created_at: Number(row.created_at), expires_at: Number(row.expires_at), last_seen_at: Number(row.last_seen_at), revoked_at: row.revoked_at === null ? null : Number(row.revoked_at), token_revoked_at: row.token_revoked_at == null ? null : Number(row.token_revoked_at), token_expires_at: row.token_expires_at == null ? null : Number(row.token_expires_at) };
}

export async function touchSession(db: SqlExecutor, idHash: string, now: number): Promise<void> {
  await db.run('UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ? AND revoked_at IS NULL AND last_seen_at < ?', [now, idHash, now]);
}

/** Ends one session; true when it was still live (so exactly one caller audits the end). */
export async function endSession(db: SqlExecutor, idHash: string, now: number, cause: EndCause): Promise<boolean> {
  return (await db.run('UPDATE console_sessions SET revoked_at = ?, end_cause = ? WHERE id_hash = ? AND revoked_at IS NULL', [now, cause, idHash])).changes > 0;
}

/** Ends every live session of an operator token; the number ended. */
export async function endSessionsOfToken(db: SqlExecutor, tokenId: string, now: number): Promise<number> {
  return (await db.run("UPDATE console_sessions SET revoked_at = ?, end_cause = 'token_revoked' WHERE token_id = ? AND revoked_at IS NULL", [now, tokenId])).changes;
}

/** Live sessions now (for the overview): not ended, not expired, their operator token (if any) neither revoked nor expired. Idle ones count until noticed. */
export async function countLiveSessions(db: SqlExecutor, now: number): Promise<number> {
  const r = await db.get<{ n: number }>(
    'SELECT COUNT(*) AS n FROM console_sessions s LEFT JOIN admin_tokens t ON t.id = s.token_id WHERE s.revoked_at IS NULL AND s.expires_at > ? AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)',
    [now, now],
  );
  return Number(r?.n ?? 0);
}

/** Housekeeping: sessions ended or expired before `before`, and OIDC sign-ins past their expiry. */
export async function pruneConsoleRows(db: SqlExecutor, now: number, before: number): Promise<void> {
  await db.run('DELETE FROM console_sessions WHERE (revoked_at IS NOT NULL AND revoked_at < ?) OR expires_at < ?', [before, before]);
  await db.run('DELETE FROM console_oidc_logins WHERE expires_at < ?', [now]);
}

export async function insertOidcLogin(db: SqlExecutor, row: { state_hash: string; binding_hash: string; created_at: number; expires_at: number }): Promise<void> {
  await db.run('INSERT INTO console_oidc_logins (state_hash, binding_hash, created_at, expires_at) VALUES (?, ?, ?, ?)', [row.state_hash, row.binding_hash, row.created_at, row.expires_at]);
}

/** Takes (deletes) the sign-in of this state: a state works once. Undefined when unknown or already taken. */
export async function takeOidcLogin(db: SqlExecutor, stateHash: string): Promise<{ binding_hash: string; expires_at: number } | undefined> {
  const r = await db.get<{ binding_hash: string; expires_at: number }>('DELETE FROM console_oidc_logins WHERE state_hash = ? RETURNING binding_hash, expires_at', [stateHash]);
  return r === undefined ? undefined : { binding_hash: r.binding_hash, expires_at: Number(r.expires_at) };
}
