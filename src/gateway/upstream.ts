/**
 * Upstream MCP servers (stdio and Streamable HTTP), reached with the official SDK `Client`.
 *
 * Isolation (docs/gateway.md "Isolation"): a connection (a stdio process, or an HTTP client
 * session) is opened for one caller key and never shared with another:
 *  - `per_agent` (default): one per agent identity (SPIFFE ID, plus the task id for task
 *    tokens), shared by that caller's sessions. Injected values may be per-agent (a dynamic
 *    credential issued to that agent, a secret only that agent may inject), so two agents
 *    never share a process or its environment.
 *  - `per_session`: one per MCP session; nothing survives the session.
 * A connection is stopped after `idle_timeout` without calls, when the session closes
 * (per_session) and on shutdown, gracefully; leases it was given are revoked then. When its
 * owner, or the caller of a call in flight on it, is revoked (or loses the injection by a policy
 * change), it is stopped **at once**: every call in flight is cancelled (the SDK sends MCP
 * `notifications/cancelled`), then a stdio process group is killed (SIGKILL) and an HTTP session
 * terminated (DELETE), so a cancelled tool cannot finish its side effects in a grace period.
 * Messages from an upstream are bounded by `max_result_bytes` while they are read
 * (stdio-transport.ts, http-fetch.ts).
 * A process that exits is dropped: the call in flight fails with TESSERA_GATEWAY_UPSTREAM_FAILED
 * and the next call starts a new one. Other callers' connections are unaffected.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema, type LoggingLevel, type RequestId, type ServerCapabilities, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { AuditWhere } from '../audit/events.js';
import type { AuditWriter } from '../audit/port.js';
import type { Logger } from '../shared/logger.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import type { GatewayTool, SecretUseRecorder, ToolResult } from './types.js';
import type { HttpServerConfig, InjectedValue, StdioServerConfig, UpstreamServerConfig } from './config.js';
import type { SecretInput } from './scrub/index.js';
import type { LimitAuditor } from '../shared/limit-audit.js';
import { BoundedStdioClientTransport, RESULT_TOO_LARGE } from './stdio-transport.js';
import { boundedUpstreamFetch } from './http-fetch.js';
import { downstreamHeaderValue } from './downstream.js';
import { requireHeaderSafe } from './header-value.js';
import { describeDuration } from '../shared/duration.js';
import type { Isolation, RunAsIdentity } from './isolation.js';
import type { RelayHub } from './relay/hub.js';
import { UPSTREAM_CLIENT_CAPABILITIES, relayUpstream } from './relay/upstream-client.js';
import type { RelayConnView } from './relay/types.js';
import { gatewayUri } from './resources/uri.js';

/**
 * The SDK's client side, loaded with the first upstream connection: a gateway without upstream
 * servers (or before their first use) does not hold it in memory (docs/adr/0121-memory.md).
 */
async function clientSdk(): Promise<{ Client: typeof Client; StreamableHTTPClientTransport: typeof StreamableHTTPClientTransport }> {
  const [{ Client: C }, { StreamableHTTPClientTransport: T }] = await Promise.all([import('@modelcontextprotocol/sdk/client/index.js'), import('@modelcontextprotocol/sdk/client/streamableHttp.js')]);
  return { Client: C, StreamableHTTPClientTransport: T };
}

/** What an upstream connection needs to resolve the values it injects, for one caller. */
export interface Injector {
  resolveSecret(principal: AgentPrincipal, path: string, where: AuditWhere): Promise<string>;
  issueCredential(principal: AgentPrincipal, engine: string, role: string, ttlMs: number | undefined, where: AuditWhere): Promise<{ leaseId: string; data: Readonly<Record<string, unknown>> }>;
  revokeLease(leaseId: string, principal: AgentPrincipal): Promise<void>;
  /** Whether policy still lets this caller have the value injected (`secret.inject` / `cred.issue`); cheap (cached decision). */
  mayInject(principal: AgentPrincipal, value: Exclude<InjectedValue, string>): boolean;
  /** A short-lived token carrying the caller's task for an upstream audience (`task_token`). */
  downstreamToken(principal: AgentPrincipal, audience: string, ttlMs: number, where: AuditWhere): Promise<string>;
}

export interface UpstreamCaller {
  readonly principal: AgentPrincipal;
  readonly sessionId: string;
  readonly where: AuditWhere;
  /** The downstream JSON-RPC id of the request this serves (routes what the upstream sends during it). */
  readonly rpcId?: RequestId;
  /** The client's progress token for that request: the upstream's progress is relayed under it. */
  readonly progressToken?: string | number;
}

export interface UpstreamDeps {
  readonly injector: Injector;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  /** gateway.call_timeout; a server's own `call_timeout` wins. */
  readonly callTimeoutMs: number;
  /** gateway.max_result_bytes; a server's own `max_result_bytes` wins. */
  readonly maxResultBytes: number;
  readonly idleTimeoutMs: number;
  readonly defaultIsolation: 'per_agent' | 'per_session';
  /**
   * Shared cap on stdio processes across all upstream servers, and per agent (SPIFFE ID) so
   * that one agent cannot take every slot (per_session isolation starts one per session).
   */
  readonly processes: { count: number; readonly max: number; readonly perAgent?: Map<string, number>; readonly maxPerAgent?: number; readonly limitAudit?: LimitAuditor };
  readonly version: string;
  /** run_as (src/gateway/isolation.ts); required when the server has `run_as`. */
  readonly isolation?: Isolation;
  /** Records each kv secret injected into a connection, from its resolution to the connection's end (ADR 0150). */
  readonly secretUses?: SecretUseRecorder;
  /** Delivers what upstreams send besides answers (progress, logs, sampling…) to the right session. */
  readonly relay?: RelayHub;
}

export interface UpstreamListing {
  readonly tools: readonly GatewayTool[];
  /** Values injected into this connection: every one is scrubbed from what it returns. */
  readonly secrets: readonly SecretInput[];
}

/** What `Upstream.request` passes to each SDK client call (the SDK's RequestOptions subset). */
export interface UpstreamRequestOptions {
  readonly signal: AbortSignal;
  readonly timeout: number;
  /** Set when the client asked for progress: the SDK then sends a token of its own upstream. */
  readonly onprogress?: (p: { progress: number; total?: number; message?: string }) => void;
}

export interface UpstreamCallResult {
  readonly result: ToolResult;
  readonly secrets: readonly SecretInput[];
}

export interface Upstream {
  readonly server: string;
  readonly transport: 'stdio' | 'streamable_http';
  listTools(caller: UpstreamCaller, signal: AbortSignal): Promise<UpstreamListing>;
  callTool(tool: string, args: Readonly<Record<string, unknown>>, caller: UpstreamCaller, signal: AbortSignal): Promise<UpstreamCallResult>;
  /**
   * One MCP request on the caller's connection (started if needed, injection re-checked), bounded
   * by the call timeout (TESSERA_GATEWAY_UPSTREAM_TIMEOUT naming `what`), cancelled upstream when
   * `signal` aborts or the caller is revoked, errors mapped like a tool call's (an upstream
   * JSON-RPC error stays an UpstreamRpcError). `secrets`: what the connection injected, to scrub.
   */
  request<T>(what: string, caller: UpstreamCaller, signal: AbortSignal, run: (client: Client, options: UpstreamRequestOptions) => Promise<T>): Promise<{ value: T; secrets: readonly SecretInput[] }>;
  /**
   * Stops the connections whose owner, or the caller of a call in flight on them, matches
   * (revocation, session end). Causes `revoked` and `policy` stop at once (calls cancelled,
   * process group killed); others gracefully.
   */
  stopWhere(match: (owner: { principal: AgentPrincipal; sessionId: string }) => boolean, cause: string): Promise<void>;
  /**
   * `logging/setLevel` on this caller's connection when it is already connected (none is started
   * for it: a connection started later gets the level at its handshake) and the upstream declared
   * logging: the most verbose level any session using the connection asked for (each session is
   * filtered to its own). True when forwarded.
   */
  setLogLevel(level: LoggingLevel, caller: UpstreamCaller, signal: AbortSignal): Promise<boolean>;
  /** The capabilities the upstream declared at its latest handshake (undefined before the first). */
  readonly capabilities: ServerCapabilities | undefined;
  /** Number of open connections (tests, metrics). */
  readonly size: number;
  close(): Promise<void>;
}

/** A JSON-RPC error returned by the upstream itself: passed on (scrubbed) with its code. */
export class UpstreamRpcError extends Error {
  constructor(readonly rpcCode: number, message: string, readonly data: unknown) {
    super(message);
    this.name = 'UpstreamRpcError';
  }
}

/** A tools/call in flight on a connection: whose, and how to cancel it. */
interface InflightCall {
  readonly principal: AgentPrincipal;
  readonly sessionId: string;
  readonly requestId?: RequestId;
  cancel(reason: Error): void;
}

interface Conn {
  readonly key: string;
  readonly principal: AgentPrincipal;
  readonly sessionId: string;
  client?: Client;
  secrets: SecretInput[];
  /** kv secrets injected into this connection and when (exposure windows end when it stops). */
  uses: { path: string; at: number }[];
  leases: string[];
  tools?: Promise<GatewayTool[]>;
  ready: Promise<void>;
  inflight: number;
  readonly calls: Set<InflightCall>;
  /** Sessions that used this connection (what it sends besides answers goes to these only). */
  readonly sessions: Set<string>;
  idle?: NodeJS.Timeout;
  /** performance.now() when its last call ended (the idle expiry counts from it). */
  usedAt: number;
  closed: boolean;
  closeCause?: string;
  /** Gives back the process slot (stdio). */
  release?: () => void;
}

const MAX_LIST_PAGES = 50;
/** Session ids remembered per connection before the closed ones are forgotten. */
const MAX_CONN_SESSIONS = 64;

function stripMcpPrefix(message: string): string {
  return message.replace(/^MCP error -?\d+: /, '');
}

export function createUpstream(config: UpstreamServerConfig, deps: UpstreamDeps): Upstream {
  const isolation = config.transport === 'stdio' ? (config.isolation ?? deps.defaultIsolation) : deps.defaultIsolation;
  const conns = new Map<string, Conn>();
  let shuttingDown = false;
  const callTimeoutMs = config.call_timeout ?? deps.callTimeoutMs;
  const maxResultBytes = config.max_result_bytes ?? deps.maxResultBytes;
  const httpFetch = boundedUpstreamFetch(maxResultBytes);
  let lastCapabilities: ServerCapabilities | undefined;

  const keyOf = (c: UpstreamCaller): string =>
    isolation === 'per_session' ? `s|${c.sessionId}` : `a|${c.principal.spiffeId}|${c.principal.task ?? ''}`;

  async function resolveValue(v: InjectedValue, conn: Conn, where: AuditWhere, label: string): Promise<string> {
    if (typeof v === 'string') return v;
    if ('secret' in v) {
      const value = await deps.injector.resolveSecret(conn.principal, v.secret, where);
      conn.secrets.push({ value, label: `kv/${v.secret}` });
      if (deps.secretUses) conn.uses.push({ path: v.secret, at: deps.secretUses.now() });
      return value;
    }
    const { engine, role, field, ttl } = v.credential;
    const issued = await deps.injector.issueCredential(conn.principal, engine, role, ttl, where);
    conn.leases.push(issued.leaseId);
    for (const [k, x] of Object.entries(issued.data)) if (typeof x === 'string') conn.secrets.push({ value: x, label: `cred/${engine}/${role}/${k}` });
    const out = issued.data[field];
    if (typeof out !== 'string' && typeof out !== 'number') {
      throw new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${label}: credential ${engine}/${role} has no field "${field}" (it has ${Object.keys(issued.data).join(', ') || 'no fields'}); fix gateway.servers in tessera.yaml`);
    }
    return String(out);
  }

  async function resolveAll(values: Readonly<Record<string, InjectedValue>>, conn: Conn, where: AuditWhere, what: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) {
      const value = await resolveValue(v, conn, where, `${config.name} ${what} ${k}`);
      // A header value with a line break would fail deep in fetch as "cannot reach": say why, here.
      if (what === 'header' && typeof v !== 'string') requireHeaderSafe(value, config.name, k, 'secret' in v ? { secret: v.secret } : { credential: `${v.credential.engine}/${v.credential.role}.${v.credential.field}` });
      out[k] = value;
    }
    return out;
  }

  /** Any failure while starting (injection refused, spawn failed, handshake) drops the connection: the next call starts afresh. */
  async function connect(conn: Conn, where: AuditWhere): Promise<void> {
    try {
      await connectInner(conn, where);
    } catch (e) {
      await stop(conn, 'start_failed');
      throw toUpstreamError(e, conn, 'start');
    }
  }

  async function connectInner(conn: Conn, where: AuditWhere): Promise<void> {
    const { Client, StreamableHTTPClientTransport } = await clientSdk();
    const client = new Client({ name: 'tessera-gateway', version: deps.version }, { capabilities: deps.relay ? UPSTREAM_CLIENT_CAPABILITIES : {} });
    const toolsChanged = (): void => {
      conn.tools = undefined;
    };
    if (deps.relay) relayUpstream(client, viewOf(conn), deps.relay, { toolsChanged, exposedUri: (uri) => gatewayUri(config.name, uri) });
    else client.setNotificationHandler(ToolListChangedNotificationSchema, toolsChanged);
    client.onclose = () => {
      if (conn.closed) return;
      // The upstream went away on its own (process exit, session ended): drop it; the next call reconnects.
      void stop(conn, 'exited');
    };
    let transport: BoundedStdioClientTransport | StreamableHTTPClientTransport;
    if (config.transport === 'stdio') {
      const cfg = config as StdioServerConfig;
      // Checked (and the place held) before anything is injected: a refused start issues no
      // credential, and concurrent starts for one agent cannot overshoot its quota.
      const agent = conn.principal.spiffeId;
      const { perAgent, maxPerAgent } = deps.processes;
      if (perAgent && maxPerAgent !== undefined && (perAgent.get(agent) ?? 0) >= maxPerAgent) {
        const retryAfterS = Math.ceil(deps.idleTimeoutMs / 1000);
        deps.processes.limitAudit?.refused({ limit: 'gateway.upstream_processes_per_agent', key: agent, actor: actorOf(conn.principal), where, retryAfterS });
        throw new TesseraError('TESSERA_GATEWAY_UPSTREAM_LIMIT', `${config.name}: this agent already runs ${maxPerAgent} upstream processes (gateway.max_upstream_processes_per_agent); they stop after gateway.idle_timeout without calls or when their session closes`, { limit: 'gateway.upstream_processes_per_agent', retry_after_s: retryAfterS });
      }
      perAgent?.set(agent, (perAgent.get(agent) ?? 0) + 1);
      let agentCounted = true;
      let counted = false;
      let identity: RunAsIdentity | undefined;
      // Gives back both places (and the run_as uid) once (stop() calls it, also when the start fails half way).
      const release = (): void => {
        identity?.release();
        identity = undefined;
        if (agentCounted && perAgent) {
          const n = (perAgent.get(agent) ?? 0) - 1;
          if (n > 0) perAgent.set(agent, n);
          else perAgent.delete(agent);
        }
        if (counted) deps.processes.count--;
        agentCounted = counted = false;
      };
      conn.release = release;
      const env = await resolveAll(cfg.env, conn, where, 'env');
      if (deps.processes.count >= deps.processes.max) {
        throw new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${config.name}: the gateway already runs ${deps.processes.max} upstream processes (gateway.max_upstream_processes); retry later`);
      }
      deps.processes.count++;
      counted = true;
      if (cfg.run_as !== undefined) {
        // Fail closed: a server configured to run as another user never runs as Tessera's.
        if (!deps.isolation) throw new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${config.name}: run_as is configured but this gateway has no process isolation set up`);
        identity = deps.isolation.identityFor(cfg);
      }
      const cwd = cfg.cwd ?? identity?.home;
      // Only the SDK's safe default environment (PATH, HOME, ...) plus the configured values:
      // Tessera's own environment (master key, tokens) never reaches an upstream.
      transport = new BoundedStdioClientTransport({
        command: cfg.command, args: cfg.args, env, maxMessageBytes: maxResultBytes,
        ...(cwd !== undefined ? { cwd } : {}),
        ...(identity ? { runAs: { uid: identity.uid, gid: identity.gid, home: identity.home } } : {}),
      });
      const prevClose = client.onclose;
      client.onclose = () => {
        release();
        prevClose?.();
      };
      conn.release = release;
    } else {
      const cfg = config as HttpServerConfig;
      const headers = await resolveAll(cfg.headers, conn, where, 'header');
      // No token passthrough (MCP authorization spec, "Access Token Privilege Restriction"):
      // only configured headers go upstream, never the agent's bearer token. With `task_token`,
      // each request carries a token Tessera minted for this upstream's audience instead.
      transport = new StreamableHTTPClientTransport(new URL(cfg.url), { requestInit: { headers }, fetch: cfg.task_token ? withTaskToken(cfg.task_token, conn, where) : httpFetch });
    }
    conn.client = client;
    const timer = AbortSignal.timeout(callTimeoutMs);
    try {
      await raceAbort(client.connect(transport, { timeout: callTimeoutMs, signal: timer }), timer, () => new TesseraError('TESSERA_GATEWAY_UPSTREAM_TIMEOUT', `${config.name}: the upstream did not finish the MCP handshake within ${describeDuration(callTimeoutMs)} (${config.call_timeout !== undefined ? 'its call_timeout' : 'gateway.call_timeout'})`));
    } catch (e) {
      // Not yet marked closed: report the start failure itself, not "exited".
      throw isTesseraError(e) ? e : toUpstreamError(e, { ...conn, closed: false }, 'start');
    }
    lastCapabilities = client.getServerCapabilities();
    // A level a session set before this connection existed (logging/setLevel starts no upstream).
    const level = lastCapabilities?.logging ? deps.relay?.levelFor(conn.sessions) : undefined;
    if (level !== undefined) {
      await client.setLoggingLevel(level, { signal: AbortSignal.timeout(callTimeoutMs), timeout: callTimeoutMs })
        .catch((e: unknown) => deps.logger.warn({ server: config.name, err: (e as Error).message?.slice(0, 300) }, 'gateway: the logging level could not be set on a new upstream connection'));
    }
    await deps.audit.append({
      kind: 'gateway.upstream_started', actor: actorOf(conn.principal), action: 'gateway.upstream.start', resource: config.name, result: 'success', where,
      ...(conn.principal.task ? { txn: conn.principal.task } : {}),
      details: { server: config.name, transport: config.transport, isolation },
    }).catch((e: unknown) => deps.logger.warn({ err: (e as Error).message }, 'audit of upstream start failed'));
  }

  /**
   * The bounded fetch, plus the connection owner's task token for this upstream on every request
   * (minted again once half its lifetime has passed). The current token is scrubbed from what the
   * upstream returns; earlier ones have expired or are about to.
   */
  function withTaskToken(tt: NonNullable<HttpServerConfig['task_token']>, conn: Conn, where: AuditWhere): typeof httpFetch {
    return async (url, init) => {
      const token = await deps.injector.downstreamToken(conn.principal, tt.audience, tt.ttl, where);
      if (!conn.secrets.some((x) => x.value === token)) {
        conn.secrets = [...conn.secrets.filter((x) => x.label !== 'task-token'), { value: token, label: 'task-token' }];
      }
      const headers = new Headers(init?.headers);
      headers.set(tt.header, downstreamHeaderValue(tt.header, token));
      return httpFetch(url, { ...init, headers });
    };
  }

  /** The connection as the relay sees it (relay/types.ts). */
  function viewOf(conn: Conn): RelayConnView {
    return {
      server: config.name,
      secrets: () => conn.secrets,
      sessions: () => conn.sessions,
      calls: () => [...conn.calls].map((c) => (c.requestId !== undefined ? { sessionId: c.sessionId, requestId: c.requestId } : { sessionId: c.sessionId })),
    };
  }

  /** Remembers that `sessionId` uses the connection; forgets closed sessions past a bound. */
  function attach(conn: Conn, sessionId: string): void {
    if (!sessionId || conn.sessions.has(sessionId)) return;
    if (conn.sessions.size >= MAX_CONN_SESSIONS && deps.relay) for (const id of conn.sessions) if (!deps.relay.isOpen(id)) conn.sessions.delete(id);
    if (conn.sessions.size < MAX_CONN_SESSIONS) conn.sessions.add(sessionId);
  }

  function actorOf(p: AgentPrincipal): { id: string; chain?: readonly string[]; user?: string } {
    return { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) };
  }

  function toUpstreamError(e: unknown, conn: Conn, phase: 'start' | 'call' | 'list'): Error {
    if (isTesseraError(e) || e instanceof UpstreamRpcError) return e;
    const err = e as { code?: unknown; message?: string; data?: unknown };
    // The bounded transports answer an oversized message with this error in its place.
    if ((err.data as { code?: unknown } | undefined)?.code === RESULT_TOO_LARGE && err.constructor?.name === 'McpError') {
      return new TesseraError(RESULT_TOO_LARGE, `${config.name}: the upstream's answer is larger than ${maxResultBytes} bytes (max_result_bytes); it was discarded`, { limit: maxResultBytes });
    }
    if (conn.closed && conn.closeCause !== 'idle') {
      return new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${config.name}: the upstream ${config.transport === 'stdio' ? 'process exited' : 'connection closed'} during the ${phase === 'call' ? 'call' : 'handshake'}; it is restarted on the next call`);
    }
    // An McpError the upstream sent (JSON-RPC error object): pass its code and message on.
    if (phase !== 'start' && typeof err.code === 'number' && err.constructor?.name === 'McpError') {
      return new UpstreamRpcError(err.code, stripMcpPrefix(err.message ?? 'upstream error'), err.data);
    }
    deps.logger.warn({ server: config.name, phase, err: err.message?.slice(0, 500) }, 'upstream MCP server failed');
    const what = phase === 'start' ? 'could not be started or reached' : 'failed';
    return new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${config.name}: the upstream MCP server ${what}; the operator finds the cause in the Tessera log`);
  }

  /**
   * A call ended: the idle expiry counts from now. One timer per connection, re-armed when it
   * fires early, instead of a new timer per call (ADR 0294); a call in flight when it fires
   * re-arms it when it ends.
   */
  function touch(conn: Conn): void {
    conn.usedAt = performance.now();
    if (!conn.idle && conn.inflight === 0 && !conn.closed) armIdle(conn, deps.idleTimeoutMs);
  }

  function armIdle(conn: Conn, ms: number): void {
    conn.idle = setTimeout(() => {
      conn.idle = undefined;
      if (conn.closed || conn.inflight > 0) return;
      const left = conn.usedAt + deps.idleTimeoutMs - performance.now();
      if (left > 0) armIdle(conn, Math.ceil(left));
      // A connection holding resource subscriptions is kept (ADR 0177): its session's close ends them.
      else if (conn.client && deps.relay?.subscriptions.has(conn.client)) touch(conn);
      else void stop(conn, 'idle');
    }, ms);
    conn.idle.unref();
  }

  async function stop(conn: Conn, cause: string): Promise<void> {
    if (conn.closed) return;
    conn.closed = true;
    conn.closeCause = cause;
    const su = deps.secretUses;
    if (su && conn.uses.length) {
      const end = su.now();
      const p = conn.principal;
      for (const u of conn.uses) su.recordUse({ agent: p.spiffeId, task: p.task ?? null, root: p.rootTask ?? p.task ?? null, user: p.user ?? null, resource: `kv/${u.path} -> ${config.name}`, startedAt: u.at, endedAt: end });
      conn.uses = [];
    }
    if (conn.idle) clearTimeout(conn.idle);
    if (conns.get(conn.key) === conn) conns.delete(conn.key);
    const client = conn.client;
    // Its subscriptions cannot be kept: each subscriber is told and it is audited (ADR 0177).
    if (client && deps.relay) deps.relay.connectionStopped(client, viewOf(conn), cause, (uri) => gatewayUri(config.name, uri));
    const immediate = cause === 'revoked' || cause === 'policy';
    if (immediate) {
      // Cancel first (the SDK writes notifications/cancelled for each), then stop at once.
      for (const call of conn.calls) {
        call.cancel(cause === 'revoked'
          ? new TesseraError('TESSERA_TOKEN_REVOKED', `${config.name}: the call was cancelled: a caller of this upstream was revoked`)
          : new TesseraError('TESSERA_POLICY_DENIED', `${config.name}: the call was cancelled: policy no longer permits what this upstream needs`));
      }
      if (client?.transport instanceof BoundedStdioClientTransport) await client.transport.kill();
    }
    try {
      if (client && config.transport === 'streamable_http' && cause !== 'exited') {
        await (client.transport as StreamableHTTPClientTransport | undefined)?.terminateSession().catch(() => undefined);
      }
      await client?.close();
    } catch {
      // already gone
    }
    conn.release?.();
    for (const id of conn.leases) await deps.injector.revokeLease(id, conn.principal).catch(() => undefined);
    conn.leases = [];
    if (client) {
      await deps.audit.append({
        kind: 'gateway.upstream_stopped', actor: actorOf(conn.principal), action: 'gateway.upstream.stop', resource: config.name, result: cause === 'exited' ? 'error' : 'success',
        ...(conn.principal.task ? { txn: conn.principal.task } : {}),
        details: { server: config.name, transport: config.transport, cause },
      }).catch((e: unknown) => deps.logger.warn({ err: (e as Error).message }, 'audit of upstream stop failed'));
    }
  }

  const injected: Exclude<InjectedValue, string>[] = Object.values(config.transport === 'stdio' ? config.env : config.headers).filter((v): v is Exclude<InjectedValue, string> => typeof v !== 'string');

  /**
   * A pooled connection keeps the values injected when it started. Policy is re-checked for
   * the current caller on every call, so a policy change (or a narrower task) takes effect at
   * once: the connection is stopped and the call refused.
   */
  async function checkInjection(conn: Conn, caller: UpstreamCaller): Promise<void> {
    for (const v of injected) {
      if (!deps.injector.mayInject(caller.principal, v)) {
        await stop(conn, 'policy');
        const what = 'secret' in v ? `secret.inject on ${v.secret}` : `cred.issue on ${v.credential.engine}/${v.credential.role}`;
        throw new TesseraError('TESSERA_POLICY_DENIED', `${config.name}: policy no longer permits ${what} for ${caller.principal.spiffeId}, which this upstream needs`);
      }
    }
  }

  async function acquire(caller: UpstreamCaller): Promise<Conn> {
    if (shuttingDown) throw new TesseraError('TESSERA_GATEWAY_CLOSED', 'the gateway is shutting down');
    const key = keyOf(caller);
    let conn = conns.get(key);
    if (!conn || conn.closed) {
      const fresh: Conn = { key, principal: caller.principal, sessionId: caller.sessionId, secrets: [], uses: [], leases: [], inflight: 0, calls: new Set(), sessions: new Set(), usedAt: performance.now(), closed: false, ready: Promise.resolve() };
      fresh.ready = connect(fresh, caller.where);
      conns.set(key, fresh);
      conn = fresh;
      fresh.ready.catch(() => undefined);
    }
    conn.inflight++;
    attach(conn, caller.sessionId);
    try {
      await conn.ready;
      if (injected.length) await checkInjection(conn, caller);
    } catch (e) {
      conn.inflight--;
      throw e;
    }
    return conn;
  }

  function release(conn: Conn): void {
    conn.inflight--;
    touch(conn);
  }

  async function tools(conn: Conn, signal: AbortSignal): Promise<GatewayTool[]> {
    if (!conn.tools) {
      const p = (async () => {
        const out: GatewayTool[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < MAX_LIST_PAGES; page++) {
          const r = await conn.client!.listTools(cursor ? { cursor } : {}, { signal, timeout: callTimeoutMs });
          for (const t of r.tools) out.push(toGatewayTool(t));
          cursor = r.nextCursor;
          if (!cursor) break;
        }
        return out;
      })();
      conn.tools = p;
      p.catch(() => {
        if (conn.tools === p) conn.tools = undefined;
      });
    }
    try {
      return await conn.tools;
    } catch (e) {
      throw toUpstreamError(e, conn, 'list');
    }
  }

  async function request<T>(what: string, caller: UpstreamCaller, signal: AbortSignal, run: (client: Client, options: UpstreamRequestOptions) => Promise<T>): Promise<{ value: T; secrets: readonly SecretInput[] }> {
    const conn = await acquire(caller);
    try {
      const ac = new AbortController();
      // Aborting makes the SDK send notifications/cancelled upstream (MCP "Cancellation").
      const call: InflightCall = { principal: caller.principal, sessionId: caller.sessionId, ...(caller.rpcId !== undefined ? { requestId: caller.rpcId } : {}), cancel: (reason) => ac.abort(reason) };
      conn.calls.add(call);
      // The client's notifications/cancelled (or its session closing) cancels the upstream call:
      // the SDK sends notifications/cancelled upstream (MCP "Cancellation"); audited by the caller.
      const onAbort = (): void => ac.abort(isTesseraError(signal.reason) ? signal.reason : new TesseraError('TESSERA_GATEWAY_REQUEST_CANCELLED', `${what}: the client cancelled the request`));
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      const timer = setTimeout(() => ac.abort(new TesseraError('TESSERA_GATEWAY_UPSTREAM_TIMEOUT', `${what}: the upstream did not answer within ${describeDuration(callTimeoutMs)} (${config.call_timeout !== undefined ? 'its call_timeout' : 'gateway.call_timeout'})`)), callTimeoutMs);
      try {
        // The SDK's own timeout is set above ours so that ours (with its clear error) fires first.
        // Progress: the SDK sends its own token upstream and maps the upstream's progress back to
        // this call; the relay delivers it under the client's token, to this request only (ADR 0176).
        const relay = deps.relay;
        const token = caller.progressToken;
        const rpcId = caller.rpcId;
        const onprogress = relay && token !== undefined && rpcId !== undefined
          ? (p: { progress: number; total?: number; message?: string }) => relay.progress(caller.sessionId, rpcId, token, p, conn.secrets)
          : undefined;
        const value = await run(conn.client!, { signal: ac.signal, timeout: callTimeoutMs + 1000, ...(onprogress ? { onprogress } : {}) });
        return { value, secrets: conn.secrets };
      } catch (e) {
        if (ac.signal.aborted && isTesseraError(ac.signal.reason)) throw ac.signal.reason;
        const err = toUpstreamError(e, conn, 'call');
        // An HTTP upstream that failed (down, restarted and lost our session) is reconnected on the next call.
        if (config.transport === 'streamable_http' && !(err instanceof UpstreamRpcError) && !(isTesseraError(err) && err.code === RESULT_TOO_LARGE)) void stop(conn, 'failed');
        throw err;
      } finally {
        conn.calls.delete(call);
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      }
    } finally {
      release(conn);
    }
  }

  return {
    server: config.name,
    transport: config.transport,
    get size() {
      return conns.size;
    },
    async listTools(caller, signal) {
      const conn = await acquire(caller);
      try {
        return { tools: await tools(conn, signal), secrets: conn.secrets };
      } finally {
        release(conn);
      }
    },
    async callTool(tool, args, caller, signal) {
      const r = await request(`${config.name}/${tool}`, caller, signal, (client, options) => client.callTool({ name: tool, arguments: { ...args } }, undefined, options));
      return { result: r.value as ToolResult, secrets: r.secrets };
    },
    request,
    get capabilities() {
      return lastCapabilities;
    },
    async setLogLevel(level, caller, signal) {
      const existing = conns.get(keyOf(caller));
      if (!existing || existing.closed || !existing.client) return false;
      const conn = await acquire(caller);
      try {
        if (!conn.client?.getServerCapabilities()?.logging) return false;
        const wanted = deps.relay?.levelFor(conn.sessions) ?? level;
        await conn.client.setLoggingLevel(wanted, { signal, timeout: callTimeoutMs });
        return true;
      } catch (e) {
        throw toUpstreamError(e, conn, 'call');
      } finally {
        release(conn);
      }
    },
    async stopWhere(match, cause) {
      const victims = [...conns.values()].filter((c) => match({ principal: c.principal, sessionId: c.sessionId }) || [...c.calls].some((x) => match(x)));
      await Promise.all(victims.map((c) => stop(c, cause)));
    },
    async close() {
      shuttingDown = true;
      await Promise.all([...conns.values()].map((c) => stop(c, 'shutdown')));
    },
  };
}

function toGatewayTool(t: Tool): GatewayTool {
  return {
    name: t.name,
    ...(t.description !== undefined ? { description: t.description } : {}),
    inputSchema: t.inputSchema as Record<string, unknown>,
    ...(t.annotations ? { annotations: t.annotations as Record<string, unknown> } : {}),
    // Kept for drift's pinning digest (src/drift/digest.ts); not served.
    ...(t.title !== undefined ? { title: t.title } : {}),
    ...(t.outputSchema !== undefined ? { outputSchema: t.outputSchema as Record<string, unknown> } : {}),
  };
}

async function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) throw onAbort();
  return new Promise<T>((resolve, reject) => {
    const h = (): void => reject(onAbort());
    signal.addEventListener('abort', h, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', h);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', h);
        reject(e as Error);
      },
    );
  });
}
