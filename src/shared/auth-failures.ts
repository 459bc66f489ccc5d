/**
 * Refused credentials per request source (issue 7 finding F5, docs/adr/0142-auth-failures-per-source.md).
 *
 * 1. **A rate of failures per source** (`server.auth_failure_rate_limit`, a token bucket keyed by
 *    sourceKey: IPv4 address, IPv6 /64). `admit()` runs before any verification — before a
 *    signature is checked, a hash computed or the store read — and refuses a source whose
 *    failures used up its bucket: 429 TESSERA_AUTH_RATE_LIMITED with `retry_after_s`. Only a
 *    refused credential takes a token (`refused()`), so a source that authenticates is never
 *    slowed down, however many requests it sends. Concurrent requests that pass `admit()` before
 *    their failures are charged can exceed the bucket by at most the requests in flight.
 * 2. **Aggregated refusal events.** Each refusal event (`auth.token_refused`, `auth.login`
 *    failures, `auth.admin_refused`) is written at most once per (kind, source, actor, resource,
 *    code) per window — a handful of codes and resources, so a few events per source at most;
 *    the next one after the window carries how many were not written since (`suppressed`, with
 *    `window_s`). An attacker presenting forged tokens is one actor (`unauthenticated`), so it
 *    writes one event per window per source; a refused *authentic* token keeps its own actor (its
 *    subject, `verified: false`), so `audit tail --actor` still finds a revoked agent's retries.
 *
 * Every refusal is counted in `tessera_auth_refusals_total{kind}`.
 */
import type { AuditEvent } from '../audit/events.js';
import type { AuditWriter } from '../audit/port.js';
import type { Clock } from './clock.js';
import { TesseraError } from './errors.js';
import { createEventWindow } from './event-window.js';
import type { LimitAuditor } from './limit-audit.js';
import type { Counter, MetricsRegistry } from './metrics.js';
import { TokenBuckets, sourceKey, type Rate } from './rate-limit.js';

/** The request facts the guard needs (a subset of RequestMeta). */
export interface SourceMeta {
  readonly source: string;
  readonly replica?: string;
  readonly requestId?: string;
}

export interface AuthFailureGuard {
  /**
   * Before any verification: throws TESSERA_AUTH_RATE_LIMITED (429, `details.retry_after_s`)
   * when this source's refused credentials used up `server.auth_failure_rate_limit`.
   */
  admit(meta: SourceMeta): void;
  /** A refused credential from this source: takes one token of its bucket. */
  charge(meta: SourceMeta): void;
  /**
   * Appends a refusal event, or counts it when one of the same kind, source, actor, resource and code was
   * written less than a window ago (the next written one says how many: `details.suppressed`).
   */
  readonly events: Pick<AuditWriter, 'append'>;
}

export const AUTH_REFUSAL_WINDOW_MS = 60_000;

type RefusalEvent = Extract<AuditEvent, { kind: 'auth.token_refused' | 'auth.login' | 'auth.admin_refused' }>;

export function createAuthFailureGuard(deps: { rate: Rate; clock: Clock; audit: Pick<AuditWriter, 'append'>; limitAudit?: LimitAuditor; metrics?: MetricsRegistry; windowMs?: number }): AuthFailureGuard {
  const windowMs = deps.windowMs ?? AUTH_REFUSAL_WINDOW_MS;
  const buckets = new TokenBuckets(deps.rate, deps.clock);
  const counter: Counter | undefined = deps.metrics?.counter('tessera_auth_refusals_total', 'Refused credentials (agent, task and admin tokens, logins), by audit event kind');
  /** One event per `kind, source, actor, resource, code` per window. */
  const refusals = createEventWindow(deps.clock, windowMs);

  return {
    admit(meta) {
      const key = sourceKey(meta.source);
      const r = buckets.peek(key);
      if (r.ok) return;
      const retry = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
      deps.limitAudit?.refused({ limit: 'auth.failures_per_source', key, actor: { id: 'unauthenticated' }, where: { source: meta.source, ...(meta.replica ? { replica: meta.replica } : {}), ...(meta.requestId ? { requestId: meta.requestId } : {}) }, retryAfterS: retry });
      throw new TesseraError('TESSERA_AUTH_RATE_LIMITED', `too many refused credentials from this address (server.auth_failure_rate_limit); retry in ${retry} s with a valid token`, { limit: 'auth.failures_per_source', retry_after_s: retry });
    },
    charge(meta) {
      buckets.take(sourceKey(meta.source));
    },
    events: {
      async append(event) {
        const e = event as RefusalEvent;
        counter?.inc({ kind: e.kind });
        const source = e.where?.source;
        const k = [e.kind, source === undefined ? '' : sourceKey(source), e.actor.id, e.resource ?? '', e.reason?.code ?? ''].join('\u0000');
        const written = refusals.pass(k);
        if (!written) return;
        const details = { ...(e.details ?? {}), ...written };
        await deps.audit.append({ ...e, details } as AuditEvent);
      },
    },
  };
}

/**
 * A refused operator credential (a bearer admin token, a console sign-in, a session cookie):
 * charged to its source's bucket and audited as `auth.admin_refused` — aggregated per window by
 * the guard, never with the credential. The refusal stands whether or not the event is written.
 */
export async function chargeOperatorRefusal(guard: AuthFailureGuard, where: SourceMeta, code: string, on: { action: string; resource: string }): Promise<void> {
  guard.charge(where);
  await guard.events.append({
    kind: 'auth.admin_refused', actor: { id: 'unauthenticated' }, action: on.action, resource: on.resource, result: 'deny',
    reason: { code }, where, details: { code },
  }).catch(() => undefined);
}
