import type { FastifyInstance } from 'fastify';
import { parseInput } from '../server/validate.js';
import { checkRequestSchema, toPolicyRequest } from './check.js';
import type { PolicyEngine } from './engine.js';

/**
 * `POST /v1/admin/policy/check`: "may this principal do this action on this resource, with
 * this context?" — evaluated against the active set (never cached) and answered with the
 * policies that decided, so operators can see why.
 */
export function registerPolicyRoutes(app: FastifyInstance, deps: { policy: Pick<PolicyEngine, 'explain' | 'status'> }): void {
  app.post('/v1/admin/policy/check', { config: { readOnly: true }, preHandler: app.requireAdmin }, async (req) => {
    const body = parseInput(checkRequestSchema, req.body, 'policy check request', 'TESSERA_POLICY_REQUEST_INVALID');
    const e = deps.policy.explain(toPolicyRequest(body));
    return { decision: e.decision, policies: e.policies, errors: e.errors };
  });

  app.get('/v1/admin/policy/status', { preHandler: app.requireAdmin }, async () => {
    const s = deps.policy.status();
    return {
      ready: s.ready,
      dir: s.dir,
      ...(s.demo ? { demo: true, configured_dir: s.configuredDir } : {}),
      policies: s.policies,
      policy_ids: s.ids,
      files: s.files,
      last_good_at: s.lastGoodAt !== undefined ? new Date(s.lastGoodAt).toISOString() : null,
      last_error: s.lastError ?? null,
      errors: s.errors,
    };
  });
}
