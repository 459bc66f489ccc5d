/**
 * Roles at login (docs/policies.md#roles, K8S-CONTRACT "Role"): a login token exchange may carry
 * `scope=role:<name>`; Cedar decides with `Action::"role.assume"` on `Role::"<name>"` for the
 * attested identity; permitted, the agent token carries `tessera.role` and every later decision
 * sees `context.role` (task tokens opened or acted in by the agent carry it too). Pure.
 */
import { fail } from '../shared/errors.js';
import { ROLE_NAME_RULE, isRoleName, provenAttributes, type AgentPrincipal } from '../shared/principal.js';
import type { Authorizer } from '../policy/types.js';
import { parseSpiffeId } from './spiffe-id.js';
import type { AttestedIdentity } from './types.js';

const PREFIX = 'role:';

/**
 * The role a login's `scope` asks for: undefined without a scope; else exactly one `role:<name>`
 * (RFC 6749 §3.3 space-separated). Throws TESSERA_ROLE_INVALID for anything else.
 */
export function loginRole(scope: string | undefined): string | undefined {
  if (scope === undefined) return undefined;
  const items = scope.split(' ').filter((s) => s.length > 0);
  if (items.length === 0) return undefined;
  if (items.length > 1) throw fail('TESSERA_ROLE_INVALID', 'a login may ask for one role only: scope=role:<name>');
  const item = items[0]!;
  if (!item.startsWith(PREFIX)) throw fail('TESSERA_ROLE_INVALID', 'at login, scope may only name a role (scope=role:<name>); task scopes go with the task exchange');
  const name = item.slice(PREFIX.length);
  if (!isRoleName(name)) throw fail('TESSERA_ROLE_INVALID', `a role name is ${ROLE_NAME_RULE}`);
  return name;
}

/** The principal Cedar sees for an identity that has no token yet (the login being decided). */
export function loginPrincipal(identity: AttestedIdentity): AgentPrincipal {
  const id = parseSpiffeId(identity.spiffeId);
  return {
    spiffeId: identity.spiffeId,
    trustDomain: id.trustDomain,
    path: id.path,
    attributes: { ...provenAttributes(identity.attestorKind, identity.attributes), attestor: identity.attestor },
    attestor: identity.attestor,
    attestorKind: identity.attestorKind,
    jti: 'login',
    expiresAt: 0,
    tokenKind: 'agent',
  };
}

/** Throws TESSERA_ROLE_NOT_PERMITTED unless Cedar permits `role.assume` of `role` for the identity. */
export function requireRole(authorizer: Pick<Authorizer, 'authorize'> | undefined, identity: AttestedIdentity, role: string): readonly string[] {
  const decision = authorizer?.authorize({ principal: loginPrincipal(identity), action: 'role.assume', resource: { type: 'AgentRole', name: role } });
  if (!decision?.allowed) {
    throw fail('TESSERA_ROLE_NOT_PERMITTED', `no policy permits ${identity.spiffeId} to assume role "${role}" (Tessera::Action::"role.assume" on Tessera::Role::"${role}")`, { role });
  }
  return decision.policies;
}
