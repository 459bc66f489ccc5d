/**
 * Opening a root task on behalf of a person (DESIGN.md "Users", docs/users.md): `subject_token`
 * = the person's token from a trusted OpenID Provider (`users.issuers`; RFC 8693 §3 type
 * access_token, id_token or jwt), `actor_token` = the acting agent's own agent token. The task
 * token's `sub` is the person, its `act` the agent (RFC 8693 §4.1), its `usr` claim what policy
 * knows of the person. Cedar `token.delegate` must permit the agent AND the person (principal
 * `User`, resource = the agent, `context.actor`), and so must it for every later request
 * (src/pipeline/authorize.ts).
 */
import { fail } from '../shared/errors.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { RevocationChecker } from '../shared/revocation.js';
import type { RequestMeta } from '../server/app.js';
import { usrClaimOf } from '../users/identity.js';
import type { UserTokenVerifier, VerifiedUserToken } from '../users/verify.js';
import { TOKEN_TYPE_ACCESS_TOKEN } from './claims.js';
import { childBinding, childExpiry, narrowAudience, rootMaxDepth } from './narrow.js';
import type { HandlerContext, TaskExchangeDeps, TaskSpec } from './exchange.js';
import { decideRootTask, rootPurpose } from './root.js';
import { presentedDepsOf, verifyAgentActorToken, type AgentToken } from './actor-token.js';
import { authenticatePresented } from '../pipeline/authenticate.js';

/** What the on-behalf-of case needs besides the task exchange's own dependencies. */
export interface OnBehalfDeps {
  readonly users: UserTokenVerifier;
  readonly revocations: Pick<RevocationChecker, 'isRevoked'>;
}

/** The acting agent's own agent token (never a task token: a task is not an identity). */
export async function verifyActingAgent(deps: TaskExchangeDeps, actorToken: string | undefined, actorTokenType: string | undefined, meta: RequestMeta): Promise<AgentToken> {
  if (actorToken === undefined) {
    throw fail('TESSERA_USER_ACTOR_REQUIRED', 'a user token acts through an agent: send the agent\'s own agent token as actor_token (with actor_token_type urn:ietf:params:oauth:token-type:access_token)');
  }
  if (actorTokenType !== TOKEN_TYPE_ACCESS_TOKEN) {
    throw fail('TESSERA_USER_ACTOR_INVALID', `actor_token_type must be ${TOKEN_TYPE_ACCESS_TOKEN}: the actor token is the acting agent's own Tessera agent token`, { field: 'actor_token_type' });
  }
  // tokens.dpop.require applies to the acting agent's token as at every enforcement point (TESSERA_DPOP_REQUIRED).
  return verifyAgentActorToken(deps, actorToken, 'TESSERA_USER_ACTOR_INVALID', 'the acting agent', meta);
}

/** The agent acting for the person, as the pipeline sees it: its own identity, with the user. */
export function actingFor(agent: AgentPrincipal, user: VerifiedUserToken): AgentPrincipal {
  return { ...agent, user: user.identity.id, userClaims: { issuer: user.identity.issuer, attrs: user.identity.attrs, groups: user.identity.groups } };
}

export async function openUserTask(ctx: HandlerContext, onBehalf: OnBehalfDeps, agent: AgentToken): Promise<TaskSpec> {
  const { params, req, deps } = ctx;
  if (params.label !== undefined) throw fail('TESSERA_TASK_PARENT_REQUIRED', 'label names a sub-agent, but a user token opens a root task: open it first, then delegate from that task token');
  if (params.scope === undefined) throw fail('TESSERA_OAUTH_INVALID_SCOPE', 'scope is required: a task says what it may do for the person (space-separated scope strings such as "tool:records/query")');
  const purpose = rootPurpose(params);
  // The person's token is a presented credential like any other: charged and audited when refused.
  const user = await authenticatePresented(presentedDepsOf(deps), req.meta, {
    at: 'subject_token',
    verify: () => onBehalf.users.verify(req.subjectToken, req.subjectTokenType ?? TOKEN_TYPE_ACCESS_TOKEN),
    principalOf: () => undefined,
    presentedBy: agent.principal,
    resource: 'token-exchange',
  });
  const me = agent.principal;
  if (onBehalf.revocations.isRevoked({ spiffeId: me.spiffeId, jti: me.jti, user: user.identity.id })) {
    throw fail('TESSERA_USER_REVOKED', `user ${user.identity.id} is revoked: no task may act for them until the revocation expires or is lifted`, { user: user.identity.id });
  }
  const delegator = actingFor(me, user);
  const maxDepth = rootMaxDepth(params.maxDepth, deps.maxDepth);
  const audience = narrowAudience(me.audience ?? [], req.audience, 'actor agent token');
  // Never beyond the person's token (nor its max_age) or the agent's.
  const until = Math.floor(Math.min(user.expiresAt, me.expiresAt) / 1000);
  const exp = childExpiry(ctx.now, until, params.ttlMs, deps.taskTtlMs, deps.taskTtlMs, 'user token (or the actor agent token)');
  // A bound agent token acts only with a proof by its key; the task is bound to the key proved.
  const jkt = childBinding({ actorJkt: me.cnf?.jkt, proofJkt: req.proofJkt });
  return decideRootTask(ctx, { delegator, actor: me, sub: user.identity.id, audience, exp, scope: params.scope, purpose, maxDepth, tctx: params.tctx ?? {}, jkt, tessera: agent.claims.tessera, usr: usrClaimOf(user.identity) });
}
