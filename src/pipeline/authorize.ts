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
import { TesseraError } from '../shared/errors.js';

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
  }
}

/**
 * The error for a refused decision: TESSERA_TOKEN_INSUFFICIENT_SCOPE (403) when the token's
 * scope refused it — naming the scope needed — else TESSERA_POLICY_DENIED (403) with the
 * deciding policies.
 */
export function refusalOf(d: Decision, request: PolicyRequest): TesseraError {
  if (d.scopeDenied) {
    const needed = requiredScopeFor(request.resource);
    return new TesseraError('TESSERA_TOKEN_INSUFFICIENT_SCOPE', `the token scope does not cover ${needed ?? describe(request.resource)}; request a task token with that scope`, needed ? { scope: needed } : undefined);
  }
  if (d.userDenied) {
    return new TesseraError('TESSERA_POLICY_USER_DENIED', `policy permits ${request.principal.spiffeId} to ${request.action} ${describe(request.resource)}, but not for user ${request.principal.user ?? '?'} on whose behalf it acts (a User policy must permit it too)`, { policies: d.policies, user: request.principal.user });
  }
  return new TesseraError('TESSERA_POLICY_DENIED', `policy does not permit ${request.action} on ${describe(request.resource)} for ${request.principal.spiffeId}${request.principal.label ? ` (sub-agent "${request.principal.label}")` : ''}`, { policies: d.policies });
}
