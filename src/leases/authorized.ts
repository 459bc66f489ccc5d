import type { RequestAuthorizer } from '../pipeline/authorize.js';
import { refusalOf } from '../pipeline/authorize.js';
import type { AuditWhere } from '../audit/events.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { IssuedLease, LeaseService } from './service.js';

/**
 * The one path from an agent's request to a dynamic credential, used by the HTTP route and the
 * MCP gateway alike: the request pipeline's authorizer (token scope `cred:<engine>/<role>` ∩
 * Cedar `cred.issue` for the acting agent) must allow, and only then does the lease manager issue.
 */
export async function issueAuthorized<L = IssuedLease>(
  deps: { leases: { issue(req: Parameters<LeaseService['issue']>[0]): Promise<L> }; authorizer: RequestAuthorizer },
  req: { principal: AgentPrincipal; engine: string; role: string; ttlMs?: number; where?: AuditWhere },
): Promise<L> {
  const { principal, engine, role } = req;
  const request = { principal, action: 'cred.issue', resource: { type: 'Role', engine, role } } as const;
  const decision = deps.authorizer.authorize(request);
  if (!decision.allowed) throw refusalOf(decision, request);
  return deps.leases.issue({ engine, role, principal, ...(req.ttlMs !== undefined ? { ttlMs: req.ttlMs } : {}), ...(req.where ? { where: req.where } : {}) });
}
