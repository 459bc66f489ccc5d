/**
 * The conformance fixture: an MCP server (official SDK, low-level `Server`, one per session)
 * over Streamable HTTP on 127.0.0.1 that implements what every server scenario of
 * @modelcontextprotocol/conformance 0.1.16 calls (./tools.ts, ./content.ts). It answers with
 * SSE streams (resumable: ./event-store.ts) so notifications and server-to-client requests go
 * out during a call, and checks Host and Origin (DNS rebinding protection, MCP "Security
 * Warning"). Run against it directly, the suite passes: test/conformance/conformance.test.ts.
 *
 * The low-level `Server` rather than `McpServer`: the answers are exactly the JSON the scenarios
 * specify, and `McpServer` builds input schemas from zod, which cannot express the literal
 * JSON Schema 2020-12 document (`$schema`, `$defs`) `json-schema-2020-12` looks for.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { registerTools } from './tools.js';
import { registerContent, logLevelAllows, type ContentSession } from './content.js';
import { memoryEventStore } from './event-store.js';

export interface ConformanceUpstream {
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: string;
  close(): Promise<void>;
}

function newServer(): Server {
  const server = new Server(
    { name: 'tessera-conformance-upstream', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, completions: {}, logging: {} } },
  );
  const session: ContentSession = { logLevel: 'info', subscriptions: new Set() };
  registerContent(server, session);
  registerTools(server, { logLevelAllows: (level) => logLevelAllows(session, level) });
  return server;
}

async function readJson(req: AsyncIterable<unknown>): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  if (chunks.length === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return null;
  }
}

export async function startConformanceUpstream(): Promise<ConformanceUpstream> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  let allowedHosts: string[] = [];

  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
      if (!transport) {
        if (typeof sid === 'string' || req.method !== 'POST' || !isInitializeRequest(body)) {
          res.writeHead(typeof sid === 'string' ? 404 : 400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'unknown or missing session' } }));
          return;
        }
        const t = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          eventStore: memoryEventStore(),
          retryInterval: 500,
          enableDnsRebindingProtection: true,
          allowedHosts,
          allowedOrigins: allowedHosts.map((h) => `http://${h}`),
          onsessioninitialized: (id) => void transports.set(id, t),
        });
        t.onclose = () => {
          if (t.sessionId) transports.delete(t.sessionId);
        };
        await newServer().connect(t);
        transport = t;
      }
      await transport.handleRequest(req, res, body);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as AddressInfo).port;
  allowedHosts = [`127.0.0.1:${port}`, `localhost:${port}`];
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    async close() {
      for (const t of transports.values()) await t.close().catch(() => undefined);
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
