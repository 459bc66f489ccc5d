import { kubernetesConfigSchema } from '../k8s/config.js';
import { driftConfigSchema } from '../drift/config.js';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { gatewayConfigSchema } from '../gateway/config.js';
import { rateField } from './fields.js';
import { parseHost, parseOrigin } from '../server/origin.js';
import { MAX_DEPTH_CEILING } from '../tasks/claims.js';
import { usersConfigSchema } from '../users/config.js';
import { DPOP_ALGORITHMS } from '../dpop/jwk.js';
import { DPOP_REQUIREMENTS } from '../dpop/settings.js';
import { proxyConfigSchema } from '../proxy/config.js';
import { consoleConfigSchema } from '../console/config.js';
import { rotationConfigSchema } from '../rotation/config.js';

/** A duration: seconds as a number, or a string like "30s", "5m", "1h". Parsed to milliseconds. */
export const duration = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as "30s", "5m" or "1h", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

const trustDomain = z
  .string()
  .regex(/^[a-z0-9._-]{1,255}$/, 'expected a SPIFFE trust domain: lowercase letters, digits, ".", "-" and "_"');

const listen = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:8200');

const joinTokenAttestor = z.object({
  kind: z.literal('join_token'),
  name: z.string().min(1).default('join_token'),
  max_ttl: duration.prefault(3600).refine((ms) => ms > 0 && ms <= 3_600_000, 'join tokens live at most 1h'),
}).strict();

const jwtAttestor = z.object({
  kind: z.literal('jwt'),
  name: z.string().min(1),
  issuer: z.string().min(1),
  audience: z.string().min(1),
  jwks_url: z.url().optional(),
  jwks_file: z.string().min(1).optional(),
  /** `kubernetes` for projected SA tokens, or a template such as `spiffe://{trust_domain}/ci/{claims.project_path}`. */
  template: z.string().min(1),
  algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).default(['RS256', 'ES256']),
  /**
   * Claims copied into the agent's attributes (labels, `label.<claim>`) for policy: a claim name
   * (lenient: strings, numbers, booleans as text) or `{ claim, type }` — `string`, `boolean`
   * (`true`/`false` or `"true"`/`"false"`) or `integer` — checked at every login (src/identity/labels.ts).
   */
  label_claims: z.array(z.union([z.string().min(1).max(256), z.object({ claim: z.string().min(1).max(256), type: z.enum(['string', 'boolean', 'integer']) }).strict()])).max(32).default([]),
  max_token_age: duration.optional(),
  /** `jwks` (default): verify the signature with the key set; `tokenreview`: ask the Kubernetes API (docs/k8s-pods.md). */
  mode: z.enum(['jwks', 'tokenreview']).default('jwks'),
}).strict()
  .refine((a) => a.mode === 'tokenreview' || Boolean(a.jwks_url) !== Boolean(a.jwks_file), { message: 'set exactly one of jwks_url or jwks_file' })
  // The API server vouches for the service account and pod only: nothing else of the (locally
  // unverified) token may reach policy, so label_claims and max_token_age have no place here.
  .refine((a) => a.mode !== 'tokenreview' || (!a.jwks_url && !a.jwks_file && a.template === 'kubernetes' && a.label_claims.length === 0 && a.max_token_age === undefined), { message: 'mode: tokenreview validates Kubernetes service-account tokens through the API server: it needs template: kubernetes, and no jwks_url, jwks_file, label_claims or max_token_age' });

const spiffeAttestor = z.object({
  kind: z.literal('spiffe'),
  name: z.string().min(1),
  trust_domain: trustDomain,
  audience: z.string().min(1),
  bundle_url: z.url().optional(),
  bundle_file: z.string().min(1).optional(),
  bundle_refresh: duration.prefault(300),
}).strict().refine((a) => Boolean(a.bundle_url) !== Boolean(a.bundle_file), { message: 'set exactly one of bundle_url or bundle_file' });

export const attestorConfig = z.discriminatedUnion('kind', [joinTokenAttestor, jwtAttestor, spiffeAttestor]);

/** Queue and retry tuning of the forwarding audit sinks (http, syslog); docs/audit.md. */
const auditForwarding = {
  timeout: duration.prefault(10).refine((ms) => ms >= 100 && ms <= 300_000, 'expected between 100ms and 5m'),
  max_queue: z.number().int().min(1).max(10_000_000).default(100_000),
  batch_max_lines: z.number().int().min(1).max(10_000).default(500),
  retry_initial: duration.prefault(1).refine((ms) => ms >= 1 && ms <= 3_600_000, 'expected between 1ms and 1h'),
  retry_max: duration.prefault(60).refine((ms) => ms >= 1 && ms <= 3_600_000, 'expected between 1ms and 1h'),
};

const auditSink = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('store') }).strict(),
  z.object({ kind: z.literal('file'), path: z.string().min(1) }).strict(),
  z.object({ kind: z.literal('stdout') }).strict(),
  z.object({
    kind: z.literal('http'),
    url: z.url().refine((u) => {
      const url = new URL(u);
      return (url.protocol === 'https:' || url.protocol === 'http:') && !url.username && !url.password;
    }, 'expected an http:// or https:// URL without user:password@ (put the credential in auth.env or auth.file)'),
    /** The header value is read from an environment variable or a file, never written in the config. */
    auth: z.object({
      header: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'expected a header name').default('authorization'),
      env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name').optional(),
      file: z.string().min(1).optional(),
    }).strict().refine((a) => Boolean(a.env) !== Boolean(a.file), { message: 'set exactly one of env or file' }).optional(),
    ca_file: z.string().min(1).optional(),
    ...auditForwarding,
  }).strict(),
  z.object({
    kind: z.literal('syslog'),
    transport: z.enum(['udp', 'tcp']).default('udp'),
    host: z.string().min(1).max(255).default('127.0.0.1'),
    port: z.number().int().min(1).max(65535).default(514),
    facility: z.enum(['auth', 'authpriv', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7']).default('local0'),
    app_name: z.string().regex(/^[\x21-\x7e]{1,48}$/, 'expected 1-48 printable ASCII characters').default('tessera'),
    ...auditForwarding,
  }).strict(),
]);

export const configSchema = z.object({
  trust_domain: trustDomain.default('tessera.local'),
  data_dir: z.string().min(1).default('./.tessera'),
  replica_id: z.string().min(1).max(64).optional(),
  server: z.object({
    listen: listen.default('127.0.0.1:8200'),
    /** Public base URL: the token issuer (`iss`) and the base of metadata URLs. */
    public_url: z.url().optional(),
    body_limit_bytes: z.number().int().min(1024).max(10 * 1024 * 1024).default(64 * 1024),
    trust_proxy: z.boolean().default(false),
    /**
     * Refused credentials per source address (IPv6: per /64) before every credential from it is
     * refused unchecked (429 TESSERA_AUTH_RATE_LIMITED): agent, task and admin tokens on the API
     * and /mcp, and logins (docs/security-model.md, ADR 0142). Successful requests take nothing.
     */
    auth_failure_rate_limit: rateField({ per_second: 10, burst: 200 }),
    /**
     * Browser origins (`scheme://host[:port]`) allowed besides Tessera's own (public_url, the
     * listen address): a request with any other `Origin` is refused (docs/adr/0063).
     */
    allowed_origins: z.array(z.string().refine((o) => parseOrigin(o) !== undefined, 'expected an origin such as "https://console.example.com" (scheme://host[:port], no path, no "*", not "null")')).max(100).default([]),
    /** Extra `Host` names (`name` = any port, or `name:port`); when set, Host is checked on every listener, else only on loopback. */
    allowed_hosts: z.array(z.string().refine((h) => parseHost(h) !== undefined, 'expected a host name or address, optionally with :port, such as "tessera.internal" or "tessera.internal:8200"')).max(100).default([]),
  }).strict().prefault({}),
  store: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('sqlite'), file: z.string().min(1).optional() }).strict(),
    z.object({
      kind: z.literal('postgres'),
      url: z.string().min(1).optional(),
      /** The URL from this environment variable instead (Kubernetes: a Secret as env; docs/kubernetes.md). */
      url_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name').optional(),
    }).strict().refine((s) => Boolean(s.url) !== Boolean(s.url_env), { message: 'set exactly one of url or url_env' }),
  ]).default({ kind: 'sqlite' }),
  master_key: z.object({
    file: z.string().min(1).optional(),
    env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name').optional(),
  }).strict().refine((m) => !(m.file && m.env), { message: 'set at most one of file or env' }).prefault({}),
  tokens: z.object({
    agent_ttl: duration.prefault(300),
    task_ttl: duration.prefault(900),
    clock_skew: duration.prefault(30),
    signing: z.object({
      alg: z.enum(['ES256']).default('ES256'),
      rotation_period: duration.prefault('24h'),
      /** How long a retired key stays in the JWKS so tokens signed before rotation still verify. */
      overlap: duration.prefault('1h'),
    }).strict().prefault({}),
    /** Logins (`POST /v1/oauth/token`) per second, per verified identity and per source address (IPv6: per /64). */
    login_rate_limit: z.object({
      per_identity: rateField({ per_second: 10, burst: 100 }),
      per_source: rateField({ per_second: 20, burst: 200 }),
    }).strict().prefault({}),
    /** Task tokens and delegation (docs/tasks.md). `task_ttl` is the default and the longest lifetime of a task token. */
    delegation: z.object({
      /** The deepest a task tree may grow (a root task may ask for less; a child may lower it, never raise it). */
      max_depth: z.number().int().min(0).max(MAX_DEPTH_CEILING).default(3),
      /** Refuse a token for a sub-agent without an identity (`label`) unless it is DPoP-bound (RFC 9449). */
      require_dpop_for_labels: z.boolean().default(false),
      /** Task exchanges (root tasks and delegations) per second per acting agent. */
      rate_limit: rateField({ per_second: 50, burst: 500 }),
    }).strict().prefault({}),
    /** Verified-token cache (token service, attestation): entries in all, and per agent identity. */
    verified_cache_size: z.number().int().min(0).max(1_000_000).default(10_000),
    verified_cache_per_agent: z.number().int().min(1).max(1_000_000).default(1000),
    /** DPoP sender-constrained tokens (RFC 9449; docs/dpop.md). */
    dpop: z.object({
      /** Which tokens must be bound: never (the client's choice), delegated (every delegated task token), always. */
      require: z.enum(DPOP_REQUIREMENTS).default('never'),
      /** Proof signature algorithms accepted (asymmetric only). */
      algorithms: z.array(z.enum(DPOP_ALGORITHMS)).min(1).default([...DPOP_ALGORITHMS]),
      /** How far a proof's `iat` may be from Tessera's clock, either side. */
      iat_window: duration.prefault(60).refine((ms) => ms >= 1000 && ms <= 600_000, 'expected between 1s and 10m'),
      /** Require server-provided nonces in proofs (RFC 9449 §8, §9). */
      nonce: z.boolean().default(false),
      /** How long a nonce is current; it is accepted for up to twice this. */
      nonce_lifetime: duration.prefault(60).refine((ms) => ms >= 1000 && ms <= 3_600_000, 'expected between 1s and 1h'),
      /** Proofs remembered against replay (per replica), in all and per proof key. */
      replay_cache_size: z.number().int().min(1000).max(10_000_000).default(200_000),
      replay_cache_per_key: z.number().int().min(1).max(10_000_000).default(50_000),
    }).strict().prefault({}),
  }).strict().prefault({}),
  attestors: z.array(attestorConfig).default([{ kind: 'join_token', name: 'join_token', max_ttl: 3_600_000 }]),
  policy: z.object({
    dir: z.string().min(1).default('./policies'),
    watch: z.boolean().default(true),
    cache_size: z.number().int().min(0).max(1_000_000).default(10_000),
    /** Decision cache entries one principal may hold (its least recently used go first). */
    cache_size_per_principal: z.number().int().min(1).max(1_000_000).default(1000),
  }).strict().prefault({}),
  audit: z.object({
    sinks: z.array(auditSink).min(1).default([{ kind: 'store' }]).refine((sinks) => sinks.some((s) => s.kind === 'store' || s.kind === 'file' || s.kind === 'stdout'), 'include at least one of store, file or stdout: http and syslog sinks deliver asynchronously and cannot make an event durable before the request is answered'),
    checkpoint_every_events: z.number().int().min(1).max(1_000_000).default(1000),
    checkpoint_every: duration.prefault(60),
    /** Pass-through events (tool calls, reads): `grouped` = written before the answer, fdatasync-ed within `flush_window`; `per_request` = flushed before the answer (ADR 0185). */
    flush: z.enum(['grouped', 'per_request']).default('grouped'),
    flush_window: duration.prefault('100ms').refine((ms) => ms >= 1 && ms <= 10_000, 'audit.flush_window must be between 1ms and 10s'),
    /** Archive sealed segments and prune them from the store (docs/audit.md "Retention"). Off unless set. */
    retention: z.object({
      archive_dir: z.string().min(1),
      keep_events: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(100_000),
      keep_for: duration.prefault('30d'),
      /** How often the server archives on its own; 0 = only on demand (`tessera audit archive`). */
      every: duration.prefault('1h'),
      segment_events: z.number().int().min(1000).max(100_000_000).default(1_000_000),
    }).strict().optional(),
    verify: z.object({
      /** Rows read per page by verification and archiving: bounds their memory and each slice of event-loop time. */
      page_size: z.number().int().min(10).max(50_000).default(1000),
    }).strict().prefault({}),
  }).strict().prefault({}),
  leases: z.object({
    reaper_interval: duration.prefault(10),
    revoke_max_attempts: z.number().int().min(1).max(100).default(8),
  }).strict().prefault({}),
  /** MCP gateway: upstream servers and declarative tools (src/gateway/config.ts, docs/gateway.md). */
  gateway: gatewayConfigSchema.prefault({}),
  /** People: trusted OpenID Providers and Tessera's authorization server (src/users/config.ts, docs/users.md). */
  users: usersConfigSchema.prefault({}),
  /** The injection proxy: listener, bounds and routes (src/proxy/config.ts, docs/proxy.md). */
  proxy: proxyConfigSchema.prefault({}),
  /** The operator console: sessions and OIDC sign-in (src/console/config.ts, docs/console.md). */
  console: consoleConfigSchema.prefault({}),
  /** Kubernetes: the injector webhook and the pod watch (src/k8s/config.ts, docs/kubernetes.md). */
  kubernetes: kubernetesConfigSchema.prefault({}),
  /** Secret rotation: the job, its retries, http rotators (src/rotation/config.ts, docs/rotation.md). */
  rotation: rotationConfigSchema.prefault({}),
  /** Drift: tool-definition pinning, policy, engine and secret hygiene checks (src/drift/config.ts, docs/drift.md). */
  drift: driftConfigSchema.prefault({}),
  log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).strict().prefault({}),
}).strict().superRefine((c, ctx) => {
  // Per-attestor session quotas name configured attestors (a typo would silently bound nothing).
  const names = new Set(c.attestors.map((a) => a.name));
  for (const name of Object.keys(c.gateway.max_sessions_by_attestor)) {
    if (!names.has(name)) ctx.addIssue({ code: 'custom', path: ['gateway', 'max_sessions_by_attestor', name], message: `no attestor is named "${name}"; use one of ${[...names].join(', ')}` });
  }
});

export type TesseraConfig = z.output<typeof configSchema>;
export type AttestorConfig = z.output<typeof attestorConfig>;
