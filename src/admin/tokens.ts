import type { Store, SqlExecutor } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditEvent } from '../audit/events.js';
import { TesseraError } from '../shared/errors.js';
import { refuseCredentialLike } from '../shared/credential-like.js';
import { constantTimeEqual, randomId, randomToken, sha256 } from '../shared/crypto.js';
import type { AdminAuthenticator, AdminPrincipal } from '../server/app.js';
import type { OperatorRole } from './roles.js';

export const ADMIN_TOKEN_PREFIX = 'tsr_admin_';
/** An operator token's name: 1–64 characters of `[A-Za-z0-9._@-]`, unique among the tokens not revoked. */
export const OPERATOR_TOKEN_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
/** `created_by` of the tokens `tessera dev` creates (each start revokes the previous ones). */
export const DEV_CREATOR = 'system:dev';
const CACHE_MS = 5_000;

/** An operator token as stored (never its value; only a SHA-256 digest of it is kept). Times in epoch ms. */
export interface OperatorToken {
  readonly id: string;
  readonly name: string;
  readonly role: OperatorRole;
  readonly createdAt: number;
  /** Null: never expires (only the `init` token and `tessera dev --root-token`). */
  readonly expiresAt: number | null;
  /** The operator id that created it, `system` (init) or `system:dev`. */
  readonly createdBy: string;
  readonly revokedAt: number | null;
}

export interface CreateOperatorToken {
  readonly name: string;
  readonly role?: OperatorRole;
  /** Absolute expiry (epoch ms), or null for none. */
  readonly expiresAt: number | null;
  /** The value to store (`tessera dev --root-token`); a fresh 256-bit `tsr_admin_…` when absent. */
  readonly value?: string;
  readonly id?: string;
  /** The audit actor (`admin:<operator id>`, `system`); `system` when absent. */
  readonly actor?: string;
  /** `created_by`: the creating operator's id, `system` or `system:dev`; the actor when absent. */
  readonly createdBy?: string;
}

export interface AdminTokenService extends AdminAuthenticator {
  /**
   * Creates a token; the value is returned once and only its SHA-256 is stored. Audited as
   * `admin_token.created`. Throws TESSERA_REQUEST_INVALID (name or chosen value malformed),
   * TESSERA_ADMIN_TOKEN_NAME_TAKEN (409).
   */
  create(options: CreateOperatorToken): Promise<{ id: string; token: string; name: string; role: OperatorRole; expiresAt: number | null }>;
  /**
   * Revokes a token (audited as `admin_token.revoked`, actor = `options.actor`); a token already
   * revoked stays so (`revoked: false`, no event). Throws TESSERA_ADMIN_TOKEN_NOT_FOUND (404), and
   * TESSERA_ADMIN_LAST_TOKEN (409) when it is the last active admin token.
   */
  revoke(id: string, options?: { actor?: string }): Promise<{ revoked: boolean }>;
  /** Every token, oldest first, revoked ones included (metadata only). */
  list(): Promise<OperatorToken[]>;
  /** Tokens not revoked (expired ones included: the data directory is initialised). */
  count(): Promise<number>;
  /**
   * True while the token exists, is not revoked and has not expired: for console sessions made
   * with it (src/console). Revocations on this replica count at once, on others within 5 s.
   */
  isActive(tokenId: string): Promise<boolean>;
  /** Calls `listener(tokenId)` after each revocation made through this service; returns the unsubscribe. */
  onRevoked(listener: (tokenId: string) => void): () => void;
  /**
   * `tessera dev` at start: revokes every token an earlier `tessera dev` created (created_by
   * `system:dev`) and creates one `dev` admin token, in one transaction. With `value` (the
   * `--root-token`, no expiry) an active token of that value is kept instead of created again.
   */
  replaceDevToken(options: { value?: string; expiresAt: number | null }): Promise<{ id: string; token: string; created: boolean }>;
}

interface CachedToken {
  readonly id: string;
  readonly hash: Buffer;
  readonly name: string;
  readonly role: OperatorRole;
  readonly expiresAt: number | null;
}

type TokenRow = {
  id: string;
  name: string;
  role: string;
  created_at: number;
  expires_at: number | null;
  created_by: string;
  revoked_at: number | null;
};

const COLUMNS = 'id, name, role, created_at, expires_at, created_by, revoked_at';

/**
 * Operator tokens (docs/operators.md). Only SHA-256 digests are stored (the tokens are 256-bit
 * random, so a fast hash is enough: there is nothing to brute-force). Authentication compares the
 * digest of the presented token against every unrevoked digest in constant time, so neither
 * timing nor an index lookup reveals a partial match; the expiry is checked against the clock on
 * every call, cached or not.
 */
export function createAdminTokenService(deps: { store: Store; clock: Clock; audit: Pick<AuditWriter, 'commit'> }): AdminTokenService {
  const { store, clock, audit } = deps;
  let cache: CachedToken[] | undefined;
  let loadedAt = 0;
  const listeners = new Set<(tokenId: string) => void>();

  // Digests are re-read at most every CACHE_MS, so a token created or revoked on another replica
  // takes effect here within that time, without a store read on every operator request.
  async function load(): Promise<CachedToken[]> {
    if (!cache || clock.now() - loadedAt > CACHE_MS) {
      const rows = await store.all<{ id: string; token_hash: Buffer; name: string; role: string; expires_at: number | null }>(
        'SELECT id, token_hash, name, role, expires_at FROM admin_tokens WHERE revoked_at IS NULL',
      );
      cache = rows.map((r) => ({ id: r.id, hash: Buffer.from(r.token_hash), name: r.name, role: asRole(r.role), expiresAt: r.expires_at === null ? null : Number(r.expires_at) }));
      loadedAt = clock.now();
    }
    return cache;
  }

  const expired = (t: { expiresAt: number | null }): boolean => t.expiresAt !== null && clock.now() >= t.expiresAt;

  function revoked(ids: readonly string[]): void {
    cache = undefined;
    for (const id of ids) for (const l of listeners) l(id);
  }

  async function insert(tx: SqlExecutor, t: { id: string; token: string; name: string; role: OperatorRole; expiresAt: number | null; createdBy: string }): Promise<void> {
    const taken = await tx.get('SELECT id FROM admin_tokens WHERE name = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)', [t.name, clock.now()]);
    if (taken) throw new TesseraError('TESSERA_ADMIN_TOKEN_NAME_TAKEN', `an operator token named "${t.name}" exists already (${String(taken.id)}); choose another name, or revoke that token first`);
    // An expired token's name is free again: the token ended at its expiry, and is marked so.
    await tx.run('UPDATE admin_tokens SET revoked_at = expires_at WHERE name = ? AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?', [t.name, clock.now()]);
    await tx.run('INSERT INTO admin_tokens (id, token_hash, created_at, name, role, expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      t.id, sha256(t.token), clock.now(), t.name, t.role, t.expiresAt, t.createdBy,
    ]);
  }

  function prepare(options: CreateOperatorToken): { id: string; token: string; name: string; role: OperatorRole; expiresAt: number | null; createdBy: string; actor: string } {
    const token = options.value ?? randomToken(ADMIN_TOKEN_PREFIX);
    if (token.length < 16 || token.length > 512 || /\s/.test(token)) {
      throw new TesseraError('TESSERA_REQUEST_INVALID', 'an admin token must be 16–512 characters without whitespace');
    }
    if (!OPERATOR_TOKEN_NAME.test(options.name)) {
      throw new TesseraError('TESSERA_REQUEST_INVALID', 'name: an operator token name is 1–64 characters of letters, digits and . _ @ -');
    }
    refuseCredentialLike(options.name, 'name');
    return { id: options.id ?? randomId('adm_'), token, name: options.name, role: options.role ?? 'admin', expiresAt: options.expiresAt, actor: options.actor ?? 'system', createdBy: options.createdBy ?? options.actor ?? 'system' };
  }

  const createdEvent = (t: { id: string; name: string; role: OperatorRole; expiresAt: number | null; actor: string }): AuditEvent => ({
    kind: 'admin_token.created', actor: { id: t.actor }, action: 'admin_token.create', resource: `admin-token:${t.id}`, result: 'success',
    details: { token_id: t.id, name: t.name, role: t.role, expires_at: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString() },
  });
  const revokedEvent = (id: string, actor: string): AuditEvent => ({
    kind: 'admin_token.revoked', actor: { id: actor }, action: 'admin_token.revoke', resource: `admin-token:${id}`, result: 'success', details: { token_id: id },
  });

  return {
    async create(options) {
      const t = prepare(options);
      // An operator credential exists only with its audit event (ADR 0041); the id is not secret.
      await audit.commit(store, (tx) => insert(tx, t), createdEvent(t));
      cache = undefined;
      return { id: t.id, token: t.token, name: t.name, role: t.role, expiresAt: t.expiresAt };
    },

    async revoke(id, options = {}) {
      const actor = options.actor ?? 'system';
      const done = await audit.commit(
        store,
        async (tx) => {
          const row = await tx.get<TokenRow>(`SELECT ${COLUMNS} FROM admin_tokens WHERE id = ?`, [id]);
          if (!row) throw new TesseraError('TESSERA_ADMIN_TOKEN_NOT_FOUND', `no operator token has the id ${JSON.stringify(id)}; \`tessera operator-token list\` shows them`);
          if (row.revoked_at !== null) return false;
          const now = clock.now();
          const live = (r: { expires_at: number | null }) => r.expires_at === null || Number(r.expires_at) > now;
          if (row.role === 'admin' && live(row)) {
            // Checked in the same (serializable) transaction as the revocation: two operators
            // revoking the last two admin tokens at once cannot both succeed.
            const others = await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM admin_tokens WHERE role = 'admin' AND revoked_at IS NULL AND id <> ? AND (expires_at IS NULL OR expires_at > ?)", [id, now]);
            if (Number(others?.n ?? 0) === 0) {
              throw new TesseraError('TESSERA_ADMIN_LAST_TOKEN', `${id} is the last active admin operator token; revoking it would lock every operator out. Create another admin token first (\`tessera operator-token create --name <name>\`)`);
            }
          }
          await tx.run('UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id]);
          return true;
        },
        (r) => (r ? revokedEvent(id, actor) : null),
      );
      if (done) revoked([id]);
      return { revoked: done };
    },

    async list() {
      const rows = await store.all<TokenRow>(`SELECT ${COLUMNS} FROM admin_tokens ORDER BY created_at, id`);
      return rows.map(toToken);
    },

    async count() {
      return (await load()).length;
    },

    async isActive(tokenId) {
      const t = (await load()).find((e) => e.id === tokenId);
      return t !== undefined && !expired(t);
    },

    onRevoked(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },

    async replaceDevToken(options) {
      if (options.value !== undefined) {
        const known = await this.authenticate(options.value).then((p) => p, () => undefined);
        if (known) {
          const ids = await audit.commit(store, (tx) => revokeDevTokens(tx, known.tokenId), (r) => r.map((i) => revokedEvent(i, DEV_CREATOR)));
          revoked(ids);
          return { id: known.tokenId, token: options.value, created: false };
        }
        // A value once used and since revoked (or expired) stays dead: it is never brought back.
        if (await store.get('SELECT id FROM admin_tokens WHERE token_hash = ?', [sha256(options.value)])) {
          throw new TesseraError('TESSERA_REQUEST_INVALID', 'this --root-token was revoked (or has expired) on this data directory and cannot be used again; choose another value, or delete the data directory to start over');
        }
      }
      const t = prepare({ name: 'dev', role: 'admin', expiresAt: options.expiresAt, actor: DEV_CREATOR, ...(options.value !== undefined ? { value: options.value } : {}) });
      const ids = await audit.commit(
        store,
        async (tx) => {
          const r = await revokeDevTokens(tx);
          await insert(tx, t);
          return r;
        },
        (r) => [...r.map((i) => revokedEvent(i, DEV_CREATOR)), createdEvent(t)],
      );
      revoked(ids);
      return { id: t.id, token: t.token, created: true };
    },

    async authenticate(token): Promise<AdminPrincipal> {
      const digest = sha256(token);
      let match: CachedToken | undefined;
      for (const entry of await load()) {
        // No early exit: every entry is compared.
        if (constantTimeEqual(digest, entry.hash) && match === undefined) match = entry;
      }
      if (match === undefined) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'the admin token is not valid; use the token printed by `tessera init` or `tessera dev`, or one from `tessera operator-token create`');
      if (expired(match)) {
        throw new TesseraError('TESSERA_ADMIN_TOKEN_EXPIRED', `the operator token "${match.name}" expired at ${new Date(match.expiresAt!).toISOString()}; an admin can create a new one with \`tessera operator-token create --name <name>\``);
      }
      return { kind: 'admin', tokenId: match.id, name: match.name, role: match.role, via: 'token' };
    },
  };

  /** Revokes the unrevoked `tessera dev` tokens but `keep`; returns their ids. */
  async function revokeDevTokens(tx: SqlExecutor, keep?: string): Promise<string[]> {
    const rows = await tx.all<{ id: string }>('SELECT id FROM admin_tokens WHERE created_by = ? AND revoked_at IS NULL AND id <> ?', [DEV_CREATOR, keep ?? '']);
    for (const r of rows) await tx.run('UPDATE admin_tokens SET revoked_at = ? WHERE id = ?', [clock.now(), r.id]);
    return rows.map((r) => r.id);
  }
}

function asRole(role: string): OperatorRole {
  // Fail closed: a role this version does not know gets the least power.
  return role === 'admin' ? 'admin' : 'auditor';
}

function toToken(r: TokenRow): OperatorToken {
  return {
    id: r.id, name: r.name, role: asRole(r.role), createdAt: Number(r.created_at),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at), createdBy: r.created_by, revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}
