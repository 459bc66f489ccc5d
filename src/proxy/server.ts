/**
 * The proxy listener (`proxy.listen`; docs/proxy.md): a raw node:http server — not fastify —
 * because it serves CONNECT, streams both ways and is on every agent request's path.
 *
 *   - origin-form `GET /<route>/<path>`  → reverse route (request.ts);
 *   - absolute-form `GET http://host/…`  → forward proxy for HTTP_PROXY (the route whose hosts has `host`);
 *   - `CONNECT host:port`                → the TLS part's handleConnect (src/proxy/connect.ts) with
 *     the CORE dependencies below; decrypted requests come back through `serveIntercepted`.
 *
 * Kill switch: every socket remembers the principal of its last authenticated request (a
 * tunnel's from its CONNECT); a revocation closes at once every socket whose principal is now
 * revoked (keep-alive connections, intercepted tunnels, requests in flight).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { RequestMeta } from '../server/app.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { RevocationSubject } from '../shared/revocation.js';
import { TesseraError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { ProxyAuthenticator } from './auth.js';
import { PROXY_SERVER_OPTIONS, checkFraming, onClientError, sendRefusal } from './hygiene.js';
import type { ProxyRequestHandler, TunnelBinding } from './request.js';
import type { RouteTable } from './route-table.js';

/** The CORE half of the TLS part's ConnectDeps (src/proxy/connect.ts), same names and shapes. */
export interface CoreConnectDeps {
  authenticate(req: IncomingMessage): Promise<{ principal: AgentPrincipal; token: string }>;
  routeForHost(host: string, port: number): { name: string } | undefined;
  authorizeTunnel(principal: AgentPrincipal, host: string, port: number): void;
  serveIntercepted(socket: TLSSocket, tunnel: TunnelBinding): void;
}

/** Handles one CONNECT (the TLS part's `(req, socket, head) => handleConnect(req, socket, head, { ...core, vet, interceptor, audit })`). */
export type ConnectHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, core: CoreConnectDeps) => void;

export interface ProxyServerDeps {
  readonly handler: ProxyRequestHandler;
  readonly auth: ProxyAuthenticator;
  readonly authorizer: RequestAuthorizer;
  readonly routes: RouteTable;
  readonly revocations: { isPrincipalRevoked(p: RevocationSubject): boolean };
  readonly logger: Logger;
  readonly replica: string;
  /** CONNECT handling (TLS part); absent: CONNECT is answered 405 TESSERA_PROXY_CONNECT_UNAVAILABLE. */
  readonly connect?: ConnectHandler;
  /** Keep-alive idle timeout of agent connections, ms (default 65 s). */
  readonly keepAliveTimeoutMs?: number;
}

export interface ProxyServer {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Closes every connection of a principal that is now revoked; returns how many. */
  closeRevoked(): number;
  /** Remembers the principal a connection's request authenticated as (request.ts onAuthenticated). */
  track(socket: Duplex, principal: AgentPrincipal): void;
  /** Open agent connections (tests, metrics). */
  readonly connections: number;
  /** The CORE half of ConnectDeps (for the TLS part's handleConnect). */
  readonly connectDeps: CoreConnectDeps;
  close(): Promise<void>;
}

function refuseConnect(socket: Duplex, err: TesseraError): void {
  const body = JSON.stringify({ error: { code: err.code, message: err.message } });
  socket.end(`HTTP/1.1 ${err.status} ${err.status === 405 ? 'Method Not Allowed' : err.status === 407 ? 'Proxy Authentication Required' : 'Forbidden'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

export function createProxyServer(deps: ProxyServerDeps): ProxyServer {
  /** The principal each open connection last authenticated as (a tunnel's from its CONNECT). */
  const principals = new Map<Duplex, AgentPrincipal>();
  const sockets = new Set<Duplex>();
  const tunnels = new WeakMap<Duplex, TunnelBinding>();

  const server: Server = createServer({ ...PROXY_SERVER_OPTIONS, keepAliveTimeout: deps.keepAliveTimeoutMs ?? 65_000, requestTimeout: 0, headersTimeout: 30_000 }, (req: IncomingMessage, res: ServerResponse) => {
    // Request hygiene first (src/proxy/hygiene.ts, ADR 0205): one reading of the framing for Tessera and the upstream.
    try {
      checkFraming(req);
    } catch (e) {
      if (e instanceof TesseraError) return sendRefusal(res, e);
      throw e;
    }
    const tunnel = tunnels.get(req.socket);
    if (tunnel) return deps.handler.handle(req, res, 'intercepted', tunnel);
    const url = req.url ?? '';
    deps.handler.handle(req, res, url.startsWith('/') ? 'reverse' : 'forward');
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => {
      sockets.delete(s);
      principals.delete(s);
    });
  });
  server.on('clientError', onClientError);

  const meta = (req: IncomingMessage): RequestMeta => ({ requestId: '', source: req.socket.remoteAddress ?? 'unknown', replica: deps.replica });

  const connectDeps: CoreConnectDeps = {
    async authenticate(req) {
      const r = await deps.auth.authenticate({ headers: req.headers, method: 'CONNECT', target: req.url ?? '' }, 'forward', meta(req));
      // The tunnel's connection is cut if its principal is revoked (plain tunnels included).
      if (req.socket && sockets.has(req.socket)) principals.set(req.socket, r.principal);
      return r;
    },
    routeForHost(host) {
      const r = deps.routes.byHost(host);
      return r ? { name: r.name } : undefined;
    },
    authorizeTunnel(principal, host, port) {
      const request = { principal, action: 'http.request' as const, resource: { type: 'Route' as const, route: host }, context: { http: { route: host, method: 'CONNECT', host, port, path: '', query_keys: [], body: {}, tunnel: true } } };
      const d = deps.authorizer.authorize(request);
      if (!d.allowed) throw new TesseraError('TESSERA_PROXY_TUNNEL_DENIED', `policy does not permit ${principal.spiffeId} to tunnel to ${host}:${port} untouched (no route serves that host; permit http.request on Route::"${host}" with context.http.tunnel)`, { policies: d.policies, ...(d.scopeDenied ? { scope: `http:${host}` } : {}) });
    },
    serveIntercepted(socket, tunnel) {
      tunnels.set(socket, tunnel);
      sockets.add(socket);
      principals.set(socket, tunnel.principal);
      socket.once('close', () => {
        sockets.delete(socket);
        principals.delete(socket);
      });
      server.emit('connection', socket);
    },
  };

  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!deps.connect) {
      refuseConnect(socket, new TesseraError('TESSERA_PROXY_CONNECT_UNAVAILABLE', 'CONNECT (HTTPS_PROXY) is not available on this proxy; use a reverse route URL http://<proxy>/<route>/… or plain-HTTP forward proxying'));
      return;
    }
    deps.connect(req, socket, head, connectDeps);
  });

  return {
    connectDeps,
    get connections() {
      return sockets.size;
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const a = server.address() as { address: string; port: number };
          resolve({ host, port: a.port });
        });
      });
    },
    track(socket, principal) {
      if (sockets.has(socket)) principals.set(socket, principal);
    },
    closeRevoked() {
      let n = 0;
      for (const [socket, p] of principals) {
        if (deps.revocations.isPrincipalRevoked(p)) {
          principals.delete(socket);
          socket.destroy();
          n++;
        }
      }
      return n;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
