import { z } from 'zod';
import type { Attestation } from '../identity/types.js';
import { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT } from '../identity/types.js';
import type { RevocationChecker } from '../shared/revocation.js';
import type { AuditWriter } from '../audit/port.js';
import type { RequestMeta } from '../server/app.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import type { TokenService } from './service.js';
import { sourceKey, type TokenBuckets } from '../shared/rate-limit.js';
import type { LimitAuditor, LimitName } from '../shared/limit-audit.js';

export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';

/** RFC 8693 §2.2.1 successful response. */
export interface TokenExchangeResponse {
  readonly access_token: string;
  readonly issued_token_type: typeof TOKEN_TYPE_JWT;
  readonly token_type: 'Bearer';
  readonly expires_in: number;
}

const many = z.union([z.string().min(1).max(2048), z.array(z.string().min(1).max(2048)).min(1).max(8)]).optional();

// RFC 8693 §2.1 request parameters. Unknown parameters are ignored (RFC 6749 §3.2).
const requestSchema = z.object({
  grant_type: z.string().min(1, 'grant_type is required'),
  subject_token: z.string().min(1).max(16_384),
  subject_token_type: z.string().min(1).max(256),
  audience: many,
  resource: many,
  requested_token_type: z.string().max(256).optional(),
  scope: z.string().max(4096).optional(),
  actor_token: z.string().max(16_384).optional(),
  actor_token_type: z.string().max(256).optional(),
});

export interface TokenExchange {
  /**
   * The per-source login limit (`tokens.login_rate_limit.per_source`): call before the body is
   * parsed (a route `onRequest` hook). Throws TESSERA_LOGIN_RATE_LIMITED (429) with
   * `details.retry_after_s`.
   */
  admitSource(meta: RequestMeta): void;
  exchange(params: unknown, meta: RequestMeta): Promise<TokenExchangeResponse>;
}

export interface TokenExchangeDeps {
  readonly attestation: Attestation;
  readonly tokens: TokenService;
  readonly revocations: RevocationChecker;
  readonly audit: AuditWriter;
  /** Audience of a token requested without `audience`/`resource`: Tessera's own API. */
  readonly defaultAudience: string;
  /** Every audience Tessera serves (its API, the MCP gateway, the proxy). RFC 8707 §2. */
  readonly allowedAudiences: readonly string[];
  /**
   * Logins per second (`tokens.login_rate_limit`): per source address before any work, per
   * verified identity before a token is issued. Absent: no limit (unit tests of the exchange).
   */
  readonly loginLimits?: { readonly perIdentity: TokenBuckets; readonly perSource: TokenBuckets; readonly audit?: LimitAuditor };
  /**
   * The SPIFFE ID a join token is bound to, when it is valid and unused (read-only): lets the
   * per-identity limit refuse BEFORE the one-time token is consumed, so a refused login can be
   * retried with the same token.
   */
  readonly joinTokenIdentity?: (token: string) => Promise<string | undefined>;
}

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function createTokenExchange(deps: TokenExchangeDeps): TokenExchange {
  const { attestation, tokens, revocations, audit } = deps;

  /** Takes a login from a bucket, or throws TESSERA_LOGIN_RATE_LIMITED (audited without storms). */
  function charge(limit: LimitName, buckets: TokenBuckets | undefined, key: string, actor: string, meta: RequestMeta): void {
    if (!buckets) return;
    const r = buckets.take(key);
    if (r.ok) return;
    const retry = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
    deps.loginLimits?.audit?.refused({ limit, key, actor: { id: actor }, where: { source: meta.source, replica: meta.replica, requestId: meta.requestId }, retryAfterS: retry });
    const what = limit === 'login.per_source' ? 'from this address' : 'for this identity';
    throw new TesseraError('TESSERA_LOGIN_RATE_LIMITED', `too many logins ${what} (tokens.login_rate_limit); retry in ${retry} s, and reuse a token until it nears expiry`, { limit, retry_after_s: retry });
  }

  return {
    admitSource(meta) {
      // A Map lookup, before the body is read, any store access or any signature check.
      charge('login.per_source', deps.loginLimits?.perSource, sourceKey(meta.source), 'unauthenticated', meta);
    },

    async exchange(params, meta) {
      const raw = (params ?? {}) as Record<string, unknown>;
      // RFC 6749 §5.2: an unsupported grant type is its own error, checked first.
      if (typeof raw.grant_type === 'string' && raw.grant_type !== GRANT_TOKEN_EXCHANGE) {
        throw new TesseraError('TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE', `grant_type "${raw.grant_type.slice(0, 100)}" is not supported; use ${GRANT_TOKEN_EXCHANGE} (RFC 8693)`);
      }
      const parsed = requestSchema.safeParse(raw);
      if (!parsed.success) {
        const i = parsed.error.issues[0];
        const field = i?.path.join('.') || 'request';
        throw new TesseraError('TESSERA_REQUEST_INVALID', `${field}: ${i?.code === 'invalid_type' && i.input === undefined ? 'is required' : i?.message ?? 'invalid'}`, { field });
      }
      const p = parsed.data;
      if (p.subject_token_type !== TOKEN_TYPE_JWT && p.subject_token_type !== TOKEN_TYPE_JOIN) {
        throw new TesseraError(
          'TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE',
          p.subject_token_type === TOKEN_TYPE_ACCESS
            ? 'task tokens and delegation are not available yet; log in with an attestation token (jwt or join-token)'
            : `subject_token_type must be ${TOKEN_TYPE_JWT} or ${TOKEN_TYPE_JOIN}`,
        );
      }
      if (p.actor_token !== undefined) throw new TesseraError('TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE', 'actor_token (delegation) is not available yet');
      if (p.requested_token_type !== undefined && p.requested_token_type !== TOKEN_TYPE_JWT && p.requested_token_type !== TOKEN_TYPE_ACCESS) {
        throw new TesseraError('TESSERA_OAUTH_INVALID_TARGET', `requested_token_type must be ${TOKEN_TYPE_JWT}`);
      }
      const audience = [...asList(p.audience), ...asList(p.resource)];
      for (const a of audience) {
        if (!deps.allowedAudiences.includes(a)) {
          throw new TesseraError('TESSERA_OAUTH_INVALID_TARGET', `audience/resource "${a.slice(0, 200)}" is not served by this Tessera; use one of ${deps.allowedAudiences.join(', ')}`);
        }
      }
      const where = { source: meta.source, replica: meta.replica, requestId: meta.requestId };
      // The SPIFFE ID the subject token proved, once known: failures after that are attributed to
      // it (marked unverified: the login was refused), so `audit tail --actor <id>` finds them.
      let spiffeId: string | undefined;
      try {
        const limits = deps.loginLimits;
        // A join token names its identity before it is used up: charge that identity first, so a
        // refused login does not burn the one-time token (an unknown or used one charges nothing).
        const joinIdentity = limits && p.subject_token_type === TOKEN_TYPE_JOIN ? await deps.joinTokenIdentity?.(p.subject_token) : undefined;
        if (joinIdentity) charge('login.per_identity', limits?.perIdentity, joinIdentity, joinIdentity, meta);
        const identity = await attestation.attest(p.subject_token, p.subject_token_type, meta, {
          // Checked before anything is consumed: a revoked agent's join token stays usable once
          // the revocation is lifted or expires.
          admit(id) {
            spiffeId = id;
            if (revocations.isAgentRevoked(id)) {
              throw new TesseraError('TESSERA_AGENT_REVOKED', 'this agent is revoked; logins are refused until the revocation expires or is lifted');
            }
          },
        });
        spiffeId = identity.spiffeId;
        // Only a VERIFIED identity is charged (an unverified claim could drain another agent's bucket).
        if (!joinIdentity) charge('login.per_identity', limits?.perIdentity, identity.spiffeId, identity.spiffeId, meta);
        // Again after attestation: a revocation recorded while the join token was being consumed.
        if (revocations.isAgentRevoked(identity.spiffeId)) {
          throw new TesseraError('TESSERA_AGENT_REVOKED', 'this agent is revoked; logins are refused until the revocation expires or is lifted');
        }
        const issued = await tokens.issueAgentTokenAsync(identity, { audience: audience.length ? [...new Set(audience)] : [deps.defaultAudience] });
        // One audit event per login: `auth.login` carries the issued token's jti HMAC and expiry,
        // which is everything a separate `token.issued` would record (that kind stays for task
        // tokens). The token is returned only once the event is durable (fail closed: no audit, no token).
        await audit.append({
          kind: 'auth.login', actor: { id: identity.spiffeId }, action: 'token.exchange', resource: 'agent-token', result: 'success', where,
          details: { attestor: identity.attestor, token_jti_hmac: audit.hmac(issued.jti), expires_at: issued.expiresAt },
        });
        return { access_token: issued.token, issued_token_type: TOKEN_TYPE_JWT, token_type: 'Bearer', expires_in: Math.max(1, Math.round((issued.expiresAt - issued.issuedAt) / 1000)) };
      } catch (e) {
        // Limit refusals are audited by the limit auditor (one event per window), not per attempt.
        if (isTesseraError(e) && e.code !== 'TESSERA_AUDIT_UNAVAILABLE' && e.code !== 'TESSERA_LOGIN_RATE_LIMITED') {
          await audit.append({
            kind: 'auth.login', actor: spiffeId ? { id: spiffeId, verified: false } : { id: 'unauthenticated' }, action: 'token.exchange', resource: 'agent-token', result: 'failure', where,
            reason: { code: e.code }, details: { attestor: p.subject_token_type === TOKEN_TYPE_JOIN ? 'join_token' : 'jwt' },
          });
        }
        throw e;
      }
    },
  };
}
