/**
 * Opening a root task: `subject_token` = the agent's own agent token (DESIGN.md "Tasks and
 * delegation"). The agent asks for a scope, states a purpose, and may add task facts, a
 * lifetime and a depth bound; Cedar `token.delegate` (principal = the agent, resource = the
 * agent itself, `context.delegation` = the new task) decides whether it may open it at all.
 */
import { fail } from '../shared/errors.js';
import { randomId } from '../shared/crypto.js';
import type { VerifiedToken } from '../tokens/service.js';
import { nestActors } from './claims.js';
import { childBinding, childExpiry, narrowAudience, rootMaxDepth } from './narrow.js';
import type { HandlerContext, TaskSpec } from './exchange.js';

export async function openRootTask(ctx: HandlerContext, subject: Extract<VerifiedToken, { kind: 'agent' }>): Promise<TaskSpec> {
  const { params, req, deps } = ctx;
  const agent = subject.principal;
  if (req.actorToken !== undefined || params.label !== undefined) {
    throw fail('TESSERA_TASK_PARENT_REQUIRED', `${req.actorToken !== undefined ? 'actor_token' : 'label'} names a sub-agent, but the subject_token is an agent token, and an agent token is not a parent task: open a root task first (without actor_token or label), then present that task token as subject_token to delegate`);
  }
  if (params.scope === undefined) throw fail('TESSERA_OAUTH_INVALID_SCOPE', 'scope is required: a task says what it may do (space-separated scope strings such as "secret:healthcare/prod/** tool:records/query")');
  if (params.purpose === undefined) throw fail('TESSERA_TASK_PARAMETER_INVALID', 'purpose: is required for a root task: say why it exists (it is audited and shown in the task tree)', { field: 'purpose' });
  const maxDepth = rootMaxDepth(params.maxDepth, deps.maxDepth);
  const audience = narrowAudience(agent.audience ?? [], req.audience, 'subject agent token');
  const exp = childExpiry(ctx.now, Math.floor(agent.expiresAt / 1000), params.ttlMs, deps.taskTtlMs, deps.taskTtlMs, 'subject agent token');
  const jkt = childBinding({ subjectJkt: agent.cnf?.jkt, proofJkt: req.proofJkt });
  const tctx = params.tctx ?? {};
  ctx.decide(agent, { type: 'Agent', spiffeId: agent.spiffeId, principal: agent }, { scopes: params.scope, purpose: params.purpose, depth: 0, max_depth: maxDepth, bound: jkt !== undefined, tctx, added_facts: Object.keys(tctx) });
  const txn = randomId('task_');
  const tessera = subject.claims.tessera;
  return {
    delegator: agent,
    delegatee: agent.spiffeId,
    input: {
      sub: agent.spiffeId,
      aud: audience.length === 1 ? audience[0]! : audience,
      exp,
      act: nestActors([{ sub: agent.spiffeId }]),
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
    },
  };
}
