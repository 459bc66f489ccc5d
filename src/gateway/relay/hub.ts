/**
 * The relay hub: everything an upstream MCP server sends that is not the answer to a call —
 * progress, log messages, list changes, resource updates, sampling and elicitation requests —
 * delivered to exactly the downstream session (and request) it belongs to, or dropped.
 *
 * - Routing: progress by the gateway's own progress token (upstream.ts), anything else by
 *   attribution.ts; a message that cannot be attributed is dropped (a request: refused with
 *   TESSERA_GATEWAY_SERVER_REQUEST_UNATTRIBUTED), counted and audited once per connection.
 * - Scrubbing: every value injected into the connection, and credential shapes, are scrubbed
 *   from what is delivered (as from tool results); hits are audited
 *   (`gateway.exfiltration_suspected`).
 * - Bounds: per session, notifications being sent (`gateway.max_queued_notifications`) and per
 *   second (`gateway.notification_rate`), sampling/elicitation requests waiting
 *   (`gateway.max_server_requests_per_session`) and their timeout; beyond them messages are
 *   dropped, counted (`tessera_gateway_relay_dropped_total`) and audited once per session and
 *   reason (`gateway.notifications_dropped`).
 * - Policy: an upstream asks the agent's model (`upstream.sample`) or user (`upstream.elicit`)
 *   only when Cedar permits it for the session's principal on `Server::"<name>"` (ADR 0175),
 *   and only a client that declared the capability.
 */
import { McpError, type LoggingLevel, type RequestId, type ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import type { AuditWriter } from '../../audit/port.js';
import type { RequestAuthorizer } from '../../pipeline/authorize.js';
import { TesseraError, type ErrorCode } from '../../shared/errors.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { Counter, MetricsRegistry } from '../../shared/metrics.js';
import type { AgentPrincipal } from '../../shared/principal.js';
import { TokenBuckets } from '../../shared/rate-limit.js';
import { rpcCodeFor } from '../core.js';
import { createScrubber, type Scrubber, type ScrubHit, type SecretInput } from '../scrub/index.js';
import { attribute, type Target } from './attribution.js';
import { levelAllows } from './logging.js';
import { createSubscriptions, type Subscriptions } from './subscriptions.js';
import type { RelayConnView, RelayLimits, RelaySession } from './types.js';

export type ServerRequestMethod = 'sampling/createMessage' | 'elicitation/create';
export type DropReason = 'queue' | 'rate' | 'unattributed' | 'expired';

export interface RelayHubDeps {
  readonly authorizer: RequestAuthorizer;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics?: MetricsRegistry;
  readonly limits: RelayLimits;
}

export interface RelayHub {
  open(session: RelaySession): void;
  close(sessionId: string): void;
  isOpen(sessionId: string): boolean;
  /** `logging/setLevel` of a session (the minimum level it is sent). */
  setLevel(sessionId: string, level: LoggingLevel): void;
  /** The most verbose level the open sessions among `sessionIds` asked for (undefined: none asked). */
  levelFor(sessionIds: Iterable<string>): LoggingLevel | undefined;
  /** A progress notification of the upstream call serving `requestId`, with the client's own token. */
  progress(sessionId: string, requestId: RequestId, token: string | number, params: { progress: number; total?: number; message?: string }, secrets: readonly SecretInput[]): void;
  /** `notifications/message` from an upstream connection. */
  log(view: RelayConnView, params: { level: LoggingLevel; logger?: string; data: unknown }): void;
  /** `notifications/{tools,resources,prompts}/list_changed`: to every open session using the connection. */
  listChanged(view: RelayConnView, method: 'notifications/tools/list_changed' | 'notifications/resources/list_changed' | 'notifications/prompts/list_changed'): void;
  /** Sends one notification to each of these sessions (bounded, scrubbed by the caller). */
  notifySessions(sessionIds: Iterable<string>, server: string, notification: ServerNotification): void;
  /** `sampling/createMessage` / `elicitation/create` from an upstream: the client's answer, or a refusal (McpError). */
  serverRequest(view: RelayConnView, method: ServerRequestMethod, params: Record<string, unknown>, signal: AbortSignal): Promise<Record<string, unknown>>;
  /** Resource subscriptions made through the gateway, per upstream connection (its SDK client). */
  readonly subscriptions: Subscriptions;
  /**
   * `notifications/resources/updated` for `uri` on `connection`: to the sessions that subscribed
   * it there, as `exposedUri` — each re-authorized at delivery (`resource.read`, scope ∩ Cedar,
   * the authorizer's decision cache): a session no longer permitted has its subscription ended
   * (told, audited once; ADR 0177).
   */
  resourceUpdated(connection: object, view: RelayConnView, uri: string, exposedUri: string): void;
  /**
   * The upstream connection stopped (`cause`): its subscriptions are ended and each subscribing
   * session is told (TESSERA_GATEWAY_SUBSCRIPTION_ENDED) and audited (ADR 0177).
   */
  connectionStopped(connection: object, view: RelayConnView, cause: string, exposedUri: (uri: string) => string): void;
  /** Counts (and audits once per connection and method) a message that belongs to no request or session. */
  dropUnattributed(view: RelayConnView, method: string): void;
  /** Sessions open (tests, metrics). */
  readonly size: number;
}

interface SessionState {
  readonly session: RelaySession;
  level?: LoggingLevel;
  sending: number;
  asking: number;
  readonly dropAudited: Set<DropReason>;
}

const MAX_AUDITED_HITS = 16;
/**
 * Refused sampling/elicitation requests audited per upstream connection, method and code; the
 * rest are counted only (`tessera_gateway_relay_dropped_total{reason="refused"}`), so an upstream
 * that repeats a refused request cannot grow the audit log without bound.
 */
export const MAX_AUDITED_REFUSALS = 16;

export function createRelayHub(deps: RelayHubDeps): RelayHub {
  const { audit, logger, limits } = deps;
  const sessions = new Map<string, SessionState>();
  const subscriptions = createSubscriptions();
  const buckets = new TokenBuckets(limits.rate, deps.clock);
  const scrubbers = new WeakMap<readonly SecretInput[], Scrubber>();
  /** Methods whose unattributed messages were audited already, per connection (once each). */
  const unattributedAudited = new WeakMap<RelayConnView, Set<string>>();
  /** Refusals audited so far, per connection and `method code`. */
  const refusalsAudited = new WeakMap<RelayConnView, Map<string, number>>();
  const dropped: Counter | undefined = deps.metrics?.counter('tessera_gateway_relay_dropped_total', 'Upstream notifications and requests the gateway dropped or refused, by reason and method');
  const relayed: Counter | undefined = deps.metrics?.counter('tessera_gateway_relayed_total', 'Upstream notifications and requests the gateway delivered to a session, by method');

  const isOpen = (id: string): boolean => sessions.has(id);

  function scrubberFor(secrets: readonly SecretInput[]): Scrubber {
    let s = scrubbers.get(secrets);
    if (!s) scrubbers.set(secrets, (s = createScrubber(secrets)));
    return s;
  }

  function actor(p: AgentPrincipal): { id: string; chain?: readonly string[]; user?: string } {
    return { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) };
  }

  /** Scrubs `value` of the connection's injected values; hits are audited against the session. */
  function scrub<T>(value: T, secrets: readonly SecretInput[], server: string, method: string, st: SessionState | undefined): T {
    const s = scrubberFor(secrets).scrubValue(value);
    if (s.hits.length && st) auditHits(s.hits, server, method, st);
    return s.value;
  }

  function auditHits(hits: readonly ScrubHit[], server: string, method: string, st: SessionState): void {
    const p = st.session.principal();
    for (const h of hits.slice(0, MAX_AUDITED_HITS)) {
      void audit.append({
        kind: 'gateway.exfiltration_suspected', actor: actor(p), action: 'upstream.notify', resource: server, result: 'deny',
        reason: { message: 'a message from an upstream carried a secret value or credential shape; it was redacted before reaching the agent' },
        ...(p.task ? { txn: p.task } : {}), where: st.session.where(),
        details: { server, tool: method, hit_kind: h.kind, form: String(h.form), in_error: false, ...(h.label ? { label: h.label } : {}) },
      }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of a scrubbed upstream message failed'));
    }
  }

  function drop(st: SessionState | undefined, server: string | undefined, method: string, reason: DropReason): void {
    dropped?.inc({ reason, method });
    if (!st || st.dropAudited.has(reason)) return;
    st.dropAudited.add(reason);
    const p = st.session.principal();
    logger.warn({ server, method, reason }, 'gateway: notifications for a session were dropped (bound reached); once per session');
    void audit.append({
      kind: 'gateway.notifications_dropped', actor: actor(p), action: 'upstream.notify', resource: server ?? 'mcp', result: 'deny',
      reason: { code: 'TESSERA_GATEWAY_NOTIFICATIONS_DROPPED' }, ...(p.task ? { txn: p.task } : {}), where: st.session.where(),
      details: { ...(server ? { server } : {}), method, reason, session_hmac: audit.hmac(st.session.id) },
    }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of dropped notifications failed'));
  }

  /**
   * Whether the token of the session's latest request has expired. A session outlives its token
   * (it closes after gateway.session_idle_timeout): traffic of a request accepted while the token
   * was valid still reaches it (like that request's answer), anything else does not.
   */
  function expired(st: SessionState): boolean {
    return st.session.principal().expiresAt <= deps.clock.now();
  }

  /**
   * Sends within the session's bounds (a live token unless related to a request in flight or a
   * notice of Tessera's own, then rate, then messages being sent); false when dropped.
   */
  function deliver(st: SessionState, server: string | undefined, notification: ServerNotification, relatedRequestId?: RequestId, notice = false): boolean {
    const method = notification.method;
    if (!notice && relatedRequestId === undefined && expired(st)) {
      drop(st, server, method, 'expired');
      return false;
    }
    if (!buckets.take(st.session.id).ok) {
      drop(st, server, method, 'rate');
      return false;
    }
    if (st.sending >= limits.queue) {
      drop(st, server, method, 'queue');
      return false;
    }
    st.sending++;
    // Related to a request only when that request's answer is a stream (else the SDK would drop it).
    const related = relatedRequestId !== undefined && st.session.streams(relatedRequestId) ? { relatedRequestId } : undefined;
    st.session.server.notification(notification, related)
      .then(() => relayed?.inc({ method }))
      // The request was answered meanwhile, or the session closed: nothing to deliver to.
      .catch((e: unknown) => logger.debug({ method, err: (e as Error).message?.slice(0, 200) }, 'gateway: a relayed notification could not be sent'))
      .finally(() => st.sending--);
    return true;
  }

  function refuse(code: ErrorCode, message: string): McpError {
    return new McpError(rpcCodeFor(code), message, { code });
  }

  async function auditServerRequest(st: SessionState | undefined, server: string, method: ServerRequestMethod, result: 'allow' | 'deny' | 'error', outcome: 'answered' | 'refused' | 'failed', code: string | undefined, hits: number, policies: readonly string[] = [], lastAudited = false): Promise<void> {
    const p = st?.session.principal();
    await audit.append({
      kind: 'gateway.server_request', actor: p ? actor(p) : { id: 'system' }, action: method === 'sampling/createMessage' ? 'upstream.sample' : 'upstream.elicit', resource: server, result,
      reason: { ...(policies.length ? { policies } : {}), ...(code ? { code } : {}) },
      ...(p?.task ? { txn: p.task } : {}), ...(st ? { where: st.session.where() } : {}),
      details: { server, method, ...(st ? { session_hmac: audit.hmac(st.session.id) } : {}), ...(code ? { code } : {}), scrub_hits: hits, outcome, ...(lastAudited ? { further_refusals_not_audited: true } : {}) },
    }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of an upstream request failed'));
  }

  /** Audits a refused request, at most MAX_AUDITED_REFUSALS times per connection, method and code (the last one says so). */
  async function auditRefusal(view: RelayConnView, st: SessionState | undefined, method: ServerRequestMethod, code: ErrorCode, policies?: readonly string[]): Promise<void> {
    let seen = refusalsAudited.get(view);
    if (!seen) refusalsAudited.set(view, (seen = new Map()));
    const key = `${method} ${code}`;
    const n = seen.get(key) ?? 0;
    if (n >= MAX_AUDITED_REFUSALS) {
      dropped?.inc({ reason: 'refused', method });
      return;
    }
    seen.set(key, n + 1);
    await auditServerRequest(st, view.server, method, 'deny', 'refused', code, 0, policies, n + 1 === MAX_AUDITED_REFUSALS);
  }

  /** Ends one session's subscription: a warning log message to it, one audit event. */
  function endSubscription(sessionId: string, server: string, exposedUri: string, reason: 'denied' | 'stopped', cause?: string): void {
    const st = sessions.get(sessionId);
    if (!st) return;
    const why = reason === 'denied' ? 'policy (or the token\'s scope) no longer permits reading it, or the token expired' : `its upstream connection stopped (${cause ?? 'unknown'})`;
    deliver(st, server, { method: 'notifications/message', params: { level: 'warning', logger: 'tessera', data: { code: 'TESSERA_GATEWAY_SUBSCRIPTION_ENDED', uri: exposedUri, message: `the subscription to this resource was ended: ${why}; subscribe again if still wanted` } } }, undefined, true);
    const p = st.session.principal();
    void audit.append({
      kind: 'gateway.subscription_ended', actor: actor(p), action: 'resource.subscribe', resource: server, result: reason === 'denied' ? 'deny' : 'error',
      reason: { code: 'TESSERA_GATEWAY_SUBSCRIPTION_ENDED' }, ...(p.task ? { txn: p.task } : {}), where: st.session.where(),
      details: { server, uri_hmac: audit.hmac(exposedUri), reason, ...(cause ? { cause } : {}), session_hmac: audit.hmac(sessionId) },
    }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of an ended subscription failed'));
  }

  /** Tells the upstream of a connection that nobody here is subscribed to `uri` any more (best effort). */
  function unsubscribeUpstream(connection: object, uri: string): void {
    const upstream = connection as { unsubscribeResource?: (p: { uri: string }) => Promise<unknown> };
    void upstream.unsubscribeResource?.({ uri })?.catch(() => undefined);
  }

  function mayRead(st: SessionState, server: string, uri: string): boolean {
    const p = st.session.principal();
    // The token of the session's latest request has expired: no request of it would be served
    // now, so no update is either (the session itself lives until gateway.session_idle_timeout).
    if (p.expiresAt <= deps.clock.now()) return false;
    try {
      return deps.authorizer.authorize({ principal: p, action: 'resource.read', resource: { type: 'Resource', server, uri } }).allowed;
    } catch {
      return false;
    }
  }

  return {
    get size() {
      return sessions.size;
    },
    open(session) {
      sessions.set(session.id, { session, sending: 0, asking: 0, dropAudited: new Set() });
    },
    close(sessionId) {
      sessions.delete(sessionId);
      // The last subscriber of a URI on a shared connection is gone: the upstream stops sending.
      for (const { connection, uri } of subscriptions.closeSession(sessionId)) unsubscribeUpstream(connection, uri);
    },
    subscriptions,
    resourceUpdated(connection, view, uri, exposedUri) {
      const ids = subscriptions.sessionsFor(connection, uri).filter(isOpen);
      // Nobody subscribed it here (or the upstream names a URI it was never asked for): dropped.
      if (ids.length === 0) return this.dropUnattributed(view, 'notifications/resources/updated');
      const allowed = ids.filter((id) => {
        if (mayRead(sessions.get(id)!, view.server, uri)) return true;
        const { last } = subscriptions.remove(connection, id, uri);
        endSubscription(id, view.server, exposedUri, 'denied');
        if (last) unsubscribeUpstream(connection, uri);
        return false;
      });
      this.notifySessions(allowed, view.server, { method: 'notifications/resources/updated', params: { uri: exposedUri } });
    },
    connectionStopped(connection, view, cause, exposedUri) {
      for (const e of subscriptions.dropConnection(connection)) endSubscription(e.sessionId, view.server, exposedUri(e.uri), 'stopped', cause);
    },
    isOpen,
    setLevel(sessionId, level) {
      const st = sessions.get(sessionId);
      if (st) st.level = level;
    },
    levelFor(ids) {
      let out: LoggingLevel | undefined;
      for (const id of ids) {
        const l = sessions.get(id)?.level;
        if (l !== undefined && (out === undefined || levelAllows(out, l))) out = l;
      }
      return out;
    },
    progress(sessionId, requestId, token, params, secrets) {
      const st = sessions.get(sessionId);
      if (!st) return;
      const { progress, total, message } = params;
      const clean = message === undefined ? undefined : scrub(message, secrets, '', 'notifications/progress', st);
      deliver(st, undefined, { method: 'notifications/progress', params: { progressToken: token, progress, ...(total !== undefined ? { total } : {}), ...(clean !== undefined ? { message: clean } : {}) } }, requestId);
    },
    log(view, params) {
      const target = attribute(view.calls(), view.sessions(), isOpen);
      const st = target ? sessions.get(target.sessionId) : undefined;
      if (!target || !st) return this.dropUnattributed(view, 'notifications/message');
      if (st.level !== undefined && !levelAllows(st.level, params.level)) return;
      const clean = scrub(params, view.secrets(), view.server, 'notifications/message', st);
      deliver(st, view.server, { method: 'notifications/message', params: clean }, target.requestId);
    },
    listChanged(view, method) {
      this.notifySessions(view.sessions(), view.server, { method } as ServerNotification);
    },
    notifySessions(ids, server, notification) {
      for (const id of new Set(ids)) {
        const st = sessions.get(id);
        if (st) deliver(st, server, notification);
      }
    },
    dropUnattributed(view, method) {
      dropped?.inc({ reason: 'unattributed', method });
      let audited = unattributedAudited.get(view);
      if (!audited) unattributedAudited.set(view, (audited = new Set()));
      if (audited.has(method)) return;
      audited.add(method);
      logger.warn({ server: view.server, method }, 'gateway: an upstream message could not be attributed to one session; dropped (once per connection)');
      void audit.append({
        kind: 'gateway.notifications_dropped', actor: { id: 'system' }, action: 'upstream.notify', resource: view.server, result: 'deny',
        reason: { code: 'TESSERA_GATEWAY_SERVER_REQUEST_UNATTRIBUTED' },
        details: { server: view.server, method, reason: 'unattributed' },
      }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of an unattributed upstream message failed'));
    },
    async serverRequest(view, method, params, signal) {
      const server = view.server;
      const target: Target | undefined = attribute(view.calls(), view.sessions(), isOpen);
      const st = target ? sessions.get(target.sessionId) : undefined;
      if (!target || !st) {
        dropped?.inc({ reason: 'unattributed', method });
        await auditRefusal(view, undefined, method, 'TESSERA_GATEWAY_SERVER_REQUEST_UNATTRIBUTED');
        throw refuse('TESSERA_GATEWAY_SERVER_REQUEST_UNATTRIBUTED', `${method}: the gateway cannot tell which of the sessions using this connection the request is for; send it while serving exactly one call`);
      }
      if (target.requestId === undefined && expired(st)) {
        dropped?.inc({ reason: 'expired', method });
        await auditRefusal(view, st, method, 'TESSERA_GATEWAY_SERVER_REQUEST_DENIED');
        throw refuse('TESSERA_GATEWAY_SERVER_REQUEST_DENIED', `${method}: the token of the session this request would go to has expired, and the request is not part of a call in flight; the agent's next request with a valid token renews the session`);
      }
      const action = method === 'sampling/createMessage' ? 'upstream.sample' : 'upstream.elicit';
      let decision;
      try {
        decision = deps.authorizer.authorize({ principal: st.session.principal(), action, resource: { type: 'Server', server }, context: { args: {} } });
      } catch {
        decision = undefined;
      }
      if (!decision?.allowed) {
        await auditRefusal(view, st, method, 'TESSERA_GATEWAY_SERVER_REQUEST_DENIED', decision?.policies);
        throw refuse('TESSERA_GATEWAY_SERVER_REQUEST_DENIED', `${method}: policy does not permit upstream server "${server}" to ask this agent's ${method === 'sampling/createMessage' ? 'model' : 'user'}; an operator permits it with a Cedar permit on action ${action} (docs/gateway.md "Sampling and elicitation under policy")`);
      }
      const caps = st.session.server.getClientCapabilities();
      const mode = method === 'elicitation/create' ? (params.mode === 'url' ? 'url' : 'form') : undefined;
      const declared = method === 'sampling/createMessage'
        ? caps?.sampling !== undefined && (params.tools === undefined && params.toolChoice === undefined ? true : caps.sampling.tools !== undefined)
        // An elicitation capability without modes means form (MCP 2025-11-25 "Elicitation" §Capabilities).
        : caps?.elicitation !== undefined && (mode === 'url' ? caps.elicitation.url !== undefined : caps.elicitation.form !== undefined || caps.elicitation.url === undefined);
      if (!declared) {
        await auditRefusal(view, st, method, 'TESSERA_GATEWAY_CLIENT_CAPABILITY_MISSING', decision.policies);
        throw refuse('TESSERA_GATEWAY_CLIENT_CAPABILITY_MISSING', `${method}${mode === 'url' ? ' (url mode)' : ''}: the connected MCP client did not declare this capability`);
      }
      if (st.asking >= limits.serverRequests) {
        dropped?.inc({ reason: 'queue', method });
        await auditRefusal(view, st, method, 'TESSERA_GATEWAY_SERVER_REQUEST_LIMIT', decision.policies);
        throw refuse('TESSERA_GATEWAY_SERVER_REQUEST_LIMIT', `${method}: this session already has ${limits.serverRequests} requests waiting for its client (gateway.max_server_requests_per_session); retry later`);
      }
      const s = scrubberFor(view.secrets()).scrubValue(params);
      if (s.hits.length) auditHits(s.hits, server, method, st);
      st.asking++;
      try {
        const related = target.requestId !== undefined && st.session.streams(target.requestId) ? { relatedRequestId: target.requestId } : {};
        const options = { ...related, signal, timeout: limits.serverRequestTimeoutMs };
        const sdk = st.session.server;
        const answer = method === 'sampling/createMessage'
          ? await sdk.createMessage(s.value as never, options)
          : await sdk.elicitInput(s.value as never, options);
        relayed?.inc({ method });
        await auditServerRequest(st, server, method, 'allow', 'answered', undefined, s.hits.length, decision.policies);
        return answer as Record<string, unknown>;
      } catch (e) {
        await auditServerRequest(st, server, method, 'error', 'failed', e instanceof McpError ? `rpc:${e.code}` : undefined, s.hits.length, decision.policies);
        if (e instanceof McpError) throw e;
        throw new McpError(rpcCodeFor('TESSERA_GATEWAY_UPSTREAM_FAILED'), `${method}: the client did not answer (${e instanceof TesseraError ? e.code : 'closed or timed out'})`);
      } finally {
        st.asking--;
      }
    },
  };
}
