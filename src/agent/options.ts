/**
 * The sidecar's options (docs/k8s-agent.md "Flags and environment"), validated before anything
 * listens or logs in. Pure: no I/O. Every refusal is a TesseraError with a stable code:
 * TESSERA_AGENT_OPTIONS_INVALID, TESSERA_AGENT_LISTEN_NOT_LOOPBACK.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from '../config/duration.js';
import { TesseraError } from '../shared/errors.js';
import { ROLE_NAME_RULE, isRoleName } from '../shared/principal.js';

/** A loopback `host:port` the sidecar listens on. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface TaskDefaults {
  /** Scope strings (space separated in the flag). */
  readonly scope: readonly string[];
  readonly purpose: string;
  /** Requested task lifetime, whole seconds; undefined = the server's `tokens.task_ttl`. */
  readonly ttlSeconds: number | undefined;
}

export interface SidecarOptions {
  /** Tessera API address, normalised without a trailing slash (`http://tessera.tessera.svc:8200`). */
  readonly addr: string;
  readonly tokenFile: string;
  /** The Tessera proxy (`http://tessera.tessera.svc:8201`); required with `listenProxy`. */
  readonly proxyUrl: URL | undefined;
  /** The gateway endpoint (default `<addr>/mcp`). */
  readonly mcpUrl: URL;
  readonly listenProxy: ListenAddress | undefined;
  readonly listenMcp: ListenAddress | undefined;
  readonly role: string | undefined;
  readonly task: TaskDefaults | undefined;
  readonly tokenOut: string | undefined;
  /** PEM bundle trusted for https Tessera addresses (in addition to the system's). */
  readonly caFile: string | undefined;
  /** How long SIGTERM waits for requests in flight, ms. */
  readonly drainMs: number;
}

/** What the command line (or the environment) gave, as strings. */
export interface RawSidecarOptions {
  addr?: string | undefined;
  tokenFile?: string | undefined;
  proxyUrl?: string | undefined;
  mcpUrl?: string | undefined;
  listenProxy?: string | undefined;
  listenMcp?: string | undefined;
  role?: string | undefined;
  taskScope?: string | undefined;
  taskPurpose?: string | undefined;
  taskTtl?: string | undefined;
  tokenOut?: string | undefined;
  caFile?: string | undefined;
  drain?: string | undefined;
}

const invalid = (message: string): TesseraError => new TesseraError('TESSERA_AGENT_OPTIONS_INVALID', message);

/** One scope string: printable ASCII without spaces (RFC 6749 §3.3 scope-token). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/;
const DEFAULT_DRAIN_MS = 10_000;
const MAX_DRAIN_MS = 120_000;

/**
 * A listen address `host:port` (IPv6 in brackets) that must be loopback: 127.0.0.0/8, ::1 or
 * `localhost` (bound as 127.0.0.1). Port 0 picks a free one (tests). Throws
 * TESSERA_AGENT_OPTIONS_INVALID (malformed) or TESSERA_AGENT_LISTEN_NOT_LOOPBACK.
 */
export function parseLoopbackListen(value: string, flag: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  if (!m || Number(m[3]) > 65535) throw invalid(`${flag} ${JSON.stringify(value.slice(0, 100))} is not host:port (e.g. 127.0.0.1:15001)`);
  const host = (m[1] ?? m[2]!).toLowerCase();
  const port = Number(m[3]);
  if (host === 'localhost') return { host: '127.0.0.1', port };
  const loopback = (isIP(host) === 4 && host.startsWith('127.')) || (isIP(host) === 6 && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/.test(host));
  if (!loopback) {
    throw new TesseraError('TESSERA_AGENT_LISTEN_NOT_LOOPBACK', `${flag} ${JSON.stringify(value.slice(0, 100))} is not a loopback address: the sidecar adds the pod's identity to every request it relays, so it listens only on 127.0.0.1, ::1 or localhost`, { flag });
  }
  return { host, port };
}

function parseUrl(value: string, flag: string, protocols: readonly string[]): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw invalid(`${flag} ${JSON.stringify(value.slice(0, 200))} is not a URL`);
  }
  if (!protocols.includes(u.protocol)) throw invalid(`${flag} must be ${protocols.map((p) => `${p}//`).join(' or ')} (got ${u.protocol})`);
  if (u.username || u.password) throw invalid(`${flag} must not carry user:password`);
  if (u.search || u.hash) throw invalid(`${flag} must not carry a query or fragment`);
  return u;
}

/** Validates everything; the first problem throws (see the module doc for the codes). */
export function parseSidecarOptions(raw: RawSidecarOptions): SidecarOptions {
  if (!raw.addr) throw invalid('give the Tessera address: --addr <url> or TESSERA_ADDR (e.g. http://tessera.tessera.svc:8200)');
  const addr = parseUrl(raw.addr, '--addr', ['http:', 'https:']).href.replace(/\/+$/, '');
  if (!raw.tokenFile) throw invalid('give the projected service-account token file: --token-file <path> or TESSERA_TOKEN_FILE');
  const listenProxy = raw.listenProxy ? parseLoopbackListen(raw.listenProxy, '--listen-proxy') : undefined;
  const listenMcp = raw.listenMcp ? parseLoopbackListen(raw.listenMcp, '--listen-mcp') : undefined;
  if (!listenProxy && !listenMcp && !raw.tokenOut) throw invalid('nothing to serve: give --listen-proxy, --listen-mcp and/or --token-out');
  if (listenProxy && listenMcp && listenProxy.port !== 0 && listenProxy.port === listenMcp.port && listenProxy.host === listenMcp.host) {
    throw invalid('--listen-proxy and --listen-mcp must be different addresses');
  }
  if (listenProxy && !raw.proxyUrl) throw invalid('--listen-proxy needs the Tessera proxy: --proxy-url <url> or TESSERA_PROXY_URL (e.g. http://tessera.tessera.svc:8201)');
  const proxyUrl = raw.proxyUrl ? parseUrl(raw.proxyUrl, '--proxy-url', ['http:']) : undefined;
  if (proxyUrl && proxyUrl.pathname !== '/') throw invalid('--proxy-url is the proxy listener\'s origin (http://host:port), without a path');
  const mcpUrl = parseUrl(raw.mcpUrl ?? `${addr}/mcp`, '--mcp-url', ['http:', 'https:']);
  // The server's rule (src/shared/principal.ts): refused at start, not by a login that would fail forever.
  if (raw.role !== undefined && !isRoleName(raw.role)) throw invalid(`--role ${JSON.stringify(raw.role.slice(0, 100))} is not a role name (${ROLE_NAME_RULE})`);
  return {
    addr, tokenFile: raw.tokenFile, proxyUrl, mcpUrl, listenProxy, listenMcp,
    role: raw.role, task: parseTask(raw), tokenOut: raw.tokenOut || undefined, caFile: raw.caFile || undefined,
    drainMs: parseDrain(raw.drain),
  };
}

function parseTask(raw: RawSidecarOptions): TaskDefaults | undefined {
  if (raw.taskScope === undefined || raw.taskScope.trim() === '') {
    if (raw.taskPurpose !== undefined || raw.taskTtl !== undefined) throw invalid('--task-purpose and --task-ttl need --task-scope');
    return undefined;
  }
  const scope = raw.taskScope.trim().split(/\s+/);
  for (const s of scope) if (!SCOPE_TOKEN.test(s)) throw invalid(`--task-scope: ${JSON.stringify(s.slice(0, 100))} is not a scope string (e.g. http:openai tool:github/*)`);
  const purpose = (raw.taskPurpose ?? 'kubernetes agent sidecar').trim();
  // eslint-disable-next-line no-control-regex
  const purposeOk = z.string().min(1).max(512).regex(/^[^\x00-\x1f\x7f]*$/).safeParse(purpose).success;
  if (!purposeOk) throw invalid('--task-purpose must be 1–512 characters on one line');
  let ttlSeconds: number | undefined;
  if (raw.taskTtl !== undefined) {
    const ms = parseDuration(raw.taskTtl);
    if (ms === null || ms < 10_000 || ms > 86_400_000) throw invalid(`--task-ttl ${JSON.stringify(raw.taskTtl.slice(0, 50))} is not a duration from 10s to 24h (e.g. 15m)`);
    ttlSeconds = Math.floor(ms / 1000);
  }
  return { scope, purpose, ttlSeconds };
}

function parseDrain(value: string | undefined): number {
  if (value === undefined) return DEFAULT_DRAIN_MS;
  const ms = parseDuration(value);
  if (ms === null || ms > MAX_DRAIN_MS) throw invalid(`--drain ${JSON.stringify(value.slice(0, 50))} is not a duration up to 2m`);
  return ms;
}
