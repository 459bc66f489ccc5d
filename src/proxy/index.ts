/**
 * Tessera's injection proxy (docs/proxy.md): agents' plain HTTP(S) goes through Tessera, which
 * authenticates the agent, authorizes the request, adds the route's credential and scrubs the
 * response. `createProxy` assembles the parts; src/main.ts chooses the seams' implementations.
 */
import type { AuditWriter } from '../audit/port.js';
import type { SecretUseRecorder } from '../gateway/types.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import type { AgentAuthenticator } from '../server/app.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { MetricsRegistry } from '../shared/metrics.js';
import type { RevocationSubject } from '../shared/revocation.js';
import { createProxyAuthenticator } from './auth.js';
import { createCredentialProvider, type CredentialDeps } from './credential.js';
import { createProxyRequestHandler } from './request.js';
import { compileRoutes, type RouteTable } from './route-table.js';
import { createProxyServer, type ConnectHandler, type CoreConnectDeps } from './server.js';
import type { DispatcherFactory, ScrubSessionFactory } from './seams.js';
import { createScrubSession } from './scrub-stream.js';
import { createProxyMetering } from './metering.js';
import { createOauthSources } from './oauth-sources.js';
import type { ProxyLimits } from './limits.js';
import { createSsrfGuard, type SsrfGuard } from './ssrf.js';
import { createTunnelRegistry, handleConnect } from './connect.js';
import type { TlsInterceptor } from './intercept.js';
import type { ProxyConfig, ProxyRouteConfig } from './config.js';

export { proxyConfigSchema, parseByteSize, hostsOf, sourceOf, formatOf, type ProxyConfig, type ProxyRouteConfig } from './config.js';
export { createProxyAuthenticator, proxyAuthorizationToken, presentedToken, PROXY_CHALLENGE, type ProxyAuthenticator, type ProxyMode } from './auth.js';
export { createCredentialProvider, type CredentialProvider, type InjectedCredential, type AccessTokenSource } from './credential.js';
export { createProxyRequestHandler, checkPath, pathTemplate, queryKeys, type TunnelBinding } from './request.js';
export { createProxyServer, type CoreConnectDeps, type ConnectHandler, type ProxyServer } from './server.js';
export { compileRoutes, type CompiledRoute, type RouteTable } from './route-table.js';
export { registerProxyRoutes, describeRoutes, type ProxyWhatIf } from './routes.js';

/** The proxy's audience (RFC 8707 resource indicator): tokens for it are requested with `audience=<issuer>/proxy`. */
export const proxyAudienceOf = (issuer: string): string => `${issuer.replace(/\/$/, '')}/proxy`;

export interface ProxyDeps extends Omit<CredentialDeps, 'authorizer'> {
  readonly config: ProxyConfig;
  /** The one request pipeline's authenticator for `<issuer>/proxy` (src/pipeline/authenticate.ts). */
  readonly authenticator: AgentAuthenticator;
  readonly issuer: string;
  readonly authorizer: RequestAuthorizer;
  readonly revocations: { isPrincipalRevoked(p: RevocationSubject): boolean };
  readonly audit: Pick<AuditWriter, 'append'>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly replica: string;
  readonly secretUses?: SecretUseRecorder;
  readonly dpopNonce?: () => string | undefined;
  /** The SSRF guard (src/proxy/ssrf.ts): every route's connections go only to addresses it vetted. Default: one with Node's resolver. */
  readonly guard?: SsrfGuard;
  /** Reads a kv secret as Tessera itself: the client secret of `credential.oauth` routes (`path`), audited. */
  readonly clientSecret?: (path: string, route: string) => Promise<string>;
  /** Per-route request/token limits and usage counters (src/proxy/limits.ts); absent: no limits, no usage counting. */
  readonly limits?: ProxyLimits;
  /** TLS interception for CONNECT (src/proxy/connect.ts, intercept.ts); absent: CONNECT is refused (405). */
  readonly tls?: { readonly interceptor: TlsInterceptor; readonly maxTunnelsPerAgent?: number };
  /** The other parts' implementations (defaults: seams.ts). */
  readonly seams?: {
    readonly dispatcher?: DispatcherFactory;
    readonly scrubSession?: ScrubSessionFactory;
    readonly forwardHeaders?: (incoming: import('node:http').IncomingHttpHeaders, strip: readonly string[]) => Record<string, string | string[]>;
    readonly connect?: ConnectHandler;
    readonly resolvePreset?: (r: ProxyRouteConfig) => ProxyRouteConfig;
  };
}

export interface Proxy {
  readonly routes: RouteTable;
  readonly guard: SsrfGuard;
  readonly audience: string;
  /** Starts the listener on `proxy.listen`; resolves its URL. */
  listen(): Promise<{ url: string; host: string; port: number }>;
  /** The revocation hook: cuts the connections of revoked principals at once. */
  onRevocation(): void;
  readonly connections: number;
  readonly connectDeps: CoreConnectDeps;
  close(): Promise<void>;
}

/**
 * Exposure windows of injected kv secrets (ADR 0150), coalesced: the uses of one secret by one
 * principal through one route within a second become one window (first start → last end), so a
 * busy route writes a row per principal and second, not per request.
 */
export function coalesceSecretUses(rec: SecretUseRecorder, everyMs = 1000): SecretUseRecorder & { close(): void } {
  type Use = Parameters<SecretUseRecorder['recordUse']>[0];
  const open = new Map<string, { -readonly [K in keyof Use]: Use[K] }>();
  const flush = (): void => {
    for (const u of open.values()) rec.recordUse(u);
    open.clear();
  };
  const timer = setInterval(flush, everyMs);
  timer.unref();
  return {
    now: () => rec.now(),
    recordUse(u) {
      const k = `${u.agent}\n${u.task ?? ''}\n${u.root ?? ''}\n${u.user ?? ''}\n${u.resource}`;
      const o = open.get(k);
      if (!o) open.set(k, { ...u });
      else {
        o.startedAt = Math.min(o.startedAt, u.startedAt);
        o.endedAt = Math.max(o.endedAt, u.endedAt);
      }
    },
    close() {
      clearInterval(timer);
      flush();
    },
  };
}

export function createProxy(deps: ProxyDeps): Proxy {
  const { config } = deps;
  const audience = proxyAudienceOf(deps.issuer);
  const guard = deps.guard ?? createSsrfGuard();
  const routes = compileRoutes(config, { dispatcher: deps.seams?.dispatcher ?? ((rules, o) => guard.dispatcher(rules, o)), ...(deps.seams?.resolvePreset ? { resolvePreset: deps.seams.resolvePreset } : {}) });
  const auth = createProxyAuthenticator(deps.authenticator, audience);
  // OAuth client-credentials routes: a token source each, through the SSRF guard (oauth-sources.ts).
  const oauth = !deps.oauthSource && deps.clientSecret ? createOauthSources(routes, { clock: deps.clock, guard, clientSecret: deps.clientSecret }) : undefined;
  const oauthSource = deps.oauthSource ?? oauth?.source;
  const credentials = createCredentialProvider({ authorizer: deps.authorizer, kv: deps.kv, leases: deps.leases, now: () => deps.clock.now(), ...(oauthSource ? { oauthSource } : {}) });
  const ref: { server?: ReturnType<typeof createProxyServer> } = {};
  const uses = deps.secretUses ? coalesceSecretUses(deps.secretUses) : undefined;
  const handler = createProxyRequestHandler({
    routes, auth, authorizer: deps.authorizer, credentials, audit: deps.audit, clock: deps.clock, logger: deps.logger, replica: deps.replica,
    maxRequestBytes: config.max_request_bytes, timeoutMs: config.timeout, audience,
    scrubSession: deps.seams?.scrubSession ?? createScrubSession,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.seams?.forwardHeaders ? { forwardHeaders: deps.seams.forwardHeaders } : {}),
    ...(uses ? { secretUses: uses } : {}),
    ...(deps.dpopNonce ? { dpopNonce: deps.dpopNonce } : {}),
    ...(deps.limits ? { metering: createProxyMetering(deps.limits) } : {}),
    onAuthenticated: (socket, principal) => ref.server?.track(socket, principal),
  });
  // CONNECT (HTTPS_PROXY): the TLS part's handler with the CORE dependencies; a routed host's tunnel
  // is vetted with that route's allow_private, an unrouted one with none.
  const tls = deps.tls;
  const tunnels = createTunnelRegistry();
  const connect: ConnectHandler | undefined = deps.seams?.connect ?? (tls
    ? (req, socket, head, core) => handleConnect(req, socket, head, {
      ...core, interceptor: tls.interceptor, audit: deps.audit, tunnels, replica: deps.replica, clock: deps.clock, logger: deps.logger, idleTimeoutMs: config.timeout,
      vet: (host, port) => guard.vet(host, port, { allow: routes.byHost(host)?.config.allow_private ?? [] }),
      ...(tls.maxTunnelsPerAgent !== undefined ? { maxTunnelsPerAgent: tls.maxTunnelsPerAgent } : {}),
    })
    : undefined);
  const server = createProxyServer({ handler, auth, authorizer: deps.authorizer, routes, revocations: deps.revocations, logger: deps.logger, replica: deps.replica, ...(connect ? { connect } : {}) });
  ref.server = server;
  deps.metrics?.gauge('tessera_proxy_connections', 'Open agent connections to the injection proxy').collect(() => server.connections);
  let closed = false;
  return {
    routes, audience, guard,
    get connections() {
      return server.connections;
    },
    connectDeps: server.connectDeps,
    async listen() {
      const listen = config.listen!;
      const i = listen.lastIndexOf(':');
      const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
      const a = await server.listen(host, Number(listen.slice(i + 1)));
      return { ...a, url: `http://${host.includes(':') ? `[${host}]` : host}:${a.port}` };
    },
    onRevocation() {
      const n = server.closeRevoked();
      if (n > 0) deps.logger.info({ connections: n }, 'proxy: closed the connections of revoked principals');
    },
    async close() {
      if (closed) return;
      closed = true;
      await server.close();
      await routes.close();
      await oauth?.close();
      uses?.close();
    },
  };
}
