import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditActor } from '../audit/events.js';
import type { RequestMeta } from '../server/app.js';
import { fail } from '../shared/errors.js';
import { randomId, randomToken, sha256 } from '../shared/crypto.js';
import { createTrustDomains, requireServedSpiffeId } from './trust-domains.js';
import { refuseCredentialLike } from '../shared/credential-like.js';
import { describeDuration } from '../shared/duration.js';

export const JOIN_TOKEN_PREFIX = 'tsr_join_';
/** Join tokens are a bootstrap for dev and for hosts without platform attestation: short-lived by design. */
export const JOIN_TOKEN_MAX_TTL_MS = 3_600_000;
export const JOIN_TOKEN_MIN_TTL_MS = 1000;
export const JOIN_TOKEN_DEFAULT_TTL_MS = 600_000;

export interface CreatedJoinToken {
  /** The token value: returned once, never stored or listed. */
  readonly token: string;
  readonly id: string;
  readonly spiffeId: string;
  readonly expiresAt: number;
}

export interface JoinTokenInfo {
  readonly id: string;
  readonly spiffeId: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly usedAt: number | null;
  readonly state: 'active' | 'used' | 'expired';
}

export interface ConsumedJoinToken {
  readonly id: string;
  readonly spiffeId: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface JoinTokenService {
  create(input: { spiffeId: string; ttlMs?: number; labels?: Record<string, string>; actor?: AuditActor; meta?: RequestMeta }): Promise<CreatedJoinToken>;
  list(): Promise<JoinTokenInfo[]>;
  /**
   * Atomically marks the token used; throws TESSERA_JOIN_TOKEN_INVALID / TESSERA_JOIN_TOKEN_REUSED.
   * `precheck` runs on the token's SPIFFE ID after the token is found valid and BEFORE it is
   * marked used: when it throws, the token stays usable (e.g. the agent is revoked for now).
   */
  consume(token: string, meta?: RequestMeta, precheck?: (spiffeId: string) => void): Promise<ConsumedJoinToken>;
  /**
   * The SPIFFE ID of a valid, unused, unexpired token, without using it up (read-only; the
   * login rate limit per identity is charged before `consume`). Undefined otherwise.
   */
  identityOf(token: string): Promise<string | undefined>;
}

const LABEL_KEY = /^[A-Za-z0-9_.-]{1,63}$/;

export function validateLabels(labels: unknown): Record<string, string> {
  if (labels === undefined) return {};
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) throw fail('TESSERA_REQUEST_INVALID', 'labels must be an object of string values');
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > 32) throw fail('TESSERA_REQUEST_INVALID', 'at most 32 labels are allowed');
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    // Labels become token attributes and listings in clear: no credential in a key or a value.
    refuseCredentialLike(k, 'a label key');
    if (!LABEL_KEY.test(k)) throw fail('TESSERA_REQUEST_INVALID', `label key ${JSON.stringify(k)} must be 1–63 characters of letters, digits, ".", "-" or "_"`);
    if (typeof v !== 'string' || v.length > 256) throw fail('TESSERA_REQUEST_INVALID', `label "${k}" must be a string of at most 256 characters`);
    refuseCredentialLike(v, `label "${k}"`);
    out[k] = v;
  }
  return out;
}

/**
 * One-time join tokens bound to a SPIFFE ID. Only the SHA-256 of a token is stored: the token
 * carries 256 random bits, so a fast hash is enough and an index lookup by digest reveals
 * nothing useful (finding a matching digest prefix needs a SHA-256 preimage).
 */
export function createJoinTokenService(deps: {
  store: Store;
  clock: Clock;
  audit: AuditWriter;
  maxTtlMs?: number;
  /** Where `maxTtlMs` comes from, for messages: `attestors[0].max_ttl of attestor "join"`. */
  maxTtlSource?: string;
  /** Tessera's own trust domain (tessera.yaml `trust_domain`): the only one a join token may name. */
  trustDomain: string;
}): JoinTokenService {
  const { store, clock, audit } = deps;
  const domains = createTrustDomains(deps.trustDomain);
  const maxTtlMs = Math.min(deps.maxTtlMs ?? JOIN_TOKEN_MAX_TTL_MS, JOIN_TOKEN_MAX_TTL_MS);

  async function refuseReuse(id: string, spiffeId: string, meta?: RequestMeta): Promise<never> {
    await audit.append({
      kind: 'auth.join_token_reuse',
      // The holder presented a real (used) join token for this ID: attributed to it, unverified.
      actor: { id: spiffeId, verified: false },
      action: 'login',
      resource: spiffeId,
      result: 'failure',
      reason: { code: 'TESSERA_JOIN_TOKEN_REUSED', message: 'a used join token was presented again' },
      where: whereOf(meta),
      details: { join_token_hmac: audit.hmac(id) },
    });
    throw fail('TESSERA_JOIN_TOKEN_REUSED', 'this join token was already used; join tokens are one-time: ask an operator for a new one (`tessera join-token create`)');
  }

  return {
    async create(input) {
      // Join tokens mint identities of Tessera's own trust domain only (never a federated one).
      const spiffeId = requireServedSpiffeId(domains, input.spiffeId, 'spiffe_id', { ownOnly: true });
      const ttlMs = input.ttlMs ?? Math.min(JOIN_TOKEN_DEFAULT_TTL_MS, maxTtlMs);
      if (!Number.isFinite(ttlMs) || ttlMs < JOIN_TOKEN_MIN_TTL_MS || ttlMs > maxTtlMs) {
        throw fail('TESSERA_JOIN_TOKEN_TTL_INVALID', `join token TTL must be between 1s and ${describeDuration(maxTtlMs)} (${deps.maxTtlSource ?? 'the ceiling of join tokens'}), got ${Number.isFinite(ttlMs) ? describeDuration(ttlMs) : String(ttlMs)}`, { max_ttl_s: maxTtlMs / 1000 });
      }
      const labels = validateLabels(input.labels);
      const token = randomToken(JOIN_TOKEN_PREFIX);
      const id = randomId('jt_');
      const now = clock.now();
      const expiresAt = now + ttlMs;
      // The token exists only if its creation is recorded (ADR 0041).
      await audit.commit(store, (tx) => tx.run('INSERT INTO join_tokens (id, token_hash, spiffe_id, labels, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [
        id,
        sha256(token),
        spiffeId.id,
        JSON.stringify(labels),
        now,
        expiresAt,
      ]), {
        kind: 'join_token.created',
        actor: input.actor ?? { id: 'system' },
        action: 'join_token.create',
        resource: spiffeId.id,
        result: 'success',
        where: whereOf(input.meta),
        details: { join_token_hmac: audit.hmac(id), spiffe_id: spiffeId.id, expires_at: expiresAt },
      });
      return { token, id, spiffeId: spiffeId.id, expiresAt };
    },

    async list() {
      const now = clock.now();
      const rows = await store.all<{ id: string; spiffe_id: string; labels: string; created_at: number; expires_at: number; used_at: number | null }>(
        'SELECT id, spiffe_id, labels, created_at, expires_at, used_at FROM join_tokens ORDER BY created_at DESC, id LIMIT 1000',
      );
      return rows.map((r) => ({
        id: r.id,
        spiffeId: r.spiffe_id,
        labels: JSON.parse(r.labels) as Record<string, string>,
        createdAt: Number(r.created_at),
        expiresAt: Number(r.expires_at),
        usedAt: r.used_at === null ? null : Number(r.used_at),
        state: r.used_at !== null ? 'used' : Number(r.expires_at) <= now ? 'expired' : 'active',
      }));
    },

    async identityOf(token) {
      if (typeof token !== 'string' || !token.startsWith(JOIN_TOKEN_PREFIX) || token.length > 256) return undefined;
      const row = await store.get<{ spiffe_id: string; expires_at: number; used_at: number | null }>('SELECT spiffe_id, expires_at, used_at FROM join_tokens WHERE token_hash = ?', [sha256(token)]);
      return row && row.used_at === null && clock.now() < Number(row.expires_at) ? row.spiffe_id : undefined;
    },

    async consume(token, meta, precheck) {
      const invalid = () => fail('TESSERA_JOIN_TOKEN_INVALID', 'the join token is unknown or expired; ask an operator for a new one (`tessera join-token create`)');
      if (typeof token !== 'string' || !token.startsWith(JOIN_TOKEN_PREFIX) || token.length > 256) throw invalid();
      const row = await store.get<{ id: string; spiffe_id: string; labels: string; expires_at: number; used_at: number | null }>(
        'SELECT id, spiffe_id, labels, expires_at, used_at FROM join_tokens WHERE token_hash = ?',
        [sha256(token)],
      );
      if (!row) throw invalid();
      // Reuse is reported even after expiry: a replay of a used token is the event worth seeing.
      if (row.used_at !== null) return refuseReuse(row.id, row.spiffe_id, meta);
      const now = clock.now();
      if (now >= Number(row.expires_at)) throw invalid();
      precheck?.(row.spiffe_id);
      // The conditional UPDATE is the one-time guarantee: of two concurrent logins only one changes
      // a row. Burning the token is a state change of its own, recorded with it (ADR 0041): the
      // login that follows may still fail (and is audited as auth.login either way).
      const used = await audit.commit(
        store,
        async (tx) => (await tx.run('UPDATE join_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL', [now, row.id])).changes === 1,
        (ok) => (ok ? { kind: 'join_token.used', actor: { id: row.spiffe_id }, action: 'login', resource: row.spiffe_id, result: 'success', where: whereOf(meta), details: { join_token_hmac: audit.hmac(row.id), spiffe_id: row.spiffe_id } } : null),
      );
      if (!used) return refuseReuse(row.id, row.spiffe_id, meta);
      return { id: row.id, spiffeId: row.spiffe_id, labels: JSON.parse(row.labels) as Record<string, string> };
    },
  };
}

function whereOf(meta?: RequestMeta): { source?: string; replica?: string; requestId?: string } | undefined {
  return meta ? { source: meta.source, replica: meta.replica, requestId: meta.requestId } : undefined;
}
