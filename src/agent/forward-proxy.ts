/**
 * The sidecar's local forward proxy (docs/k8s-agent.md "The local proxy"; ADR 0264): the app sets
 * `HTTP(S)_PROXY=http://127.0.0.1:15001` and sends no credential; every request goes on to the
 * Tessera proxy (`--proxy-url`) with `Proxy-Authorization: Bearer <held token>` (RFC 9110
 * §11.7.1). Whatever `Proxy-Authorization` the app sent is dropped first.
 *
 *  - absolute-form `GET http://host/…` (RFC 9112 §3.2.2): relayed as is — Tessera's forward mode;
 *  - origin-form `GET /<route>/…`: relayed as is — Tessera's reverse routes
 *    (`OPENAI_BASE_URL=http://127.0.0.1:15001/openai`);
 *  - `CONNECT host:port` (RFC 9110 §9.3.6): a new CONNECT to the Tessera proxy on a fresh TCP
 *    connection, then bytes both ways, untouched: TLS is still intercepted at Tessera (the app
 *    trusts Tessera's CA through NODE_EXTRA_CA_CERTS). Tessera checks an intercepted tunnel's token
 *    on every request inside it, so a tunnel is closed just before the token it was opened with
 *    expires; the client's next request opens a new tunnel with the current token.
 *
 * Requests reuse keep-alive connections to the Tessera proxy (node:http Agent), which keeps the
 * added latency well under a millisecond (bench/k8s-sidecar.ts). Refusals of the sidecar's own are
 * JSON `{error:{code,message}}` with a TESSERA_AGENT_* code; Tessera's answers pass through.
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ERROR_CATALOGUE, type ErrorCode } from '../shared/errors.js';
import { marginOf, type CredentialKeeper } from './keeper.js';
import { browserRefusal } from './browser-guard.js';
import { InFlight, listenDraining, type LocalServer } from './draining.js';

export type { LocalServer } from './draining.js';

/** Hop-by-hop fields (RFC 9110 §7.6.1) and the app's proxy credential: never relayed. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export interface ForwardProxyDeps {
  readonly keeper: Pick<CredentialKeeper, 'current' | 'state'>;
  /** The Tessera proxy listener (http://host:port). */
  readonly proxyUrl: URL;
  readonly now: () => number;
  /** One line per notable event, never a token. */
  log(line: string): void;
}


/** Copies the end-to-end headers (raw order kept), without hop-by-hop ones and those `Connection` names. */
export function endToEnd(headers: IncomingHttpHeaders, raw: readonly string[]): [string, string][] {
  const named = new Set(String(headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim()).filter(Boolean));
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (!HOP.has(k) && !named.has(k)) out.push([raw[i]!, raw[i + 1]!]);
  }
  return out;
}

export function sendAgentError(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) return void res.destroy();
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(ERROR_CATALOGUE[code].status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/** Why no token is held, as a refusal. */
export function notHeld(keeper: Pick<CredentialKeeper, 'state'>): { code: ErrorCode; message: string; headers: Record<string, string> } {
  if (keeper.state === 'ended') return { code: 'TESSERA_AGENT_TASK_ENDED', message: "the sidecar's task was revoked; it serves nothing until it restarts", headers: {} };
  return { code: 'TESSERA_AGENT_NOT_READY', message: 'the sidecar holds no valid token yet (logging in, or Tessera unreachable); retry shortly', headers: { 'retry-after': '1' } };
}

function rawAnswer(socket: Duplex, code: ErrorCode, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const status = ERROR_CATALOGUE[code].status;
  socket.end(`HTTP/1.1 ${status} ${status === 503 ? 'Service Unavailable' : status === 403 ? 'Forbidden' : status === 502 ? 'Bad Gateway' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** CONNECT target: `host:port` (RFC 9110 §9.3.6), nothing else — checked again by Tessera. */
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253}):[1-9][0-9]{0,4}$/;

export function startForwardProxy(deps: ForwardProxyDeps, listen: { host: string; port: number }): Promise<LocalServer> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' });
  const target = { host: deps.proxyUrl.hostname.replace(/^\[|\]$/g, ''), port: Number(deps.proxyUrl.port || 80) };
  const tunnels = new Set<Socket>();
  const inflight = new InFlight();

  const server = createServer({ keepAlive: true }, (req, res) => {
    inflight.enter();
    res.once('close', () => inflight.leave());
    relayRequest(req, res);
  });

  function relayRequest(req: IncomingMessage, res: ServerResponse): void {
    // Origin-form (reverse routes): refuse what a web page in the pod sends (./browser-guard.ts).
    const refused = (req.url ?? '').startsWith('/') ? browserRefusal(req.headers, (server.address() as { port: number }).port) : undefined;
    if (refused) {
      req.resume();
      return sendAgentError(res, refused.code, refused.message);
    }
    const cred = deps.keeper.current();
    if (!cred) {
      const n = notHeld(deps.keeper);
      req.resume();
      return sendAgentError(res, n.code, n.message, n.headers);
    }
    const headers = endToEnd(req.headers, req.rawHeaders);
    headers.push(['Proxy-Authorization', `Bearer ${cred.token}`]);
    const up = httpRequest({ host: target.host, port: target.port, method: req.method, path: req.url, headers: headers.flat(), agent, setHost: false }, (upRes) => {
      const out = endToEnd(upRes.headers, upRes.rawHeaders);
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out.flat());
      upRes.pipe(res);
      upRes.once('error', () => res.destroy());
    });
    up.once('error', (e) => {
      if (res.headersSent) return void res.destroy();
      sendAgentError(res, 'TESSERA_AGENT_UPSTREAM_UNREACHABLE', `the Tessera proxy ${deps.proxyUrl.origin} cannot be reached (${(e as NodeJS.ErrnoException).code ?? e.message})`);
    });
    res.once('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => rawAnswer(socket, 'TESSERA_AGENT_REQUEST_INVALID', 'upgrades (WebSocket) are not relayed by the local proxy; use wss:// through HTTPS_PROXY (CONNECT)'));

  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    client.on('error', () => client.destroy());
    const authority = req.url ?? '';
    if (!AUTHORITY.test(authority)) return rawAnswer(client, 'TESSERA_AGENT_REQUEST_INVALID', `CONNECT target ${JSON.stringify(authority.slice(0, 100))} is not host:port`);
    const cred = deps.keeper.current();
    if (!cred) {
      const n = notHeld(deps.keeper);
      return rawAnswer(client, n.code, n.message);
    }
    const up = netConnect({ host: target.host, port: target.port, noDelay: true });
    client.setNoDelay(true);
    tunnels.add(client);
    // Tessera re-checks an intercepted tunnel's token on each request inside: end the tunnel before it expires.
    const cut = setTimeout(() => {
      deps.log(`closing a tunnel to ${authority}: the token it was opened with expires`);
      client.destroy();
      up.destroy();
    }, Math.max(0, cred.expiresAt - marginOf(cred) - deps.now()));
    cut.unref();
    const cleanup = (): void => {
      clearTimeout(cut);
      tunnels.delete(client);
      client.destroy();
      up.destroy();
    };
    up.once('error', (e) => {
      if (up.bytesRead === 0 && !client.destroyed) rawAnswer(client, 'TESSERA_AGENT_UPSTREAM_UNREACHABLE', `the Tessera proxy ${deps.proxyUrl.origin} cannot be reached (${(e as NodeJS.ErrnoException).code ?? e.message})`);
      cleanup();
    });
    up.once('close', cleanup);
    client.once('close', cleanup);
    up.once('connect', () => {
      up.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Bearer ${cred.token}\r\n\r\n`);
      if (head.length) up.write(head);
      // Tessera's answer to the CONNECT (200, or its 407/403 with a TESSERA_* body) reaches the app unchanged.
      up.pipe(client);
      client.pipe(up);
    });
  });

  return listenDraining(server, listen, inflight, () => {
    for (const t of tunnels) t.destroy();
    agent.destroy();
  });
}
