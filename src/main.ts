/**
 * The composition root: the only module that chooses adapters (store, sinks, engines) and wires
 * services together. Everything else takes its dependencies as arguments.
 */
import { loadConsoleFiles, registerConsoleStatic } from './console/static.js';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { loadConfig, checkConfigPaths, postgresUrl, type TesseraConfig } from './config/index.js';
import { systemClock, type Clock } from './shared/clock.js';
import { createLogger, type Logger } from './shared/logger.js';
import { MetricsRegistry } from './shared/metrics.js';
import { TesseraError } from './shared/errors.js';
import { PACKAGE_ROOT, VERSION } from './shared/package.js';
import type { Store } from './store/port.js';
import { openSqliteStore } from './store/sqlite/index.js';
import { openPostgresStore } from './store/postgres/index.js';
import { createApp } from './server/app.js';
import { registerSystemRoutes, instrumentRequests, type ReadinessCheck } from './server/system-routes.js';
import { registerOpenApi } from './server/openapi.js';
import { createAdminTokenService, registerOperatorTokenRoutes, OPERATOR_TOKEN_TTL_DEFAULT_MS } from './admin/index.js';
import { createAuditLog, registerAuditRoutes, createAuditOperations, type AuditLog } from './audit/index.js';
import { archiveAuditOffline, verifyAuditOffline } from './audit/runtime.js';
import { resolveMasterKey, createKvService, registerSecretRoutes, rotateMasterKey, loadMasterKeyFile, masterSealer, generateMasterKeyFile, DEFAULT_MASTER_KEY_FILE } from './secrets/index.js';
import { createPolicyEngine, createDevPolicyEngine, registerPolicyRoutes, validatePolicyDir, formatPolicyError, unservedTrustDomains, describeUnserved } from './policy/index.js';
import { count } from './shared/plural.js';
import { createLeaseService, registerLeaseRoutes, leaseView, type DynamicEngine } from './leases/index.js';
import { createPostgresEngine, registerPostgresEngineRoutes } from './engines/index.js';
import { createRevocationService, registerRevocationRoutes } from './revocations/index.js';
import { revocationHook } from './revocations/hooks.js';
import { createPodRegistry, createPodWatcher } from './k8s/pods/index.js';
import { createTokenReviewer } from './identity/tokenreview.js';
import { createJoinTokenService, createAttestation, createAgentRegistry, registerIdentityRoutes, trustDomainsOf } from './identity/index.js';
import { createKeyManager, createTokenService, createTokenExchange, registerTokenRoutes } from './tokens/index.js';
import { createRequestAuthenticator, createRequestAuthorizer } from './pipeline/index.js';
import { runCli, type Runtime, type RunningServer } from './cli/index.js';
import { tuneServerHeap } from './shared/heap-tuning.js';
import { exitQuietlyOnBrokenPipe } from './cli/io.js';
import { createTaskExchange, createTaskStore, registerTaskRoutes } from './tasks/index.js';
import { createExposureService, registerExposureRoutes, type ExposureService } from './exposure/index.js';
import { createAuditStreams } from './console/events.js';
import { registerConsoleReadRoutes } from './console/read-routes.js';
import { liveConsoleSessions } from './console/overview.js';
import { createGateway, createDownstreamTokens, type Gateway, type ToolProvider } from './gateway/index.js';
import { createAuthEpoch } from './shared/auth-epoch.js';
import { createLimitAuditor } from './shared/limit-audit.js';
import { createAuthFailureGuard } from './shared/auth-failures.js';
import { TokenBuckets } from './shared/rate-limit.js';
import { buildOriginPolicy } from './server/origin.js';
import { createUserTokenVerifier } from './users/verify.js';
import { createAuthorizationServer, createClientResolver, createFederatedLogin, registerAuthorizationRoutes, GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN } from './users/oauth/index.js';
import { createDpopGuard, createHtuMatcher, dpopSettingsOf, htuBasesOf } from './dpop/index.js';
import { sha256 } from './shared/crypto.js';
import { createProxy, proxyAudienceOf, registerProxyRoutes, type Proxy } from './proxy/index.js';
import { loadOrCreateProxyCa } from './proxy/ca.js';
import { createTlsInterceptor } from './proxy/intercept.js';
import { registerProxyCaRoutes } from './proxy/ca-routes.js';
import { createProxyLimits } from './proxy/limits.js';
import { registerProxyUsageRoutes } from './proxy/usage-routes.js';
import { createRotationService, registerRotationRoutes } from './rotation/index.js';
import { createConsoleOidc, createConsoleRequestAuth, createConsoleSessionService, pruneConsoleRows, registerConsoleRoutes } from './console/index.js';
import { createDriftService, createEngineDrift, createPolicyDrift, createReadRecorder, createToolPinning, registerDriftRoutes } from './drift/index.js';

export { VERSION };
/** For the one read-only use of the admin token service before the audit log is open. */
const NO_AUDIT_NEEDED = { commit: () => Promise.reject(new TesseraError('TESSERA_INTERNAL', 'no write is expected before the audit log is open')) } as Pick<AuditLog, 'commit'>;

export const DEMO_POLICY_DIR = join(PACKAGE_ROOT, 'examples', 'policies');
/** The built operator console (`npm run build` → dist/console; console/ holds its sources). */
export const CONSOLE_DIR = join(PACKAGE_ROOT, 'dist', 'console');

const REVOCATION_CHANNEL = 'tessera_revocations';
const KEYS_CHANNEL = 'tessera_signing_keys';
/** Drift: an approval of a tool definition on one replica reloads the pins of the others. */
const DRIFT_CHANNEL = 'tessera_drift';
/** How often each replica looks at its loaded policy set's digest (a string compare when unchanged). */
const POLICY_DRIFT_POLL_MS = 5_000;
const RECONCILE_INTERVAL_MS = 5 * 60_000;
const REVOCATION_REFRESH_MS = 30_000;
/** How often expired token windows are swept closed (and observed by tessera_credential_exposure_seconds). */
const EXPOSURE_SWEEP_MS = 15_000;

export interface StartOptions {
  readonly config: TesseraConfig;
  readonly mode: 'dev' | 'server';
  /** Dev: the admin token value to create (`--root-token`); random when absent. */
  readonly rootToken?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Extra dynamic engines (tests). */
  readonly engines?: readonly DynamicEngine[];
  /** Extra in-process gateway tool providers (tests, benchmarks, embedding). */
  readonly gatewayProviders?: readonly ToolProvider[];
}

export interface RunningTessera extends RunningServer {
  /** Where this process listens (differs from `url`, the public issuer URL, behind a load balancer). */
  readonly localUrl: string;
  readonly config: TesseraConfig;
  readonly store: Store;
  readonly audit: AuditLog;
  readonly metrics: MetricsRegistry;
  /** Exposure windows (tests run its sweep and flush by hand). */
  readonly exposure: ExposureService;
  /** The injection proxy's URL, when `proxy.listen` is set (docs/proxy.md). */
  readonly proxyUrl?: string;
  /** The injection proxy itself (tests; the TLS part's CONNECT seam). */
  readonly proxy?: Proxy;
}

/** Resolves `host:0` to a free port so the issuer URL is known before the server listens. */
async function resolveListen(listen: string): Promise<{ host: string; port: number }> {
  const idx = listen.lastIndexOf(':');
  const host = listen.slice(0, idx).replace(/^\[|\]$/g, '');
  let port = Number(listen.slice(idx + 1));
  if (port === 0) {
    port = await new Promise<number>((res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen(0, host, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => res(p));
      });
    });
  }
  return { host, port };
}

function openStore(config: TesseraConfig, env: NodeJS.ProcessEnv = process.env): Store {
  if (config.store.kind === 'postgres') return openPostgresStore({ url: postgresUrl(config.store, env) });
  return openSqliteStore({ file: config.store.file ?? join(config.data_dir, 'tessera.db') });
}

/** The SQLite database file of a configuration (undefined for PostgreSQL). */
function sqliteFile(config: TesseraConfig): string | undefined {
  return config.store.kind === 'sqlite' ? (config.store.file ?? join(config.data_dir, 'tessera.db')) : undefined;
}

/** Refuses a data directory path that names something other than a directory (a file, a socket). */
function refuseNonDirectory(dir: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) throw new TesseraError('TESSERA_DATA_DIR_NOT_WRITABLE', `data directory ${dir} is ${st.isFile() ? 'a file' : 'not a directory'}; choose another with --data-dir or data_dir`, { dir });
}

/** For the commands that set a data directory up (`dev`, `init`): creates it (mode 0700) when missing. */
function ensureDataDir(dir: string): void {
  refuseNonDirectory(dir);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new TesseraError('TESSERA_DATA_DIR_NOT_WRITABLE', `data directory ${dir} cannot be created (${(e as NodeJS.ErrnoException).code ?? 'error'}); choose another with --data-dir or data_dir`, { dir });
  }
}

/**
 * For every command that uses an initialised data directory (`server`, `operator`, `audit verify
 * --offline`, `audit archive --offline`): the directory, and with SQLite its database, must
 * exist already. Nothing is created — a typo in `--data-dir` or a read-only command on the wrong
 * path must not leave an empty directory and database behind (docs/operator-guide.md).
 */
function requireInitialised(config: TesseraConfig): void {
  const dir = config.data_dir;
  refuseNonDirectory(dir);
  const init = `run \`tessera init\` (with the same --config or --data-dir) first`;
  if (!existsSync(dir)) throw new TesseraError('TESSERA_NOT_INITIALIZED', `no Tessera data directory at ${resolve(dir)}; ${init}`, { dir });
  const db = sqliteFile(config);
  if (db !== undefined && !existsSync(db)) throw new TesseraError('TESSERA_NOT_INITIALIZED', `no Tessera database at ${resolve(db)}; ${init}`, { dir });
}

export async function startTessera(options: StartOptions): Promise<RunningTessera> {
  const { config, mode } = options;
  const env = options.env ?? process.env;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const replicaId = config.replica_id ?? hostname();
  const metrics = new MetricsRegistry();
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        logger.warn({ err: (e as Error).message }, 'error during shutdown');
      }
    }
  };

  try {
    if (mode === 'server') requireInitialised(config);
    else ensureDataDir(config.data_dir);
    const { host, port } = await resolveListen(config.server.listen);
    const issuer = (config.server.public_url ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/$/, '');

    const store = openStore(config, env);
    cleanups.push(() => store.close());
    await store.migrate();
    // Before the master key: on a data directory `tessera init` never ran, the missing key is a
    // consequence; the actionable error is the missing initialisation.
    if (mode === 'server' && (await createAdminTokenService({ store, clock, audit: NO_AUDIT_NEEDED }).count()) === 0) {
      throw new TesseraError('TESSERA_NOT_INITIALIZED', `no admin token exists in ${config.data_dir}; run \`tessera init --config <file>\` first`);
    }

    const master = resolveMasterKey({ config: config.master_key, dataDir: config.data_dir, dev: mode === 'dev', env });
    const sealer = master.sealer;

    const audit = await createAuditLog({
      store, clock, sealer, sinks: config.audit.sinks, replicaId,
      checkpointEveryEvents: config.audit.checkpoint_every_events, checkpointEveryMs: config.audit.checkpoint_every, logger, metrics, env,
      flush: { mode: config.audit.flush, windowMs: config.audit.flush_window },
    });
    cleanups.push(() => audit.close());
    // Verify/archive jobs off the request path, the witness check, scheduled archiving (ADR 0031).
    const retention = config.audit.retention;
    const auditOps = createAuditOperations({
      store, clock, logger, replicaId, audit, pageSize: config.audit.verify.page_size,
      ...(retention ? { retention: { archiveDir: retention.archive_dir, keepEvents: retention.keep_events, keepForMs: retention.keep_for, segmentEvents: retention.segment_events, everyMs: retention.every } } : {}),
    });
    cleanups.push(() => auditOps.close()); // runs before audit.close (cleanups run in reverse)

    // One auth epoch for every cache of a verification or decision (docs/adr/0061-cache-invalidation.md).
    const epochBumps = metrics.counter('tessera_auth_epoch_bumps_total', 'Auth epoch bumps (cached verifications and decisions dropped), by cause');
    const epoch = createAuthEpoch((cause) => epochBumps.inc({ cause }));
    // Refusals by per-principal and per-source limits: counted always, audited once per window.
    const limitAudit = createLimitAuditor({ audit, clock, logger, metrics });
    // Refused credentials per source: limited before any verification, their events aggregated (ADR 0142).
    const authFailures = createAuthFailureGuard({ rate: { perSecond: config.server.auth_failure_rate_limit.per_second, burst: config.server.auth_failure_rate_limit.burst }, clock, audit, limitAudit, metrics });

    const admin = createAdminTokenService({ store, clock, audit });
    let adminToken: string | undefined;
    if (mode === 'dev') {
      // Each start revokes the `dev` token of the previous start and creates one fresh (docs/operators.md);
      // a fixed --root-token (no expiry) survives restarts on the same data dir: created only once.
      const dev = await admin.replaceDevToken(options.rootToken ? { value: options.rootToken, expiresAt: null } : { expiresAt: clock.now() + OPERATOR_TOKEN_TTL_DEFAULT_MS });
      adminToken = dev.token;
    }

    // Dev mode serves the demo policies until the configured directory exists (src/policy/dev-dir.ts).
    const makePolicy = (dir: string) => createPolicyEngine({ dir, clock, logger, audit, metrics, cacheSize: config.policy.cache_size, cacheSizePerPrincipal: config.policy.cache_size_per_principal, watch: config.policy.watch, epoch, servedTrustDomains: trustDomainsOf(config).list() });
    const policy = mode === 'dev'
      ? createDevPolicyEngine({ configuredDir: resolve(config.policy.dir), demoDir: DEMO_POLICY_DIR, make: makePolicy, logger })
      : makePolicy(resolve(config.policy.dir));
    await policy.start();
    cleanups.push(() => policy.stop());

    // Dynamic engines: PostgreSQL users per lease (configured through /v1/admin/engines/postgres).
    const postgresEngine = createPostgresEngine({ store, sealer, clock, logger, audit, metrics });
    await postgresEngine.start();
    cleanups.push(() => postgresEngine.stop());
    const engines: DynamicEngine[] = [postgresEngine.engine, ...(options.engines ?? [])];
    // Exposure windows (src/exposure, docs/exposure.md): written by the issuers, closed by revocations.
    const exposure = createExposureService({ store, clock, metrics, logger });
    exposure.start();
    cleanups.push(() => exposure.close()); // after the gateway closed (its connections' secret uses), before the store
    const leases = createLeaseService({ store, clock, audit, engines, maxRevokeAttempts: config.leases.revoke_max_attempts, metrics, exposure });
    // On shutdown, let clean-ups of failed issuances finish (each bounded by the engine timeout)
    // before the engines and the store close; what does not finish is recovered at the next start.
    cleanups.push(() => leases.idle());
    // Created after the revocation service (it needs the token service); the hook reaches it late.
    const gatewayRef: { current?: Gateway } = {};
    const proxyRef: { current?: Proxy } = {};
    // The trust domains identities may be issued for and accepted from (ADR 0021, docs/attestors.md).
    const trustDomains = trustDomainsOf(config);
    // The agents inventory: batched login sightings; also tells revocations whether an agent is known.
    const agentRegistry = createAgentRegistry({ store, clock, logger });
    agentRegistry.start();
    cleanups.push(() => agentRegistry.close());
    const revocations = createRevocationService({
      store, clock, audit, leases, trustDomains, agents: agentRegistry, exposure,
      // Only a change of the revocations in force ends cached decisions and sessions (ADR 0195).
      onRevoke: revocationHook({
        epoch, policy, gateway: () => gatewayRef.current, proxy: () => proxyRef.current,
        // Other replicas reload their indexes (PostgreSQL LISTEN/NOTIFY; in-process on SQLite).
        announce: () => void store.publish(REVOCATION_CHANNEL, replicaId).catch((e: unknown) => logger.error({ err: (e as Error).message }, 'revocation fan-out failed')),
      }),
    });
    await revocations.refresh();
    const unsubscribe = await store.subscribe(
      REVOCATION_CHANNEL,
      (origin) => {
        if (origin !== replicaId) void revocations.refresh().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'revocation refresh failed'));
      },
      { onResync: () => void revocations.refresh().catch(() => undefined) },
    );
    cleanups.push(() => unsubscribe());

    // Lease upkeep runs on one replica at a time (advisory lock on PostgreSQL): recovery of
    // intents abandoned by a crash, the reaper, and the both-way engine reconciliation.
    const leaderJob = (name: string, job: () => Promise<unknown>) => async (): Promise<void> => {
      try {
        await store.withLeaderLock(name, job);
      } catch (e) {
        logger.error({ err: (e as Error).message, job: name }, 'background job failed');
      }
    };
    // On the embedded store this process is the only one: every pending intent was abandoned by
    // a crash. On PostgreSQL another replica may be mid-issuance, so only intents older than the
    // grace period count as abandoned (the reaper's rule).
    await leaderJob('tessera-lease-recover', () => (config.store.kind === 'sqlite' ? leases.recover() : leases.reapOnce().then(() => leases.reconcile())))();
    const timers = [
      setInterval(leaderJob('tessera-lease-reaper', () => leases.reapOnce()), config.leases.reaper_interval),
      setInterval(leaderJob('tessera-lease-reconcile', () => leases.reconcile()), RECONCILE_INTERVAL_MS),
      // Safety net for missed notifications; also drops expired revocations from memory.
      setInterval(() => void revocations.refresh().catch(() => undefined), REVOCATION_REFRESH_MS),
      // Expired token windows are marked closed and observed by the histogram (no per-token timer).
      setInterval(leaderJob('tessera-exposure-sweep', () => exposure.sweepOnce()), EXPOSURE_SWEEP_MS),
    ];
    for (const t of timers) t.unref();
    cleanups.push(() => timers.forEach(clearInterval));

    const joinIndex = config.attestors.findIndex((a) => a.kind === 'join_token');
    const joinAttestor = config.attestors[joinIndex];
    const joinTokens = createJoinTokenService({
      store, clock, audit, trustDomain: config.trust_domain, maxTtlMs: joinAttestor && joinAttestor.kind === 'join_token' ? joinAttestor.max_ttl : 3_600_000,
      ...(joinAttestor ? { maxTtlSource: `attestors[${joinIndex}].max_ttl of attestor "${joinAttestor.name}" in the configuration; join tokens live at most 1h` } : {}),
    });
    // Kubernetes (docs/k8s-pods.md): the API for TokenReview attestors and the pod watch, only when used.
    const k8s = config.kubernetes;
    const tokenReviewUsed = config.attestors.some((a) => a.kind === 'jwt' && a.mode === 'tokenreview');
    // The client library loads only then (docs/adr/0290-server-memory-lazy-kubernetes-client.md).
    const kubeApi = k8s.watch_pods || tokenReviewUsed ? await import('./k8s/pods/api.js') : undefined;
    const kubeConfig = kubeApi ? kubeApi.kubeConfigFor(k8s.api, env) : undefined;
    const podRegistry = k8s.watch_pods ? createPodRegistry({ store, clock, revocations, revocationTtlMs: k8s.pod_revocation_ttl }) : undefined;
    const attestation = createAttestation({
      attestors: config.attestors, trustDomain: config.trust_domain, joinTokens, clock, audit, store, clockSkewMs: config.tokens.clock_skew, agents: agentRegistry, metrics,
      verifiedCacheSize: config.tokens.verified_cache_size, verifiedCachePerAgent: config.tokens.verified_cache_per_agent, epoch,
      ...(kubeApi && kubeConfig && tokenReviewUsed ? { tokenReview: createTokenReviewer({ post: kubeApi.tokenReviewPostFor(kubeConfig), clock }) } : {}),
      ...(podRegistry ? { pods: podRegistry } : {}),
    });
    // Every replica watches (ADR 0266): the first to claim a deleted pod revokes it, the others learn it like any revocation.
    const podWatcher = kubeApi && kubeConfig && podRegistry ? createPodWatcher({ source: kubeApi.podSourceFor(kubeConfig, k8s.api.namespace), registry: podRegistry, clock, logger, metrics, ...(k8s.api.namespace ? { namespace: k8s.api.namespace } : {}) }) : undefined;
    if (podWatcher) {
      podWatcher.start();
      cleanups.push(() => podWatcher.stop());
    }

    const keys = createKeyManager({ store, sealer, clock, audit, rotationPeriodMs: config.tokens.signing.rotation_period, overlapMs: config.tokens.signing.overlap, maxTokenTtlMs: Math.max(config.tokens.agent_ttl, config.tokens.task_ttl), epoch });
    await keys.ensureKeys();
    // The proxy's TLS-interception CA (docs/proxy-tls.md): created once (init, dev, or the first
    // start on a store without one), key sealed with the master key, shared by every replica.
    const proxyCa = await loadOrCreateProxyCa({ store, sealer, clock, audit, trustDomain: config.trust_domain });
    const rotation = setInterval(() => void keys.rotateIfDue().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'signing key rotation failed')), 60_000);
    // An operator rotation (possibly revoking keys) on another replica takes effect here at once.
    const unsubscribeKeys = await store.subscribe(KEYS_CHANNEL, (origin) => {
      if (origin !== replicaId) void keys.reload().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'signing key reload failed'));
    }, { onResync: () => void keys.reload().catch(() => undefined) });
    cleanups.push(() => unsubscribeKeys());
    rotation.unref();
    cleanups.push(() => clearInterval(rotation));

    const tokens = createTokenService({
      keys, clock, issuer, agentTtlMs: config.tokens.agent_ttl, skewMs: config.tokens.clock_skew, revocations, trustDomains, metrics,
      verifiedCacheSize: config.tokens.verified_cache_size, verifiedCachePerAgent: config.tokens.verified_cache_per_agent, epoch,
    });
    // The injection proxy's listener (docs/proxy.md): its port is known before tokens are issued for it.
    const proxyListen = config.proxy.listen !== undefined ? await resolveListen(config.proxy.listen) : undefined;
    const audiences = [issuer, `${issuer}/mcp`, ...(proxyListen ? [proxyAudienceOf(issuer)] : [])];
    // DPoP (RFC 9449, docs/dpop.md): proofs are checked against Tessera's own URLs; nonces are
    // derived from a secret every replica shares (the audit HMAC key, domain-separated).
    const dpop = createDpopGuard({
      settings: dpopSettingsOf(config.tokens.dpop), clock,
      htu: createHtuMatcher(htuBasesOf({ issuer, listenHost: host, listenPort: port, allowedHosts: config.server.allowed_hosts })),
      nonceKey: sha256(audit.hmac('tessera dpop nonce key v1')),
    });
    const loginRate = config.tokens.login_rate_limit;
    const delegation = config.tokens.delegation;
    // Authorize step of the request pipeline: token scope ∩ Cedar for the acting agent.
    const authorizer = createRequestAuthorizer(policy);
    // Task tokens and delegation (src/tasks, docs/tasks.md).
    // People: tokens of the trusted OpenID Providers (src/users, docs/users.md).
    const users = createUserTokenVerifier({ issuers: config.users.issuers, clock, skewMs: config.tokens.clock_skew });
    const tasks = createTaskExchange({
      onBehalf: { users, revocations },
      tokens, authorizer, store, audit, clock, audiences, taskTtlMs: config.tokens.task_ttl,
      maxDepth: delegation.max_depth, requireBindingForLabels: delegation.require_dpop_for_labels, dpop, failures: authFailures,
      limit: { buckets: new TokenBuckets({ perSecond: delegation.rate_limit.per_second, burst: delegation.rate_limit.burst }, clock), audit: limitAudit },
    });
    // Tessera's authorization server for people (MCP clients, `tessera login --oidc`; docs/users.md).
    const asConfig = config.users.authorization_server;
    const loginIssuer = config.users.issuers.find((i) => i.name === asConfig.login_issuer);
    const authorizationServer = asConfig.enabled && loginIssuer
      ? createAuthorizationServer({
        config: asConfig, loginIssuer, issuer, audiences, trustDomain: config.trust_domain, store, audit, clock, tasks, revoker: revocations, revocations,
        clients: createClientResolver({ config: asConfig, trustDomain: config.trust_domain, clock }),
        login: createFederatedLogin({ issuer: loginIssuer, redirectUri: `${issuer}/v1/oauth/callback`, hmac: (v) => audit.hmac(v), env }),
      })
      : undefined;
    if (authorizationServer) {
      const prune = setInterval(() => void store.withLeaderLock('tessera-oauth-prune', () => authorizationServer.prune()).catch((e: unknown) => logger.error({ err: (e as Error).message }, 'oauth prune failed')), RECONCILE_INTERVAL_MS);
      prune.unref();
      cleanups.push(() => clearInterval(prune));
    }
    const exchange = createTokenExchange({
      ...(authorizationServer ? { grants: { types: [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN], handle: (p, m, o) => authorizationServer.grant(p, m, o) } } : {}),
      attestation, tokens, revocations, audit, dpop, defaultAudience: issuer, allowedAudiences: audiences, tasks, store, failures: authFailures, roles: policy,
      userIssuer: (t) => users.issuerOf(t) !== undefined,
      loginLimits: {
        perIdentity: new TokenBuckets({ perSecond: loginRate.per_identity.per_second, burst: loginRate.per_identity.burst }, clock),
        perSource: new TokenBuckets({ perSecond: loginRate.per_source.per_second, burst: loginRate.per_source.burst }, clock),
        audit: limitAudit,
      },
      joinTokenIdentity: (t) => joinTokens.identityOf(t),
    });
    // The one request pipeline (src/pipeline): every enforcement point authenticates (token,
    // revocation, DPoP binding) and authorizes through these, each for its own audience.
    const agents = createRequestAuthenticator({ tokens, audit, dpop, failures: authFailures }, { audience: issuer });
    const gatewayAgents = createRequestAuthenticator({ tokens, audit, dpop, failures: authFailures }, { audience: `${issuer}/mcp`, resource: 'mcp' });
    // The proxy's own DPoP guard: proofs name the proxy's URLs (htu), not the API's.
    const proxyDpop = proxyListen ? createDpopGuard({
      settings: dpopSettingsOf(config.tokens.dpop), clock,
      htu: createHtuMatcher(htuBasesOf({ issuer: `http://${proxyListen.host.includes(':') ? `[${proxyListen.host}]` : proxyListen.host}:${proxyListen.port}`, listenHost: proxyListen.host, listenPort: proxyListen.port, allowedHosts: config.server.allowed_hosts })),
      nonceKey: sha256(audit.hmac('tessera dpop nonce key v1')),
    }) : undefined;

    // Drift (src/drift, docs/drift.md): secret reads noted off the request path; tool pins; policy source.
    const reads = createReadRecorder({ store, clock, logger });
    cleanups.push(() => reads.close()); // before the store closes
    const kv = createKvService({ store, sealer, clock, audit, onRead: (path) => reads.note(path) });
    // Secret rotation (src/rotation, docs/rotation.md): one replica at a time runs the job (leader lock).
    const secretRotation = createRotationService({ store, kv, sealer, clock, audit, logger, metrics, config: config.rotation, engines: postgresEngine.passwords, singleProcess: config.store.kind === 'sqlite' });
    secretRotation.start();
    cleanups.push(() => secretRotation.stop());
    const toolPins = config.gateway.servers.length > 0
      ? createToolPinning({ store, clock, audit, logger, metrics, config: config.drift.tools, announce: () => void store.publish(DRIFT_CHANNEL, replicaId).catch(() => undefined) })
      : undefined;
    if (toolPins) {
      const off = await store.subscribe(DRIFT_CHANNEL, (origin) => {
        if (origin !== replicaId) void toolPins.reload().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'drift: reloading tool pins failed'));
      }, { onResync: () => void toolPins.reload().catch(() => undefined) });
      cleanups.push(() => off());
    }
    const policyDrift = createPolicyDrift({ status: () => policy.status(), store, clock, audit, logger, metrics, ...(config.drift.policy.expected_digest ? { expectedDigest: config.drift.policy.expected_digest } : {}) });
    await policyDrift.observe();
    const engineDrift = createEngineDrift({ store, clock, audit, inspect: (signal) => postgresEngine.inspect(signal) });
    const drift = createDriftService({
      store, clock, audit, logger, metrics, config: config.drift, policy: policyDrift, ...(toolPins ? { tools: toolPins } : {}), engine: engineDrift,
      secrets: { store, trustDomain: config.trust_domain, explain: (r) => policy.explain(r) },
    });
    const driftTimers = [
      setInterval(() => void policyDrift.observe(), POLICY_DRIFT_POLL_MS),
      setInterval(leaderJob('tessera-drift-check', () => drift.checkAndAudit()), config.drift.check_interval),
      // Another replica's approval is also seen without the fan-out (missed notification).
      ...(toolPins ? [setInterval(() => void toolPins.reload().catch(() => undefined), config.drift.check_interval)] : []),
    ];
    for (const t of driftTimers) t.unref();
    cleanups.push(() => driftTimers.forEach(clearInterval));
    const downstream = createDownstreamTokens({ tokens, audit, clock, tesseraAudiences: audiences });
    const gw = createGateway({ config: config.gateway, dataDir: config.data_dir, authenticator: gatewayAgents, dpop, authorizer, kv, leases, revocations, audit, clock, logger, metrics, issuer, version: VERSION, limitAudit, downstream, ...(options.gatewayProviders ? { providers: options.gatewayProviders } : {}), secretUses: { now: () => clock.now(), recordUse: (u) => exposure.recordUse(u) }, ...(toolPins ? { toolGate: toolPins } : {}) });
    gatewayRef.current = gw;
    // Per-route limits and usage counters of the proxy (docs/proxy-providers.md), per replica.
    const proxyLimits = createProxyLimits({ clock, metrics });
    const proxy = proxyListen && proxyDpop ? createProxy({
      config: { ...config.proxy, listen: `${proxyListen.host.includes(':') ? `[${proxyListen.host}]` : proxyListen.host}:${proxyListen.port}` },
      authenticator: createRequestAuthenticator({ tokens, audit, dpop: proxyDpop, failures: authFailures }, { audience: proxyAudienceOf(issuer), resource: 'proxy' }),
      issuer, authorizer, kv, leases, revocations, audit, clock, logger, metrics, replica: replicaId, dpopNonce: () => proxyDpop.nonce(), limits: proxyLimits,
      // The client secret of credential.oauth routes: read by Tessera itself, audited (secret.read).
      clientSecret: async (path, route) => (await kv.get(path, { ctx: { actor: { id: 'system' }, purpose: `OAuth client secret of proxy route ${route}` } })).value,
      secretUses: { now: () => clock.now(), recordUse: (u) => exposure.recordUse(u) },
      // HTTPS_PROXY: CONNECT with TLS interception for routed hosts (docs/proxy-tls.md).
      tls: { interceptor: createTlsInterceptor(proxyCa, { clock, leafTtlMs: config.proxy.leaf_ttl }), maxTunnelsPerAgent: config.proxy.max_tunnels_per_agent },
    }) : undefined;
    proxyRef.current = proxy;
    if (proxy) cleanups.push(() => proxy.close());

    // Operator console sessions (src/console, docs/console.md): cookies are Secure (`__Host-`) when
    // the public URL is https (Tessera itself listens in plain HTTP behind a TLS terminator).
    const consoleCookie = { secure: new URL(issuer).protocol === 'https:' };
    const consoleSessions = config.console.enabled ? createConsoleSessionService({ store, clock, audit, settings: { ttlMs: config.console.session_ttl, idleMs: config.console.idle_timeout } }) : undefined;
    const consoleAuth = consoleSessions ? createConsoleRequestAuth({ sessions: consoleSessions, cookie: consoleCookie, failures: authFailures, whereOf: (req) => ({ source: req.ip, replica: replicaId, requestId: req.id }) }) : undefined;
    const consoleOidcConfig = config.console.oidc;
    const consoleOidc = consoleSessions && consoleOidcConfig ? createConsoleOidc({ config: consoleOidcConfig, redirectUri: consoleOidcConfig.redirect_uri ?? `${issuer}/v1/console/oidc/callback`, store, clock, env }) : undefined;
    if (consoleSessions) {
      // A token revoked here ends its sessions now (and audits it); other replicas' revocations
      // are seen by every session request anyway (read through, src/console/sessions.ts).
      const off = admin.onRevoked((tokenId) => void consoleSessions.endForToken(tokenId, 'system').catch((e: unknown) => logger.error({ err: (e as Error).message }, 'ending console sessions of a revoked token failed')));
      cleanups.push(off);
      // Ended sessions are kept a day (the overview and `current` read them), then dropped.
      const prune = setInterval(() => void store.withLeaderLock('tessera-console-prune', () => pruneConsoleRows(store, clock.now(), clock.now() - 24 * 3_600_000)).catch((e: unknown) => logger.error({ err: (e as Error).message }, 'console prune failed')), RECONCILE_INTERVAL_MS);
      prune.unref();
      cleanups.push(() => clearInterval(prune));
    }

    const guardRefusals = metrics.counter('tessera_http_guard_refusals_total', 'Requests refused by the Origin/Host check, by header');
    const app = createApp({
      logger, replicaId, bodyLimit: config.server.body_limit_bytes, trustProxy: config.server.trust_proxy, admin, agents, authFailures,
      originPolicy: buildOriginPolicy({ issuer, listenHost: host, listenPort: port, allowedOrigins: config.server.allowed_origins, allowedHosts: config.server.allowed_hosts, localAddresses: Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address)) }),
      onGuardRefused: (what) => guardRefusals.inc({ header: what }),
      dpop: { algs: dpop.settings.algorithms, nonce: () => dpop.nonce() },
      ...(consoleAuth ? { consoleSessions: consoleAuth } : {}),
    });
    registerOpenApi(app, { version: VERSION, publicUrl: issuer });
    instrumentRequests(app, metrics);
    const checks: ReadinessCheck[] = [
      { name: 'store', check: async () => ({ ok: await store.ping() }) },
      policy.readinessCheck(),
      policyDrift.readinessCheck(),
      { name: 'signing_keys', check: async () => ({ ok: keys.jwks().keys.length > 0 }) },
      // Not ready while the last audit batch reached no sink: requests would be refused anyway.
      { name: 'audit', check: async () => { const h = audit.health(); return { ok: h.ok, detail: h }; } },
      // Detail only: unfinished revocations (disabled = cleanup pending, irrevocable = not even
      // disabled) need a person, but do not make this replica unable to serve.
      { name: 'leases', check: async () => ({ ok: true, detail: await leases.health() }) },
      // Detail only: while the watch is down, deletions are found by the relist when it is back.
      ...(podWatcher ? [{ name: 'kubernetes_pod_watch', check: async () => ({ ok: true, detail: podWatcher.status() }) }] : []),
      // Detail only: overdue secrets, failing rotations (docs/rotation.md "Alerts").
      { name: 'rotation', check: async () => ({ ok: true, detail: await secretRotation.health() }) },
    ];
    registerSystemRoutes(app, { metrics, checks, version: VERSION });
    if (authorizationServer) registerAuthorizationRoutes(app, { server: authorizationServer, issuer, admitSource: (m) => exchange.admitSource(m) });
    registerTokenRoutes(app, { ...(authorizationServer ? { authorizationServer } : {}), exchange, keys, tokens, revoker: revocations, audit, issuer, audiences, dpopAlgorithms: dpop.settings.algorithms, dpopNonce: () => dpop.nonce(), dpop, onKeysChanged: () => void store.publish(KEYS_CHANNEL, replicaId).catch(() => undefined), exposure, clock });
    registerIdentityRoutes(app, { joinTokens, store, revocations, clock });
    registerOperatorTokenRoutes(app, { tokens: admin, clock });
    registerSecretRoutes(app, { kv, authorizer, clock, checkRotator: (r) => secretRotation.checkRotator(r) });
    registerRotationRoutes(app, { rotation: secretRotation });
    registerPolicyRoutes(app, { policy });
    registerLeaseRoutes(app, { leases, authorizer, clock });
    registerRevocationRoutes(app, { revocations });
    const taskView = { tasks: createTaskStore(store), revocations, leases, audit, leaseView, clock };
    registerTaskRoutes(app, taskView);
    // The console's read API (docs/console-api.md): overview, agent detail, live audit events.
    const auditStreams = createAuditStreams({ store, logger, metrics, maxStreams: config.console.max_streams, maxStreamsPerOperator: config.console.max_streams_per_operator });
    registerConsoleReadRoutes(app, {
      overview: {
        store, clock, version: VERSION, exposure, policy,
        engines: () => postgresEngine.health(),
        lastVerify: () => auditOps.jobs.lastVerify(),
        mcpSessions: () => gw.sessionCount,
        ...(consoleSessions ? { consoleSessions: () => liveConsoleSessions(store, clock.now(), config.console.idle_timeout) } : {}),
      },
      detail: { store, clock, revocations, audit, tasks: taskView },
      streams: auditStreams,
    });
    registerExposureRoutes(app, { exposure, clock });
    registerDriftRoutes(app, { drift, ...(toolPins ? { tools: toolPins } : {}), engine: engineDrift });
    registerAuditRoutes(app, { audit, jobs: auditOps.jobs, checkWitness: (heads) => auditOps.checkWitness(heads) });
    registerPostgresEngineRoutes(app, { postgres: postgresEngine });
    registerProxyCaRoutes(app, { ca: proxyCa });
    registerProxyUsageRoutes(app, { limits: proxyLimits });
    // The operator console (docs/console.md): the built files, read once, served at /ui.
    registerConsoleStatic(app, loadConsoleFiles(CONSOLE_DIR));
    gw.register(app);
    if (consoleSessions && consoleAuth) registerConsoleRoutes(app, { sessions: consoleSessions, auth: consoleAuth, admin, cookie: consoleCookie, failures: authFailures, ...(consoleOidc ? { oidc: consoleOidc, oidcStarts: new TokenBuckets({ perSecond: loginRate.per_source.per_second, burst: loginRate.per_source.burst }, clock) } : {}), version: VERSION });
    const proxyUrl = proxyListen ? `http://${proxyListen.host.includes(':') ? `[${proxyListen.host}]` : proxyListen.host}:${proxyListen.port}` : undefined;
    registerProxyRoutes(app, { proxy: proxy ? { routes: proxy.routes, url: proxyUrl, vet: (h, p, r) => proxy.guard.vet(h, p, r) } : undefined, authorizer });

    await app.listen({ host, port });
    cleanups.push(() => app.close());
    if (proxy) await proxy.listen();
    cleanups.push(() => auditOps.close()); // again, before app.close: ends a job a `wait`ing request holds open
    cleanups.push(() => gw.close()); // runs before app.close (cleanups run in reverse)
    await audit.append({ kind: 'server.started', actor: { id: 'system' }, action: 'server.start', result: 'success', where: { replica: replicaId }, details: { version: VERSION, replica: replicaId } });

    let joinToken: string | undefined;
    let joinTokenFile: string | undefined;
    // A configuration may bound join tokens below 1 h, or not enable them at all.
    if (mode === 'dev' && joinAttestor?.kind === 'join_token') {
      const demo = await joinTokens.create({ spiffeId: `spiffe://${config.trust_domain}/ns/healthcare/sa/patient-reader`, ttlMs: Math.min(3_600_000, joinAttestor.max_ttl), labels: {} });
      joinToken = demo.token;
      // Also in a 0600 file of the data directory: `tessera login --join-token-file` keeps the
      // token out of the process list and the shell history (a new one replaces it every start).
      joinTokenFile = join(resolve(config.data_dir), 'demo-join-token');
      rmSync(joinTokenFile, { force: true });
      writeFileSync(joinTokenFile, `${demo.token}\n`, { mode: 0o600, flag: 'wx' });
    }

    let closed = false;
    return {
      url: issuer,
      localUrl: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
      adminToken,
      ...(mode === 'dev' && adminToken ? { adminTokenFixed: adminToken === options.rootToken } : {}),
      joinToken,
      ...(joinTokenFile ? { joinTokenFile } : {}),
      get policy() {
        const st = policy.status();
        return { dir: st.dir, demo: st.demo === true, configuredDir: st.configuredDir ?? st.dir, ids: st.ids };
      },
      config,
      store,
      audit,
      metrics,
      exposure,
      ...(proxyUrl ? { proxyUrl } : {}),
      ...(proxy ? { proxy } : {}),
      async close() {
        if (closed) return;
        closed = true;
        await cleanup();
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/**
 * Config for `tessera dev`: the file (or the defaults) with `--listen` / `--data-dir` applied to
 * the raw input and parsed once (src/config/load.ts); the same file gives `server` the same values.
 */
export function devConfig(opts: { listen?: string; dataDir?: string; configPath?: string }): TesseraConfig {
  return loadConfig({ path: opts.configPath, overrides: { dataDir: opts.dataDir, listen: opts.listen } });
}

/**
 * `tessera dev` runs the injection proxy unless the configuration says where: on the server's
 * host, the next port (127.0.0.1:8201 by default; port 0 stays 0, a free port).
 */
export function withDevProxy(config: TesseraConfig): TesseraConfig {
  if (config.proxy.listen !== undefined) return config;
  const i = config.server.listen.lastIndexOf(':');
  const port = Number(config.server.listen.slice(i + 1));
  return { ...config, proxy: { ...config.proxy, listen: `${config.server.listen.slice(0, i)}:${port === 0 || port >= 65535 ? 0 : port + 1}` } };
}

/** Config for `server`, `init`, `operator` and offline verification (`--data-dir` overrides). */
export function serverConfig(opts: { configPath?: string; dataDir?: string }): TesseraConfig {
  return loadConfig({ path: opts.configPath, overrides: { dataDir: opts.dataDir } });
}

export const runtime: Runtime = {
  // A server process of its own (docs/adr/0121-memory.md). Called again here, once the modules
  // have loaded (src/entry.ts called it first), and when the server has started: each call checks
  // the young generation against its cap at once (docs/adr/0290-server-memory-lazy-kubernetes-client.md).
  async dev(opts) {
    tuneServerHeap();
    const t = await startTessera({ config: withDevProxy(devConfig(opts)), mode: 'dev', rootToken: opts.rootToken });
    tuneServerHeap();
    return t;
  },
  async server(opts) {
    tuneServerHeap();
    const t = await startTessera({ config: serverConfig({ configPath: opts.configPath }), mode: 'server' });
    tuneServerHeap();
    return t;
  },
  async init(opts) {
    const config = serverConfig(opts);
    ensureDataDir(config.data_dir);
    let masterKeyFile: string | undefined;
    if (!config.master_key.env) {
      const file = config.master_key.file ?? join(config.data_dir, DEFAULT_MASTER_KEY_FILE);
      if (!existsSync(file)) {
        generateMasterKeyFile(file);
        masterKeyFile = file;
      }
    }
    const store = openStore(config);
    try {
      await store.migrate();
      // The first operator credential is audited like every other change (ADR 0041): the chain
      // starts here. The store is always a sink for it (stdout is left out: init prints the token).
      const master = resolveMasterKey({ config: config.master_key, dataDir: config.data_dir, dev: false, env: process.env });
      const audit = await createAuditLog({
        store, clock: systemClock, sealer: master.sealer, replicaId: config.replica_id ?? hostname(), logger: createLogger({ level: config.log.level }),
        sinks: [{ kind: 'store' }, ...config.audit.sinks.filter((s) => s.kind === 'file')],
      });
      try {
        const admin = createAdminTokenService({ store, clock: systemClock, audit });
        if ((await admin.count()) > 0) throw new TesseraError('TESSERA_ALREADY_INITIALIZED', `${config.data_dir} already has an admin token; Tessera is initialised`);
        const { token } = await admin.create({ name: 'init', role: 'admin', expiresAt: null });
        // The proxy CA is created here so that clients can be given it before the first start.
        await loadOrCreateProxyCa({ store, sealer: master.sealer, clock: systemClock, audit, trustDomain: config.trust_domain });
        return { adminToken: token, dataDir: config.data_dir, ...(masterKeyFile ? { masterKeyFile } : {}) };
      } finally {
        await audit.close();
      }
    } finally {
      await store.close();
    }
  },
  async rotateMasterKey(opts) {
    const config = serverConfig(opts);
    requireInitialised(config);
    const old = resolveMasterKey({ config: config.master_key, dataDir: config.data_dir, dev: false, env: process.env });
    const next = masterSealer(loadMasterKeyFile(opts.newKeyFile));
    const store = openStore(config);
    try {
      await store.migrate();
      // Audited (ADR 0041). The log opens its keys with whichever master key wraps them now (a
      // resumed run finds them re-wrapped already); anything it seals uses the new key.
      const eitherKey = { keyId: next.keyId, seal: next.seal.bind(next), open: (blob: Uint8Array, aad: string) => { try { return next.open(blob, aad); } catch { return old.sealer.open(blob, aad); } } };
      const audit = await createAuditLog({
        store, clock: systemClock, sealer: eitherKey, replicaId: config.replica_id ?? hostname(), logger: createLogger({ level: config.log.level }),
        sinks: [{ kind: 'store' }, ...config.audit.sinks.filter((s) => s.kind === 'file')],
      });
      try {
        const report = await rotateMasterKey({
          store, oldSealer: old.sealer, newSealer: next, clock: systemClock, audit,
          onProgress: opts.onProgress ? (p: { done: number }) => opts.onProgress!(p.done, 0) : undefined,
        });
        return { rewrapped: report.rewrapped };
      } finally {
        await audit.close();
      }
    } finally {
      await store.close();
    }
  },
  async verifyAuditOffline(opts) {
    const config = serverConfig(opts);
    requireInitialised(config);
    return verifyAuditOffline({ config, store: openStore(config), ...opts });
  },
  async checkConfig(opts) {
    const config = serverConfig(opts);
    const r = checkConfigPaths(config, process.env);
    const problems = [...r.problems];
    const notes = [...r.notes];
    const checked = [...r.checked, 'master_key'];
    // The master key: read and checked (format, file mode) as `tessera server` would, never shown.
    const keyFile = config.master_key.env ? undefined : (config.master_key.file ?? join(config.data_dir, DEFAULT_MASTER_KEY_FILE));
    const keyKey = config.master_key.env ? 'master_key.env' : config.master_key.file ? 'master_key.file' : 'data_dir';
    if (keyFile !== undefined && !existsSync(keyFile)) {
      notes.push({ key: keyKey, path: resolve(keyFile), message: `no master key at ${resolve(keyFile)} yet; \`tessera init\` generates one (mode 0600) — back it up` });
    } else {
      try {
        resolveMasterKey({ config: config.master_key, dataDir: config.data_dir, dev: false, env: process.env });
      } catch (e) {
        problems.push({ key: keyKey, ...(keyFile ? { path: resolve(keyFile) } : {}), message: (e as Error).message });
      }
    }
    // The policies, parsed and validated against Tessera's schema as the server loads them.
    if (!problems.some((p) => p.key === 'policy.dir')) {
      const v = validatePolicyDir(config.policy.dir);
      for (const e of v.errors) problems.push({ key: 'policy.dir', path: resolve(e.file), message: formatPolicyError(e) });
      if (v.ok) notes.push({ key: 'policy.dir', path: resolve(config.policy.dir), message: `${count(v.policies, 'policy', 'policies')} in ${count(v.files.length, 'file')}, valid` });
      // Valid Cedar that can never match: a pinned trust domain this configuration does not serve.
      const served = trustDomainsOf(config).list();
      for (const u of unservedTrustDomains(v.pinned, served)) notes.push({ key: 'policy.dir', path: resolve(u.file), message: `warning: ${describeUnserved(u, served)}` });
    }
    return { ok: problems.length === 0, config: opts.configPath, problems, notes, warnings: r.warnings, checked };
  },
  async archiveAuditOffline(opts) {
    const config = serverConfig(opts);
    requireInitialised(config);
    return archiveAuditOffline({ config, store: openStore(config), ...opts });
  },
};

/** The `tessera` command (bin/tessera.js calls this). */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  exitQuietlyOnBrokenPipe(process, (code) => process.exit(code));
  return runCli(argv, runtime);
}
