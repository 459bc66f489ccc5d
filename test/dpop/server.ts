/**
 * The whole of Tessera (src/main.ts) on loopback for the DPoP tests, with an in-process gateway
 * tool (`mem__echo`) and a small policy set, plus request helpers that speak DPoP by hand.
 * Every token and secret used is registered for the suite-wide leak scan.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { startTessera, type RunningTessera } from '../../src/main.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import { jsonCall } from '../helpers/http.js';
import { recordAuditEvents, registerSensitive } from '../helpers/leak-registry.js';
import { makeProof, type ProofKey } from '../helpers/dpop.js';

export const AGENT = 'spiffe://tessera.local/ns/dpop/sa/agent';

export const POLICIES = `
@id("echo") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"mem/echo") when { principal.trust_domain == "tessera.local" };
@id("open-secrets") permit (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"open") when { principal.trust_domain == "tessera.local" };
@id("bound-secrets") permit (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"bound") when { principal.trust_domain == "tessera.local" && context.dpop };
`;

const mem: ToolProvider = {
  server: 'mem',
  async listTools() {
    return [{ name: 'echo', inputSchema: { type: 'object' } }];
  },
  async callTool(_tool, args) {
    return { content: [{ type: 'text', text: `echo ${JSON.stringify(args ?? {})}` }] };
  },
  async close() {},
};

export interface Res {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
  /** The stable code: `error.code` (API), `code` (OAuth endpoints), `error.data.code` (JSON-RPC). */
  readonly code: string | undefined;
}

export interface DpopServer {
  readonly tessera: RunningTessera;
  /** Where requests go (the listen address). */
  readonly url: string;
  /** The issuer (`server.public_url`, or the listen address), which the proofs' `htu` name. */
  readonly issuer: string;
  readonly sensitive: Set<string>;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  joinToken(spiffeId?: string): Promise<string>;
  /** POST /v1/oauth/token with a join token; a DPoP header when given. */
  exchange(joinToken: string, opts?: { dpop?: string | string[]; audience?: readonly string[] }): Promise<Res>;
  /** A DPoP-bound token for `key` (audiences: the API and the gateway). */
  boundToken(key: ProofKey, spiffeId?: string): Promise<string>;
  /** An unbound (Bearer) token. */
  bearerToken(spiffeId?: string): Promise<string>;
  /** A request with raw headers. */
  request(method: string, path: string, headers: Record<string, string | string[]>, body?: string): Promise<Res>;
  /** A request with a bound token and a fresh, valid proof. */
  dpopRequest(key: ProofKey, token: string, method: string, path: string, body?: string): Promise<Res>;
  close(): Promise<void>;
}

async function read(res: Response): Promise<Res> {
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  const code = body?.error?.data?.code ?? (typeof body?.error === 'object' ? body?.error?.code : undefined) ?? body?.code;
  return { status: res.status, headers: res.headers, body, code };
}

export const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
export const INIT = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'dpop-test', version: '1' } } });

/** `policies`: Cedar text added to POLICIES (for example token.delegate permits for task tests). */
export async function startDpopServer(opts: { config?: Record<string, unknown>; dataDir?: string; policies?: string } = {}): Promise<DpopServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'tessera-dpop-'));
  const policyDir = join(dataDir, 'policies');
  mkdirSync(policyDir, { recursive: true });
  writeFileSync(join(policyDir, 'dpop.cedar'), POLICIES + (opts.policies ?? ''));
  const config = parseConfig({
    data_dir: dataDir,
    server: { listen: '127.0.0.1:0' },
    policy: { dir: policyDir, watch: false },
    log: { level: 'silent' },
    ...(opts.config ?? {}),
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger, gatewayProviders: [mem] });
  const url = tessera.localUrl;
  const issuer = tessera.url;
  const adminToken = tessera.adminToken!;
  const sensitive = new Set<string>([adminToken]);
  const admin = (m: string, p: string, b?: unknown) => jsonCall(url, adminToken, m, p, b);

  const s: DpopServer = {
    tessera, url, issuer, sensitive, admin,
    async joinToken(spiffeId = AGENT) {
      const r = await admin('POST', '/v1/admin/join-tokens', { spiffe_id: spiffeId, ttl: '10m' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      sensitive.add(r.body.token);
      return r.body.token as string;
    },
    async exchange(joinToken, o = {}) {
      const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: joinToken, subject_token_type: 'urn:tessera:token-type:join-token' });
      for (const a of o.audience ?? [issuer, `${issuer}/mcp`]) form.append('audience', a);
      const headers = new Headers({ 'content-type': 'application/x-www-form-urlencoded' });
      for (const d of o.dpop === undefined ? [] : Array.isArray(o.dpop) ? o.dpop : [o.dpop]) headers.append('dpop', d);
      const r = await read(await fetch(`${url}/v1/oauth/token`, { method: 'POST', headers, body: form }));
      if (typeof r.body?.access_token === 'string') sensitive.add(r.body.access_token);
      return r;
    },
    async boundToken(key, spiffeId) {
      const r = await s.exchange(await s.joinToken(spiffeId), { dpop: makeProof(key, { htm: 'POST', htu: `${issuer}/v1/oauth/token` }) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.token_type, 'DPoP');
      return r.body.access_token as string;
    },
    async bearerToken(spiffeId) {
      const r = await s.exchange(await s.joinToken(spiffeId));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.token_type, 'Bearer');
      return r.body.access_token as string;
    },
    async request(method, path, headers, body) {
      const h = new Headers();
      for (const [k, v] of Object.entries(headers)) for (const x of Array.isArray(v) ? v : [v]) h.append(k, x);
      return read(await fetch(url + path, { method, headers: h, ...(body !== undefined ? { body } : {}) }));
    },
    async dpopRequest(key, token, method, path, body) {
      const proof = makeProof(key, { htm: method, htu: issuer + path.split('?')[0], token });
      return s.request(method, path, { authorization: `DPoP ${token}`, dpop: proof, ...(path.startsWith('/mcp') ? MCP_HEADERS : {}) }, body);
    },
    async close() {
      try {
        await tessera.audit.flush();
        recordAuditEvents((await tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq')).map((r) => r.body));
      } catch {
        /* store gone */
      }
      registerSensitive(...sensitive);
      await tessera.close();
    },
  };
  return s;
}
