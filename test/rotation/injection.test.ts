/**
 * A rotation is never a deployment: through the whole of Tessera (src/main.ts, its rotation job
 * wiring and routes), the proxy and the gateway inject the CURRENT kv version. An `http`
 * rotator (local key service) rotates the secret while requests go through both enforcement
 * points; each request before the rotation carries the old credential and each one after it the
 * new one (the gateway at once, the proxy within its 1 s value cache), with no restart or reload.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHarness, type Harness } from '../e2e/harness.js';
import { call, policyDir, startUpstream, type Upstream } from '../proxy/helpers.js';
import { keyService } from './helpers.js';
import { SECRET_VALUE_TTL_MS } from '../../src/proxy/credential.js';

const TD = 'spiffe://tessera.local';
const AGENT = `${TD}/agents/rotating`;
const POLICIES = `
@id("routes") permit (principal, action == Tessera::Action::"http.request", resource is Tessera::Route)
when { principal.path == "/agents/rotating" };
@id("inject") permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"apps")
when { principal.path == "/agents/rotating" };
@id("tool") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"web/whoami")
when { principal.path == "/agents/rotating" };
`;

let h: Harness;
let up: Upstream;
let keys: Awaited<ReturnType<typeof keyService>>;
const first = `api-key-${randomBytes(12).toString('hex')}`;
const created: string[] = [];

before(async () => {
  up = await startUpstream();
  keys = await keyService((body) => {
    if (body.action === 'retire') return { status: 204, body: '' };
    const value = `api-key-${randomBytes(12).toString('hex')}`;
    created.push(value);
    return { status: 200, body: { value } };
  });
  h = await startHarness({
    policyDir: policyDir({ 'p.cedar': POLICIES }),
    config: {
      proxy: { listen: '127.0.0.1:0', routes: [{ name: 'api', upstream: `${up.url}/api`, credential: { secret: 'apps/api-key', header: 'x-api-key' }, allow_private: ['127.0.0.1/32'] }] },
      gateway: { tools: [{ kind: 'http', server: 'web', name: 'whoami', method: 'GET', url: `${up.url}/whoami`, credential: { in: 'header', name: 'x-api-key', secret: 'apps/api-key' } }] },
      rotation: { interval: '1h', http_rotators: { keys: { url: keys.url, auth_secret: 'ops/keys-admin', allow_private: ['127.0.0.1/32'] } } },
    },
  });
  h.sensitive.add(first);
  for (const [path, value] of [['ops/keys-admin', 'kms-admin-0123456789'], ['apps/api-key', first]] as const) {
    const r = await h.admin('PUT', `/v1/admin/secrets/${path}`, path === 'apps/api-key' ? { value, rotation_period: '30d', rotator: { kind: 'http', endpoint: 'keys', grace_period: '1m' } } : { value });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
});
after(async () => {
  for (const c of created) h?.sensitive.add(c);
  await h?.close();
  await up?.close();
  await keys?.close();
});

test('proxy and gateway inject the current version across rotations, without a restart', async () => {
  const proxyToken = await h.login(await h.joinToken(AGENT), `${h.tessera.url}/proxy`);
  const mcpToken = await h.login(await h.joinToken(AGENT), `${h.tessera.url}/mcp`);
  const mcp = new Client({ name: 'rotation-test', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${mcpToken}` } } }));
  const viaProxy = async (): Promise<string> => {
    const n = up.seen.length;
    const r = await call(h.tessera.proxyUrl!, 'GET', '/api/x', { headers: { authorization: `Bearer ${proxyToken}` } });
    assert.equal(r.status, 200, r.text);
    return String(up.seen[n]!.headers['x-api-key']).replace(/^Bearer /, ''); // the route's default scheme
  };
  const viaGateway = async (): Promise<string> => {
    const n = up.seen.length;
    const r = (await mcp.callTool({ name: 'web__whoami', arguments: {} })) as { isError?: boolean; content: { text: string }[] };
    assert.ok(!r.isError, JSON.stringify(r));
    return String(up.seen.slice(n).find((s) => s.url.startsWith('/whoami'))!.headers['x-api-key']);
  };
  try {
    assert.equal(await viaProxy(), first);
    assert.equal(await viaGateway(), first);
    let expected = first;
    for (let round = 0; round < 3; round++) {
      // Requests in flight while the rotation runs: each carries either the old or the new key, never anything else.
      const during = Promise.all([viaProxy(), viaGateway(), viaProxy()]);
      const rot = await h.admin('POST', '/v1/admin/rotation/apps/api-key', {});
      assert.equal(rot.status, 200, JSON.stringify(rot.body));
      const next = created.at(-1)!;
      for (const seen of await during) assert.ok(seen === expected || seen === next, 'old or new credential');
      assert.equal(await viaGateway(), next, `round ${round}: the gateway reads kv at every call: the new version at once`);
      // The proxy reuses a kv value for at most SECRET_VALUE_TTL_MS (1 s, src/proxy/credential.ts):
      // until then it may still inject the previous version, which the grace period keeps valid.
      const right = await viaProxy();
      assert.ok(right === expected || right === next);
      await new Promise((r) => setTimeout(r, SECRET_VALUE_TTL_MS + 50));
      assert.equal(await viaProxy(), next, `round ${round}: the proxy injects the new version within ${SECRET_VALUE_TTL_MS} ms`);
      expected = next;
    }
    const status = await h.admin('GET', '/v1/admin/rotation');
    assert.equal(status.status, 200);
    const entry = status.body.secrets.find((s: { path: string }) => s.path === 'apps/api-key');
    assert.equal(entry.current_version, 4);
    const ready = await fetch(`${h.url}/readyz`);
    const body = (await ready.json()) as { checks?: Record<string, unknown> } & Record<string, unknown>;
    assert.ok(JSON.stringify(body).includes('rotation'), 'the readiness report has a rotation detail');
  } finally {
    await mcp.close();
  }
});
