/**
 * Tessera with its authorization server enabled, federated to a real OpenID Provider
 * (oidc-provider, op.ts), a gateway tool provider, and an https server (self-signed certificate
 * made with openssl, trusted through `client_metadata.ca_file`) hosting client ID metadata
 * documents. Everything listens on 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { startTessera, type RunningTessera } from '../../src/main.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import type { Clock } from '../../src/shared/clock.js';
import { jsonCall } from '../helpers/http.js';
import { recordAuditEvents, registerSensitive } from '../helpers/leak-registry.js';
import { freePort, startOp, API_AUDIENCE, TESSERA_CLIENT, type TestOp } from './op.js';

export const SECRET_ENV = 'TESSERA_TEST_OP_CLIENT_SECRET';

/** oauth_client agents may open tasks for people and call docs tools; staff may have clients act for them and use docs; finance also uses ledger. */
export const AS_POLICIES = `
@id("clients-open-tasks")
permit (principal, action == Tessera::Action::"token.delegate", resource)
when { principal.attestor_kind == "oauth_client" && principal.hasTag("client_id") };

@id("clients-call-tools")
permit (principal, action == Tessera::Action::"tool.call", resource)
when { principal.attestor_kind == "oauth_client" };

@id("staff-have-clients")
permit (principal in Tessera::Group::"staff", action == Tessera::Action::"token.delegate", resource)
when { context.actor like "spiffe://tessera.local/oauth-client/*" };

@id("staff-use-docs")
permit (principal in Tessera::Group::"staff", action == Tessera::Action::"tool.call", resource in Tessera::Server::"docs");

@id("finance-use-ledger")
permit (principal in Tessera::Group::"finance", action == Tessera::Action::"tool.call", resource in Tessera::Server::"ledger");
`;

export const tools = (server: string, names: string[]): ToolProvider => ({
  server,
  async listTools() {
    return names.map((name) => ({ name, inputSchema: { type: 'object', additionalProperties: true } }));
  },
  async callTool(tool) {
    return { content: [{ type: 'text', text: `${server}/${tool} ok` }] };
  },
  async close() {},
});

export interface AsHarness {
  readonly tessera: RunningTessera;
  readonly url: string;
  readonly op: TestOp;
  /** Base https URL of the metadata document server. */
  readonly docsUrl: string;
  /** Serves `body` as JSON at `<docsUrl>/<name>`. */
  publish(name: string, body: unknown): string;
  readonly sensitive: Set<string>;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startAsHarness(opts: { config?: Record<string, unknown>; clock?: Clock } = {}): Promise<AsHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-as-'));
  // A self-signed certificate for 127.0.0.1 (client ID metadata documents are https only).
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const docs = new Map<string, string>();
  const https: HttpsServer = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    const body = docs.get(req.url ?? '');
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  const docsUrl = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;

  const opPort = await freePort();
  const opIssuer = `http://127.0.0.1:${opPort}`;
  process.env[SECRET_ENV] = TESSERA_CLIENT.client_secret;
  const policyDir = join(dir, 'policies');
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'as.cedar'), AS_POLICIES);
  const config = parseConfig({
    data_dir: join(dir, 'data'),
    server: { listen: '127.0.0.1:0' },
    policy: { dir: policyDir, watch: false },
    log: { level: 'silent' },
    users: {
      issuers: [{
        name: 'corp', issuer: opIssuer, discovery: true, audience: API_AUDIENCE, groups_claim: 'groups', attributes: { department: 'department' },
        login: { client_id: TESSERA_CLIENT.client_id, client_secret_env: SECRET_ENV, scopes: ['openid', 'email', 'groups', 'department'] },
      }],
      authorization_server: { enabled: true, login_issuer: 'corp', client_metadata: { allow_private_hosts: ['127.0.0.1'], ca_file: join(dir, 'cert.pem') } },
    },
    ...(opts.config ?? {}),
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger, ...(opts.clock ? { clock: opts.clock } : {}), gatewayProviders: [tools('docs', ['search', 'read']), tools('ledger', ['balance'])] });
  const op = await startOp({ port: opPort, tesseraCallback: `${tessera.url}/v1/oauth/callback` });
  const sensitive = new Set<string>([tessera.adminToken!]);
  return {
    tessera, url: tessera.url, op, docsUrl, sensitive,
    publish(name, body) {
      docs.set(`/${name}`, JSON.stringify(body));
      return `${docsUrl}/${name}`;
    },
    admin: (m, p, b) => jsonCall(tessera.url, tessera.adminToken!, m, p, b),
    async close() {
      try {
        await tessera.audit.flush();
        const rows = await tessera.store.all<{ body: string }>('SELECT body FROM audit_events');
        recordAuditEvents(rows.map((r) => r.body));
      } catch {
        /* closed */
      }
      registerSensitive(...sensitive);
      await tessera.close();
      await op.close();
      await new Promise<void>((r) => {
        https.closeAllConnections();
        https.close(() => r());
      });
    },
  };
}

/** GETs `url` without following a redirect: the redirect's Location, or the JSON answer. */
export async function getManual(url: string | URL): Promise<{ status: number; location?: URL; body?: any }> {
  const res = await fetch(url, { redirect: 'manual' });
  const location = res.headers.get('location');
  if (location) {
    await res.arrayBuffer();
    return { status: res.status, location: new URL(location) };
  }
  return { status: res.status, body: await res.json() };
}
