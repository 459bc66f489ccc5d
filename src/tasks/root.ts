/**
 * Opening a root task: `subject_token` = the agent's own agent token (DESIGN.md "Tasks and
 * delegation"). The agent asks for a scope, states a purpose, and may add task facts, a
 * lifetime and a depth bound; Cedar `token.delegate` (principal = the agent, resource = the
 * agent itself, `context.delegation` = the new task) decides whether it may open it at all.
 */
import { fail } from '../shared/errors.js';
import { newTxn } from './txn.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { VerifiedToken } from '../tokens/service.js';
import { nestActors, type TaskClaims } from './claims.js';
import { childBinding, childExpiry, narrowAudience, rootMaxDepth } from './narrow.js';
import type { HandlerContext, TaskSpec } from './exchange.js';
import type { TaskParams } from './params.js';

export async function openRootTask(ctx: HandlerContext, subject: Extract<VerifiedToken, { kind: 'agent' }>): Promise<TaskSpec> {
  const { params, req, deps } = ctx;
  const agent = subject.principal;
  if (req.actorToken !== undefined || params.label !== undefined) {
    throw fail('TESSERA_TASK_PARENT_REQUIRED', `${req.actorToken !== undefined ? 'actor_token' : 'label'} names a sub-agent, but the subject_token is an agent token, and an agent token is not a parent task: open a root task first (without actor_token or label), then present that task token as subject_token to delegate`);
  }
  if (params.scope === undefined) throw fail('TESSERA_OAUTH_INVALID_SCOPE', 'scope is required: a task says what it may do (space-separated scope strings such as "secret:healthcare/prod/** tool:records/query")');
  const purpose = rootPurpose(params);
  const maxDepth = rootMaxDepth(params.maxDepth, deps.maxDepth);
  const audience = narrowAudience(agent.audience ?? [], req.audience, 'subject agent token');
  const exp = childExpiry(ctx.now, Math.floor(agent.expiresAt / 1000), params.ttlMs, deps.taskTtlMs, deps.taskTtlMs, 'subject agent token');
  const jkt = childBinding({ subjectJkt: agent.cnf?.jkt, proofJkt: req.proofJkt });
  return decideRootTask(ctx, { delegator: agent, actor: agent, sub: agent.spiffeId, audience, exp, scope: params.scope, purpose, maxDepth, tctx: params.tctx ?? {}, jkt, tessera: subject.claims.tessera });
}

/** `purpose` of a root task: required (it is audited and shown in the task tree); TESSERA_TASK_PARAMETER_INVALID when absent. */
export function rootPurpose(params: TaskParams): string {
  if (params.purpose === undefined) throw fail('TESSERA_TASK_PARAMETER_INVALID', 'purpose: is required for a root task: say why it exists (it is audited and shown in the task tree)', { field: 'purpose' });
  return params.purpose;
}

/** What a root task is opened with, once its handler has checked and narrowed the request. */
export interface RootTask {
  /** Who asks: the Cedar principal and the audit actor (the agent; for a person, the agent acting for them). */
  readonly delegator: AgentPrincipal;
  /** The agent that will act with the task (the Cedar resource, `act.sub`); its attestation facts are `tessera`. */
  readonly actor: AgentPrincipal;
  /** The original principal (`sub`): the agent itself, or the person it acts for. */
  readonly sub: string;
  readonly audience: string[];
  /** Expiry, epoch seconds (childExpiry). */
  readonly exp: number;
  readonly scope: readonly string[];
  readonly purpose: string;
  readonly maxDepth: number;
  readonly tctx: Readonly<Record<string, string>>;
  /** RFC 7638 thumbprint the task is bound to (childBinding); absent: unbound. */
  readonly jkt: string | undefined;
  readonly tessera: TaskClaims['tessera'];
  /** The person's `usr` claim when acting for one (docs/users.md). */
  readonly usr?: TaskClaims['usr'];
}

/**
 * A root task (depth 0, its own root, no ancestors): Cedar `token.delegate` for the delegator
 * → the acting agent (throws TESSERA_TASK_DELEGATION_DENIED), then the claims to sign.
 */
export function decideRootTask(ctx: HandlerContext, t: RootTask): TaskSpec {
  ctx.decide(t.delegator, { type: 'Agent', spiffeId: t.actor.spiffeId, principal: t.actor }, { scopes: t.scope, purpose: t.purpose, depth: 0, max_depth: t.maxDepth, bound: t.jkt !== undefined, tctx: t.tctx, added_facts: Object.keys(t.tctx) });
  const txn = newTxn(ctx.now);
  return {
    delegator: t.delegator,
    delegatee: t.actor.spiffeId,
    input: {
      sub: t.sub,
      aud: t.audience.length === 1 ? t.audience[0]! : t.audience,
      exp: t.exp,
      act: nestActors([{ sub: t.actor.spiffeId }]),
      txn,
      rtxn: txn,
      anc: [],
      scope: t.scope.join(' '),
      purpose: t.purpose,
      depth: 0,
      max_depth: t.maxDepth,
      ...(Object.keys(t.tctx).length ? { tctx: t.tctx } : {}),
      ...(t.jkt !== undefined ? { cnf: { jkt: t.jkt } } : {}),
      ...(t.tessera ? { tessera: t.tessera } : {}),
      ...(t.usr !== undefined ? { usr: t.usr } : {}),
    },
  };
}
