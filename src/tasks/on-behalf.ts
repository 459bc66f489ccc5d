/**
 * Opening a root task on behalf of a person (DESIGN.md "Users", docs/users.md): `subject_token`
 * = the person's token from a trusted OpenID Provider (`users.issuers`; RFC 8693 §3 type
 * access_token, id_token or jwt), `actor_token` = the acting agent's own agent token. The task
 * token's `sub` is the person, its `act` the agent (RFC 8693 §4.1), its `usr` claim what policy
 * knows of the person. Cedar `token.delegate` must permit the agent AND the person (principal
 * `User`, resource = the agent, `context.actor`), and so must it for every later request
 * (src/pipeline/authorize.ts).
 */
import { TesseraError, fail, isTesseraError } from '../shared/errors.js';
import { randomId } from '../shared/crypto.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { RevocationChecker } from '../shared/revocation.js';
import type { VerifiedToken } from '../tokens/service.js';
import { usrClaimOf } from '../users/identity.js';
import type { UserTokenVerifier, VerifiedUserToken } from '../users/verify.js';
import { TOKEN_TYPE_ACCESS_TOKEN, nestActors } from './claims.js';
import { childBinding, childExpiry, narrowAudience, rootMaxDepth } from './narrow.js';
import type { HandlerContext, TaskExchangeDeps, TaskSpec } from './exchange.js';

type AgentToken = Extract<VerifiedToken, { kind: 'agent' }>;

/** What the on-behalf-of case needs besides the task exchange's own dependencies. */
export interface OnBehalfDeps {
  readonly users: UserTokenVerifier;
  readonly revocations: Pick<RevocationChecker, 'isRevoked'>;
}

/** The acting agent's own agent token (never a task token: a task is not an identity). */
export async function verifyActingAgent(deps: TaskExchangeDeps, actorToken: string | undefined, actorTokenType: string | undefined): Promise<AgentToken> {
  if (actorToken === undefined) {
    throw fail('TESSERA_USER_ACTOR_REQUIRED', 'a user token acts through an agent: send the agent\'s own agent token as actor_token (with actor_token_type urn:ietf:params:oauth:token-type:access_token)');
  }
  if (actorTokenType !== TOKEN_TYPE_ACCESS_TOKEN) {
    throw fail('TESSERA_USER_ACTOR_INVALID', `actor_token_type must be ${TOKEN_TYPE_ACCESS_TOKEN}: the actor token is the acting agent's own Tessera agent token`, { field: 'actor_token_type' });
  }
  try {
    const v = (await deps.tokens.verifyToken(actorToken, { audiences: deps.audiences, kinds: ['agent'] })) as AgentToken;
    // tokens.dpop.require applies to the acting agent's token as at every enforcement point (TESSERA_DPOP_REQUIRED).
    deps.dpop.requireBoundToken(v.principal);
    return v;
  } catch (e) {
    if (!isTesseraError(e) || e.code === 'TESSERA_AUDIT_UNAVAILABLE' || e.code === 'TESSERA_INTERNAL') throw e;
    const why = e.code === 'TESSERA_TOKEN_TYPE_INVALID' && e.details?.presented === 'task'
      ? 'a task token is not an identity: the actor_token must be the acting agent\'s own agent token (from its login)'
      : e.message;
    throw new TesseraError('TESSERA_USER_ACTOR_INVALID', `actor_token: ${why}`, { field: 'actor_token', cause: e.code }, { cause: e });
  }
}

/** The agent acting for the person, as the pipeline sees it: its own identity, with the user. */
export function actingFor(agent: AgentPrincipal, user: VerifiedUserToken): AgentPrincipal {
  return { ...agent, user: user.identity.id, userClaims: { issuer: user.identity.issuer, attrs: user.identity.attrs, groups: user.identity.groups } };
}

export async function openUserTask(ctx: HandlerContext, onBehalf: OnBehalfDeps, agent: AgentToken): Promise<TaskSpec> {
  const { params, req, deps } = ctx;
  if (params.label !== undefined) throw fail('TESSERA_TASK_PARENT_REQUIRED', 'label names a sub-agent, but a user token opens a root task: open it first, then delegate from that task token');
  if (params.scope === undefined) throw fail('TESSERA_OAUTH_INVALID_SCOPE', 'scope is required: a task says what it may do for the person (space-separated scope strings such as "tool:records/query")');
  if (params.purpose === undefined) throw fail('TESSERA_TASK_PARAMETER_INVALID', 'purpose: is required for a root task: say why it exists (it is audited and shown in the task tree)', { field: 'purpose' });
  const user = await onBehalf.users.verify(req.subjectToken, req.subjectTokenType ?? TOKEN_TYPE_ACCESS_TOKEN);
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
  const tctx = params.tctx ?? {};
  ctx.decide(delegator, { type: 'Agent', spiffeId: me.spiffeId, principal: me }, { scopes: params.scope, purpose: params.purpose, depth: 0, max_depth: maxDepth, bound: jkt !== undefined, tctx });
  const txn = randomId('task_');
  const tessera = agent.claims.tessera;
  return {
    delegator,
    delegatee: me.spiffeId,
    input: {
      sub: user.identity.id,
      aud: audience.length === 1 ? audience[0]! : audience,
      exp,
      act: nestActors([{ sub: me.spiffeId }]),
      txn,
      rtxn: txn,
      anc: [],
      scope: params.scope.join(' '),
      purpose: params.purpose,
      depth: 0,
      max_depth: maxDepth,
      ...(Object.keys(tctx).length ? { tctx } : {}),
      ...(jkt !== undefined ? { cnf: { jkt } } : {}),
      ...(tessera ? { tessera } : {}),
      usr: usrClaimOf(user.identity),
    },
  };
}
