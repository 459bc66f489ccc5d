/**
 * The local front the conformance suite talks to (127.0.0.1 only): a reverse proxy to the
 * gateway's `/mcp` that adds `Authorization: Bearer <agent token>` — the suite's client has no
 * way to log in to Tessera — and applies ./names.ts to the JSON-RPC messages. Requests and
 * answers stream through: JSON bodies, POST answers as SSE streams, the session's GET stream
 * and DELETE. `Host` and `Origin` pass unchanged, as behind any reverse proxy that preserves
 * them, so Tessera's own DNS-rebinding checks see what the client sent (the gateway's config
 * lists the front's address in `server.allowed_hosts` / `allowed_origins`).
 */
import { createServer, request, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NameMapping } from './names.js';
import { sseRewriter } from './sse.js';

export interface Front {
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: string;
  /** `127.0.0.1:<port>` (for server.allowed_hosts). */
  readonly authority: string;
  /** Where to forward (the gateway's /mcp) and the token to add; set before the first request. */
  target(url: string, token: string): void;
  close(): Promise<void>;
}

/** Request headers not forwarded: hop-by-hop (RFC 9110 §7.6.1), recomputed, or set by the front. */
const DROPPED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'authorization', 'proxy-authorization', 'te', 'upgrade']);

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The client's message rewritten, and the request it carries (to find its answer). */
function outbound(body: Buffer, mapping: NameMapping): { body: Buffer; answered?: { id: unknown; method: string } } {
  if (body.length === 0) return { body };
  let message: unknown;
  try {
    message = JSON.parse(body.toString('utf8'));
  } catch {
    return { body }; // not JSON: the gateway's answer to it is what the suite should see
  }
  const m = message as { id?: unknown; method?: unknown };
  const answered = m && typeof m.method === 'string' && m.id !== undefined ? { id: m.id, method: m.method } : undefined;
  return { body: Buffer.from(JSON.stringify(mapping.toGateway(message))), ...(answered ? { answered } : {}) };
}

function relayAnswer(up: IncomingMessage, res: ServerResponse, mapping: NameMapping, answered?: { id: unknown; method: string }): void {
  const type = String(up.headers['content-type'] ?? '');
  const headers = { ...up.headers };
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  delete headers['connection'];
  res.writeHead(up.statusCode ?? 502, headers);
  const rewrite = (m: unknown): unknown => mapping.toClient(m, answered);
  if (type.includes('text/event-stream')) {
    res.flushHeaders();
    const sse = sseRewriter(rewrite);
    up.setEncoding('utf8');
    up.on('data', (chunk: string) => res.write(sse.push(chunk)));
    up.on('end', () => res.end(sse.end()));
    return;
  }
  void readBody(up).then((buf) => {
    if (!type.includes('application/json') || buf.length === 0) return res.end(buf);
    try {
      res.end(JSON.stringify(rewrite(JSON.parse(buf.toString('utf8')))));
    } catch {
      res.end(buf);
    }
  });
}

export async function startFront(mapping: NameMapping): Promise<Front> {
  let targetUrl: URL | undefined;
  let token = '';
  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      if (!targetUrl) throw new Error('front: no target');
      const { body, answered } = outbound(await readBody(req), mapping);
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !DROPPED.has(k)) headers[k] = v;
      headers.authorization = `Bearer ${token}`;
      if (body.length > 0) headers['content-length'] = String(body.length);
      const up = request(targetUrl, { method: req.method, headers });
      // The client going away (a cancelled SSE read) ends the gateway request too.
      res.on('close', () => up.destroy());
      up.on('response', (r) => relayAnswer(r, res, mapping, answered));
      up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      up.end(body);
    })().catch((e: unknown) => (res.headersSent ? res.destroy() : res.writeHead(500).end(String(e))));
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const authority = `127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    url: `http://${authority}/mcp`,
    authority,
    target(url, t) {
      targetUrl = new URL(url);
      token = t;
    },
    async close() {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
