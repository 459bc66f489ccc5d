/**
 * `CONNECT` on the proxy listener (issue 10, docs/proxy-tls.md, ADR 0209; RFC 9110 §9.3.6).
 *
 *   parse the authority → authenticate (407) → per-agent tunnel bound (429) →
 *     a routed host:   200, then TLS terminated here with a leaf for the CONNECT host
 *                      (SNI must name that host), decrypted HTTP/1.1 handed to the proxy server;
 *     any other host:  policy must permit the tunnel (403), the SSRF guard vets the target,
 *                      a TCP connection to the vetted address, 200, bytes piped both ways.
 *
 * Every failure is an HTTP/1.1 answer on the raw socket with a TESSERA_* code (never a hang: the
 * socket has an idle timeout from the start). Tunnels are audited `proxy.tunnel`
 * (opened / refused / closed, with bytes).
 */
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { AgentPrincipal } from '../shared/principal.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { describeDuration } from '../shared/duration.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditEvent } from '../audit/events.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { normalizeInterceptHost, type TlsInterceptor } from './intercept.js';
import type { VettedTarget } from './ssrf.js';


export interface InterceptedTunnel {
  readonly principal: AgentPrincipal;
  readonly token: string;
  readonly host: string;
  readonly port: number;
  readonly route: string;
}

export interface ConnectDeps {
  /** Proxy-Authorization of the CONNECT → principal (CORE); throws TESSERA_* (401/403/429). A 401 is answered 407. */
  authenticate(req: IncomingMessage): Promise<{ principal: AgentPrincipal; token: string }>;
  /** The route serving host:port, if any (CORE). */
  routeForHost(host: string, port: number): { name: string } | undefined;
  /** Cedar http.request on Route::"<host>" with http.tunnel = true (CORE); throws 403 TESSERA_PROXY_TUNNEL_DENIED. */
  authorizeTunnel(principal: AgentPrincipal, host: string, port: number): void | Promise<void>;
  /** SSRF part: resolves and vets; throws 403 TESSERA_PROXY_TARGET_FORBIDDEN / 502 TESSERA_PROXY_TARGET_UNRESOLVABLE. */
  vet(host: string, port: number): Promise<VettedTarget>;
  interceptor: TlsInterceptor;
  /** Hand the decrypted TLS socket (handshake done) to the proxy's HTTP server (CORE). */
  serveIntercepted(socket: TLSSocket, tunnel: InterceptedTunnel): void;
  audit: Pick<AuditWriter, 'append'>;
  /** Config `proxy.max_tunnels_per_agent`: open tunnels (both kinds) per agent SPIFFE ID; default 64. */
  maxTunnelsPerAgent?: number;
  /** Idle timeout of the client socket and of a tunnel, ms (config `proxy.timeout`); default 60 000. Also bounds the TLS handshake and the upstream connect. */
  idleTimeoutMs?: number;
  /** Open tunnels per agent; one per proxy listener (default: one per deps object). */
  tunnels?: TunnelRegistry;
  /** Replica name for audit `where`. */
  replica?: string;
  /** For tunnel durations (audit); default the system clock. */
  clock?: Clock;
  /** Where an unexpected failure (answered 500 TESSERA_INTERNAL) is logged, with its message only. */
  logger?: { error(obj: Record<string, unknown>, msg: string): void };
}

/** What the registry can cut: the client socket, or the TLS socket that took it over. */
export interface Closable {
  destroy(): void;
}

/** Open tunnels per agent: bounds them and cuts them (a revoked agent's open connections). */
export interface TunnelRegistry {
  /** Registers `socket` for `agent` unless it already holds `limit`; returns the release function, or undefined when over the limit. */
  acquire(agent: string, limit: number, socket: Closable): (() => void) | undefined;
  count(agent: string): number;
  /** Destroys every open tunnel of `agent`; returns how many. */
  closeAgent(agent: string): number;
}

export function createTunnelRegistry(): TunnelRegistry {
  const open = new Map<string, Set<Closable>>();
  return {
    acquire(agent, limit, socket) {
      let set = open.get(agent);
      if ((set?.size ?? 0) >= limit) return undefined;
      if (!set) open.set(agent, (set = new Set()));
      set.add(socket);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        set.delete(socket);
        if (set.size === 0 && open.get(agent) === set) open.delete(agent);
      };
    },
    count: (agent) => open.get(agent)?.size ?? 0,
    closeAgent(agent) {
      const set = open.get(agent);
      if (!set) return 0;
      const n = set.size;
      for (const s of [...set]) s.destroy();
      return n;
    },
  };
}

const registries = new WeakMap<ConnectDeps, TunnelRegistry>();
const DEFAULT_MAX_TUNNELS = 64;
const DEFAULT_IDLE_MS = 60_000;
const PROXY_AUTHENTICATE = 'Bearer realm="tessera", Basic realm="tessera"';

/** A parsed CONNECT target. */
export interface ConnectTarget {
  /** Normalized: lower-case DNS name, or IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  readonly ip: boolean;
}

/**
 * Parses the request target of a CONNECT: authority-form `host:port` only (RFC 9110 §9.3.6,
 * RFC 9112 §3.2.3): port required (1–65535, digits, no leading zero), IPv6 in brackets without
 * zone id, no userinfo, path, query, fragment, whitespace or control characters.
 * Throws TESSERA_PROXY_CONNECT_TARGET_INVALID.
 */
export function parseConnectTarget(target: string | undefined): ConnectTarget {
  const shown = JSON.stringify((target ?? '').slice(0, 300));
  const bad = (why: string): TesseraError => new TesseraError('TESSERA_PROXY_CONNECT_TARGET_INVALID', `CONNECT target ${shown} is not host:port: ${why}`);
  if (!target) throw bad('empty');
  if (target.length > 300) throw bad('longer than 300 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(target)) throw bad('whitespace or a control character');
  if (target.includes('@')) throw bad('userinfo (user@) is not allowed; authenticate with Proxy-Authorization');
  if (/[/?#\\]/.test(target)) throw bad('a path, query or fragment is not allowed');
  let hostPart: string;
  let portPart: string;
  if (target.startsWith('[')) {
    const end = target.indexOf(']');
    if (end < 0 || target[end + 1] !== ':') throw bad('an IPv6 address needs brackets and a port: [::1]:443');
    hostPart = target.slice(1, end);
    portPart = target.slice(end + 2);
    if (!hostPart.includes(':')) throw bad('brackets are for IPv6 addresses only');
  } else {
    const parts = target.split(':');
    if (parts.length === 1) throw bad('the port is missing');
    if (parts.length > 2) throw bad('an IPv6 address must be in brackets: [::1]:443');
    [hostPart, portPart] = parts as [string, string];
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portPart) || Number(portPart) > 65535) throw bad(`port ${JSON.stringify(portPart)} is not a number from 1 to 65535`);
  let host;
  try {
    host = normalizeInterceptHost(hostPart);
  } catch (e) {
    throw bad((e as Error).message);
  }
  return { host: host.host, port: Number(portPart), ip: host.ip };
}

/** Writes an HTTP/1.1 error answer on the raw client socket and closes it. */
function answerError(socket: Duplex, err: TesseraError, extraHeaders: Record<string, string> = {}): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } });
  const status = err.status;
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
    ...extraHeaders,
  };
  const head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  socket.end(head + body);
}

function toTesseraError(e: unknown, logger?: ConnectDeps['logger']): TesseraError {
  if (isTesseraError(e)) return e;
  logger?.error({ err: (e as Error)?.message ?? String(e) }, 'proxy CONNECT failed unexpectedly');
  return new TesseraError('TESSERA_INTERNAL', 'the CONNECT could not be handled (an unexpected error, logged by the proxy)', undefined, { cause: e });
}

function actorOf(p: AgentPrincipal): AuditEvent['actor'] {
  return { id: p.spiffeId, ...(p.chain?.length ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) };
}

/**
 * Handles one CONNECT (node:http server 'connect' event). Never throws; every outcome ends the
 * socket with an answer, or hands it over (interception) or pipes it (tunnel).
 */
export function handleConnect(req: IncomingMessage, socket: Duplex, head: Buffer, deps: ConnectDeps): void {
  const idleMs = deps.idleTimeoutMs ?? DEFAULT_IDLE_MS;
  socket.on('error', () => socket.destroy());
  const raw = socket as Socket;
  if (typeof raw.setTimeout === 'function') raw.setTimeout(idleMs, () => socket.destroy());
  void run(req, socket, head, deps, idleMs).catch((e: unknown) => answerError(socket, toTesseraError(e, deps.logger)));
}

async function run(req: IncomingMessage, socket: Duplex, head: Buffer, deps: ConnectDeps, idleMs: number): Promise<void> {
  const target = parseConnectTarget(req.url);
  const source = (socket as Socket).remoteAddress;
  const where = { ...(source ? { source } : {}), ...(deps.replica ? { replica: deps.replica } : {}) };

  let who: { principal: AgentPrincipal; token: string };
  try {
    who = await deps.authenticate(req);
  } catch (e) {
    const err = toTesseraError(e, deps.logger);
    if (err.status === 401) {
      // The token's own refusal (expired, revoked …) stays visible as details.cause: a client refreshes on it.
      answerError(socket, new TesseraError('TESSERA_PROXY_AUTH_REQUIRED', `proxy authentication required: ${err.message}; send the agent or task token as Proxy-Authorization: Bearer <token>, or as the password of the proxy URL`, { cause: err.code }), { 'Proxy-Authenticate': PROXY_AUTHENTICATE });
      return;
    }
    const retry = (err.details as { retry_after_s?: unknown } | undefined)?.retry_after_s;
    // Every 407 carries the challenge (RFC 9110 §15.5.8): no credential, a malformed one.
    answerError(socket, err, { ...(typeof retry === 'number' ? { 'Retry-After': String(Math.ceil(retry)) } : {}), ...(err.status === 407 ? { 'Proxy-Authenticate': PROXY_AUTHENTICATE } : {}) });
    return;
  }
  const { principal } = who;
  const route = deps.routeForHost(target.host, target.port);
  const mode = route ? 'intercept' : 'tunnel';
  const base = { host: target.host, port: target.port, mode } as const;
  const resource = `${target.ip && target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  // A refusal is audited (best effort: the request is refused either way), then answered.
  const recordRefusal = (err: TesseraError): Promise<void> => deps.audit.append({
    kind: 'proxy.tunnel', actor: actorOf(principal), action: 'http.request', resource, result: 'deny', reason: { code: err.code, message: err.message },
    ...(principal.task ? { txn: principal.task } : {}), where, details: { phase: 'refused', ...base, ...(route ? { route: route.name } : {}), code: err.code },
  }).catch(() => undefined);
  const refuse = async (err: TesseraError, extra: Record<string, string> = {}): Promise<void> => {
    await recordRefusal(err);
    answerError(socket, err, extra);
  };

  const tunnels = deps.tunnels ?? registries.get(deps) ?? (registries.set(deps, createTunnelRegistry()), registries.get(deps)!);
  const limit = deps.maxTunnelsPerAgent ?? DEFAULT_MAX_TUNNELS;
  // The TLS socket takes the client socket over on interception: cut whichever is current.
  const tracked = { current: socket as Closable, destroy(): void { this.current.destroy(); } };
  const release = tunnels.acquire(principal.spiffeId, limit, tracked);
  if (!release) {
    await refuse(new TesseraError('TESSERA_PROXY_TUNNEL_LIMIT', `agent ${principal.spiffeId} already holds ${limit} open tunnels (proxy.max_tunnels_per_agent); close one and retry`), { 'Retry-After': '1' });
    return;
  }
  socket.once('close', release);
  try {
    if (route) await intercept(socket, head, deps, { principal, token: who.token, host: target.host, port: target.port, route: route.name }, { refuse, recordRefusal, where, resource, idleMs, release, tracked });
    else await tunnel(socket, head, deps, principal, target, { refuse, recordRefusal, where, resource, idleMs, release, tracked });
  } catch (e) {
    release();
    throw e;
  }
}

interface Ctx {
  refuse(err: TesseraError, extra?: Record<string, string>): Promise<void>;
  /** Audits a refusal without answering (the socket already speaks TLS). */
  recordRefusal(err: TesseraError): Promise<void>;
  where: AuditEvent['where'];
  resource: string;
  idleMs: number;
  release(): void;
  tracked: { current: Closable };
}

async function intercept(socket: Duplex, head: Buffer, deps: ConnectDeps, t: InterceptedTunnel, ctx: Ctx): Promise<void> {
  // Minted before the 200: a failure is still an HTTP answer.
  const context = await deps.interceptor.secureContextFor(t.host);
  if (socket.destroyed) return;
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  if (head.length > 0) socket.unshift(head);
  // The TLS socket takes the connection over (and its idle timeout below): the raw socket sees
  // no activity any more, so its timer would cut a busy connection.
  if (typeof (socket as Socket).setTimeout === 'function') (socket as Socket).setTimeout(0);
  let sniRefused = false;
  const tls = new TLSSocket(socket, {
    isServer: true,
    secureContext: context,
    ALPNProtocols: ['http/1.1'],
    SNICallback: (servername, cb) => {
      let name: string | undefined;
      try {
        name = normalizeInterceptHost(servername).host;
      } catch {
        name = undefined;
      }
      if (name !== t.host) {
        sniRefused = true;
        // The handshake fails with an alert (cb error); nothing else is written on the socket.
        void ctx.recordRefusal(new TesseraError('TESSERA_PROXY_SNI_MISMATCH', `the TLS client asked for ${JSON.stringify(servername.slice(0, 300))} after CONNECT ${ctx.resource}; the SNI must name the CONNECT host`));
        cb(new Error('SNI does not match the CONNECT host'), undefined);
        return;
      }
      cb(null, context);
    },
  });
  ctx.tracked.current = tls;
  tls.once('close', () => {
    ctx.release();
    socket.destroy();
  });
  tls.on('error', () => {
    tls.destroy();
    socket.destroy();
  });
  tls.setTimeout(ctx.idleMs, () => tls.destroy());
  // The proxy's http.Server keeps sockets half-open (allowHalfOpen): a client that leaves
  // during the handshake must end the tunnel here; after it, the HTTP server owns the socket.
  const earlyEnd = (): void => void tls.destroy();
  tls.once('end', earlyEnd);
  tls.once('secure', () => {
    tls.off('end', earlyEnd);
    if (sniRefused) return;
    void opened(tls, deps, t, ctx);
  });
}

/**
 * Audits the intercepted tunnel (`opened`; fail closed: not recorded, not served), hands it to
 * the proxy's HTTP server, and audits `closed` with the TLS bytes both ways (each request inside
 * is audited by the proxy server as `proxy.request`).
 */
async function opened(tls: TLSSocket, deps: ConnectDeps, t: InterceptedTunnel, ctx: Ctx): Promise<void> {
  const clock = deps.clock ?? systemClock;
  const start = clock.now();
  const actor = actorOf(t.principal);
  const txn = t.principal.task ? { txn: t.principal.task } : {};
  const base = { host: t.host, port: t.port, mode: 'intercept' as const, route: t.route };
  try {
    await deps.audit.append({ kind: 'proxy.tunnel', actor, action: 'http.request', resource: ctx.resource, result: 'allow', ...txn, where: ctx.where, details: { phase: 'opened', ...base } });
  } catch {
    tls.destroy();
    return;
  }
  if (tls.destroyed) return;
  tls.once('close', () => {
    void deps.audit.append({
      kind: 'proxy.tunnel', actor, action: 'http.request', resource: ctx.resource, result: 'success', ...txn, where: ctx.where,
      details: { phase: 'closed', ...base, bytes_in: tls.bytesRead, bytes_out: tls.bytesWritten, duration_ms: clock.now() - start, cause: 'closed' },
    }).catch(() => undefined);
  });
  deps.serveIntercepted(tls, t);
}

async function tunnel(socket: Duplex, head: Buffer, deps: ConnectDeps, principal: AgentPrincipal, target: ConnectTarget, ctx: Ctx): Promise<void> {
  try {
    await deps.authorizeTunnel(principal, target.host, target.port);
  } catch (e) {
    const err = toTesseraError(e, deps.logger);
    // The authorizer's own message names the decision; the answer adds what permits a tunnel.
    await ctx.refuse(err.code === 'TESSERA_PROXY_TUNNEL_DENIED' || err.status !== 403
      ? err
      : new TesseraError('TESSERA_PROXY_TUNNEL_DENIED', `${err.message}; a tunnel to ${ctx.resource} needs a permit of http.request on Route::"${target.host}" with context.http.tunnel == true (and scope http:${target.host})`));
    return;
  }
  let vetted: VettedTarget;
  try {
    vetted = await deps.vet(target.host, target.port);
  } catch (e) {
    await ctx.refuse(toTesseraError(e, deps.logger));
    return;
  }
  if (socket.destroyed) return;
  const upstream = netConnect({ host: vetted.address, port: vetted.port, family: vetted.family });
  const connectTimer = setTimeout(() => upstream.destroy(new TesseraError('TESSERA_PROXY_TUNNEL_TIMEOUT', `no TCP connection to ${ctx.resource} (${vetted.address}) within ${describeDuration(ctx.idleMs)} (proxy.timeout)`)), ctx.idleMs);
  try {
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', resolve);
      upstream.once('error', reject);
      socket.once('close', () => reject(new Error('client closed')));
    });
  } catch (e) {
    upstream.destroy();
    if (socket.destroyed) return;
    const err = isTesseraError(e) ? e : new TesseraError('TESSERA_PROXY_TUNNEL_CONNECT_FAILED', `cannot connect to ${ctx.resource} (${vetted.address}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    await ctx.refuse(err);
    return;
  } finally {
    clearTimeout(connectTimer);
  }
  const actor = actorOf(principal);
  const txn = principal.task ? { txn: principal.task } : {};
  const base = { host: target.host, port: target.port, mode: 'tunnel' as const };
  try {
    // Audit fails closed: no record, no tunnel.
    await deps.audit.append({ kind: 'proxy.tunnel', actor, action: 'http.request', resource: ctx.resource, result: 'allow', ...txn, where: ctx.where, details: { phase: 'opened', ...base } });
  } catch (e) {
    upstream.destroy();
    answerError(socket, toTesseraError(e, deps.logger));
    return;
  }
  if (socket.destroyed) {
    upstream.destroy();
    return;
  }
  const clock = deps.clock ?? systemClock;
  const opened = clock.now();
  let bytesIn = head.length; // client → upstream
  let bytesOut = 0; // upstream → client
  upstream.setTimeout(ctx.idleMs, () => upstream.destroy());
  upstream.on('error', () => upstream.destroy());
  socket.on('data', (c: Buffer) => (bytesIn += c.length));
  upstream.on('data', (c: Buffer) => (bytesOut += c.length));
  let closed = false;
  const finish = (cause: string): void => {
    if (closed) return;
    closed = true;
    socket.destroy();
    upstream.destroy();
    void deps.audit.append({
      kind: 'proxy.tunnel', actor, action: 'http.request', resource: ctx.resource, result: 'success', ...txn, where: ctx.where,
      details: { phase: 'closed', ...base, bytes_in: bytesIn, bytes_out: bytesOut, duration_ms: clock.now() - opened, cause },
    }).catch(() => undefined);
  };
  socket.once('close', () => finish('client'));
  upstream.once('close', () => finish('upstream'));
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  if (head.length > 0) upstream.write(head);
  socket.pipe(upstream);
  upstream.pipe(socket);
}
