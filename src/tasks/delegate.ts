/**
 * Delegating a child task: `subject_token` = the parent's task token, and either
 * `actor_token` = the sub-agent's own agent token (a workload with an identity), or `label`
 * (a runtime-spawned sub-agent without one, which then acts as the delegating agent, named by
 * the label, best bound to its own key with DPoP). Every dimension only narrows (narrow.ts), and
 * Cedar `token.delegate` (principal = the delegating agent with its task context, resource = the
 * sub-agent or `SubAgent::"<label>"`) decides whether this delegation may happen at all.
 */
import { fail } from '../shared/errors.js';
import { newTxn } from './txn.js';
import type { VerifiedToken } from '../tokens/service.js';
import { TOKEN_TYPE_ACCESS_TOKEN, nestActors, type Actor } from './claims.js';
import { childBinding, childDepth, childExpiry, extendTctx, narrowAudience, narrowScope } from './narrow.js';
import type { HandlerContext, TaskSpec } from './exchange.js';
import { verifyAgentActorToken, type AgentToken } from './actor-token.js';

/** The sub-agent's own agent token: an identity, never a task token. */
async function verifyActor(ctx: HandlerContext): Promise<AgentToken> {
  const { req, deps } = ctx;
  if (req.actorTokenType !== TOKEN_TYPE_ACCESS_TOKEN) {
    throw fail('TESSERA_TASK_ACTOR_TOKEN_INVALID', `actor_token_type must be ${TOKEN_TYPE_ACCESS_TOKEN}: the actor token is the sub-agent's own Tessera agent token`);
  }
  // tokens.dpop.require: always applies to the sub-agent's own token too (TESSERA_DPOP_REQUIRED).
  return verifyAgentActorToken(deps, req.actorToken!, 'TESSERA_TASK_ACTOR_TOKEN_INVALID', 'the sub-agent', req.meta);
}

export async function delegateTask(ctx: HandlerContext, subject: Extract<VerifiedToken, { kind: 'task' }>): Promise<TaskSpec> {
  const { params, req, deps } = ctx;
  const parent = subject.principal;
  const c = subject.claims;
  if (req.actorToken !== undefined && params.label !== undefined) throw fail('TESSERA_TASK_PARAMETER_INVALID', 'label: give either actor_token (a sub-agent with its own identity) or label (one without), not both', { field: 'label' });
  if (req.actorToken === undefined && params.label === undefined) throw fail('TESSERA_TASK_PARAMETER_INVALID', 'label: name the sub-agent: actor_token = its own agent token, or label = what to call a sub-agent without an identity', { field: 'label' });
  if (params.scope === undefined) throw fail('TESSERA_OAUTH_INVALID_SCOPE', 'scope is required: a sub-agent gets only the scope it asks for, within its parent\'s');
  const actor = req.actorToken !== undefined ? await verifyActor(ctx) : undefined;
  const scope = narrowScope(parent.scope ?? [], params.scope, params.scopeMode);
  const { depth, maxDepth } = childDepth({ depth: c.depth, maxDepth: c.max_depth }, params.maxDepth);
  // A child derives from its parent AND, with an actor token, from the sub-agent's own identity:
  // it is usable only where both are (audiences) and never outlives either (lifetime), so a
  // delegation cannot stretch a sub-agent's login beyond its own token.
  const actorAud = actor?.principal.audience;
  const fromAud = actorAud ? (parent.audience ?? []).filter((a) => actorAud.includes(a)) : (parent.audience ?? []);
  const audience = narrowAudience(fromAud, req.audience, actor ? 'parent task token and the actor_token' : 'parent task token');
  const actorExp = actor?.claims.exp;
  const fromExp = actorExp !== undefined && actorExp < c.exp ? actorExp : c.exp;
  const exp = childExpiry(ctx.now, fromExp, params.ttlMs, deps.taskTtlMs, deps.taskTtlMs, fromExp === c.exp ? 'parent task token' : 'actor_token (the sub-agent\'s own agent token)');
  const tctx = extendTctx(c.tctx ?? {}, params.tctx);
  const purpose = params.purpose ?? c.purpose;
  const jkt = childBinding({
    subjectJkt: c.cnf?.jkt, actorJkt: actor?.claims.cnf?.jkt, proofJkt: req.proofJkt,
    required: actor === undefined && deps.requireBindingForLabels ? 'a sub-agent without an identity must hold a DPoP-bound token here (tokens.delegation.require_dpop_for_labels): send a DPoP proof signed with the key the sub-agent will hold' : undefined,
  });
  const resource = actor
    ? ({ type: 'Agent', spiffeId: actor.principal.spiffeId, principal: actor.principal } as const)
    : ({ type: 'SubAgent', label: params.label!, actingAs: parent } as const);
  ctx.decide(parent, resource, { scopes: scope, purpose, depth, max_depth: maxDepth, bound: jkt !== undefined, tctx, added_facts: Object.keys(tctx).filter((k) => !Object.hasOwn(c.tctx ?? {}, k)) });
  const hop: Actor = actor ? { sub: actor.principal.spiffeId } : { sub: parent.spiffeId, label: params.label! };
  const actors: Actor[] = [...(parent.actors ?? []), hop];
  // The attestation facts of whoever acts now: the sub-agent's own, or (a label) the delegating agent's.
  const tessera = actor ? actor.claims.tessera : c.tessera;
  return {
    delegator: parent,
    delegatee: hop.sub,
    ...(params.label !== undefined ? { label: params.label } : {}),
    input: {
      sub: c.sub,
      aud: audience.length === 1 ? audience[0]! : audience,
      exp,
      act: nestActors(actors),
      txn: newTxn(ctx.now),
      ptxn: c.txn,
      rtxn: c.rtxn,
      anc: [...c.anc, c.txn],
      scope: scope.join(' '),
      purpose,
      depth,
      max_depth: maxDepth,
      ...(Object.keys(tctx).length ? { tctx } : {}),
      ...(jkt !== undefined ? { cnf: { jkt } } : {}),
      ...(tessera ? { tessera } : {}),
      // Acting for a person: the child acts for the same person, with the same entitlement.
      ...(c.usr ? { usr: c.usr } : {}),
    },
  };
}
