/**
 * The composition root: the only module that chooses adapters (store, sinks, engines) and wires
 * services together. Everything else takes its dependencies as arguments.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadConfigFile, parseConfig, type TesseraConfig } from './config/index.js';
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
import { createAdminTokenService } from './admin/index.js';
import { createAuditLog, checkpointPublicKey, registerAuditRoutes, verifyAudit, type AuditLog } from './audit/index.js';
import { resolveMasterKey, createKvService, registerSecretRoutes, rotateMasterKey, loadMasterKeyFile, masterSealer, generateMasterKeyFile, DEFAULT_MASTER_KEY_FILE } from './secrets/index.js';
import { createPolicyEngine, registerPolicyRoutes } from './policy/index.js';
import { createLeaseService, registerLeaseRoutes, type DynamicEngine } from './leases/index.js';
import { createPostgresEngine, registerPostgresEngineRoutes } from './engines/index.js';
import { createRevocationService, registerRevocationRoutes } from './revocations/index.js';
import { createJoinTokenService, createAttestation, createAgentRegistry, registerIdentityRoutes } from './identity/index.js';
import { createKeyManager, createTokenService, createTokenExchange, createAgentAuthenticator, registerTokenRoutes } from './tokens/index.js';
import { runCli, type Runtime, type RunningServer } from './cli/index.js';
import { createGateway, type Gateway, type ToolProvider } from './gateway/index.js';

export { VERSION };
export const DEMO_POLICY_DIR = join(PACKAGE_ROOT, 'examples', 'policies');

const REVOCATION_CHANNEL = 'tessera_revocations';
const KEYS_CHANNEL = 'tessera_signing_keys';
const RECONCILE_INTERVAL_MS = 5 * 60_000;
const REVOCATION_REFRESH_MS = 30_000;

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

function openStore(config: TesseraConfig): Store {
  if (config.store.kind === 'postgres') return openPostgresStore({ url: config.store.url });
  return openSqliteStore({ file: config.store.file ?? join(config.data_dir, 'tessera.db') });
}

function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new TesseraError('TESSERA_DATA_DIR_NOT_WRITABLE', `data directory ${dir} cannot be created (${(e as NodeJS.ErrnoException).code ?? 'error'}); choose another with --data-dir or data_dir`);
  }
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
    ensureDataDir(config.data_dir);
    const { host, port } = await resolveListen(config.server.listen);
    const issuer = (config.server.public_url ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/$/, '');

    const store = openStore(config);
    cleanups.push(() => store.close());
    await store.migrate();
    const admin = createAdminTokenService({ store, clock });
    // Before the master key: on a data directory `tessera init` never ran, the missing key is a
    // consequence; the actionable error is the missing initialisation.
    if (mode === 'server' && (await admin.count()) === 0) {
      throw new TesseraError('TESSERA_NOT_INITIALIZED', `no admin token exists in ${config.data_dir}; run \`tessera init --config <file>\` first`);
    }

    const master = resolveMasterKey({ config: config.master_key, dataDir: config.data_dir, dev: mode === 'dev', env });
    const sealer = master.sealer;

    const audit = await createAuditLog({
      store, clock, sealer, sinks: config.audit.sinks, replicaId,
      checkpointEveryEvents: config.audit.checkpoint_every_events, checkpointEveryMs: config.audit.checkpoint_every, logger, metrics,
    });
    cleanups.push(() => audit.close());

    let adminToken: string | undefined;
    if (mode === 'dev') {
      // A fixed --root-token survives restarts on the same data dir: create it only once.
      const known = options.rootToken ? await admin.authenticate(options.rootToken).then(() => true, () => false) : false;
      adminToken = known ? options.rootToken : (await admin.create(options.rootToken ? { value: options.rootToken } : {})).token;
    }

    const policyDir = mode === 'dev' && !existsSync(config.policy.dir) ? DEMO_POLICY_DIR : config.policy.dir;
    const policy = createPolicyEngine({ dir: policyDir, clock, logger, audit, metrics, cacheSize: config.policy.cache_size, watch: config.policy.watch });
    await policy.start();
    cleanups.push(() => policy.stop());

    // Dynamic engines: PostgreSQL users per lease (configured through /v1/admin/engines/postgres).
    const postgresEngine = createPostgresEngine({ store, sealer, clock, logger, audit, metrics });
    await postgresEngine.start();
    cleanups.push(() => postgresEngine.stop());
    const engines: DynamicEngine[] = [postgresEngine.engine, ...(options.engines ?? [])];
    const leases = createLeaseService({ store, clock, audit, engines, maxRevokeAttempts: config.leases.revoke_max_attempts, metrics });
    // Created after the revocation service (it needs the token service); the hook reaches it late.
    const gatewayRef: { current?: Gateway } = {};
    const revocations = createRevocationService({
      store, clock, audit, leases,
      onRevoke: (source) => {
        policy.invalidate();
        gatewayRef.current?.onRevocation();
        // Other replicas reload their indexes (PostgreSQL LISTEN/NOTIFY; in-process on SQLite).
        if (source === 'local') void store.publish(REVOCATION_CHANNEL, replicaId).catch((e: unknown) => logger.error({ err: (e as Error).message }, 'revocation fan-out failed'));
      },
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
    ];
    for (const t of timers) t.unref();
    cleanups.push(() => timers.forEach(clearInterval));

    const joinAttestor = config.attestors.find((a) => a.kind === 'join_token');
    const joinTokens = createJoinTokenService({ store, clock, audit, maxTtlMs: joinAttestor && joinAttestor.kind === 'join_token' ? joinAttestor.max_ttl : 3_600_000 });
    const agentRegistry = createAgentRegistry({ store, clock, logger });
    agentRegistry.start();
    cleanups.push(() => agentRegistry.close());
    const attestation = createAttestation({ attestors: config.attestors, trustDomain: config.trust_domain, joinTokens, clock, audit, store, clockSkewMs: config.tokens.clock_skew, agents: agentRegistry, metrics });

    const keys = createKeyManager({ store, sealer, clock, audit, rotationPeriodMs: config.tokens.signing.rotation_period, overlapMs: config.tokens.signing.overlap, maxTokenTtlMs: Math.max(config.tokens.agent_ttl, config.tokens.task_ttl) });
    await keys.ensureKeys();
    const rotation = setInterval(() => void keys.rotateIfDue().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'signing key rotation failed')), 60_000);
    // An operator rotation (possibly revoking keys) on another replica takes effect here at once.
    const unsubscribeKeys = await store.subscribe(KEYS_CHANNEL, (origin) => {
      if (origin !== replicaId) void keys.reload().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'signing key reload failed'));
    }, { onResync: () => void keys.reload().catch(() => undefined) });
    cleanups.push(() => unsubscribeKeys());
    rotation.unref();
    cleanups.push(() => clearInterval(rotation));

    const tokens = createTokenService({ keys, clock, issuer, agentTtlMs: config.tokens.agent_ttl, skewMs: config.tokens.clock_skew, revocations, metrics });
    const audiences = [issuer, `${issuer}/mcp`];
    const exchange = createTokenExchange({ attestation, tokens, revocations, audit, defaultAudience: issuer, allowedAudiences: audiences });
    const agents = createAgentAuthenticator(tokens, { audience: issuer, audit });

    const kv = createKvService({ store, sealer, clock, audit });
    const gw = createGateway({ config: config.gateway, tokens, authorizer: policy, kv, leases, revocations, audit, clock, logger, metrics, issuer, version: VERSION, ...(options.gatewayProviders ? { providers: options.gatewayProviders } : {}) });
    gatewayRef.current = gw;

    const app = createApp({ logger, replicaId, bodyLimit: config.server.body_limit_bytes, trustProxy: config.server.trust_proxy, admin, agents });
    registerOpenApi(app, { version: VERSION, publicUrl: issuer });
    instrumentRequests(app, metrics);
    const checks: ReadinessCheck[] = [
      { name: 'store', check: async () => ({ ok: await store.ping() }) },
      policy.readinessCheck(),
      { name: 'signing_keys', check: async () => ({ ok: keys.jwks().keys.length > 0 }) },
      // Not ready while the last audit batch reached no sink: requests would be refused anyway.
      { name: 'audit', check: async () => { const h = audit.health(); return { ok: h.ok, detail: h }; } },
    ];
    registerSystemRoutes(app, { metrics, checks, version: VERSION });
    registerTokenRoutes(app, { exchange, keys, tokens, revoker: revocations, audit, issuer, audiences, onKeysChanged: () => void store.publish(KEYS_CHANNEL, replicaId).catch(() => undefined) });
    registerIdentityRoutes(app, { joinTokens, store });
    registerSecretRoutes(app, { kv, authorizer: policy });
    registerPolicyRoutes(app, { policy });
    registerLeaseRoutes(app, { leases, authorizer: policy });
    registerRevocationRoutes(app, { revocations });
    registerAuditRoutes(app, { audit });
    registerPostgresEngineRoutes(app, { postgres: postgresEngine });
    gw.register(app);

    await app.listen({ host, port });
    cleanups.push(() => app.close());
    cleanups.push(() => gw.close()); // runs before app.close (cleanups run in reverse)
    await audit.append({ kind: 'server.started', actor: { id: 'system' }, action: 'server.start', result: 'success', where: { replica: replicaId }, details: { version: VERSION, replica: replicaId } });

    let joinToken: string | undefined;
    if (mode === 'dev') {
      const demo = await joinTokens.create({ spiffeId: `spiffe://${config.trust_domain}/ns/healthcare/sa/patient-reader`, ttlMs: 3_600_000, labels: {} });
      joinToken = demo.token;
    }

    let closed = false;
    return {
      url: issuer,
      localUrl: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
      adminToken,
      joinToken,
      config,
      store,
      audit,
      metrics,
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

/** Config for `tessera dev`: a file when given, else defaults with the dev overrides. */
function devConfig(opts: { listen?: string; dataDir?: string; configPath?: string }): TesseraConfig {
  const base = opts.configPath ? loadConfigFile(opts.configPath) : parseConfig({});
  return parseConfig({
    ...rawOf(base),
    ...(opts.dataDir ? { data_dir: opts.dataDir } : {}),
    server: { ...rawOf(base).server, ...(opts.listen ? { listen: opts.listen } : {}) },
  });
}

/** Turns a parsed config back into input form (durations in ms → "<n>ms"). */
function rawOf(config: TesseraConfig): Record<string, unknown> & { server: Record<string, unknown> } {
  const convert = (v: unknown, key: string): unknown => {
    if (typeof v === 'number' && /(ttl|skew|period|overlap|interval|checkpoint_every|timeout)$/.test(key) && key !== 'checkpoint_every_events') return `${v}ms`;
    if (Array.isArray(v)) return v.map((x) => convert(x, ''));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, convert(x, k)]));
    return v;
  };
  return convert(config, '') as Record<string, unknown> & { server: Record<string, unknown> };
}

function serverConfig(opts: { configPath?: string; dataDir?: string }): TesseraConfig {
  const base = opts.configPath ? loadConfigFile(opts.configPath) : parseConfig({});
  return opts.dataDir ? parseConfig({ ...rawOf(base), data_dir: opts.dataDir }) : base;
}

export const runtime: Runtime = {
  async dev(opts) {
    return startTessera({ config: devConfig(opts), mode: 'dev', rootToken: opts.rootToken });
  },
  async server(opts) {
    return startTessera({ config: loadConfigFile(opts.configPath), mode: 'server' });
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
      const admin = createAdminTokenService({ store, clock: systemClock });
      if ((await admin.count()) > 0) throw new TesseraError('TESSERA_ALREADY_INITIALIZED', `${config.data_dir} already has an admin token; Tessera is initialised`);
      const { token } = await admin.create();
      return { adminToken: token, dataDir: config.data_dir, ...(masterKeyFile ? { masterKeyFile } : {}) };
    } finally {
      await store.close();
    }
  },
  async rotateMasterKey(opts) {
    const config = serverConfig(opts);
    const old = resolveMasterKey({ config: config.master_key, dataDir: config.data_dir, dev: false, env: process.env });
    const next = masterSealer(loadMasterKeyFile(opts.newKeyFile));
    const store = openStore(config);
    try {
      await store.migrate();
      const report = await rotateMasterKey({
        store, oldSealer: old.sealer, newSealer: next, clock: systemClock,
        onProgress: opts.onProgress ? (p: { done: number }) => opts.onProgress!(p.done, 0) : undefined,
      });
      return { rewrapped: report.rewrapped };
    } finally {
      await store.close();
    }
  },
  async verifyAuditOffline(opts) {
    const config = serverConfig(opts);
    const store = openStore(config);
    try {
      // The public key comes from the sealed private key (needs the master key), not from the
      // clear copy in the database, which whoever could edit the events could also replace.
      const master = resolveMasterKey({ config: config.master_key, dataDir: config.data_dir, dev: false, env: process.env });
      return await verifyAudit({ store, publicKey: await checkpointPublicKey(store, master.sealer) });
    } finally {
      await store.close();
    }
  },
};

/** The `tessera` command (bin/tessera.js calls this). */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  return runCli(argv, runtime);
}
