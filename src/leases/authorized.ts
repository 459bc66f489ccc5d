import type { Authorizer } from '../policy/types.js';
import { authorizeWithScope } from '../policy/scope.js';
import type { AuditWhere } from '../audit/events.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { fail } from '../shared/errors.js';
import type { IssuedLease, LeaseService } from './service.js';

/**
 * The one path from an agent's request to a dynamic credential, used by the HTTP route and the
 * MCP gateway alike: policy is the ceiling, the token scope (`cred:<engine>/<role>`) narrows it —
 * both must allow — and only then does the lease manager issue.
 */
export async function issueAuthorized<L = IssuedLease>(
  deps: { leases: { issue(req: Parameters<LeaseService['issue']>[0]): Promise<L> }; authorizer: Authorizer },
  req: { principal: AgentPrincipal; engine: string; role: string; ttlMs?: number; where?: AuditWhere },
): Promise<L> {
  const { principal, engine, role } = req;
  const decision = authorizeWithScope(deps.authorizer, { principal, action: 'cred.issue', resource: { type: 'Role', engine, role } });
  if (!decision.allowed) {
    if (decision.scopeDenied) throw fail('TESSERA_TOKEN_INSUFFICIENT_SCOPE', `the token scope does not include cred:${engine}/${role}; request a task token with that scope`);
    throw fail('TESSERA_POLICY_DENIED', `policy does not permit cred.issue on ${engine}/${role} for ${principal.spiffeId}`, { policies: decision.policies });
  }
  return deps.leases.issue({ engine, role, principal, ...(req.ttlMs !== undefined ? { ttlMs: req.ttlMs } : {}), ...(req.where ? { where: req.where } : {}) });
}
