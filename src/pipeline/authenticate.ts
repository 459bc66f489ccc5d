/**
 * The authenticate step of the one request pipeline: a presented credential → the acting
 * principal. Every enforcement point (the API routes, the MCP gateway, later the proxy) calls
 * this one step, each for its own audience, so none can skip a part of it:
 *
 *   1. the token (agent or task: their JOSE `typ` is pinned by the token service), for this
 *      audience, with revocation of the token, the acting agent, the task and every ancestor
 *      task, the user and every agent of the chain — from in-memory sets, never the store;
 *   2. its DPoP binding for THIS request (RFC 9449 §7, src/dpop/guard.ts): a bound token
 *      (`cnf.jkt`, agent or task token alike) only as `Authorization: DPoP` with a valid proof
 *      by its key (htm, htu, ath, iat, nonce, replay); an unbound one only as `Bearer`, and only
 *      when `tokens.dpop.require` does not want it bound (`delegated`: a task token at depth ≥ 1;
 *      `always`: every token).
 *
 * A principal with `cnf` therefore exists only after its proof passed (Cedar `context.dpop`).
 * Every refusal is audited as `auth.token_refused` (never the token or the proof); a refusal
 * after the token itself verified is attributed to its acting agent (`verified: false`). Any
 * refusal of a DPoP-scheme request carries the DPoP challenge (RFC 9449 §7.1).
 */
import type { AuditWriter } from '../audit/port.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { AgentAuthenticator, RequestMeta } from '../server/app.js';
import type { DpopGuard, PresentedRequest } from '../dpop/guard.js';
import { isTesseraError } from '../shared/errors.js';
import type { AuthFailureGuard } from '../shared/auth-failures.js';
import { attributeRefusal, auditTokenRefusal, type TokenService } from '../tokens/service.js';

export interface RequestAuthenticatorDeps {
  readonly tokens: Pick<TokenService, 'verify'>;
  readonly audit: AuditWriter;
  /** DPoP binding rules (RFC 9449): the same guard for every enforcement point. */
  readonly dpop: Pick<DpopGuard, 'checkResource' | 'mark'>;
  /**
   * Refused credentials per source (src/shared/auth-failures.ts): checked before any
   * verification, charged per refusal, refusal events aggregated. Absent: every refusal is
   * audited on its own and nothing is limited (unit tests).
   */
  readonly failures?: AuthFailureGuard;
}

/**
 * An authenticator for one audience (RFC 8707): Tessera's API (`<issuer>`) or its MCP gateway
 * (`<issuer>/mcp`). `resource` labels the refusal events (`mcp` for the gateway).
 * `authenticate(token, meta, request)`: `request` is the `Authorization` scheme the token came
 * with, the method, the target as received and the `DPoP` header. Throws TESSERA_TOKEN_* and
 * TESSERA_DPOP_* errors (401; TESSERA_DPOP_RATE_LIMITED 429, TESSERA_DPOP_REPLAY_CACHE_FULL 503).
 */
export function createRequestAuthenticator(deps: RequestAuthenticatorDeps, options: { audience: string; resource?: string }): AgentAuthenticator {
  return {
    async authenticate(token: string, meta: RequestMeta, request: PresentedRequest): Promise<AgentPrincipal> {
      let principal: AgentPrincipal | undefined;
      // Before any signature, hash or lookup: a source that sent too many refused credentials.
      deps.failures?.admit(meta);
      try {
        principal = await deps.tokens.verify(token, { audience: options.audience });
        await deps.dpop.checkResource(principal, token, request);
        return principal;
      } catch (e) {
        if (isTesseraError(e)) {
          if (principal) attributeRefusal(e, principal.spiffeId);
          // RFC 9449 §7.1: a DPoP request is answered with a DPoP challenge, whatever was wrong.
          if (request.scheme === 'DPoP') deps.dpop.mark(e);
          // A refused credential costs its source (not a limit of ours: 429/503 are not its fault).
          if (e.status === 401) deps.failures?.charge(meta);
          // The request is refused either way.
          await auditTokenRefusal(deps.failures?.events ?? deps.audit, e, { source: meta.source, replica: meta.replica, requestId: meta.requestId }, options.resource).catch(() => undefined);
        }
        throw e;
      }
    },
  };
}
