/**
 * Task context for upstreams (`task_token` on an HTTP MCP server or declarative http tool): a
 * short-lived JWT for the upstream's audience carrying the caller's task (`txn`, `rtxn`,
 * `ptxn`), original principal (`sub`) and actor chain (`act`, RFC 8693 §4.1), typed
 * `tessera-downstream+jwt` (RFC 8725 §3.11), so a downstream service sees which task and which
 * chain of agents a call comes from, verified with Tessera's JWKS. Tessera itself never accepts
 * such a token (its verification pins the agent and task types), and its audience is never one
 * of Tessera's own.
 *
 * A token is minted per (caller token, audience) and reused until half its lifetime has passed,
 * so a busy task costs one signature (and one audit event) per half-TTL, not one per call. Each
 * mint is audited (`token.issued`, its `jti` as an HMAC): the token is a credential Tessera issued.
 */
import type { AuditWriter } from '../audit/port.js';
import type { AuditWhere } from '../audit/events.js';
import type { Clock } from '../shared/clock.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { TesseraError } from '../shared/errors.js';
import type { TokenService } from '../tokens/service.js';

export interface DownstreamTokens {
  /** A token for `audience` that carries `principal`'s task; at most `ttlMs`, never beyond the caller's own token. */
  tokenFor(principal: AgentPrincipal, audience: string, ttlMs: number, where: AuditWhere): Promise<string>;
}

const MAX_CACHED = 10_000;

export function createDownstreamTokens(deps: { tokens: Pick<TokenService, 'issueDownstreamToken'>; audit: AuditWriter; clock: Clock; tesseraAudiences: readonly string[] }): DownstreamTokens {
  const cache = new Map<string, { token: string; refreshAt: number; expiresAt: number }>();
  return {
    async tokenFor(p, audience, ttlMs, where) {
      if (deps.tesseraAudiences.includes(audience)) {
        throw new TesseraError('TESSERA_CONFIG_INVALID', `task_token.audience "${audience}" is one of Tessera's own audiences; name the upstream's audience`);
      }
      const now = deps.clock.now();
      const key = `${p.jti}\n${audience}`;
      const hit = cache.get(key);
      if (hit && now < hit.refreshAt && now < hit.expiresAt) return hit.token;
      const issued = deps.tokens.issueDownstreamToken(p, { audience, ttlMs });
      // Audit fails closed: the token leaves only once its issuance is recorded.
      await deps.audit.append({
        kind: 'token.issued', actor: { id: p.spiffeId, ...(p.chain?.length ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) }, action: 'token.downstream', resource: audience, result: 'success',
        ...(p.task ? { txn: p.task } : {}), where,
        details: { token_type: 'downstream', jti_hmac: deps.audit.hmac(issued.jti), expires_at: issued.expiresAt },
      });
      if (cache.size >= MAX_CACHED) cache.clear();
      cache.set(key, { token: issued.token, refreshAt: issued.issuedAt + (issued.expiresAt - issued.issuedAt) / 2, expiresAt: issued.expiresAt });
      return issued.token;
    },
  };
}

/** The header value: `Bearer <token>` in Authorization (RFC 6750 §2.1), the bare token elsewhere. */
export function downstreamHeaderValue(header: string, token: string): string {
  return header.toLowerCase() === 'authorization' ? `Bearer ${token}` : token;
}
