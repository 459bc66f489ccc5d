import type { AgentPrincipal } from '../shared/principal.js';

/** Cedar actions in Tessera's schema (`Tessera::Action::"secret.read"`). */
export const POLICY_ACTIONS = ['secret.read', 'secret.inject', 'cred.issue', 'tool.call', 'http.request', 'token.delegate', 'resource.read', 'prompt.get', 'upstream.sample', 'upstream.elicit', 'role.assume'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** A resource as Tessera names it; the policy module maps it to Cedar entities (and parents). */
export type ResourceRef =
  | { readonly type: 'Secret'; readonly path: string } // parents: Folder for each path prefix
  | { readonly type: 'Role'; readonly engine: string; readonly role: string } // `postgres/readonly`
  /** An agent role (role.assume at login, docs/policies.md#roles): Cedar `Role::"<name>"`, engine "", no parent. */
  | { readonly type: 'AgentRole'; readonly name: string }
  | { readonly type: 'Tool'; readonly server: string; readonly tool: string } // parent: Server
  | { readonly type: 'Route'; readonly route: string }
  /** An MCP resource (or resource template) of an upstream server, by its upstream URI; parent: Server. `context.uri` is set from it. */
  | { readonly type: 'Resource'; readonly server: string; readonly uri: string }
  /** An MCP prompt of an upstream server; parent: Server. Its arguments go in `context.args`. */
  | { readonly type: 'Prompt'; readonly server: string; readonly prompt: string }
  /** An upstream MCP server as a whole: the resource of `upstream.sample` / `upstream.elicit` (ADR 0175). */
  | { readonly type: 'Server'; readonly server: string }
  | { readonly type: 'Agent'; readonly spiffeId: string; readonly principal?: Pick<AgentPrincipal, 'spiffeId' | 'trustDomain' | 'path' | 'attributes' | 'attestor' | 'attestorKind'> }
  /** A sub-agent without an identity: named by `label`, acting as `actingAs` (the delegating agent). */
  | { readonly type: 'SubAgent'; readonly label: string; readonly actingAs?: Pick<AgentPrincipal, 'spiffeId' | 'trustDomain' | 'path' | 'attributes' | 'attestor' | 'attestorKind'> };

export interface PolicyRequest {
  readonly principal: AgentPrincipal;
  readonly action: PolicyAction;
  readonly resource: ResourceRef;
  /**
   * Extra context: tool arguments under `args`; for token.delegate, the new task under
   * `delegation`. Task, chain, depth, label, tctx, user and scopes come from the principal.
   */
  readonly context?: Readonly<Record<string, unknown>>;
  /**
   * Whose decision: the acting workload (`agent`, the default: principal `Agent`), or the person
   * the principal acts for (`user`: principal `User` built from `principal.user` and
   * `principal.userClaims`, `context.actor` = the acting agent; only the user policies apply).
   */
  readonly principalKind?: 'agent' | 'user';
}

export interface Decision {
  readonly allowed: boolean;
  /** Ids of the policies that decided (`<file>:<index>` or the policy's `@id` annotation). */
  readonly policies: readonly string[];
  readonly errors: readonly string[];
  readonly cached: boolean;
  /** Set when the token's scope (not policy) refused the request (see scope.ts authorizeWithScope). */
  readonly scopeDenied?: boolean;
  /** Set when the agent was permitted but the person it acts for was not (pipeline/authorize.ts). */
  readonly userDenied?: boolean;
  /**
   * For a request evaluated without the real values it will carry (tools/list asks with
   * `context.args = {}`): true when some `permit` policy is satisfied, or errors (so it may hold
   * with the real arguments), and no `forbid` is satisfied. Computed from permits only: an
   * erroring `forbid` never makes it true (ADR 0140). Absent means false.
   */
  readonly mayPermit?: boolean;
}

/** What services depend on: synchronous, because the Cedar evaluator is synchronous and fast. */
export interface Authorizer {
  authorize(request: PolicyRequest): Decision;
  /**
   * Every string the active `permit` policies that can apply to `action` mention (literals,
   * entity ids, `like` patterns without wildcards). Lets a caller that must find out whether a
   * principal could be permitted *anything* in some container (the MCP gateway, before it starts
   * an upstream server for a caller) try those names. Optional: without it, callers assume yes.
   */
  literals?(action: PolicyAction): readonly string[];
}
