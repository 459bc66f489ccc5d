/**
 * `/mcp`: MCP Streamable HTTP (spec 2025-11-25 "Transports", backwards compatible with
 * 2025-06-18 and 2025-03-26 as the SDK negotiates) on the Tessera fastify app, and the RFC 9728
 * protected resource metadata that points MCP clients at Tessera as authorization server.
 *
 * Each session has its own low-level SDK `Server` (tools are computed per caller) and
 * `StreamableHTTPServerTransport`. A session is bound to the agent that opened it: its id
 * presented with another agent's (or task's) token is answered like an unknown session.
 * Every request carries and re-verifies its own bearer token (MCP authorization spec
 * 2025-11-25 §"Token Handling": "authorization MUST be included in every HTTP request").
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { CallToolRequestSchema, ListToolsRequestSchema, LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditWhere } from '../audit/events.js';
import { retryAfterOf, type AgentAuthenticator } from '../server/app.js';
import type { RevocationSubject } from '../shared/revocation.js';
import { dpopChallengeOf, dpopWwwAuthenticate, parseAuthorization, type DpopGuard } from '../dpop/index.js';
import { ERROR_CATALOGUE, TesseraError, isTesseraError, type ErrorCode } from '../shared/errors.js';
import { redactCredentialLike } from '../shared/credential-like.js';
import { MAX_JSON_DEPTH, checkJsonInput } from '../shared/json-depth.js';
import type { Logger } from '../shared/logger.js';
import type { Clock } from '../shared/clock.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { Gauge, MetricsRegistry } from '../shared/metrics.js';
import { TokenBuckets, type Rate } from '../shared/rate-limit.js';
import { codeOf, type LimitAuditor, type LimitName } from '../shared/limit-audit.js';
import { RPC, RpcError, createResponseBudget, responseTooLarge, rpcCodeFor, type GatewayCore, type ResponseBudget } from './core.js';
import { MessageRefusal, batchingAllowed, checkBody, duplicateIds, idKey, type InboundBody } from './messages.js';
import { bearerChallenge } from '../shared/www-authenticate.js';
import type { RelayHub } from './relay/hub.js';
import { installSessionRelay, wantsStream } from './relay/downstream.js';
import { requestStreaming, type RequestStreaming } from './relay/streaming.js';
import type { GatewayFeatures } from './features.js';

export { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS };

export const MCP_PATH = '/mcp';
export const RESOURCE_METADATA_PATH = '/.well-known/oauth-protected-resource/mcp';

/** What the session layer asks the kill switch (token, agent, task and ancestors, user, chain). */
export interface PrincipalRevocationCheck {
  isPrincipalRevoked(p: RevocationSubject): boolean;
}

export interface McpHttpDeps {
  readonly core: GatewayCore;
  /**
   * The request pipeline's authenticate step for the gateway's audience (`<issuer>/mcp`): the
   * token, its revocation and its DPoP binding (src/pipeline/authenticate.ts).
   */
  readonly authenticator: AgentAuthenticator;
  /** DPoP (RFC 9449): the server nonce for answers to DPoP requests, and the settings the metadata publishes. */
  readonly dpop: Pick<DpopGuard, 'settings' | 'nonce'>;
  readonly revocations: PrincipalRevocationCheck;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics?: MetricsRegistry;
  readonly issuer: string;
  readonly version: string;
  readonly maxMessageBytes: number;
  readonly maxSessions: number;
  readonly sessionIdleTimeoutMs: number;
  /** Per-agent bounds (docs/configuration.md "gateway"): one agent cannot take what the others need. */
  readonly limits: GatewayLimits;
  /** Audits refusals by a limit, at most one event per agent and limit per window. */
  readonly limitAudit?: LimitAuditor;
  /** Closes the upstream connections of one session (per_session isolation). */
  readonly onSessionClosed: (sessionId: string) => void;
  /** Delivers upstream notifications and requests to sessions (src/gateway/relay). */
  readonly relay?: RelayHub;
  /** Resources, prompts and completion (features.ts): capabilities per caller and their handlers. */
  readonly features?: GatewayFeatures;
}

export interface GatewayLimits {
  /** Open (and opening) sessions per agent (SPIFFE ID). */
  readonly sessionsPerAgent: number;
  /**
   * Open (and opening) sessions of all identities one attestor proved, by attestor name
   * (undefined: an identity without a known attestor, counted by its SPIFFE ID prefix). ADR 0143.
   */
  readonly sessionsPerAttestor: (attestor: string | undefined) => number;
  /** POST requests being answered at once, per agent and per session. */
  readonly inflightPerAgent: number;
  readonly inflightPerSession: number;
  /** Requests per second per agent; every message of a batch takes one. */
  readonly rate: Rate;
  /** Messages in one JSON-RPC batch (protocol versions before 2025-06-18 only). */
  readonly batchMessages: number;
  /** Bytes of one HTTP request's results together (a batch's). */
  readonly responseBytes: number;
}

interface Session {
  readonly id: string;
  readonly binding: string;
  /** The agent (SPIFFE ID) the session counts against. */
  readonly agent: string;
  /** The attestor (or identity prefix) the session also counts against (attestorKeyOf). */
  readonly attestor: string;
  lastSeen: number;
  /** performance.now() of the last request: the idle expiry counts from it. */
  touchedAt: number;
  inflight: number;
  /** Ids of the session's requests in flight (idKey): a duplicate would leave one unanswered. */
  readonly ids: Set<string>;
  /** The protocol version negotiated at initialize (decides whether batches are allowed). */
  readonly protocolVersion: string;
  principal: AgentPrincipal;
  readonly server: Server;
  readonly transport: StreamableHTTPServerTransport;
  /** Which of its POSTs are answered on an SSE stream (relay/streaming.ts). */
  readonly streaming: RequestStreaming;
  readonly abort: AbortController;
  /** Responses waiting for a JSON answer: ended by the gateway if the session closes first. */
  readonly pending: Set<ServerResponse>;
  idle?: NodeJS.Timeout;
  closed: boolean;
}

/** What one HTTP request hands its handlers (`req.auth.extra`). */
interface RequestInfo {
  readonly principal: AgentPrincipal;
  readonly where: AuditWhere;
  readonly budget?: ResponseBudget;
  /** The joined signals its handlers got (callerOf), dropped from the session's `live` set when it ends. */
  joined?: AbortController[];
  live?: Set<AbortController>;
}

export interface McpHttp {
  register(app: FastifyInstance): void;
  /** Closes every session whose principal is now revoked; returns how many. */
  closeRevoked(): Promise<number>;
  closeAll(cause: string): Promise<void>;
  readonly sessionCount: number;
  /** Principals of the open sessions (upstream cleanup on revocation). */
  principals(): AgentPrincipal[];
}

/** Decrements a per-agent count, dropping the entry at zero (the maps hold only active agents). */
function release(counts: Map<string, number>, agent: string): void {
  const n = (counts.get(agent) ?? 0) - 1;
  if (n > 0) counts.set(agent, n);
  else counts.delete(agent);
}

/**
 * What an identity's sessions are counted against besides its SPIFFE ID: the attestor that proved
 * it, or — when unknown — its trust domain and first path segment (attestors' templates start
 * with a segment of their own, docs/attestors.md), so identities minted per CI pipeline or
 * project by one attestor share one quota (ADR 0143).
 */
export function attestorKeyOf(p: Pick<AgentPrincipal, 'attestor' | 'trustDomain' | 'path'>): string {
  if (p.attestor !== undefined) return `attestor:${p.attestor}`;
  return `prefix:spiffe://${p.trustDomain}/${p.path.split('/').filter(Boolean)[0] ?? ''}`;
}

const bindingOf = (p: AgentPrincipal): string => `${p.spiffeId}\n${p.task ?? ''}\n${p.user ?? ''}`;

/**
 * Bounds every part of the message(s) but `tools/call` arguments to MAX_JSON_DEPTH (ADR 0041);
 * the core bounds the arguments and audits that refusal like any refused tool call.
 */
function checkMessageDepth(body: unknown): void {
  const limit = Array.isArray(body) ? MAX_JSON_DEPTH - 1 : MAX_JSON_DEPTH;
  for (const m of Array.isArray(body) ? body : [body]) {
    if (m === null || typeof m !== 'object') continue;
    const msg = m as { params?: unknown };
    const params = msg.params !== null && typeof msg.params === 'object' && !Array.isArray(msg.params) ? (msg.params as Record<string, unknown>) : undefined;
    const rest = params && 'arguments' in params ? { ...msg, params: { ...params, arguments: null } } : msg;
    checkJsonInput(rest, 'the MCP message', limit);
  }
}

function jsonRpcError(code: number, message: string, data?: Record<string, unknown>, id: unknown = null): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code, message, ...(data ? { data } : {}) } });
}

export function createMcpHttp(deps: McpHttpDeps): McpHttp {
  const { core, audit, logger } = deps;
  const resource = `${deps.issuer}${MCP_PATH}`;
  const metadataUrl = `${deps.issuer}${RESOURCE_METADATA_PATH}`;
  /** The SDK's `authInfo.resource` of every request (read only; parsed once). */
  const resourceUrl = new URL(resource);
  const sessions = new Map<string, Session>();
  /** Sessions per agent, open or being opened (an initialize in progress holds a place). */
  const agentSessions = new Map<string, number>();
  /** Sessions per attestor (attestorKeyOf), open or being opened. */
  const attestorSessions = new Map<string, number>();
  /** Initialize requests in progress (they count against max_sessions until they open or fail). */
  let opening = 0;
  const inflightByAgent = new Map<string, number>();
  const buckets = new TokenBuckets(deps.limits.rate, deps.clock);
  const gauge: Gauge | undefined = deps.metrics?.gauge('tessera_gateway_sessions', 'Open MCP sessions');
  let closing = false;

  function where(app: FastifyInstance, req: FastifyRequest): AuditWhere {
    const m = app.requestMeta(req);
    return { source: m.source, replica: m.replica, requestId: m.requestId };
  }

  /** Writes an error on the raw response (after hijack, or before the transport). */
  function sendRaw(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(body);
  }

  function sendTessera(reply: FastifyReply, err: TesseraError, requestId: string, extraHeaders: Record<string, string> = {}): void {
    const headers: Record<string, string> = { ...extraHeaders };
    const retry = retryAfterOf(err);
    if (retry !== undefined) headers['retry-after'] = String(retry); // RFC 9110 §10.2.3
    const dpop = dpopChallengeOf(err);
    if (dpop?.nonce) headers['dpop-nonce'] = dpop.nonce; // RFC 9449 §9
    if (err.status === 401) {
      // MCP authorization (2025-11-25) §"Protected Resource Metadata Discovery" + RFC 9728 §5.1;
      // RFC 6750 §3.1: `error="invalid_token"` only when a token was presented; RFC 9449 §7.1:
      // a DPoP request is answered with a DPoP challenge.
      headers['www-authenticate'] = dpop
        ? dpopWwwAuthenticate(err, dpop, { resource_metadata: metadataUrl })
        : err.code === 'TESSERA_TOKEN_MISSING'
          ? bearerChallenge({ resource_metadata: metadataUrl })
          : bearerChallenge({ error: 'invalid_token', error_description: err.message, resource_metadata: metadataUrl });
    }
    void reply.code(err.status).headers(headers).header('content-type', 'application/json').send(jsonRpcError(rpcCodeFor(err.code), err.message, { code: err.code, request_id: requestId, ...(retry !== undefined ? { retry_after_s: retry } : {}) }));
  }

  async function authenticate(app: FastifyInstance, req: FastifyRequest, reply: FastifyReply): Promise<{ principal: AgentPrincipal; token: string }> {
    const presented = parseAuthorization(req.headers.authorization);
    if (!presented) throw new TesseraError('TESSERA_TOKEN_MISSING', `the MCP gateway needs \`Authorization: Bearer <agent or task token>\` (or \`Authorization: DPoP <token>\` and a \`DPoP\` proof for a DPoP-bound token) with audience ${resource}; see ${metadataUrl}`);
    if (presented.scheme === 'DPoP') {
      // RFC 9449 §9: the current server nonce on every answer to a DPoP request (raw: /mcp hijacks).
      const nonce = deps.dpop.nonce();
      if (nonce) reply.raw.setHeader('dpop-nonce', nonce);
    }
    // The request pipeline's authenticate step, on every request: agent or task token for this
    // resource only (no token passthrough), revocation of the token, agent, task and its
    // ancestors, user and chain, then its DPoP binding for this very request (RFC 9449 §7: a
    // proof per HTTP request, never cached), refusals audited. The token service's cache spares
    // the ES256 work for a token seen before and ends with the auth epoch (docs/adr/0061).
    const token = presented.token;
    const principal = await deps.authenticator.authenticate(token, app.requestMeta(req), { scheme: presented.scheme, method: req.method, target: req.url, proof: req.headers.dpop });
    return { principal, token };
  }

  function isRevoked(p: AgentPrincipal): boolean {
    return deps.revocations.isPrincipalRevoked(p);
  }

  /**
   * A request of the session: its idle expiry starts again. One timer per session, re-armed when
   * it fires early (not a new timer per request: ADR 0294); the expiry is measured on the
   * monotonic clock from the last request.
   */
  function touch(s: Session): void {
    s.lastSeen = deps.clock.now();
    s.touchedAt = performance.now();
    if (!s.idle) armIdle(s, deps.sessionIdleTimeoutMs);
  }

  function armIdle(s: Session, ms: number): void {
    s.idle = setTimeout(() => {
      s.idle = undefined;
      if (s.closed) return;
      const left = s.touchedAt + deps.sessionIdleTimeoutMs - performance.now();
      if (left > 0) armIdle(s, Math.ceil(left));
      else void closeSession(s, 'idle');
    }, ms);
    s.idle.unref();
  }

  async function closeSession(s: Session, cause: string): Promise<void> {
    if (s.closed) return;
    s.closed = true;
    if (s.idle) clearTimeout(s.idle);
    sessions.delete(s.id);
    release(agentSessions, s.agent);
    release(attestorSessions, s.attestor);
    gauge?.set(sessions.size);
    deps.relay?.close(s.id);
    s.abort.abort(new TesseraError(cause === 'revoked' ? 'TESSERA_TOKEN_REVOKED' : 'TESSERA_GATEWAY_SESSION_NOT_FOUND', `the MCP session was closed (${cause})`));
    // JSON-mode responses still waiting would hang once the transport forgets them: answer them.
    const code: ErrorCode = cause === 'revoked' ? 'TESSERA_TOKEN_REVOKED' : cause === 'shutdown' ? 'TESSERA_GATEWAY_CLOSED' : 'TESSERA_GATEWAY_SESSION_NOT_FOUND';
    const status = cause === 'revoked' ? 401 : cause === 'shutdown' ? 503 : 404;
    for (const res of s.pending) {
      sendRaw(res, status, jsonRpcError(rpcCodeFor(code), `the MCP session was closed (${cause})`, { code }), cause === 'revoked' ? { 'www-authenticate': bearerChallenge({ error: 'invalid_token', resource_metadata: metadataUrl }) } : {});
    }
    s.pending.clear();
    try {
      await s.transport.close();
      await s.server.close();
    } catch {
      // closing twice is harmless
    }
    deps.onSessionClosed(s.id);
    await audit.append({
      kind: 'gateway.session_closed', actor: { id: s.principal.spiffeId, ...(s.principal.chain ? { chain: s.principal.chain } : {}) }, action: 'gateway.session.close', resource: 'mcp', result: 'success',
      ...(s.principal.task ? { txn: s.principal.task } : {}),
      details: { session_hmac: audit.hmac(s.id), cause },
    }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of session close failed'));
  }

  /** A session being opened: `opened` turns true once the transport has created it. */
  function newSession(principal: AgentPrincipal, w: AuditWhere, protocolVersion: string): { transport: StreamableHTTPServerTransport; readonly opened: boolean } {
    // Advertised from what this caller may use (features.ts capabilitiesFor).
    const capabilities = deps.features?.capabilities(principal) ?? { tools: { listChanged: false } };
    const server = new Server(
      { name: 'tessera', version: deps.version, title: 'Tessera MCP gateway' },
      { capabilities, instructions: 'Tools are named <server>__<tool>, as tools/list shows them. Credentials are injected by Tessera; you never need an API key.' },
    );
    const abort = new AbortController();
    let session: Session;
    let opened = false;
    // eslint-disable-next-line prefer-const -- assigned right after the transport it wraps
    let streaming: RequestStreaming;
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      // One JSON response per POST (spec: "the server MUST either return Content-Type:
      // text/event-stream … or Content-Type: application/json"): tool calls here do not stream.
      enableJsonResponse: true,
      onsessioninitialized: (id) => {
        opened = true;
        session = { id, binding: bindingOf(principal), agent: principal.spiffeId, attestor: attestorKeyOf(principal), lastSeen: deps.clock.now(), touchedAt: performance.now(), inflight: 0, ids: new Set(), protocolVersion, principal, server, transport, streaming, abort, pending: new Set(), closed: false };
        sessions.set(id, session);
        const s = session;
        deps.relay?.open({ id, server, principal: () => s.principal, where: () => w, streams: (rid) => streaming.streams(rid) });
        gauge?.set(sessions.size);
        touch(session);
        void audit.append({
          kind: 'gateway.session_opened', actor: { id: principal.spiffeId, ...(principal.chain ? { chain: principal.chain } : {}) }, action: 'gateway.session.open', resource: 'mcp', result: 'success', where: w,
          ...(principal.task ? { txn: principal.task } : {}),
          details: { session_hmac: audit.hmac(id), protocol_version: protocolVersion },
        }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of session open failed'));
      },
    });
    streaming = requestStreaming(transport);
    transport.onclose = () => {
      if (session && !session.closed) void closeSession(session, 'client');
    };
    // The signals of the session's requests in flight, aborted with the session's reason when it
    // closes. Not AbortSignal.any: on Node 20 it ties weak references (and a finalization
    // registry entry) to the long-lived session signal for every request (ADR 0294).
    const live = new Set<AbortController>();
    abort.signal.addEventListener('abort', () => {
      for (const c of live) c.abort(abort.signal.reason);
      live.clear();
    }, { once: true });
    /** The request's signal joined with the session's: aborted by whichever comes first, with its reason. */
    const joined = (request: AbortSignal, info: RequestInfo): AbortSignal => {
      if (abort.signal.aborted) return abort.signal;
      if (request.aborted) return request;
      const ac = new AbortController();
      live.add(ac);
      request.addEventListener('abort', () => {
        live.delete(ac);
        ac.abort(request.reason);
      }, { once: true });
      // Forgotten when the HTTP request ends (its handlers have answered).
      (info.joined ??= []).push(ac);
      info.live = live;
      return ac.signal;
    };
    const callerOf = (extra: { authInfo?: { extra?: Record<string, unknown> }; sessionId?: string; signal: AbortSignal; requestId: RequestId; _meta?: { progressToken?: unknown } }) => {
      const info = extra.authInfo?.extra as RequestInfo | undefined;
      if (!info) throw new RpcError(RPC.FORBIDDEN, 'unauthenticated request', { code: 'TESSERA_TOKEN_MISSING' });
      // The client's progress token stays here: the upstream gets the SDK's own (relay/hub.ts).
      const token = extra._meta?.progressToken;
      return {
        caller: {
          principal: info.principal, sessionId: extra.sessionId ?? '', where: info.where, rpcId: extra.requestId,
          ...(typeof token === 'string' || typeof token === 'number' ? { progressToken: token } : {}),
          ...(info.where.requestId ? { requestId: info.where.requestId } : {}), ...(info.budget ? { budget: info.budget } : {}),
        },
        signal: joined(extra.signal, info),
      };
    };
    server.setRequestHandler(ListToolsRequestSchema, async (_req, extra) => {
      const { caller, signal } = callerOf(extra);
      try {
        const tools = await core.listTools(caller, signal);
        if (caller.budget && !caller.budget.charge(Buffer.byteLength(JSON.stringify(tools)))) throw responseTooLarge(caller.budget.limit);
        return { tools };
      } catch (e) {
        throw asRpc(e, caller.requestId);
      }
    });
    server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
      const { caller, signal } = callerOf(extra);
      try {
        return (await core.callTool(req.params.name, req.params.arguments, caller, signal)) as never;
      } catch (e) {
        throw asRpc(e, caller.requestId);
      }
    });
    if (deps.relay) installSessionRelay(server, capabilities, { hub: deps.relay, logger, audit: deps.audit, usable: (p) => core.usableUpstreams(p), callerOf });
    deps.features?.register(server, capabilities, { callerOf: (extra) => callerOf(extra as Parameters<typeof callerOf>[0]), asRpc });
    void server.connect(transport);
    return {
      transport,
      get opened() {
        return opened;
      },
    };
  }

  function asRpc(e: unknown, requestId: string | undefined): RpcError {
    if (e instanceof RpcError) return e;
    if (isTesseraError(e)) return new RpcError(rpcCodeFor(e.code), e.message, { code: e.code, ...(requestId ? { request_id: requestId } : {}) });
    logger.error({ err: (e as Error).message }, 'gateway: unexpected error');
    return new RpcError(RPC.INTERNAL, 'internal error; the request id finds it in the server log', { code: 'TESSERA_INTERNAL', ...(requestId ? { request_id: requestId } : {}) });
  }

  async function handle(app: FastifyInstance, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (closing) throw new TesseraError('TESSERA_GATEWAY_CLOSED', 'the gateway is shutting down');
    const { principal, token } = await authenticate(app, req, reply);
    const w = where(app, req);
    const agent = principal.spiffeId;
    const rate = buckets.take(agent);
    if (!rate.ok) throw limited('gateway.requests_per_agent', principal, w, rate.retryAfterMs / 1000, `this agent sends more than ${deps.limits.rate.perSecond} MCP requests per second (gateway.rate_limit); slow down`);
    const header = req.headers['mcp-session-id'];
    const sid = typeof header === 'string' ? header : undefined;
    const body = req.body;
    checkMessageDepth(body);
    // Every message's shape before anything else reads it (ADR 0141): a refusal names the field.
    let inbound: InboundBody | undefined;
    if (req.method === 'POST') {
      try {
        inbound = checkBody(body);
      } catch (e) {
        if (e instanceof MessageRefusal) return refuseMessage(reply, req.id, e, principal, w, Array.isArray(body) ? body.length : undefined, sid);
        throw e;
      }
    }
    const initialize = inbound?.messages.some((m) => m.kind === 'request' && m.method === 'initialize') ?? false;
    if (initialize && inbound!.batch) {
      return refuseMessage(reply, req.id, new MessageRefusal(RPC.INVALID_REQUEST, 'TESSERA_GATEWAY_BATCH_UNSUPPORTED', 'initialize must be sent alone, not in a JSON-RPC batch', null, undefined, 'initialize'), principal, w, inbound!.messages.length, sid);
    }
    let session: Session | undefined;
    if (sid !== undefined) {
      const s = sessions.get(sid);
      // Another agent's session is answered exactly like an unknown one: no oracle.
      if (!s || s.closed || s.binding !== bindingOf(principal)) {
        throw new TesseraError('TESSERA_GATEWAY_SESSION_NOT_FOUND', 'no such MCP session for this agent (unknown, closed, or opened by another agent); send initialize to start one');
      }
      s.principal = principal;
      touch(s);
      session = s;
      if (initialize) {
        return refuseMessage(reply, req.id, new MessageRefusal(RPC.INVALID_REQUEST, 'TESSERA_GATEWAY_REQUEST_INVALID', 'this session is already initialized; send initialize without an Mcp-Session-Id header to open another', inbound!.messages[0]!.id ?? null, undefined, 'initialize'), principal, w, undefined, sid);
      }
    } else if (req.method === 'POST') {
      if (!initialize) {
        throw new TesseraError('TESSERA_GATEWAY_REQUEST_INVALID', 'no Mcp-Session-Id header: the first request of a session must be initialize');
      }
      // The agent's own quota first: one agent never takes every place (issue 7 item 7).
      if ((agentSessions.get(agent) ?? 0) >= deps.limits.sessionsPerAgent) {
        throw limited('gateway.sessions_per_agent', principal, w, idleRetry((x) => x.agent === agent), `this agent already holds ${deps.limits.sessionsPerAgent} MCP sessions (gateway.max_sessions_per_agent); close one with DELETE ${MCP_PATH} and its Mcp-Session-Id, or wait for an idle one to expire`);
      }
      // Then the attestor's: identities minted per pipeline or project by one attestor share it,
      // and it stays below max_sessions, so the other attestors' agents always find a place.
      const byAttestor = attestorKeyOf(principal);
      const attestorQuota = deps.limits.sessionsPerAttestor(principal.attestor);
      if ((attestorSessions.get(byAttestor) ?? 0) >= attestorQuota) {
        throw limited('gateway.sessions_per_attestor', principal, w, idleRetry((x) => x.attestor === byAttestor), `the identities of attestor ${principal.attestor ?? byAttestor.slice('prefix:'.length)} already hold ${attestorQuota} MCP sessions together (gateway.max_sessions_per_attestor, gateway.max_sessions_by_attestor); close one with DELETE ${MCP_PATH} and its Mcp-Session-Id, or wait for an idle one to expire`, byAttestor);
      }
      if (sessions.size + opening >= deps.maxSessions) {
        throw limited('gateway.sessions', principal, w, idleRetry(() => true), `the gateway holds its maximum of ${deps.maxSessions} sessions (gateway.max_sessions); retry later or reach another replica`);
      }
    } else {
      throw new TesseraError('TESSERA_GATEWAY_REQUEST_INVALID', `${req.method} ${MCP_PATH} needs the Mcp-Session-Id header of an open session`);
    }

    if (inbound?.batch && session) {
      // MCP 2025-06-18 removed batching; before it, every message of a batch counts against the
      // limits like a request of its own (ADR 0141, amending ADR 0062).
      const n = inbound.messages.length;
      if (!batchingAllowed(session.protocolVersion)) {
        return refuseMessage(reply, req.id, new MessageRefusal(RPC.INVALID_REQUEST, 'TESSERA_GATEWAY_BATCH_UNSUPPORTED', `MCP ${session.protocolVersion} has no JSON-RPC batches (removed in 2025-06-18); send one message per HTTP request`, null), principal, w, n, sid);
      }
      if (n > deps.limits.batchMessages || inbound.requests > deps.limits.inflightPerSession) {
        const bound = Math.min(deps.limits.batchMessages, deps.limits.inflightPerSession);
        return refuseMessage(reply, req.id, new MessageRefusal(RPC.INVALID_REQUEST, 'TESSERA_GATEWAY_BATCH_TOO_LARGE', `a batch may hold at most ${deps.limits.batchMessages} messages (gateway.max_batch_messages) and ${deps.limits.inflightPerSession} requests (gateway.max_inflight_per_session); this one holds ${n}: split it into batches of at most ${bound}`, null), principal, w, n, sid);
      }
      const more = buckets.take(agent, n - 1);
      if (!more.ok) throw limited('gateway.requests_per_agent', principal, w, more.retryAfterMs / 1000, `this agent sends more than ${deps.limits.rate.perSecond} MCP requests per second (gateway.rate_limit; each message of a batch counts); slow down`);
    }
    if (session && inbound && duplicateIds(inbound.messages, session.ids)) {
      return refuseMessage(reply, req.id, new MessageRefusal(RPC.INVALID_REQUEST, 'TESSERA_GATEWAY_DUPLICATE_ID', 'a request id is used twice in this batch, or by a request of this session still in flight; give every request its own id', inbound.batch ? null : (inbound.messages[0]!.id ?? null)), principal, w, inbound.batch ? inbound.messages.length : undefined, sid);
    }

    if (req.method === 'POST') {
      // Scope is checked before the transport so that a refusal is HTTP 403 with the needed
      // scope (MCP authorization 2025-11-25 §"Scope Challenge Handling"; RFC 6750 §3.1).
      const msgs = Array.isArray(body) ? body : [body];
      for (const m of msgs) {
        const msg = m as { method?: unknown; params?: { name?: unknown } } | null;
        if (msg && (msg.method === 'tools/call' ? typeof msg.params?.name === 'string' : msg.method === 'resources/read' || msg.method === 'prompts/get')) {
          const needed = msg.method === 'tools/call' ? core.missingScope(principal, msg.params!.name as string) : deps.features?.missingScope(principal, msg.method, msg.params);
          if (needed) {
            const err = new TesseraError('TESSERA_TOKEN_INSUFFICIENT_SCOPE', `the token scope does not cover ${needed}; request a token with that scope`);
            sendTessera(reply, err, req.id, { 'www-authenticate': bearerChallenge({ error: 'insufficient_scope', scope: needed, resource_metadata: metadataUrl, error_description: `the token scope does not cover ${needed}` }) });
            return;
          }
        }
      }
    }

    // In-flight bounds apply to POSTs (the requests that do work); GET is the session's one
    // notification stream and DELETE ends the session.
    const counted = req.method === 'POST';
    // A batch holds one place per request in it (at least one: the POST itself).
    const places = counted ? Math.max(1, inbound?.requests ?? 1) : 0;
    if (counted) {
      if ((inflightByAgent.get(agent) ?? 0) + places > deps.limits.inflightPerAgent) {
        throw limited('gateway.inflight_per_agent', principal, w, 1, `this agent already has ${deps.limits.inflightPerAgent} MCP requests in flight (gateway.max_inflight_per_agent); wait for one to finish`);
      }
      if (session && session.inflight + places > deps.limits.inflightPerSession) {
        throw limited('gateway.inflight_per_session', principal, w, 1, `this session already has ${deps.limits.inflightPerSession} MCP requests in flight (gateway.max_inflight_per_session); wait for one to finish`);
      }
    }

    const raw = req.raw as typeof req.raw & { auth?: AuthInfo };
    // A batch's results are bounded together (a single result has its own bounds upstream).
    const budget = inbound?.batch ? createResponseBudget(deps.limits.responseBytes) : undefined;
    const info: RequestInfo = { principal, where: w, ...(budget ? { budget } : {}) };
    raw.auth = { token, clientId: principal.spiffeId, scopes: [...(principal.scope ?? [])], expiresAt: Math.floor(principal.expiresAt / 1000), resource: resourceUrl, extra: info as unknown as Record<string, unknown> };
    reply.hijack();
    const res = reply.raw;
    res.setHeader('x-request-id', req.id);
    res.setHeader('cache-control', 'no-store');
    // Released once, when the response ends or the connection goes (whichever is first): a
    // request whose answer never comes cannot hold its place for ever.
    const ids = session && inbound ? inbound.messages.flatMap((m) => (m.kind === 'request' && m.id !== undefined ? [idKey(m.id)] : [])) : [];
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      if (info.joined) for (const c of info.joined) info.live?.delete(c);
      if (counted) {
        const left = (inflightByAgent.get(agent) ?? 0) - places;
        if (left > 0) inflightByAgent.set(agent, left);
        else inflightByAgent.delete(agent);
        if (session) session.inflight -= places;
      }
      for (const k of ids) session?.ids.delete(k);
    };
    if (counted) {
      inflightByAgent.set(agent, (inflightByAgent.get(agent) ?? 0) + places);
      if (session) session.inflight += places;
      for (const k of ids) session?.ids.add(k);
      res.once('close', finish);
    }
    if (!session) {
      // The place is held from now on: concurrent initializes cannot overshoot either bound.
      opening++;
      agentSessions.set(agent, (agentSessions.get(agent) ?? 0) + 1);
      const byAttestor = attestorKeyOf(principal);
      attestorSessions.set(byAttestor, (attestorSessions.get(byAttestor) ?? 0) + 1);
      let fresh: ReturnType<typeof newSession> | undefined;
      try {
        fresh = newSession(principal, w, negotiated(body));
        await fresh.transport.handleRequest(raw, res, body);
      } finally {
        opening--;
        // An initialize that opened no session (refused by the transport) gives its place back;
        // an opened session keeps it until closeSession.
        if (!fresh?.opened) {
          release(agentSessions, agent);
          release(attestorSessions, byAttestor);
        }
        finish();
      }
      return;
    }
    // Only POSTs wait for a JSON answer; GET (SSE) and DELETE are answered by the transport.
    if (req.method !== 'POST') {
      await session.transport.handleRequest(raw, res, body);
      return;
    }
    session.pending.add(res);
    // Answered on an SSE stream when the client asked for progress or may be asked something
    // (relay/downstream.ts wantsStream); JSON otherwise.
    const requestIds = inbound?.messages.flatMap((m) => (m.kind === 'request' && m.id !== undefined ? [m.id] : [])) ?? [];
    const stream = requestIds.length > 0 && wantsStream(body, session.server.getClientCapabilities());
    res.once('close', () => {
      session.pending.delete(res);
      if (stream) session.streaming.forget(requestIds);
    });
    try {
      await session.streaming.run(stream, requestIds, () => session.transport.handleRequest(raw, res, body));
    } finally {
      session.pending.delete(res);
      finish();
    }
  }

  /**
   * The version the SDK server answers an initialize with: the client's when supported, else
   * the latest (MCP lifecycle, "Version Negotiation").
   */
  function negotiated(body: unknown): string {
    const requested = (body as { params?: { protocolVersion?: unknown } }).params?.protocolVersion;
    return typeof requested === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
  }

  /**
   * Answers a refused message (ADR 0141) and audits it once (`gateway.request_refused`). A single
   * request with bad params or an unknown method is answered like any JSON-RPC error (HTTP 200,
   * its id); a refused batch, envelope or notification is a refused HTTP request (400, id null).
   */
  function refuseMessage(reply: FastifyReply, requestId: string, r: MessageRefusal, p: AgentPrincipal, w: AuditWhere, batchSize: number | undefined, sid: string | undefined): void {
    const perMessage = batchSize === undefined && r.id !== null && (r.rpcCode === RPC.INVALID_PARAMS || r.rpcCode === RPC.METHOD_NOT_FOUND);
    void audit.append({
      kind: 'gateway.request_refused', actor: { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}) }, action: 'gateway.request', resource: 'mcp', result: 'deny',
      reason: { code: r.code }, where: w, ...(p.task ? { txn: p.task } : {}),
      details: { code: r.code, rpc_code: r.rpcCode, ...(r.method ? { method: r.method } : {}), ...(r.field ? { field: redactCredentialLike(r.field.slice(0, 128)) } : {}), ...(batchSize !== undefined ? { batch_size: batchSize } : {}), ...(sid !== undefined && sessions.has(sid) ? { session_hmac: audit.hmac(sid) } : {}) },
    }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of a refused MCP message failed'));
    const data = { code: r.code, request_id: requestId, ...(r.field ? { field: r.field.slice(0, 128) } : {}) };
    void reply.code(perMessage ? 200 : ERROR_CATALOGUE[r.code].status).header('content-type', 'application/json').header('cache-control', 'no-store').send(jsonRpcError(r.rpcCode, r.message, data, r.id));
  }

  /** A refusal by a limit: audited (at most once per window per agent and limit), with Retry-After. */
  function limited(limit: LimitName, p: AgentPrincipal, w: AuditWhere, retryAfterS: number, message: string, key: string = p.spiffeId): TesseraError {
    const retry = Math.max(1, Math.ceil(retryAfterS));
    deps.limitAudit?.refused({ limit, key, actor: { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}) }, where: w, retryAfterS: retry });
    return new TesseraError(codeOf(limit), message, { limit, retry_after_s: retry });
  }

  /** Seconds until the first of the matching sessions reaches its idle timeout (≥ 1). */
  function idleRetry(match: (s: Session) => boolean): number {
    const now = deps.clock.now();
    let first = Number.POSITIVE_INFINITY;
    for (const s of sessions.values()) if (match(s)) first = Math.min(first, s.lastSeen + deps.sessionIdleTimeoutMs - now);
    return Number.isFinite(first) ? Math.max(1, Math.ceil(first / 1000)) : 1;
  }

  function errorHandler(error: unknown, req: FastifyRequest, reply: FastifyReply): void {
    const e = error as { code?: string; statusCode?: number; message?: string };
    let err: TesseraError;
    let rpc: number | undefined;
    if (isTesseraError(error)) err = error;
    else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) err = new TesseraError('TESSERA_GATEWAY_MESSAGE_TOO_LARGE', `the message is larger than ${deps.maxMessageBytes} bytes (gateway.max_message_bytes)`);
    else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || e.statusCode === 415) err = new TesseraError('TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'send JSON-RPC as Content-Type: application/json');
    else if (error instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || e.statusCode === 400) {
      err = new TesseraError('TESSERA_GATEWAY_REQUEST_INVALID', 'the body is not valid JSON');
      rpc = RPC.PARSE;
    } else {
      logger.error({ err: e.message }, 'gateway: unexpected error');
      err = new TesseraError('TESSERA_INTERNAL', 'internal error; the request id finds it in the server log');
    }
    if (reply.sent || reply.raw.headersSent) return;
    if (rpc !== undefined) {
      void reply.code(err.status).header('content-type', 'application/json').send(jsonRpcError(rpc, err.message, { code: err.code, request_id: req.id }));
      return;
    }
    sendTessera(reply, err, req.id);
  }

  return {
    get sessionCount() {
      return sessions.size;
    },
    principals() {
      return [...sessions.values()].map((s) => s.principal);
    },
    register(app) {
      app.get(RESOURCE_METADATA_PATH, async () => ({
        // RFC 9728 §2 / §3.2
        resource,
        authorization_servers: [deps.issuer],
        bearer_methods_supported: ['header'],
        // RFC 9728 §2 / RFC 9449 §5.1: DPoP proofs accepted, and whether bound tokens are required.
        dpop_signing_alg_values_supported: [...deps.dpop.settings.algorithms],
        dpop_bound_access_tokens_required: deps.dpop.settings.require === 'always',
        scopes_supported: core.servers.map((s) => `tool:${s}/*`),
        resource_name: 'Tessera MCP gateway',
        // Served by this Tessera itself (the project has no public documentation URL to name).
        resource_documentation: `${deps.issuer}/v1/openapi.json`,
      }));
      // Depth is bounded in handle() and, for tools/call arguments, by the core (audited).
      const opts = { bodyLimit: deps.maxMessageBytes, errorHandler, config: { ownJsonDepth: true } };
      app.post(MCP_PATH, opts, async (req, reply) => handle(app, req, reply));
      app.get(MCP_PATH, opts, async (req, reply) => handle(app, req, reply));
      app.delete(MCP_PATH, opts, async (req, reply) => handle(app, req, reply));
      app.addHook('preClose', async () => {
        closing = true;
        await Promise.all([...sessions.values()].map((s) => closeSession(s, 'shutdown')));
      });
    },
    async closeRevoked() {
      const victims = [...sessions.values()].filter((s) => isRevoked(s.principal));
      await Promise.all(victims.map((s) => closeSession(s, 'revoked')));
      return victims.length;
    },
    async closeAll(cause) {
      closing = true;
      await Promise.all([...sessions.values()].map((s) => closeSession(s, cause)));
    },
  };
}
