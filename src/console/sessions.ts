/**
 * Console sessions (docs/console.md "Sessions and CSRF", ADR 0236). A session is a 256-bit
 * random value held by the browser in an HttpOnly cookie; the store keeps only its SHA-256, and
 * the SHA-256 of its CSRF token. The CSRF token is derived from the session value
 * (HMAC-SHA256 keyed with it), so every tab of a session gets the same one from
 * `GET /v1/console/session`, and nothing in the store can be turned into either.
 *
 * A session ends on sign-out, at `expires_at` (`console.session_ttl` after sign-in), after
 * `console.idle_timeout` without a request, and when the operator token it came from is
 * revoked or expires (a session never outlives its token): that is read from `admin_tokens` in
 * the same query as the session on every request (no cache), so a revoked token's sessions are
 * refused at once, on every replica.
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditWhere } from '../audit/events.js';
import { constantTimeEqual, hmacSha256, sha256Hex } from '../shared/crypto.js';
import { TesseraError } from '../shared/errors.js';
import { endSession, findSession, insertSession, touchSession, type EndCause, type OperatorRole, type SessionRow, type SessionVia } from './store.js';

/** The operator a session acts for. `id`: the operator token id, or `oidc:<issuer host>:<sub>`. */
export interface ConsoleOperator {
  readonly id: string;
  readonly name: string;
  readonly role: OperatorRole;
}

/** The body of `POST` / `GET /v1/console/session` (docs/console.md). */
export interface SessionView {
  readonly operator: ConsoleOperator;
  readonly csrf_token: string;
  /** RFC 3339. */
  readonly expires_at: string;
  readonly idle_timeout_s: number;
}

/** A live session, resolved from its cookie value. */
export interface LiveSession {
  /** Not secret: `cs_` + the first 32 hex digits of the id digest (audit events, `current`). */
  readonly sessionId: string;
  readonly operator: ConsoleOperator;
  readonly via: SessionVia;
  readonly csrfHash: string;
  readonly view: SessionView;
}

export interface ConsoleSessionService {
  /** Starts a session for an operator already authenticated; audited `console.session_started`. Returns the cookie value (once) and the view. */
  start(operator: ConsoleOperator, via: SessionVia, tokenId: string | null, where: AuditWhere): Promise<{ value: string; maxAgeS: number; session: LiveSession }>;
  /**
   * The live session of a cookie value. Throws 401 TESSERA_CONSOLE_SESSION_EXPIRED when it is
   * unknown or has ended (an end noticed here — expiry, idle, token revoked — is recorded and
   * audited `console.session_ended` once). `details.unknown` is true when no such session ever existed here.
   * `touch: false`: the read is not activity (last_seen_at is left as it is; a long request's re-check).
   */
  resolve(value: string, where: AuditWhere, options?: { touch?: boolean }): Promise<LiveSession>;
  /** Ends the session (sign-out); audited `console.session_ended` with cause `signed_out`. */
  end(value: string, where: AuditWhere): Promise<void>;
  /** Ends every live session of an operator token (its revocation); returns how many. */
  endForToken(tokenId: string, actor: string): Promise<number>;
}

export interface SessionSettings {
  /** `console.session_ttl`, ms. */
  readonly ttlMs: number;
  /** `console.idle_timeout`, ms. */
  readonly idleMs: number;
}

const CSRF_LABEL = 'tessera console csrf v1';

/** The CSRF token of a session value: base64url(HMAC-SHA256(key = value, label)). */
export function csrfTokenOf(value: string): string {
  return hmacSha256(Buffer.from(value, 'utf8'), CSRF_LABEL).toString('base64url');
}

/** True when `presented` is the session's CSRF token (compared as SHA-256 digests, in constant time). */
export function csrfMatches(session: Pick<LiveSession, 'csrfHash'>, presented: string): boolean {
  return constantTimeEqual(sha256Hex(presented), session.csrfHash);
}

const sessionIdOf = (idHash: string): string => `cs_${idHash.slice(0, 32)}`;

export function createConsoleSessionService(deps: { store: Store; clock: Clock; audit: Pick<AuditWriter, 'commit'>; settings: SessionSettings }): ConsoleSessionService {
  const { store, clock, audit, settings } = deps;
  const idleS = Math.floor(settings.idleMs / 1000);
  // last_seen_at is written at most this often per session (idle accuracy vs a write per request).
  const touchEveryMs = Math.min(60_000, Math.floor(settings.idleMs / 4));

  const liveOf = (row: SessionRow, value: string): LiveSession => {
    const operator = { id: row.operator_id, name: row.name, role: row.role };
    return {
      sessionId: sessionIdOf(row.id_hash), operator, via: row.via, csrfHash: row.csrf_hash,
      view: { operator, csrf_token: csrfTokenOf(value), expires_at: new Date(row.expires_at).toISOString(), idle_timeout_s: idleS },
    };
  };

  const ended = (sessionId: string, operatorId: string, cause: EndCause, where: AuditWhere) => ({
    kind: 'console.session_ended' as const, actor: { id: `admin:${operatorId}` }, action: 'console.session.end', resource: `console-session:${sessionId}`, result: 'success' as const,
    where, details: { session: sessionId, cause },
  });

  async function finish(row: SessionRow, cause: EndCause, where: AuditWhere): Promise<void> {
    const now = clock.now();
    const sessionId = sessionIdOf(row.id_hash);
    await audit.commit(store, (tx) => endSession(tx, row.id_hash, now, cause), (done) => (done ? ended(sessionId, row.operator_id, cause, where) : null));
  }

  const expired = (why: string, unknown = false) => new TesseraError('TESSERA_CONSOLE_SESSION_EXPIRED', `the console session ${why}; sign in again`, unknown ? { unknown: true } : { cause: why });

  return {
    async start(operator, via, tokenId, where) {
      const value = randomBytes(32).toString('base64url');
      const idHash = sha256Hex(value);
      const now = clock.now();
      // A session never outlives the operator token it came from.
      const token = tokenId === null ? undefined : await store.get<{ expires_at: number | null }>('SELECT expires_at FROM admin_tokens WHERE id = ?', [tokenId]);
      const tokenExpiry = token?.expires_at == null ? Infinity : Number(token.expires_at);
      const expiresAt = Math.min(now + settings.ttlMs, tokenExpiry);
      const row = { id_hash: idHash, operator_id: operator.id, name: operator.name, role: operator.role, via, csrf_hash: sha256Hex(csrfTokenOf(value)), token_id: tokenId, created_at: now, expires_at: expiresAt, last_seen_at: now };
      const sessionId = sessionIdOf(idHash);
      // A session exists only with its audit event (ADR 0041).
      await audit.commit(store, (tx) => insertSession(tx, row), {
        kind: 'console.session_started', actor: { id: `admin:${operator.id}` }, action: 'console.session.start', resource: `console-session:${sessionId}`, result: 'success',
        where, details: { session: sessionId, via, role: operator.role, name: operator.name, expires_at: row.expires_at },
      });
      return { value, maxAgeS: Math.max(1, Math.floor((expiresAt - now) / 1000)), session: liveOf({ ...row, revoked_at: null, end_cause: null }, value) };
    },

    async resolve(value, where, options = {}) {
      const row = await findSession(store, sha256Hex(value));
      if (!row) throw expired('is not known (it ended long ago, or the cookie was not issued by this Tessera)', true);
      if (row.revoked_at !== null) throw expired(row.end_cause === 'token_revoked' ? 'ended because its operator token was revoked' : row.end_cause === 'token_expired' ? 'ended because its operator token expired' : row.end_cause === 'signed_out' ? 'was signed out' : 'has ended');
      const now = clock.now();
      if (row.token_id !== null && row.token_revoked_at !== null && row.token_revoked_at !== undefined) {
        await finish(row, 'token_revoked', where);
        throw expired('ended because its operator token was revoked');
      }
      if (row.token_expires_at != null && now >= row.token_expires_at) {
        await finish(row, 'token_expired', where);
        throw expired('ended because its operator token expired');
      }
      if (now >= row.expires_at) {
        await finish(row, 'expired', where);
        throw expired('expired (console.session_ttl)');
      }
      if (now - row.last_seen_at >= settings.idleMs) {
        await finish(row, 'idle', where);
        throw expired('was idle too long (console.idle_timeout)');
      }
      if (options.touch !== false && now - row.last_seen_at >= touchEveryMs) await touchSession(store, row.id_hash, now);
      return liveOf(row, value);
    },

    async end(value, where) {
      const row = await findSession(store, sha256Hex(value));
      if (row && row.revoked_at === null) await finish(row, 'signed_out', where);
    },

    async endForToken(tokenId, actor) {
      const now = clock.now();
      const rows = await store.all<{ id_hash: string; operator_id: string }>('SELECT id_hash, operator_id FROM console_sessions WHERE token_id = ? AND revoked_at IS NULL', [tokenId]);
      let n = 0;
      for (const r of rows) {
        const sessionId = sessionIdOf(r.id_hash);
        const done = await audit.commit(store, (tx) => endSession(tx, r.id_hash, now, 'token_revoked'), (d) => (d ? { ...ended(sessionId, r.operator_id, 'token_revoked', {}), actor: { id: actor } } : null));
        if (done) n += 1;
      }
      return n;
    },
  };
}


