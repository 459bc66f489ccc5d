/**
 * The `actor_token` of a token exchange (RFC 8693 §2.1) when it names an agent: that agent's
 * own Tessera agent token, never a task token (a task is not an identity). Used for a
 * sub-agent with an identity (delegate.ts) and for the agent acting for a person (on-behalf.ts).
 */
import { TesseraError, isTesseraError, type ErrorCode } from '../shared/errors.js';
import type { VerifiedToken } from '../tokens/service.js';
import type { TaskExchangeDeps } from './exchange.js';

export type AgentToken = Extract<VerifiedToken, { kind: 'agent' }>;

/**
 * Verifies `token` as an agent token for a Tessera audience, DPoP-bound when tokens.dpop.require
 * says so (TESSERA_DPOP_REQUIRED, as at every enforcement point). A refusal becomes `code` with
 * `actor_token: <why>` (`details.field` = actor_token, `details.cause` = the verification step's
 * code); TESSERA_AUDIT_UNAVAILABLE, TESSERA_INTERNAL and non-Tessera errors pass unchanged.
 * `who` names the agent in the message ("the sub-agent", "the acting agent").
 */
export async function verifyAgentActorToken(deps: Pick<TaskExchangeDeps, 'tokens' | 'audiences' | 'dpop'>, token: string, code: ErrorCode, who: string): Promise<AgentToken> {
  try {
    const v = (await deps.tokens.verifyToken(token, { audiences: deps.audiences, kinds: ['agent'] })) as AgentToken;
    deps.dpop.requireBoundToken(v.principal);
    return v;
  } catch (e) {
    if (!isTesseraError(e) || e.code === 'TESSERA_AUDIT_UNAVAILABLE' || e.code === 'TESSERA_INTERNAL') throw e;
    const why = e.code === 'TESSERA_TOKEN_TYPE_INVALID' && e.details?.presented === 'task'
      ? `a task token is not an identity: the actor_token must be ${who}'s own agent token (from its login)`
      : e.message;
    throw new TesseraError(code, `actor_token: ${why}`, { field: 'actor_token', cause: e.code }, { cause: e });
  }
}
