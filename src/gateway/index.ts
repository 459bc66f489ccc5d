/**
 * Tessera's MCP gateway (docs/gateway.md): agents call tools through `/mcp` and never see the
 * credentials those tools use.
 */
import type { FastifyInstance } from 'fastify';
import { issueAuthorized } from '../leases/authorized.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import type { AgentAuthenticator } from '../server/app.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditWhere } from '../audit/events.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { MetricsRegistry } from '../shared/metrics.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { sessionsPerAgent, sessionsPerAttestor, upstreamProcessesPerAgent, type GatewayConfig } from './config.js';
import type { LimitAuditor } from '../shared/limit-audit.js';
import { createGatewayCore } from './core.js';
import { createAnswerKit } from './answer.js';
import { createFeatures } from './features.js';
import { createMcpHttp, type PrincipalRevocationCheck } from './http.js';
import { createDeclarativeProviders } from './tools/index.js';
import type { SecretUseRecorder, ToolGate, ToolProvider } from './types.js';
import type { DpopGuard } from '../dpop/index.js';
import { createUpstream, type Injector, type Upstream } from './upstream.js';
import type { DownstreamTokens } from './downstream.js';
import { TesseraError } from '../shared/errors.js';
import { createIsolation, unisolatedServers } from './isolation.js';
import { count } from '../shared/plural.js';
import { createRelayHub } from './relay/hub.js';
import { loggingAvailable } from './relay/downstream.js';

export { gatewayConfigSchema, upstreamServerConfig, injectedValue, type GatewayConfig, type UpstreamServerConfig, type InjectedValue } from './config.js';
export { MCP_PATH, RESOURCE_METADATA_PATH, LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, type PrincipalRevocationCheck } from './http.js';
export { RPC, canonicalJson } from './core.js';
export type { GatewayTool, ToolProvider, ToolResult, ToolCallContext, ToolGate, GatedListing } from './types.js';
export { createDownstreamTokens, type DownstreamTokens } from './downstream.js';

export interface GatewayDeps {
  readonly config: GatewayConfig;
  /** The request pipeline's authenticate step for the gateway's audience (`<issuer>/mcp`), DPoP binding included. */
  readonly authenticator: AgentAuthenticator;
  /** DPoP (src/dpop): the server nonce on answers to DPoP requests, and the settings the resource metadata publishes. */
  readonly dpop: Pick<DpopGuard, 'settings' | 'nonce'>;
  /** The request pipeline's authorizer: token scope ∩ Cedar for the acting agent. */
  readonly authorizer: RequestAuthorizer;
  readonly kv: { resolveForInjection(principal: AgentPrincipal, path: string, authorizer: RequestAuthorizer, where?: AuditWhere): Promise<{ value: string }> };
  readonly leases: {
    issue(req: { engine: string; role: string; principal: AgentPrincipal; ttlMs?: number; where?: AuditWhere }): Promise<{ lease_id: string; data: Readonly<Record<string, unknown>> }>;
    revoke(id: string, cause: string, ctx?: { principal?: AgentPrincipal }): Promise<unknown>;
  };
  readonly revocations: PrincipalRevocationCheck;
  readonly audit: AuditWriter;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  /** Tessera's issuer URL; the gateway's resource (RFC 8707 audience) is `<issuer>/mcp`. */
  readonly issuer: string;
  readonly version?: string;
  /** Extra in-process providers (tests, embedding). */
  readonly providers?: readonly ToolProvider[];
  /** Audits refusals by the per-agent limits (one event per agent and limit per window). */
  readonly limitAudit?: LimitAuditor;
  /** Mints the task tokens sent to upstreams configured with `task_token` (src/gateway/downstream.ts). */
  readonly downstream?: DownstreamTokens;
  /** Tessera's data directory: `gateway.upstream_work_dir` must not be inside it. */
  readonly dataDir?: string;
  /** Exposure windows of injected kv secrets (src/exposure, ADR 0150). */
  readonly secretUses?: SecretUseRecorder;
  /** Tool-definition pinning of upstream servers (src/drift, docs/drift.md). */
  readonly toolGate?: ToolGate;
}

export interface Gateway {
  /** Mounts `/mcp` and `/.well-known/oauth-protected-resource/mcp`. */
  register(app: FastifyInstance): void;
  /** Call from the revocation service's `onRevoke`: closes the sessions (and upstreams) of revoked principals at once. */
  onRevocation(): void;
  /** The gateway's canonical URI, to add to the token exchange's allowed audiences. */
  readonly resource: string;
  readonly sessionCount: number;
  close(): Promise<void>;
}

export function createGateway(deps: GatewayDeps): Gateway {
  const { config, authorizer, audit, logger } = deps;
  const version = deps.version ?? '0.0.0';

  // A task token for one of Tessera's own audiences would be a Tessera credential in an
  // upstream's hands: refused at start (Tessera never accepts the type anyway).
  const own = [deps.issuer, `${deps.issuer}/mcp`];
  const taskTokens = [
    ...config.servers.flatMap((s) => (s.transport === 'streamable_http' && s.task_token ? [{ where: `gateway.servers "${s.name}"`, audience: s.task_token.audience }] : [])),
    ...config.tools.flatMap((t) => (t.kind === 'http' && t.task_token ? [{ where: `gateway.tools "${t.server}/${t.name}"`, audience: t.task_token.audience }] : [])),
  ];
  for (const t of taskTokens) {
    if (own.includes(t.audience)) throw new TesseraError('TESSERA_CONFIG_INVALID', `${t.where}: task_token.audience "${t.audience}" is one of Tessera's own audiences; name the upstream's own audience (e.g. its URL)`);
  }
  if (taskTokens.length > 0 && !deps.downstream) throw new TesseraError('TESSERA_CONFIG_INVALID', 'gateway: task_token is configured but this gateway has no token minter');

  const injector: Injector = {
    async downstreamToken(principal, audience, ttlMs, where) {
      if (!deps.downstream) throw new TesseraError('TESSERA_CONFIG_INVALID', 'gateway: task_token is configured but this gateway has no token minter');
      return deps.downstream.tokenFor(principal, audience, ttlMs, where);
    },
    async resolveSecret(principal, path, where) {
      // Policy `secret.inject` for the caller (kv audits the decision).
      return (await deps.kv.resolveForInjection(principal, path, authorizer, where)).value;
    },
    async issueCredential(principal, engine, role, ttlMs, where) {
      // The same authorize-then-issue path as POST /v1/creds (policy ∩ token scope).
      const l = await issueAuthorized({ leases: deps.leases, authorizer }, { principal, engine, role, ...(ttlMs !== undefined ? { ttlMs } : {}), where });
      return { leaseId: l.lease_id, data: l.data };
    },
    mayInject(principal, v) {
      const d = 'secret' in v
        ? authorizer.authorize({ principal, action: 'secret.inject', resource: { type: 'Secret', path: v.secret } })
        : authorizer.authorize({ principal, action: 'cred.issue', resource: { type: 'Role', engine: v.credential.engine, role: v.credential.role } });
      return d.allowed;
    },
    async revokeLease(leaseId, principal) {
      await deps.leases.revoke(leaseId, 'gateway.done', { principal });
    },
  };

  // Process isolation (ADR 0145, 0146): run_as is checked here (fail closed when Tessera cannot
  // switch users); stdio upstreams without it run as Tessera's own user, which is said loudly.
  const isolation = createIsolation(config, deps.dataDir);
  const unisolated = unisolatedServers(config);
  deps.metrics?.gauge('tessera_gateway_unisolated_upstreams', 'Stdio upstream servers configured without run_as: they run as Tessera\'s own user and can read its files and other upstreams\' environments').set(unisolated.length);
  if (unisolated.length > 0) {
    logger.warn({ servers: unisolated, docs: 'docs/gateway.md#process-isolation' }, `WARNING: ${count(unisolated.length, 'stdio upstream server')} (${unisolated.join(', ')}) without run_as run as Tessera's own user: a tool of theirs that reads files can read Tessera's master key, its database and the environment (injected secrets) of every other upstream process. Set run_as on each (Tessera must run as root), or wrap the command in an OS sandbox; gateway.require_isolation: true refuses to start without it`);
  }

  // Upstream notifications and server→client requests, to the right session (src/gateway/relay).
  const relay = createRelayHub({
    authorizer, audit, logger, clock: deps.clock, ...(deps.metrics ? { metrics: deps.metrics } : {}),
    limits: { queue: config.max_queued_notifications, rate: { perSecond: config.notification_rate.per_second, burst: config.notification_rate.burst }, serverRequests: config.max_server_requests_per_session, serverRequestTimeoutMs: config.server_request_timeout },
  });
  const processes = { count: 0, max: config.max_upstream_processes, perAgent: new Map<string, number>(), maxPerAgent: upstreamProcessesPerAgent(config), ...(deps.limitAudit ? { limitAudit: deps.limitAudit } : {}) };
  const upstreams: Upstream[] = config.servers.map((s) => createUpstream(s, {
    injector, audit, logger, version, processes, relay, ...(isolation ? { isolation } : {}), ...(deps.secretUses ? { secretUses: deps.secretUses } : {}),
    callTimeoutMs: config.call_timeout, maxResultBytes: config.max_result_bytes, idleTimeoutMs: config.idle_timeout, defaultIsolation: config.stdio_isolation,
  }));
  const providers: ToolProvider[] = [...createDeclarativeProviders(config.tools, { clock: deps.clock, logger }), ...(deps.providers ?? [])];

  const answers = createAnswerKit(audit);
  const features = createFeatures({ upstreams, authorizer, audit, logger, kit: answers, nameFormat: config.tool_name_format, auditArgumentValues: config.audit_argument_values, relay: { logging: (p) => loggingAvailable(core.usableUpstreams(p)), subscriptions: relay.subscriptions } });
  const core = createGatewayCore({ upstreams, providers, authorizer, injector, audit, logger, answers, ...(deps.metrics ? { metrics: deps.metrics } : {}), auditArgumentValues: config.audit_argument_values, toolNameFormat: config.tool_name_format, ...(deps.secretUses ? { secretUses: deps.secretUses } : {}), ...(deps.toolGate ? { toolGate: deps.toolGate } : {}) });

  const revoked = (p: AgentPrincipal): boolean => deps.revocations.isPrincipalRevoked(p);

  const http = createMcpHttp({
    core, features, authenticator: deps.authenticator, dpop: deps.dpop, revocations: deps.revocations, audit, logger, clock: deps.clock, ...(deps.metrics ? { metrics: deps.metrics } : {}),
    issuer: deps.issuer, version,
    maxMessageBytes: config.max_message_bytes, maxSessions: config.max_sessions, sessionIdleTimeoutMs: config.session_idle_timeout,
    limits: { sessionsPerAgent: sessionsPerAgent(config), sessionsPerAttestor: (name) => sessionsPerAttestor(config, name), inflightPerAgent: config.max_inflight_per_agent, inflightPerSession: config.max_inflight_per_session, rate: { perSecond: config.rate_limit.per_second, burst: config.rate_limit.burst }, batchMessages: config.max_batch_messages, responseBytes: config.max_response_bytes },
    ...(deps.limitAudit ? { limitAudit: deps.limitAudit } : {}),
    relay,
    onSessionClosed: (sessionId) => {
      for (const u of upstreams) if (isPerSession(u)) void u.stopWhere((o) => o.sessionId === sessionId, 'session_closed');
    },
  });
  const perSession = new Set(config.servers.filter((s) => s.transport === 'stdio' && (s.isolation ?? config.stdio_isolation) === 'per_session').map((s) => s.name));
  const isPerSession = (u: Upstream): boolean => perSession.has(u.server) || (u.transport === 'streamable_http' && config.stdio_isolation === 'per_session');

  let closed = false;
  return {
    resource: `${deps.issuer}/mcp`,
    get sessionCount() {
      return http.sessionCount;
    },
    register(app) {
      http.register(app);
    },
    onRevocation() {
      // Synchronous hook (revocations call it after updating their index): the closing itself is async.
      void http.closeRevoked().catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'gateway: closing revoked sessions failed'));
      for (const u of upstreams) void u.stopWhere((o) => revoked(o.principal), 'revoked').catch(() => undefined);
    },
    async close() {
      if (closed) return;
      closed = true;
      await http.closeAll('shutdown');
      await Promise.all([...upstreams, ...providers].map((p) => p.close().catch(() => undefined)));
      isolation?.close();
    },
  };
}
