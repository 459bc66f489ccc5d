/**
 * The PROVIDERS part wired into the request path (docs/proxy-providers.md; ADR 0215): per-route
 * limits admitted before the credential step, the preset's required headers, the OpenAI
 * stream-usage option on routes with a token limit, and the response's usage read while it
 * streams (a tee: the body is never held for it, except a JSON body up to the reader's bound).
 *
 * Limit keys: the agent (SPIFFE ID), the task (the task token's own id, `txn` in the audit — a
 * sub-task is counted as its own task, and always as its agent and user) and the user.
 */
import type { AgentPrincipal } from '../shared/principal.js';
import { limitError, type LimitKeys, type ProxyLimits, type RouteLimits } from './limits.js';
import { toRouteLimits } from './provider-schema.js';
import { PRESETS, missingDefaultHeaders } from './providers.js';
import { createUsageReader, withStreamUsage, type UsageReader } from './usage.js';
import type { CompiledRoute } from './route-table.js';

/** What one admitted request carries to the response. */
export interface Metered {
  readonly keys: LimitKeys;
}

export interface ProxyMetering {
  /**
   * Counts the request against the route's limits (and for the usage API when it has none).
   * @throws 429 TESSERA_PROXY_RATE_LIMITED (Retry-After) / 503 TESSERA_PROXY_LIMITS_FULL.
   */
  admit(route: CompiledRoute, principal: AgentPrincipal): Metered;
  /** The request body must be read whole to rewrite it (an OpenAI route with a `tokens` limit and a JSON body). */
  needsBody(route: CompiledRoute): boolean;
  /** The body to send instead (OpenAI stream asking for usage), or undefined to send it unchanged. */
  rewriteBody(route: CompiledRoute, body: Buffer, contentType: string | undefined): Buffer | undefined;
  /** The preset's required headers (`anthropic-version`) the agent did not send. */
  extraHeaders(route: CompiledRoute, sent: Readonly<Record<string, unknown>>): Record<string, string>;
  /**
   * A reader of the response's usage for a 2xx answer on a route whose preset reports usage
   * (undefined otherwise): `push` each body chunk, `end()` records it for the request's keys.
   */
  usageTap(route: CompiledRoute, metered: Metered, status: number, contentType: string | undefined): { push(chunk: Buffer): void; end(): void } | undefined;
}

export function createProxyMetering(limits: ProxyLimits): ProxyMetering {
  const compiled = new WeakMap<CompiledRoute, RouteLimits | null>();
  const limitsOf = (r: CompiledRoute): RouteLimits | undefined => {
    let l = compiled.get(r);
    if (l === undefined) {
      l = r.config.limits ? toRouteLimits(r.config.limits) : null;
      compiled.set(r, l);
    }
    return l ?? undefined;
  };
  const usageKind = (r: CompiledRoute) => (r.config.preset ? PRESETS[r.config.preset].usage : undefined);
  return {
    admit(route, principal) {
      const keys: LimitKeys = { agent: principal.spiffeId, ...(principal.task ? { task: principal.task } : {}), ...(principal.user ? { user: principal.user } : {}) };
      const a = limits.admit(route.name, keys, limitsOf(route));
      if (!a.ok) throw limitError(route.name, a);
      return { keys };
    },
    needsBody(route) {
      return usageKind(route) === 'openai' && limitsOf(route)?.tokens !== undefined;
    },
    rewriteBody(route, body, contentType) {
      return this.needsBody(route) ? withStreamUsage(body, contentType) : undefined;
    },
    extraHeaders(route, sent) {
      return route.config.preset ? missingDefaultHeaders(route.config.preset, sent) : {};
    },
    usageTap(route, metered, status, contentType) {
      const kind = usageKind(route);
      if (!kind || status < 200 || status >= 300) return undefined;
      const reader: UsageReader = createUsageReader(kind, contentType);
      let done = false;
      return {
        push: (c) => reader.push(c),
        end() {
          if (done) return;
          done = true;
          const u = reader.end();
          if (u) limits.record(route.name, metered.keys, u);
        },
      };
    },
  };
}
