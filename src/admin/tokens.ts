import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import { TesseraError } from '../shared/errors.js';
import { constantTimeEqual, randomId, randomToken, sha256 } from '../shared/crypto.js';
import type { AdminAuthenticator, AdminPrincipal } from '../server/app.js';

export const ADMIN_TOKEN_PREFIX = 'tsr_admin_';
const CACHE_MS = 5_000;

export interface AdminTokenService extends AdminAuthenticator {
  /** Creates a token; the value is returned once and only its SHA-256 is stored. Audited as `admin_token.created`. */
  create(options?: { value?: string; id?: string; actor?: string }): Promise<{ id: string; token: string }>;
  /** Audited as `admin_token.revoked` when a token was revoked. */
  revoke(id: string, options?: { actor?: string }): Promise<void>;
  count(): Promise<number>;
}

/**
 * Operator tokens. Only SHA-256 digests are stored (the tokens are 256-bit random, so a fast
 * hash is enough: there is nothing to brute-force). Authentication compares the digest of the
 * presented token against every active digest in constant time, so neither timing nor an
 * index lookup reveals a partial match.
 */
export function createAdminTokenService(deps: { store: Store; clock: Clock; audit: Pick<AuditWriter, 'commit'> }): AdminTokenService {
  const { store, clock, audit } = deps;
  let cache: { id: string; hash: Buffer }[] | undefined;
  let loadedAt = 0;

  // Digests are re-read at most every CACHE_MS, so a token created or revoked on another replica
  // takes effect here within that time, without a store read on every operator request.
  async function load(): Promise<{ id: string; hash: Buffer }[]> {
    if (!cache || clock.now() - loadedAt > CACHE_MS) {
      const rows = await store.all<{ id: string; token_hash: Buffer }>('SELECT id, token_hash FROM admin_tokens WHERE revoked_at IS NULL');
      cache = rows.map((r) => ({ id: r.id, hash: Buffer.from(r.token_hash) }));
      loadedAt = clock.now();
    }
    return cache;
  }

  return {
    async create(options = {}) {
      const token = options.value ?? randomToken(ADMIN_TOKEN_PREFIX);
      if (token.length < 16 || token.length > 512 || /\s/.test(token)) {
        throw new TesseraError('TESSERA_REQUEST_INVALID', 'an admin token must be 16–512 characters without whitespace');
      }
      const id = options.id ?? randomId('adm_');
      // An operator credential exists only with its audit event (ADR 0041); the id is not secret.
      await audit.commit(store, (tx) => tx.run('INSERT INTO admin_tokens (id, token_hash, created_at) VALUES (?, ?, ?)', [id, sha256(token), clock.now()]), {
        kind: 'admin_token.created', actor: { id: options.actor ?? 'system' }, action: 'admin_token.create', resource: `admin-token:${id}`, result: 'success', details: { token_id: id },
      });
      cache = undefined;
      return { id, token };
    },
    async revoke(id, options = {}) {
      await audit.commit(
        store,
        async (tx) => (await tx.run('UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [clock.now(), id])).changes > 0,
        (revoked) => (revoked ? { kind: 'admin_token.revoked', actor: { id: options.actor ?? 'system' }, action: 'admin_token.revoke', resource: `admin-token:${id}`, result: 'success', details: { token_id: id } } : null),
      );
      cache = undefined;
    },
    async count() {
      return (await load()).length;
    },
    async authenticate(token): Promise<AdminPrincipal> {
      const digest = sha256(token);
      let match: string | undefined;
      for (const entry of await load()) {
        // No early exit: every entry is compared.
        if (constantTimeEqual(digest, entry.hash) && match === undefined) match = entry.id;
      }
      if (match === undefined) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'the admin token is not valid; use the token printed by `tessera init` or `tessera dev`');
      return { kind: 'admin', tokenId: match };
    },
  };
}
