/**
 * The `gateway:` section of tessera.yaml: upstream MCP servers (stdio, Streamable HTTP) and
 * Tessera's declarative tools, reviewable in Git. Values that are credentials are never written
 * here: an env value or header is a plain string, `{ secret: <kv path> }` or
 * `{ credential: { engine, role, field } }`, resolved per caller when the upstream starts.
 *
 * This module must not import src/config/schema.ts (that one embeds it).
 */
import { z } from 'zod';
import { durationBetween, rateField, secretPathField } from '../config/fields.js';
import { declarativeToolsConfig, taskTokenConfig, toolServerName } from './tools/config.js';

/** Default bound on one message from an upstream MCP server (`max_result_bytes`), in bytes. */
export const DEFAULT_MAX_RESULT_BYTES = 4 * 1024 * 1024;
const MAX_RESULT_BYTES_CEILING = 256 * 1024 * 1024;

/** A value injected into an upstream: literal, kv secret, or a field of a dynamic credential. */
export const injectedValue = z.union([
  z.string().max(8192).regex(/^[^\0]*$/, 'values must not contain NUL'),
  z.object({ secret: secretPathField }).strict(),
  z.object({
    credential: z.object({
      engine: z.string().min(1).max(64),
      role: z.string().min(1).max(128),
      /** Which string field of the credential's data (e.g. `password`, `username`, `url`). */
      field: z.string().min(1).max(128),
      ttl: durationBetween(1000, 86_400_000).optional(),
    }).strict(),
  }).strict(),
]);
export type InjectedValue = z.output<typeof injectedValue>;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name');
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected an HTTP header name (RFC 9110 token)');

/** Headers the transport computes, or that would carry the agent's own token upstream. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'accept', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id']);

/** Per-server overrides of gateway-wide bounds. */
const serverBounds = {
  /** Overrides gateway.call_timeout for this server (tools/call and the MCP handshake). */
  call_timeout: durationBetween(10, 600_000).optional(),
  /** Overrides gateway.max_result_bytes for this server. */
  max_result_bytes: z.number().int().min(1024).max(MAX_RESULT_BYTES_CEILING).optional(),
};

/** A POSIX uid or gid Tessera may switch an upstream to: never 0 (root), never the "nobody" overflow ids. */
const posixId = z.number().int().min(1).max(2 ** 31 - 2);
const runAs = z.union([
  z.literal('auto'),
  z.object({ uid: posixId, gid: posixId.optional() }).strict(),
]);
export type RunAs = z.output<typeof runAs>;

const stdioServer = z.object({
  name: toolServerName,
  ...serverBounds,
  transport: z.literal('stdio'),
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(8192)).max(256).default([]),
  env: z.record(envName, injectedValue).default({}),
  cwd: z.string().min(1).optional(),
  /** Overrides gateway.stdio_isolation for this server. */
  isolation: z.enum(['per_agent', 'per_session']).optional(),
  /**
   * The user the process runs as (docs/gateway.md "Process isolation", ADR 0145): `{ uid, gid }`
   * (gid defaults to the uid), or `auto`: a uid of its own per process from gateway.run_as_uids.
   * Needs Tessera to run as root (or with CAP_SETUID and CAP_SETGID). Without it the process
   * runs as Tessera's own user and can read what Tessera can (docs/security-model.md).
   */
  run_as: runAs.optional(),
}).strict();

const httpServer = z.object({
  name: toolServerName,
  ...serverBounds,
  transport: z.literal('streamable_http'),
  url: z.url().refine((u) => /^https?:\/\//i.test(u), 'expected an http(s) URL'),
  headers: z.record(headerName, injectedValue).default({}),
  /** Send each caller's task context to this upstream as a short-lived token (HTTP only; docs/gateway.md). */
  task_token: taskTokenConfig.optional(),
}).strict().superRefine((s, ctx) => {
  for (const h of Object.keys(s.headers)) {
    if (RESERVED_HEADERS.has(h.toLowerCase())) ctx.addIssue({ code: 'custom', path: ['headers', h], message: `header "${h}" is set by the MCP transport and cannot be configured` });
  }
  const th = s.task_token?.header.toLowerCase();
  if (th !== undefined) {
    if (RESERVED_HEADERS.has(th)) ctx.addIssue({ code: 'custom', path: ['task_token', 'header'], message: `header "${th}" is set by the MCP transport and cannot carry the task token` });
    if (Object.keys(s.headers).some((h) => h.toLowerCase() === th)) ctx.addIssue({ code: 'custom', path: ['task_token', 'header'], message: `header "${th}" is also set in headers; the task token needs a header of its own (e.g. "txn-token")` });
  }
});

export const upstreamServerConfig = z.discriminatedUnion('transport', [stdioServer, httpServer]);
export type UpstreamServerConfig = z.output<typeof upstreamServerConfig>;
export type StdioServerConfig = z.output<typeof stdioServer>;
export type HttpServerConfig = z.output<typeof httpServer>;

export const gatewayConfigSchema = z.object({
  servers: z.array(upstreamServerConfig).max(200).default([]),
  tools: declarativeToolsConfig.default([]),
  /** Upper bound of one tools/call through an upstream MCP server (declarative tools have their own `timeout`). */
  call_timeout: durationBetween(10, 600_000).prefault('30s'),
  /**
   * Largest message (a tools/call result, a tools/list page, an error) accepted from an upstream
   * MCP server, in bytes; enforced while reading (docs/gateway.md "Limits"). Per server: `max_result_bytes`.
   */
  max_result_bytes: z.number().int().min(1024).max(MAX_RESULT_BYTES_CEILING).default(DEFAULT_MAX_RESULT_BYTES),
  /**
   * How tools/list names tools: `server__tool` (default: `^[a-zA-Z0-9_-]{1,64}$`, what strict
   * clients and model APIs accept) or `server/tool` (the form of Tessera ≤ 0.x). tools/call
   * accepts both. See docs/gateway.md "Tool names" and ADR 0051.
   */
  tool_name_format: z.enum(['server__tool', 'server/tool']).default('server__tool'),
  /** Largest JSON-RPC POST body accepted on /mcp. */
  max_message_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Audit argument values (scrubbed, truncated) besides their digest. Off: arguments may hold personal data. */
  audit_argument_values: z.boolean().default(false),
  /**
   * Refuse to start when a stdio upstream has no `run_as` (fail closed). Default false: such
   * upstreams start as Tessera's own user, with a warning at start, in `tessera config validate`
   * and in the metric tessera_gateway_unisolated_upstreams (ADR 0146).
   */
  require_isolation: z.boolean().default(false),
  /** The uids (and equal gids) handed out to stdio upstreams with `run_as: auto`, one per running process. */
  run_as_uids: z.object({ first: posixId, count: z.number().int().min(1).max(1_000_000) }).strict().optional(),
  /**
   * Where the private working directories of `run_as` upstreams are made (mode 0711, owned by
   * Tessera; each upstream's own directory 0700, owned by its uid). Default: a new directory
   * under the system temp directory at every start. Must not be inside data_dir (mode 0700).
   */
  upstream_work_dir: z.string().min(1).optional(),
  /** Which callers share an upstream stdio process (see docs/gateway.md "Isolation"). */
  stdio_isolation: z.enum(['per_agent', 'per_session']).default('per_agent'),
  /** An upstream (process or HTTP client) unused this long is stopped. */
  idle_timeout: durationBetween(1000, 86_400_000).prefault('5m'),
  /** A session with no request this long is closed. */
  session_idle_timeout: durationBetween(1000, 86_400_000).prefault('30m'),
  /** At most this many upstream stdio processes at once; beyond it a call that needs a new process fails until one stops (idle_timeout). */
  max_upstream_processes: z.number().int().min(1).max(10_000).default(100),
  /** At most this many open MCP sessions. */
  max_sessions: z.number().int().min(1).max(100_000).default(1000),
  /** Open MCP sessions one agent (SPIFFE ID) may hold; default a tenth of max_sessions. Must stay below max_sessions. */
  max_sessions_per_agent: z.number().int().min(1).max(100_000).optional(),
  /**
   * Open MCP sessions of all the agents one attestor proved, together (a CI attestor mints a new
   * SPIFFE ID per pipeline, so per-agent quotas alone do not bound it); default max_sessions less
   * a tenth kept for the other attestors. Must stay below max_sessions (ADR 0143).
   */
  max_sessions_per_attestor: z.number().int().min(1).max(100_000).optional(),
  /** The same for named attestors (`attestors[].name`), e.g. `{ gitlab-ci: 50 }`; each below max_sessions. */
  max_sessions_by_attestor: z.record(z.string().min(1).max(128), z.number().int().min(1).max(100_000)).default({}),
  /** Upstream stdio processes one agent may have running; default half of max_upstream_processes. */
  max_upstream_processes_per_agent: z.number().int().min(1).max(10_000).optional(),
  /** MCP POST requests in flight at once, per agent and per session. */
  max_inflight_per_agent: z.number().int().min(1).max(100_000).default(128),
  max_inflight_per_session: z.number().int().min(1).max(100_000).default(16),
  /** MCP requests per second per agent (token bucket); every message of a batch counts. */
  rate_limit: rateField({ per_second: 100, burst: 200 }),
  /**
   * Messages in one JSON-RPC batch (MCP protocol versions before 2025-06-18 only; later versions
   * removed batching and are refused a batch). Each one counts against the rate and in-flight limits.
   */
  max_batch_messages: z.number().int().min(1).max(100).default(10),
  /**
   * Notifications from upstreams (progress, log messages, list changes, resource updates) being
   * sent to one MCP session at once; more are dropped, counted and audited once (ADR 0176).
   */
  max_queued_notifications: z.number().int().min(1).max(100_000).default(256),
  /** Notifications per second to one MCP session (token bucket); more are dropped, counted and audited once. */
  notification_rate: rateField({ per_second: 100, burst: 200 }),
  /** Sampling/elicitation requests from upstreams waiting for one session's client at once; more are refused. */
  max_server_requests_per_session: z.number().int().min(1).max(1000).default(4),
  /** How long the gateway waits for the client to answer an upstream's sampling or elicitation request (a person may be asked). */
  server_request_timeout: durationBetween(1000, 86_400_000).prefault('10m'),
  /** Bytes of the results of one HTTP request to /mcp added up (a batch's results together), at most. */
  max_response_bytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(16 * 1024 * 1024),
}).strict().superRefine((g, ctx) => {
  // One agent must never be able to take every slot (issue 7 item 7): its share stays below the total.
  if (g.max_sessions_per_agent !== undefined && g.max_sessions > 1 && g.max_sessions_per_agent >= g.max_sessions) {
    ctx.addIssue({ code: 'custom', path: ['max_sessions_per_agent'], message: `must be less than max_sessions (${g.max_sessions}), so that one agent cannot hold every session` });
  }
  if (g.max_sessions_per_attestor !== undefined && g.max_sessions > 1 && g.max_sessions_per_attestor >= g.max_sessions) {
    ctx.addIssue({ code: 'custom', path: ['max_sessions_per_attestor'], message: `must be less than max_sessions (${g.max_sessions}), so that one attestor's identities cannot hold every session` });
  }
  for (const [name, n] of Object.entries(g.max_sessions_by_attestor)) {
    if (g.max_sessions > 1 && n >= g.max_sessions) ctx.addIssue({ code: 'custom', path: ['max_sessions_by_attestor', name], message: `must be less than max_sessions (${g.max_sessions}), so that one attestor's identities cannot hold every session` });
  }
  if (g.max_upstream_processes_per_agent !== undefined && g.max_upstream_processes > 1 && g.max_upstream_processes_per_agent >= g.max_upstream_processes) {
    ctx.addIssue({ code: 'custom', path: ['max_upstream_processes_per_agent'], message: `must be less than max_upstream_processes (${g.max_upstream_processes}), so that one agent cannot hold every process slot` });
  }
  if (g.max_inflight_per_session > g.max_inflight_per_agent) {
    ctx.addIssue({ code: 'custom', path: ['max_inflight_per_session'], message: `must not exceed max_inflight_per_agent (${g.max_inflight_per_agent})` });
  }
  const seen = new Set<string>();
  g.servers.forEach((s, i) => {
    if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: ['servers', i, 'name'], message: `server "${s.name}" is declared twice` });
    seen.add(s.name);
  });
  isolationIssues(g).forEach((issue) => ctx.addIssue({ code: 'custom', ...issue }));
  g.tools.forEach((t, i) => {
    if (seen.has(t.server)) ctx.addIssue({ code: 'custom', path: ['tools', i, 'server'], message: `"${t.server}" is already an upstream server name; declarative tools need their own namespace` });
  });
});

export type GatewayConfig = z.output<typeof gatewayConfigSchema>;

/**
 * Process isolation rules checked with the schema (ADR 0145, 0146): `require_isolation` needs a
 * `run_as` on every stdio server; `auto` needs `run_as_uids`; no two servers share an explicit
 * uid, nor one inside the `auto` range (each would read the other's /proc/<pid>/environ).
 */
function isolationIssues(g: Pick<GatewayConfig, 'servers' | 'require_isolation' | 'run_as_uids'>): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const uids = new Map<number, string>();
  const range = g.run_as_uids;
  g.servers.forEach((s, i) => {
    if (s.transport !== 'stdio') return;
    if (s.run_as === undefined) {
      if (g.require_isolation) out.push({ path: ['servers', i, 'run_as'], message: `server "${s.name}" has no run_as, and gateway.require_isolation is true: give it run_as (a uid of its own, or auto) so that it cannot read Tessera's files and other upstreams' environments` });
      return;
    }
    if (s.run_as === 'auto') {
      if (!range) out.push({ path: ['servers', i, 'run_as'], message: `server "${s.name}" has run_as: auto, which needs gateway.run_as_uids (the uids Tessera may hand out, e.g. { first: 200000, count: 1000 })` });
      return;
    }
    const { uid } = s.run_as;
    const other = uids.get(uid);
    if (other !== undefined) out.push({ path: ['servers', i, 'run_as', 'uid'], message: `servers "${other}" and "${s.name}" both run as uid ${uid}: each could read the other's environment (injected secrets); give each a uid of its own` });
    uids.set(uid, s.name);
    if (range && uid >= range.first && uid < range.first + range.count) out.push({ path: ['servers', i, 'run_as', 'uid'], message: `server "${s.name}" runs as uid ${uid}, which is inside gateway.run_as_uids (handed out to run_as: auto servers); choose a uid outside it` });
  });
  return out;
}

/** `max_sessions_per_agent`, or its default: a tenth of max_sessions (at least 1, below max_sessions when it can be). */
export function sessionsPerAgent(g: GatewayConfig): number {
  return g.max_sessions_per_agent ?? Math.max(1, Math.min(g.max_sessions - 1, Math.floor(g.max_sessions / 10)));
}

/**
 * Sessions the identities of attestor `name` may hold together: `max_sessions_by_attestor[name]`,
 * else `max_sessions_per_attestor`, else max_sessions less a tenth (at least one place kept).
 */
export function sessionsPerAttestor(g: GatewayConfig, name: string | undefined): number {
  const own = name !== undefined && Object.hasOwn(g.max_sessions_by_attestor, name) ? g.max_sessions_by_attestor[name] : undefined;
  return own ?? g.max_sessions_per_attestor ?? Math.max(1, g.max_sessions - Math.max(1, Math.floor(g.max_sessions / 10)));
}

/** `max_upstream_processes_per_agent`, or its default: half of max_upstream_processes (at least 1). */
export function upstreamProcessesPerAgent(g: GatewayConfig): number {
  return g.max_upstream_processes_per_agent ?? Math.max(1, Math.min(g.max_upstream_processes - 1, Math.floor(g.max_upstream_processes / 2)));
}
