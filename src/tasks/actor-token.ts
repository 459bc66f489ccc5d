/**
 * The credentials a token exchange is given (RFC 8693 §2.1): the `subject_token` of Tessera's
 * own, and the `actor_token` when it names an agent — that agent's own Tessera agent token, never
 * a task token (a task is not an identity). Both are authenticated by the request pipeline's
 * `authenticatePresented` (src/pipeline/authenticate.ts), as a bearer token at every enforcement
 * point is: the source's refused credentials are charged and limited (ADR 0142), refusals audited
 * aggregated with the claimed identity. Used for a sub-agent with an identity (delegate.ts) and
 * for the agent acting for a person (on-behalf.ts).
 */
import { TesseraError, isTesseraError, type ErrorCode } from '../shared/errors.js';
import type { RequestMeta } from '../server/app.js';
import type { VerifiedToken } from '../tokens/service.js';
import { authenticatePresented, type PresentedDeps } from '../pipeline/authenticate.js';
import type { TaskExchangeDeps } from './exchange.js';

export type AgentToken = Extract<VerifiedToken, { kind: 'agent' }>;

/** The pipeline's dependencies, from the task exchange's. */
export function presentedDepsOf(deps: Pick<TaskExchangeDeps, 'audit' | 'dpop' | 'failures'>): PresentedDeps {
  return { audit: deps.audit, dpop: deps.dpop, ...(deps.failures ? { failures: deps.failures } : {}) };
}

/**
 * A refused credential of a token request, as the refusal of its parameter: `code` with
 * `<field>: <why>` (`details.field`, `details.cause` = the step's code). Limits and outages
 * (TESSERA_AUTH_RATE_LIMITED, any 5xx such as TESSERA_AUDIT_UNAVAILABLE or TESSERA_INTERNAL) and
 * non-Tessera errors pass unchanged: they are not the credential's fault.
 */
export function asParameterRefusal(e: unknown, code: ErrorCode, field: string, why: (e: TesseraError) => string): unknown {
  if (!isTesseraError(e) || e.status === 429 || e.status >= 500) return e;
  return new TesseraError(code, `${field}: ${why(e)}`, { field, cause: e.code }, { cause: e });
}

/**
 * Authenticates `token` as an agent token for a Tessera audience, DPoP-bound when
 * tokens.dpop.require says so (TESSERA_DPOP_REQUIRED, as at every enforcement point). A refusal
 * becomes `code` with `actor_token: <why>` (asParameterRefusal). `who` names the agent in the
 * message ("the sub-agent", "the acting agent").
 */
export async function verifyAgentActorToken(deps: Pick<TaskExchangeDeps, 'tokens' | 'audiences' | 'dpop' | 'audit' | 'failures'>, token: string, code: ErrorCode, who: string, meta: RequestMeta): Promise<AgentToken> {
  try {
    return await authenticatePresented(presentedDepsOf(deps), meta, {
      at: 'actor_token',
      verify: async () => (await deps.tokens.verifyToken(token, { audiences: deps.audiences, kinds: ['agent'] })) as AgentToken,
      principalOf: (v) => v.principal,
      bind: (v) => deps.dpop.requireBoundToken(v.principal),
      resource: 'token-exchange',
    });
  } catch (e) {
    throw asParameterRefusal(e, code, 'actor_token', (err) => (err.code === 'TESSERA_TOKEN_TYPE_INVALID' && err.details?.presented === 'task'
      ? `a task token is not an identity: the actor_token must be ${who}'s own agent token (from its login)`
      : err.message));
  }
}
