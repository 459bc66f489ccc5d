/**
 * Audit of limit refusals without storms (docs/adr/0062-per-principal-limits.md): every refusal
 * is counted in `tessera_limit_refusals_total{limit}`, but at most one `limit.exceeded` audit
 * event is written per (limit, principal or source) per window; the next event after a window
 * carries how many refusals of that key were not audited in between (`suppressed`).
 *
 * A refusal never waits for the audit write, and a failed write does not change the answer:
 * the request is refused either way (failing closed is already the refusal).
 */
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { AuditWriter } from '../audit/port.js';
import type { Clock } from './clock.js';
import type { ErrorCode } from './errors.js';
import { createEventWindow } from './event-window.js';
import type { Logger } from './logger.js';
import type { Counter, MetricsRegistry } from './metrics.js';

/** Which limit refused (metric label, audit `details.limit`, docs/configuration.md "Limits"). */
export type LimitName =
  | 'gateway.requests_per_agent'
  | 'gateway.sessions_per_agent'
  | 'gateway.sessions_per_attestor'
  | 'gateway.sessions'
  | 'gateway.inflight_per_agent'
  | 'gateway.inflight_per_session'
  | 'gateway.upstream_processes_per_agent'
  | 'login.per_identity'
  | 'login.per_source'
  | 'task.per_agent'
  | 'auth.failures_per_source';

export interface LimitRefusal {
  readonly limit: LimitName;
  /** The principal (SPIFFE ID) or source key the limit applies to. */
  readonly key: string;
  readonly actor: AuditActor;
  readonly where?: AuditWhere;
  /** Seconds until a retry may succeed (the Retry-After sent). */
  readonly retryAfterS: number;
}

export interface LimitAuditor {
  refused(r: LimitRefusal): void;
}

export const LIMIT_AUDIT_WINDOW_MS = 60_000;

export function createLimitAuditor(deps: { audit: AuditWriter; clock: Clock; logger?: Logger; metrics?: MetricsRegistry; windowMs?: number }): LimitAuditor {
  const windowMs = deps.windowMs ?? LIMIT_AUDIT_WINDOW_MS;
  const counter: Counter | undefined = deps.metrics?.counter('tessera_limit_refusals_total', 'Requests refused by a per-principal or per-source limit, by limit');
  /** One event per `limit \0 key` per window. */
  const refusals = createEventWindow(deps.clock, windowMs);

  return {
    refused(r) {
      counter?.inc({ limit: r.limit });
      const written = refusals.pass(`${r.limit}\u0000${r.key}`);
      if (!written) return;
      void deps.audit.append({
        kind: 'limit.exceeded', actor: r.actor, action: 'limit.refuse', resource: r.limit, result: 'deny',
        reason: { code: codeOf(r.limit) }, ...(r.where ? { where: r.where } : {}),
        details: { limit: r.limit, retry_after_s: r.retryAfterS, ...written },
      }).catch((e: unknown) => deps.logger?.warn({ err: (e as Error).message, limit: r.limit }, 'audit of a limit refusal failed'));
    },
  };
}

/** The error code a refusal by this limit carries. */
export function codeOf(limit: LimitName): ErrorCode {
  if (limit.startsWith('login.')) return 'TESSERA_LOGIN_RATE_LIMITED';
  if (limit === 'auth.failures_per_source') return 'TESSERA_AUTH_RATE_LIMITED';
  if (limit === 'task.per_agent') return 'TESSERA_TASK_RATE_LIMITED';
  if (limit === 'gateway.requests_per_agent') return 'TESSERA_GATEWAY_RATE_LIMITED';
  if (limit === 'gateway.sessions') return 'TESSERA_GATEWAY_BUSY';
  if (limit === 'gateway.sessions_per_agent' || limit === 'gateway.sessions_per_attestor') return 'TESSERA_GATEWAY_SESSION_LIMIT';
  if (limit === 'gateway.upstream_processes_per_agent') return 'TESSERA_GATEWAY_UPSTREAM_LIMIT';
  return 'TESSERA_GATEWAY_INFLIGHT_LIMIT';
}
