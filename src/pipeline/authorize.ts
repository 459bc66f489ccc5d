/**
 * The authorize step of the one request pipeline (DESIGN.md "Request pipeline"), used by every
 * enforcement point — the credential API, secret reads, the MCP gateway (tools/list, tools/call,
 * injection), and later the proxy. A request is allowed only when:
 *   1. the token's scope covers it (a task token; an agent token carries no scope), and
 *   2. Cedar permits the acting workload (principal = the acting agent; context = chain, depth,
 *      label, task, purpose, tctx, user: src/policy/entities.ts buildContext), and
 *   3. when acting for a user, Cedar permits the user (authorizeRequest: principal User).
 * Policy is the ceiling; the task narrows it. Enforcement points take a RequestAuthorizer, never
 * a bare policy engine, so none can skip the scope (the type says which one they hold).
 */
import { authorizeWithScope, requiredScopeFor } from '../policy/scope.js';
import type { Authorizer, Decision, PolicyAction, PolicyRequest, ResourceRef } from '../policy/types.js';
import { TesseraError, type ErrorCode } from '../shared/errors.js';

export interface RequestAuthorizer {
  /** Brand: only createRequestAuthorizer makes one (a policy engine is not one). */
  readonly kind: 'request-authorizer';
  /** Scope ∩ Cedar (∩ the user's entitlement): synchronous, the decision cache makes it cheap. */
  authorize(request: PolicyRequest): Decision;
  /** The strings of the active permit policies for `action` (see Authorizer.literals). */
  literals?(action: PolicyAction): readonly string[];
}

/**
 * Scope ∩ Cedar for the acting workload ∩ (when the principal acts for a person) Cedar for that
 * person: principal `User` with the tags and groups of the token's `usr` claim, `context.actor` =
 * the acting agent (docs/users.md). The person's decision is made only once the agent's allowed.
 */
export function authorizeRequest(policy: Authorizer, request: PolicyRequest): Decision {
  const agent = authorizeWithScope(policy, { ...request, principalKind: 'agent' });
  if (!agent.allowed || request.principal.user === undefined) return agent;
  const user = policy.authorize({ ...request, principalKind: 'user' });
  return user.allowed ? { ...user, policies: [...agent.policies, ...user.policies] } : { ...user, userDenied: true };
}

export function createRequestAuthorizer(policy: Authorizer): RequestAuthorizer {
  return {
    kind: 'request-authorizer',
    authorize: (request) => authorizeRequest(policy, request),
    ...(policy.literals ? { literals: (action: PolicyAction) => policy.literals!(action) } : {}),
  };
}

function describe(r: ResourceRef): string {
  switch (r.type) {
    case 'Secret':
      return `Secret "${r.path}"`;
    case 'Role':
      return `${r.engine}/${r.role}`;
    case 'Tool':
      return `${r.server}/${r.tool}`;
    case 'Server':
      return `server ${r.server}`;
    case 'Route':
      return `route ${r.route}`;
    case 'Resource':
      return `resource ${r.server}/${r.uri}`;
    case 'Prompt':
      return `prompt ${r.server}/${r.prompt}`;
    case 'Agent':
      return r.spiffeId;
    case 'SubAgent':
      return `sub-agent "${r.label}"`;
    case 'AgentRole':
      return `role ${r.name}`;
  }
}

/**
 * How an enforcement point words a refusal: its own codes (stable per endpoint) and what the
 * principal tried, for the message. Defaults: TESSERA_POLICY_DENIED / TESSERA_POLICY_USER_DENIED,
 * "<action> on <resource>".
 */
export interface RefusalWording {
  /** Code when Cedar refused the acting agent. */
  readonly denied?: ErrorCode;
  /** Code when the agent was permitted but the person it acts for was not. */
  readonly userDenied?: ErrorCode;
  /** What was tried, after "permit <principal>": "to call records/query with these arguments". */
  readonly tried?: string;
}

/**
 * The error for a refused decision — the one wording of every enforcement point (the API routes,
 * the MCP gateway's tools/call, the token endpoint's token.delegate): 403
 * TESSERA_TOKEN_INSUFFICIENT_SCOPE when the token's scope refused it — naming the scope needed in
 * `details.scope` — else `wording.userDenied` (`details.denied_for: user`) or `wording.denied`,
 * with the deciding policies in `details.policies`.
 */
export function refusalOf(d: Decision, request: PolicyRequest, wording: RefusalWording = {}): TesseraError {
  const p = request.principal;
  if (d.scopeDenied) {
    const needed = requiredScopeFor(request.resource);
    return new TesseraError('TESSERA_TOKEN_INSUFFICIENT_SCOPE', `the token scope does not cover ${needed ?? describe(request.resource)}; request a task token with that scope`, needed ? { scope: needed } : undefined);
  }
  const tried = wording.tried ?? `to ${request.action} ${describe(request.resource)}`;
  if (d.userDenied) {
    return new TesseraError(wording.userDenied ?? 'TESSERA_POLICY_USER_DENIED', `policy permits ${p.spiffeId} ${tried}, but not for user ${p.user ?? '?'} on whose behalf it acts (a User policy must permit it too)`, { policies: d.policies, user: p.user, denied_for: 'user' });
  }
  return new TesseraError(wording.denied ?? 'TESSERA_POLICY_DENIED', `policy does not permit ${p.spiffeId}${p.label ? ` (sub-agent "${p.label}")` : ''} ${tried}`, { policies: d.policies });
}
