/**
 * A cached decision dies with what made it valid (issue 7 item 5; docs/adr/0061): through the
 * whole server and the official MCP SDK client, each event that changes a verification or an
 * authorization is effective on the very next request, with caches warm beforehand:
 *  - emergency key rotation (`revoke_previous`): old tokens refused on /mcp and the API at once;
 *  - policy reload removing (and adding) a permission: tools/list and tools/call at once;
 *  - token and agent revocation: /mcp refused at once;
 * and the same across two replicas on PostgreSQL (the events fan out through the store).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseConfig } from '../../src/config/index.js';
import { startTessera, type RunningTessera } from '../../src/main.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import { jsonCall } from '../helpers/http.js';
import { recordAuditEvents, registerSensitive } from '../helpers/leak-registry.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { INIT, rawMcp } from '../gateway/harness.js';

const AGENT = 'spiffe://tessera.local/ns/cache/sa/agent';
const BOTH = `
@id("mem-a") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"mem/a") when { principal.hasTag("team") };
@id("mem-b") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"mem/b") when { principal.hasTag("team") };
`;
const ONLY_A = `
@id("mem-a") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"mem/a") when { principal.hasTag("team") };
`;

const mem: ToolProvider = {
  server: 'mem',
  async listTools() {
    return [{ name: 'a', inputSchema: { type: 'object' } }, { name: 'b', inputSchema: { type: 'object' } }];
  },
  async callTool(tool) {
    return { content: [{ type: 'text', text: `ran ${tool}` }] };
  },
  async close() {},
};

interface Node {
  readonly tessera: RunningTessera;
  readonly url: string;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  login(audience: string, spiffeId?: string): Promise<string>;
  connect(token: string): Promise<Client>;
  close(): Promise<void>;
}

const sensitive = new Set<string>();

async function startNode(opts: { policyDir: string; config?: Record<string, unknown>; rootToken?: string }): Promise<Node> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-cache-'));
  const config = parseConfig({
    data_dir: dataDir,
    server: { listen: '127.0.0.1:0' },
    policy: { dir: opts.policyDir, watch: true },
    log: { level: 'silent' },
    ...(opts.config ?? {}),
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger, gatewayProviders: [mem], ...(opts.rootToken ? { rootToken: opts.rootToken } : {}) });
  const url = tessera.localUrl;
  const adminToken = tessera.adminToken!;
  sensitive.add(adminToken);
  const clients: Client[] = [];
  const admin = (m: string, p: string, b?: unknown) => jsonCall(url, adminToken, m, p, b);
  return {
    tessera, url, admin,
    async login(audience, spiffeId = AGENT) {
      const j = await admin('POST', '/v1/admin/join-tokens', { spiffe_id: spiffeId, ttl: '10m', labels: { team: 'cache' } });
      assert.equal(j.status, 201, JSON.stringify(j.body));
      sensitive.add(j.body.token);
      const res = await fetch(`${url}/v1/oauth/token`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: j.body.token, subject_token_type: 'urn:tessera:token-type:join-token', resource: audience }),
      });
      const body = (await res.json()) as any;
      assert.equal(res.status, 200, JSON.stringify(body));
      sensitive.add(body.access_token);
      return body.access_token as string;
    },
    async connect(token) {
      const client = new Client({ name: 'cache-test', version: '1' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) await c.close().catch(() => undefined);
      try {
        await tessera.audit.flush();
        recordAuditEvents((await tessera.store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq')).map((r) => r.body));
      } catch {
        /* store gone */
      }
      registerSensitive(...sensitive);
      await tessera.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function policyDirWith(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-cache-pol-'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'gw.cedar'), text);
  return dir;
}

/** Replaces the policy file atomically (rename), as a GitOps sync would. */
function writePolicy(dir: string, text: string): void {
  writeFileSync(join(dir, 'gw.cedar.next'), text);
  renameSync(join(dir, 'gw.cedar.next'), join(dir, 'gw.cedar'));
}

/** Bounded wait for a condition that another process or replica makes true (never a timing assert). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

const waitForPolicies = (n: Node, count: number) => until(`${count} policies loaded on ${n.url}`, async () => (await n.admin('GET', '/v1/admin/policy/status')).body.policies === count);

async function metric(n: Node, re: RegExp): Promise<number> {
  const m = re.exec(await (await fetch(`${n.url}/metrics`)).text());
  return m ? Number(m[1]) : 0;
}

async function refusalCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return String((e as Error).message);
  }
  return 'accepted';
}

test('emergency key rotation: an old token is refused on /mcp (new session and open session) and on the API at once', async (t) => {
  const n = await startNode({ policyDir: policyDirWith(BOTH) });
  t.after(() => n.close());
  const mcpToken = await n.login(`${n.tessera.url}/mcp`);
  const apiToken = await n.login(n.tessera.url);
  const client = await n.connect(mcpToken);
  // Warm every cache: the verification of this token, the decisions for its tools.
  for (let i = 0; i < 3; i++) assert.equal((await client.listTools()).tools.length, 2);
  assert.equal((await jsonCall(n.url, apiToken, 'GET', '/v1/whoami')).status, 200);
  const before = await metric(n, /tessera_auth_epoch_bumps_total\{cause="keys"\} (\d+)/);

  const rotated = await n.admin('POST', '/v1/admin/keys/rotate', { revoke_previous: true });
  assert.equal(rotated.status, 200);

  const fresh = await rawMcp(`${n.url}/mcp`, mcpToken, INIT());
  assert.equal(fresh.status, 401, JSON.stringify(fresh.body));
  assert.equal(fresh.body.error.data.code, 'TESSERA_TOKEN_KID_UNKNOWN');
  assert.match(await refusalCode(client.listTools()), /401|KID_UNKNOWN/);
  const api = await jsonCall(n.url, apiToken, 'GET', '/v1/whoami');
  assert.equal(api.status, 401);
  assert.equal(api.body.error.code, 'TESSERA_TOKEN_KID_UNKNOWN');
  assert.ok((await metric(n, /tessera_auth_epoch_bumps_total\{cause="keys"\} (\d+)/)) > before);
  // A token signed by the new key works.
  assert.equal((await (await n.connect(await n.login(`${n.tessera.url}/mcp`))).listTools()).tools.length, 2);
});

test('policy reload: a removed permission is gone from tools/list and tools/call at once, an added one appears at once', async (t) => {
  const dir = policyDirWith(BOTH);
  const n = await startNode({ policyDir: dir });
  t.after(() => n.close());
  const client = await n.connect(await n.login(`${n.tessera.url}/mcp`));
  for (let i = 0; i < 3; i++) {
    assert.deepEqual((await client.listTools()).tools.map((x) => x.name).sort(), ['mem__a', 'mem__b']);
    assert.deepEqual((await client.callTool({ name: 'mem__b', arguments: {} })).content, [{ type: 'text', text: 'ran b' }]);
  }
  writePolicy(dir, ONLY_A);
  await waitForPolicies(n, 1);
  assert.deepEqual((await client.listTools()).tools.map((x) => x.name), ['mem__a']);
  assert.match(await refusalCode(client.callTool({ name: 'mem__b', arguments: {} })), /no tool "mem(\/|__)b"/);
  assert.deepEqual((await client.callTool({ name: 'mem__a', arguments: {} })).content, [{ type: 'text', text: 'ran a' }]);

  writePolicy(dir, BOTH);
  await waitForPolicies(n, 2);
  assert.deepEqual((await client.listTools()).tools.map((x) => x.name).sort(), ['mem__a', 'mem__b']);
  assert.deepEqual((await client.callTool({ name: 'mem__b', arguments: {} })).content, [{ type: 'text', text: 'ran b' }]);
  assert.ok((await metric(n, /tessera_auth_epoch_bumps_total\{cause="policy"\} (\d+)/)) >= 3, 'start + two reloads');
});

test('token (RFC 7009) and agent revocation: /mcp refuses an open session at once; lifting restores it', async (t) => {
  const n = await startNode({ policyDir: policyDirWith(BOTH) });
  t.after(() => n.close());
  const byHolder = await n.login(`${n.tessera.url}/mcp`, 'spiffe://tessera.local/ns/cache/sa/holder');
  const c1 = await n.connect(byHolder);
  for (let i = 0; i < 3; i++) await c1.callTool({ name: 'mem__a', arguments: {} });
  const rev = await fetch(`${n.url}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: byHolder }) });
  assert.equal(rev.status, 200);
  assert.match(await refusalCode(c1.callTool({ name: 'mem__a', arguments: {} })), /401|REVOKED|closed/);
  const again = await rawMcp(`${n.url}/mcp`, byHolder, INIT());
  assert.equal(again.status, 401);
  assert.equal(again.body.error.data.code, 'TESSERA_TOKEN_REVOKED');

  const token = await n.login(`${n.tessera.url}/mcp`);
  const c2 = await n.connect(token);
  for (let i = 0; i < 3; i++) await c2.listTools();
  const r = await n.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: AGENT });
  assert.equal(r.status, 201);
  const refused = await rawMcp(`${n.url}/mcp`, token, INIT());
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error.data.code, 'TESSERA_TOKEN_REVOKED');
  assert.equal((await n.admin('DELETE', `/v1/admin/revocations/${r.body.id}`)).status, 200);
  assert.equal((await rawMcp(`${n.url}/mcp`, token, INIT())).status, 200, 'lifting the revocation restores the (unexpired) token');
  assert.ok((await metric(n, /tessera_auth_epoch_bumps_total\{cause="revocation"\} (\d+)/)) >= 3);
});

test('two replicas on PostgreSQL: key revocation, token revocation and policy reload reach the other replica\'s /mcp', async (t) => {
  const db = await createTestDatabase('cache_replicas');
  t.after(() => db.drop());
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 9).toString('base64');
  const dir = policyDirWith(BOTH);
  const config = (replica: string) => ({
    server: { listen: '127.0.0.1:0', public_url: 'https://tessera.test' },
    replica_id: replica,
    store: { kind: 'postgres', url: db.url },
    master_key: { env: 'TESSERA_TEST_MASTER_KEY' },
  });
  const rootToken = 'tsr_admin_cache-replicas-share-one-root-token';
  // Both replicas are dev mode on one database: they share one --root-token (each dev start
  // would otherwise revoke the other's dev token, docs/operators.md).
  const a = await startNode({ policyDir: dir, config: config('replica-a'), rootToken });
  t.after(() => a.close());
  const b = await startNode({ policyDir: dir, config: config('replica-b'), rootToken });
  t.after(() => b.close());
  const audience = 'https://tessera.test/mcp';

  // Key revocation on a: b's /mcp refuses the old token once the notification arrives.
  const old = await a.login(audience);
  const onB = await b.connect(old);
  for (let i = 0; i < 3; i++) assert.equal((await onB.listTools()).tools.length, 2);
  assert.equal((await a.admin('POST', '/v1/admin/keys/rotate', { revoke_previous: true })).status, 200);
  await until('replica b refuses a token whose key replica a revoked', async () => {
    const r = await rawMcp(`${b.url}/mcp`, old, INIT());
    return r.status === 401 && r.body.error.data.code === 'TESSERA_TOKEN_KID_UNKNOWN';
  });
  assert.match(await refusalCode(onB.listTools()), /401|KID_UNKNOWN/);

  // Token revocation on a: b's open session is refused.
  const token = await a.login(audience);
  const c = await b.connect(token);
  for (let i = 0; i < 3; i++) await c.callTool({ name: 'mem__a', arguments: {} });
  const rev = await fetch(`${a.url}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
  assert.equal(rev.status, 200);
  await until('replica b refuses a token revoked on replica a', async () => (await rawMcp(`${b.url}/mcp`, token, INIT())).status === 401);

  // Policy reload: each replica reloads its directory; both stop listing mem/b.
  const live = await a.login(audience);
  const ca = await a.connect(live);
  const cb = await b.connect(live);
  for (let i = 0; i < 3; i++) for (const cl of [ca, cb]) assert.equal((await cl.listTools()).tools.length, 2);
  writePolicy(dir, ONLY_A);
  await waitForPolicies(a, 1);
  await waitForPolicies(b, 1);
  for (const cl of [ca, cb]) {
    assert.deepEqual((await cl.listTools()).tools.map((x) => x.name), ['mem__a']);
    assert.match(await refusalCode(cl.callTool({ name: 'mem__b', arguments: {} })), /no tool "mem(\/|__)b"/);
  }
});
