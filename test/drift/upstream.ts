/**
 * A real MCP server (official SDK, Streamable HTTP, stateful sessions) on 127.0.0.1 whose tool
 * definitions the test changes at run time — the "rug pull": `set(name, patch)` changes a tool
 * and sends `notifications/tools/list_changed` to every open session, as a real server would.
 * Tools: `echo` (returns its `text`), `add` (sums `a` and `b`).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';

export interface DriftUpstream {
  readonly url: string;
  /** tools/list requests answered so far. */
  readonly lists: number;
  /** Changes one tool's definition (fields merged) and notifies every session. */
  set(name: string, patch: Partial<Tool>): Promise<void>;
  /** Adds a tool and notifies every session. */
  add(tool: Tool): Promise<void>;
  close(): Promise<void>;
}

export async function startDriftUpstream(): Promise<DriftUpstream> {
  const tools: Tool[] = [
    { name: 'echo', description: 'Echoes the text back', inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } },
    { name: 'add', title: 'Add', description: 'Adds two numbers', inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } }, annotations: { readOnlyHint: true } },
  ];
  const servers = new Set<Server>();
  const transports = new Map<string, StreamableHTTPServerTransport>();
  let lists = 0;

  function newServer(): Server {
    const server = new Server({ name: 'drift-upstream', version: '1.0.0' }, { capabilities: { tools: { listChanged: true } } });
    server.setRequestHandler(ListToolsRequestSchema, async () => {
      lists++;
      return { tools: tools.map((t) => ({ ...t })) };
    });
    server.setRequestHandler(CallToolRequestSchema, async (req) => {
      const a = (req.params.arguments ?? {}) as Record<string, unknown>;
      if (req.params.name === 'echo') return { content: [{ type: 'text', text: String(a['text']) }] };
      if (req.params.name === 'add') return { content: [{ type: 'text', text: String(Number(a['a']) + Number(a['b'])) }] };
      throw new Error(`unknown tool ${req.params.name}`);
    });
    servers.add(server);
    return server;
  }

  const http: HttpServer = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown) : undefined;
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
      if (!transport) {
        if (typeof sid === 'string') {
          res.writeHead(404).end();
          return;
        }
        const t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), enableJsonResponse: true, onsessioninitialized: (id) => void transports.set(id, t) });
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
  const port = (http.address() as { port: number }).port;

  const notify = async (): Promise<void> => {
    // Only sessions with an open GET stream get it; the gateway also re-lists on its next connection.
    await Promise.all([...servers].map((s) => s.sendToolListChanged().catch(() => undefined)));
  };

  return {
    url: `http://127.0.0.1:${port}/mcp`,
    get lists() {
      return lists;
    },
    async set(name, patch) {
      const i = tools.findIndex((t) => t.name === name);
      if (i < 0) throw new Error(`no tool ${name}`);
      tools[i] = { ...tools[i]!, ...patch };
      await notify();
    },
    async add(tool) {
      tools.push(tool);
      await notify();
    },
    async close() {
      for (const t of transports.values()) await t.close().catch(() => undefined);
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
