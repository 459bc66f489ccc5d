/**
 * The authorization server's rows (migration 130): logins in progress at the OpenID Provider,
 * authorization codes and refresh tokens. Codes and refresh tokens are stored only as HMACs
 * (AuditWriter.hmac, keyed), never in clear; each is consumed with one conditional UPDATE, so two
 * concurrent uses cannot both succeed (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
 */
import type { SqlExecutor } from '../../store/port.js';

export interface PendingLogin {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly clientState: string | null;
  readonly codeChallenge: string;
  readonly scope: string;
  readonly resource: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface CodeRow {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly codeChallenge: string;
  readonly scope: string;
  readonly resource: string;
  readonly userId: string;
  /** The `usr` claim (JSON). */
  readonly usr: string;
  readonly userExpiresAt: number;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly usedAt: number | null;
  readonly family: string | null;
  readonly txn: string | null;
}

export interface RefreshRow {
  readonly family: string;
  readonly clientId: string;
  readonly scope: string;
  readonly resource: string;
  readonly userId: string;
  readonly usr: string;
  readonly jkt: string | null;
  /** `active`, `rotated` (replaced by a newer one), `revoked`. */
  readonly state: 'active' | 'rotated' | 'revoked';
  readonly txn: string | null;
  readonly createdAt: number;
  readonly familyExpiresAt: number;
  readonly idleExpiresAt: number;
}

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export async function insertLogin(db: SqlExecutor, stateHmac: string, l: PendingLogin): Promise<void> {
  await db.run('INSERT INTO oauth_logins (state_hmac, client_id, redirect_uri, client_state, code_challenge, scope, resource, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    stateHmac, l.clientId, l.redirectUri, l.clientState, l.codeChallenge, l.scope, l.resource, l.createdAt, l.expiresAt,
  ]);
}

/** Takes (deletes) the login of this state: a state works once. Undefined when unknown or already taken. */
export async function takeLogin(db: SqlExecutor, stateHmac: string): Promise<PendingLogin | undefined> {
  const r = await db.get('DELETE FROM oauth_logins WHERE state_hmac = ? RETURNING client_id, redirect_uri, client_state, code_challenge, scope, resource, created_at, expires_at', [stateHmac]);
  if (!r) return undefined;
  return {
    clientId: String(r.client_id), redirectUri: String(r.redirect_uri), clientState: r.client_state === null ? null : String(r.client_state), codeChallenge: String(r.code_challenge),
    scope: String(r.scope), resource: String(r.resource), createdAt: num(r.created_at), expiresAt: num(r.expires_at),
  };
}

export async function insertCode(db: SqlExecutor, codeHmac: string, c: Omit<CodeRow, 'usedAt' | 'family' | 'txn'>): Promise<void> {
  await db.run('INSERT INTO oauth_codes (code_hmac, client_id, redirect_uri, code_challenge, scope, resource, user_id, usr, user_expires_at, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    codeHmac, c.clientId, c.redirectUri, c.codeChallenge, c.scope, c.resource, c.userId, c.usr, c.userExpiresAt, c.createdAt, c.expiresAt,
  ]);
}

export async function getCode(db: SqlExecutor, codeHmac: string): Promise<CodeRow | undefined> {
  const r = await db.get('SELECT client_id, redirect_uri, code_challenge, scope, resource, user_id, usr, user_expires_at, created_at, expires_at, used_at, family, txn FROM oauth_codes WHERE code_hmac = ?', [codeHmac]);
  if (!r) return undefined;
  return {
    clientId: String(r.client_id), redirectUri: String(r.redirect_uri), codeChallenge: String(r.code_challenge), scope: String(r.scope), resource: String(r.resource),
    userId: String(r.user_id), usr: String(r.usr), userExpiresAt: num(r.user_expires_at), createdAt: num(r.created_at), expiresAt: num(r.expires_at),
    usedAt: numOrNull(r.used_at), family: r.family === null ? null : String(r.family), txn: r.txn === null ? null : String(r.txn),
  };
}

/** Marks the code used; false when it already was (a replay, or a concurrent use). */
export async function useCode(db: SqlExecutor, codeHmac: string, now: number): Promise<boolean> {
  const r = await db.run('UPDATE oauth_codes SET used_at = ? WHERE code_hmac = ? AND used_at IS NULL', [now, codeHmac]);
  return r.changes === 1;
}

/** Records what a code yielded, so a replay can revoke it. */
export async function recordCodeYield(db: SqlExecutor, codeHmac: string, family: string | null, txn: string): Promise<void> {
  await db.run('UPDATE oauth_codes SET family = ?, txn = ? WHERE code_hmac = ?', [family, txn, codeHmac]);
}

export async function insertRefresh(db: SqlExecutor, tokenHmac: string, r: RefreshRow): Promise<void> {
  await db.run('INSERT INTO oauth_refresh_tokens (token_hmac, family, client_id, scope, resource, user_id, usr, jkt, state, txn, created_at, family_expires_at, idle_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    tokenHmac, r.family, r.clientId, r.scope, r.resource, r.userId, r.usr, r.jkt, r.state, r.txn, r.createdAt, r.familyExpiresAt, r.idleExpiresAt,
  ]);
}

export async function getRefresh(db: SqlExecutor, tokenHmac: string): Promise<RefreshRow | undefined> {
  const r = await db.get('SELECT family, client_id, scope, resource, user_id, usr, jkt, state, txn, created_at, family_expires_at, idle_expires_at FROM oauth_refresh_tokens WHERE token_hmac = ?', [tokenHmac]);
  if (!r) return undefined;
  return {
    family: String(r.family), clientId: String(r.client_id), scope: String(r.scope), resource: String(r.resource), userId: String(r.user_id), usr: String(r.usr),
    jkt: r.jkt === null ? null : String(r.jkt), state: String(r.state) as RefreshRow['state'], txn: r.txn === null ? null : String(r.txn),
    createdAt: num(r.created_at), familyExpiresAt: num(r.family_expires_at), idleExpiresAt: num(r.idle_expires_at),
  };
}

/** Rotates: active → rotated, once. False when it was not active any more (a replay, or a concurrent refresh). */
export async function rotateRefresh(db: SqlExecutor, tokenHmac: string, now: number): Promise<boolean> {
  const r = await db.run("UPDATE oauth_refresh_tokens SET state = 'rotated', used_at = ? WHERE token_hmac = ? AND state = 'active'", [now, tokenHmac]);
  return r.changes === 1;
}

/**
 * Revokes every token of a family; returns the task ids its tokens opened since `since` (epoch
 * ms: older access tokens have expired, so only these need revoking too).
 */
export async function revokeFamily(db: SqlExecutor, family: string, since: number): Promise<string[]> {
  await db.run("UPDATE oauth_refresh_tokens SET state = 'revoked' WHERE family = ? AND state <> 'revoked'", [family]);
  const rows = await db.all('SELECT txn FROM oauth_refresh_tokens WHERE family = ? AND txn IS NOT NULL AND created_at >= ?', [family, since]);
  return rows.map((r) => String(r.txn));
}

/** Drops logins and codes past their expiry and refresh tokens past their family's (housekeeping). */
export async function pruneExpired(db: SqlExecutor, now: number): Promise<void> {
  await db.run('DELETE FROM oauth_logins WHERE expires_at < ?', [now]);
  // Codes are kept a while past expiry, so a late replay is still recognised as one.
  await db.run('DELETE FROM oauth_codes WHERE expires_at < ?', [now - 3_600_000]);
  await db.run('DELETE FROM oauth_refresh_tokens WHERE family_expires_at < ?', [now]);
}
