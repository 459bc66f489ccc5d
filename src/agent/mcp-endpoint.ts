/**
 * The sidecar's local MCP endpoint (docs/k8s-agent.md "The local MCP endpoint"; ADR 0264):
 * `http://127.0.0.1:15002/mcp` relays MCP Streamable HTTP to the gateway (`<addr>/mcp`) at the
 * HTTP level — every POST, the GET SSE stream and DELETE, with `Mcp-Session-Id`,
 * `MCP-Protocol-Version`, `Last-Event-ID` and the body passed through unchanged and streamed —
 * adding `Authorization: Bearer <held token>` to each request (MCP authorization: the token in
 * every request; the app's own `Authorization` is replaced). Sessions are the gateway's: the app's
 * MCP client sees the gateway's 404 for an ended session and re-initializes as the MCP transport
 * spec says. (`tessera mcp`, src/gateway/stdio-relay, bridges stdio to HTTP instead; here both
 * sides already speak Streamable HTTP, so a byte relay is all there is to do.)
 *
 * Also `GET /healthz`: 200 `{status:"ok"}` while a valid token is held, else 503 with
 * TESSERA_AGENT_NOT_READY (or _TASK_ENDED) — the sidecar's startup probe (`tessera agent probe`).
 */
import { Agent as HttpAgent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { CredentialKeeper } from './keeper.js';
import { endToEnd, notHeld, sendAgentError } from './forward-proxy.js';
import { InFlight, listenDraining, type LocalServer } from './draining.js';
import { browserRefusal } from './browser-guard.js';

export interface McpEndpointDeps {
  readonly keeper: Pick<CredentialKeeper, 'current' | 'state'>;
  /** The gateway endpoint (`<addr>/mcp`). */
  readonly mcpUrl: URL;
  /** Extra trusted CAs (PEM) for an https gateway. */
  readonly ca?: string | undefined;
}

/** Request fields never relayed to the gateway: the app's credentials for it, and the Host of the sidecar. */
const DROP = new Set(['authorization', 'host', 'cookie']);

export function startMcpEndpoint(deps: McpEndpointDeps, listen: { host: string; port: number }): Promise<LocalServer> {
  const https = deps.mcpUrl.protocol === 'https:';
  const agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 64, ...(deps.ca ? { ca: deps.ca } : {}) }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const send = https ? httpsRequest : httpRequest;
  const inflight = new InFlight();

  const server = createServer({ keepAlive: true }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return health(req, res);
    if (path !== '/mcp') {
      req.resume();
      return sendAgentError(res, 'TESSERA_AGENT_REQUEST_INVALID', 'the sidecar serves MCP at /mcp and its health at /healthz');
    }
    // A GET is the server-to-client SSE stream, which never ends by itself: only other requests are drained.
    const counted = req.method !== 'GET';
    if (counted) {
      inflight.enter();
      res.once('close', () => inflight.leave());
    }
    relay(req, res);
  });

  function health(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendAgentError(res, 'TESSERA_AGENT_REQUEST_INVALID', '/healthz takes GET');
    if (deps.keeper.current()) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      return void res.end(JSON.stringify({ status: 'ok' }));
    }
    const n = notHeld(deps.keeper);
    sendAgentError(res, n.code, n.message, n.headers);
  }

  function relay(req: IncomingMessage, res: ServerResponse): void {
    const refused = browserRefusal(req.headers, (server.address() as { port: number }).port);
    if (refused) {
      req.resume();
      return sendAgentError(res, refused.code, refused.message);
    }
    const cred = deps.keeper.current();
    if (!cred) {
      req.resume();
      const n = notHeld(deps.keeper);
      return sendAgentError(res, n.code, n.message, n.headers);
    }
    const headers = endToEnd(req.headers, req.rawHeaders).filter(([k]) => !DROP.has(k.toLowerCase()));
    headers.push(['Host', deps.mcpUrl.host], ['Authorization', `Bearer ${cred.token}`]);
    const query = (req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?')) : '';
    const up = send({ host: deps.mcpUrl.hostname.replace(/^\[|\]$/g, ''), port: deps.mcpUrl.port || (https ? 443 : 80), method: req.method, path: `${deps.mcpUrl.pathname}${query}`, headers: headers.flat(), agent, setHost: false }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, endToEnd(upRes.headers, upRes.rawHeaders).flat());
      // SSE: every chunk goes out as it comes (no buffering between gateway and app).
      res.flushHeaders();
      upRes.pipe(res);
      upRes.once('error', () => res.destroy());
    });
    up.once('error', (e) => {
      if (res.headersSent) return void res.destroy();
      sendAgentError(res, 'TESSERA_AGENT_UPSTREAM_UNREACHABLE', `the gateway ${deps.mcpUrl.origin} cannot be reached (${(e as NodeJS.ErrnoException).code ?? e.message})`);
    });
    res.once('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  return listenDraining(server, listen, inflight, () => agent.destroy());
}
