/**
 * The whole of Tessera (src/main.ts) on loopback with a temp data dir, a test policy set and a
 * `gateway:` config, plus helpers to log agents in for the `/mcp` audience and connect the
 * official MCP SDK client over Streamable HTTP.
 */
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { jsonCall } from '../helpers/http.js';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseConfig } from '../../src/config/index.js';
import { startTessera, type RunningTessera } from '../../src/main.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import { recordAuditEvents, registerSensitive } from '../helpers/leak-registry.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const ENV_ECHO_SERVER = join(FIXTURES, 'env-echo-server.mjs');

export interface GatewayHarness {
  readonly tessera: RunningTessera;
  readonly url: string;
  readonly mcpUrl: string;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Join token + token exchange for the gateway audience (RFC 8707 `resource`). */
  login(spiffeId: string, labels?: Record<string, string>, resource?: string): Promise<string>;
  connect(token: string): Promise<Client>;
  close(): Promise<void>;
}

export async function startGatewayHarness(opts: { gateway: Record<string, unknown>; policies: string; secrets?: Record<string, string>; baseDir?: string; providers?: ToolProvider[]; /** More top-level config (e.g. `attestors`). */ config?: Record<string, unknown> }): Promise<GatewayHarness> {
  const dataDir = mkdtempSync(join(opts.baseDir ?? tmpdir(), 'tessera-gw-'));
  const policyDir = join(dataDir, 'policies');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'gateway.cedar'), opts.policies);
  const config = parseConfig({
    data_dir: dataDir,
    trust_domain: 'example.org',
    server: { listen: '127.0.0.1:0' },
    policy: { dir: policyDir, watch: false },
    log: { level: 'silent' },
    gateway: opts.gateway,
    ...(opts.config ?? {}),
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger, ...(opts.providers ? { gatewayProviders: opts.providers } : {}) });
  const url = tessera.url;
  const adminToken = tessera.adminToken!;
  const clients: Client[] = [];
  // Every secret and token this harness handles: the suite-wide leak scan looks for each in the audit log.
  const sensitive = new Set<string>([adminToken, ...Object.values(opts.secrets ?? {})]);

  const call = (token: string | undefined, method: string, path: string, body?: unknown) => jsonCall(url, token, method, path, body);

  for (const [path, value] of Object.entries(opts.secrets ?? {})) {
    const r = await call(adminToken, 'PUT', `/v1/admin/secrets/${path}`, { value });
    if (r.status >= 300) throw new Error(`secret ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  return {
    tessera,
    url,
    mcpUrl: `${url}/mcp`,
    admin: (m, p, b) => call(adminToken, m, p, b),
    async login(spiffeId, labels, resource) {
      const j = await call(adminToken, 'POST', '/v1/admin/join-tokens', { spiffe_id: spiffeId, ttl: '10m', ...(labels ? { labels } : {}) });
      if (j.status !== 201) throw new Error(`join token: ${j.status} ${JSON.stringify(j.body)}`);
      sensitive.add(j.body.token);
      const form = new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: j.body.token,
        subject_token_type: 'urn:tessera:token-type:join-token',
        resource: resource ?? `${url}/mcp`,
      });
      const res = await fetch(`${url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
      const body = (await res.json()) as any;
      if (res.status !== 200) throw new Error(`login: ${res.status} ${JSON.stringify(body)}`);
      sensitive.add(body.access_token);
      return body.access_token as string;
    },
    async connect(token) {
      const client = new Client({ name: 'gateway-test', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
      await client.connect(transport);
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) await c.close().catch(() => undefined);
      try {
        await tessera.audit.flush();
        const rows = await tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
        recordAuditEvents(rows.map((r) => r.body));
      } catch {
        /* store unavailable */
      }
      registerSensitive(...sensitive);
      await tessera.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A raw JSON-RPC POST to /mcp (for headers and malformed input the SDK client would not send). */
export async function rawMcp(mcpUrl: string, token: string | undefined, body: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, body: parsed as any };
}

export const INIT = (id = 1): string => JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });

/** An in-process tool provider with one tool, `ping`, answering "pong" (session and lifecycle tests). */
export const PING_PROVIDER: ToolProvider = {
  server: 'local',
  listTools: async () => [{ name: 'ping', description: 'pong', inputSchema: { type: 'object', properties: {} } }],
  callTool: async () => ({ content: [{ type: 'text', text: 'pong' }] }),
  close: async () => undefined,
};
