/**
 * The authenticate step of the one request pipeline: a bearer credential → the acting
 * principal. Agent and task tokens are both accepted (their JOSE `typ` is pinned by the token
 * service); verification includes revocation of the token, the acting agent, the task and every
 * ancestor task, the user and every agent of the chain — from in-memory sets, never the store.
 * Every refusal is audited as `auth.token_refused` (never the token). The HTTP API and the MCP
 * gateway use this same step, each for its own audience.
 */
import type { AuditWriter } from '../audit/port.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { AgentAuthenticator, RequestMeta } from '../server/app.js';
import { isTesseraError } from '../shared/errors.js';
import { auditTokenRefusal, type TokenService } from '../tokens/service.js';

export interface RequestAuthenticatorDeps {
  readonly tokens: Pick<TokenService, 'verify'>;
  readonly audit: AuditWriter;
}

/**
 * An authenticator for one audience (RFC 8707): Tessera's API (`<issuer>`) or its MCP gateway
 * (`<issuer>/mcp`). `resource` labels the refusal events (`mcp` for the gateway).
 */
export function createRequestAuthenticator(deps: RequestAuthenticatorDeps, options: { audience: string; resource?: string }): AgentAuthenticator {
  return {
    async authenticate(token: string, meta: RequestMeta): Promise<AgentPrincipal> {
      try {
        return await deps.tokens.verify(token, { audience: options.audience });
      } catch (e) {
        if (isTesseraError(e)) {
          // The request is refused either way.
          await auditTokenRefusal(deps.audit, e, { source: meta.source, replica: meta.replica, requestId: meta.requestId }, options.resource).catch(() => undefined);
        }
        throw e;
      }
    },
  };
}
