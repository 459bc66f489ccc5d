import type { AgentPrincipal } from '../../src/shared/principal.js';
import type { ToolCallContext } from '../../src/gateway/types.js';

export const principal: AgentPrincipal = {
  spiffeId: 'spiffe://test.local/agent/a1',
  trustDomain: 'test.local',
  path: '/agent/a1',
  attributes: {},
  jti: 'jti-1',
  expiresAt: Date.UTC(2030, 0, 1),
};

export interface TestContext extends ToolCallContext {
  readonly resolved: string[];
  readonly sensitive: string[];
  readonly issued: string[];
  readonly revoked: string[];
}

/**
 * The gateway core's side of a call, as the core supplies it: kv secrets from a map (the core
 * would policy-check `secret.inject` and register them with its scrubber), dynamic credentials
 * from `issue` (a real PostgreSQL role in the postgres tests).
 */
export function testContext(opts: {
  secrets?: Record<string, string>;
  issue?: (engine: string, role: string, ttlMs?: number) => Promise<{ leaseId: string; data: Record<string, unknown> }>;
  revoke?: (leaseId: string) => Promise<void>;
  downstream?: (audience: string, ttlMs: number) => Promise<string>;
  signal?: AbortSignal;
} = {}): TestContext {
  const resolved: string[] = [];
  const sensitive: string[] = [];
  const issued: string[] = [];
  const revoked: string[] = [];
  const ctx: TestContext = {
    principal,
    where: { source: 'test' },
    signal: opts.signal ?? new AbortController().signal,
    resolved,
    sensitive,
    issued,
    revoked,
    async resolveSecret(path) {
      const v = opts.secrets?.[path];
      if (v === undefined) throw new Error(`no secret ${path}`);
      resolved.push(path);
      sensitive.push(v);
      return v;
    },
    async issueCredential(engine, role, ttlMs) {
      if (!opts.issue) throw new Error('no engine');
      const c = await opts.issue(engine, role, ttlMs);
      issued.push(c.leaseId);
      for (const v of Object.values(c.data)) if (typeof v === 'string') sensitive.push(v);
      return c;
    },
    addSensitive(value) {
      sensitive.push(value);
    },
    async downstreamToken(audience, ttlMs) {
      if (!opts.downstream) throw new Error('no downstream token minter in this test');
      return opts.downstream(audience, ttlMs);
    },
    ...(opts.revoke
      ? {
          async revokeCredential(leaseId: string) {
            revoked.push(leaseId);
            await opts.revoke!(leaseId);
          },
        }
      : {}),
  };
  return ctx;
}
