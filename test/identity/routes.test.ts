import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createApp, type AdminAuthenticator } from '../../src/server/app.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { createJoinTokenService, type JoinTokenService } from '../../src/identity/join-tokens.js';
import { createAttestation } from '../../src/identity/attestation.js';
import { registerIdentityRoutes } from '../../src/identity/routes.js';
import { TOKEN_TYPE_JOIN } from '../../src/identity/types.js';

const ADMIN = 'test-admin-token-0123456789';
const admin: AdminAuthenticator = {
  async authenticate(token) {
    if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'bad admin token');
    return { kind: 'admin', tokenId: 'adm_test', name: 'test', role: 'admin', via: 'token' };
  },
};

let app: FastifyInstance;
let base: string;
let store: Store;
let clock: ManualClock;
let audit: MemoryAuditWriter;
let joinTokens: JoinTokenService;

before(async () => {
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  clock = new ManualClock();
  audit = new MemoryAuditWriter();
  joinTokens = createJoinTokenService({ store, clock, audit, maxTtlMs: 3_600_000, trustDomain: 'example.org' });
  app = createApp({
    logger: silentLogger,
    replicaId: 'r1',
    bodyLimit: 64 * 1024,
    admin,
    agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_MISSING', 'no agents here'); } },
  });
  registerIdentityRoutes(app, { joinTokens, store });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  base = `http://127.0.0.1:${addr.port}`;
});

after(async () => {
  await app.close();
  await store.close();
});

async function call(method: string, path: string, body?: unknown, token: string | null = ADMIN) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, text };
}

const errCode = (r: { body: Record<string, unknown> }) => (r.body.error as { code?: string } | undefined)?.code;

test('POST /v1/admin/join-tokens creates a token shown once; GET lists without token values', async () => {
  const created = await call('POST', '/v1/admin/join-tokens', { spiffe_id: 'spiffe://example.org/dev/alice', ttl: '10m', labels: { team: 'x' } });
  assert.equal(created.status, 201, created.text);
  const token = created.body.token as string;
  assert.match(token, /^tsr_join_/);
  assert.equal(created.body.spiffe_id, 'spiffe://example.org/dev/alice');
  assert.equal(created.body.expires_at, new Date(clock.now() + 600_000).toISOString());
  const ev = audit.events.find((e) => e.kind === 'join_token.created');
  assert.equal(ev?.actor.id, 'admin:adm_test');

  const secs = await call('POST', '/v1/admin/join-tokens', { spiffe_id: 'spiffe://example.org/dev/bob', ttl: 120 });
  assert.equal(secs.status, 201);
  assert.equal(secs.body.expires_at, new Date(clock.now() + 120_000).toISOString());

  const list = await call('GET', '/v1/admin/join-tokens');
  assert.equal(list.status, 200);
  const items = list.body.join_tokens as Record<string, unknown>[];
  assert.equal(items.length, 2);
  assert.ok(!list.text.includes(token) && !list.text.includes(token.slice(9)), 'token values are never listed');
  assert.ok(items.every((i) => !('token' in i) && i.state === 'active'));
});

test('GET /v1/admin/agents lists agents after an attestation', async () => {
  const attestation = createAttestation({ attestors: [{ kind: 'join_token', name: 'join_token', max_ttl: 3_600_000 }], trustDomain: 'example.org', joinTokens, clock, audit, store });
  const created = await call('POST', '/v1/admin/join-tokens', { spiffe_id: 'spiffe://example.org/dev/carol', labels: { team: 'blue' } });
  await attestation.attest(created.body.token as string, TOKEN_TYPE_JOIN, { requestId: 'r', source: '127.0.0.1', replica: 'r1' });
  const agents = await call('GET', '/v1/admin/agents?limit=10');
  assert.equal(agents.status, 200, agents.text);
  const list = agents.body.agents as Record<string, unknown>[];
  assert.equal(list.length, 1);
  assert.deepEqual(list[0], {
    spiffe_id: 'spiffe://example.org/dev/carol',
    attestor: 'join_token',
    attributes: { 'label.team': 'blue' },
    first_seen: new Date(clock.now()).toISOString(),
    last_seen: new Date(clock.now()).toISOString(),
    logins: 1,
  });
  assert.equal(errCode(await call('GET', '/v1/admin/agents?limit=0')), 'TESSERA_REQUEST_INVALID');
  assert.equal(errCode(await call('GET', '/v1/admin/agents?bogus=1')), 'TESSERA_REQUEST_INVALID');
});

test('admin authentication is required on every identity route', async () => {
  for (const [method, path] of [['POST', '/v1/admin/join-tokens'], ['GET', '/v1/admin/join-tokens'], ['GET', '/v1/admin/agents']] as const) {
    const body = method === 'POST' ? { spiffe_id: 'spiffe://example.org/x' } : undefined;
    const missing = await call(method, path, body, null);
    assert.equal(missing.status, 401);
    assert.equal(errCode(missing), 'TESSERA_ADMIN_TOKEN_MISSING');
    const wrong = await call(method, path, body, 'wrong-token-value-xyz');
    assert.equal(wrong.status, 401);
    assert.equal(errCode(wrong), 'TESSERA_ADMIN_TOKEN_INVALID');
  }
});

test('bad join-token requests get stable error codes', async () => {
  const cases: [unknown, string][] = [
    [{ spiffe_id: 'spiffe://example.org/a/../b' }, 'TESSERA_SPIFFE_ID_INVALID'],
    [{ spiffe_id: 'https://example.org/a' }, 'TESSERA_SPIFFE_ID_INVALID'],
    [{ spiffe_id: 'spiffe://other.org/a' }, 'TESSERA_TRUST_DOMAIN_UNKNOWN'],
    [{ spiffe_id: 'spiffe://example.org.evil.test/a' }, 'TESSERA_TRUST_DOMAIN_UNKNOWN'],
    [{ spiffe_id: 'spiffe://example.org/a', ttl: '2h' }, 'TESSERA_JOIN_TOKEN_TTL_INVALID'],
    [{ spiffe_id: 'spiffe://example.org/a', ttl: 3601 }, 'TESSERA_JOIN_TOKEN_TTL_INVALID'],
    [{ spiffe_id: 'spiffe://example.org/a', ttl: 0 }, 'TESSERA_JOIN_TOKEN_TTL_INVALID'],
    [{ spiffe_id: 'spiffe://example.org/a', ttl: 'soon' }, 'TESSERA_JOIN_TOKEN_TTL_INVALID'],
    [{ spiffe_id: 'spiffe://example.org/a', labels: { 'bad key': 'v' } }, 'TESSERA_REQUEST_INVALID'],
    [{ spiffe_id: 'spiffe://example.org/a', labels: { k: 1 } }, 'TESSERA_REQUEST_INVALID'],
    [{ spiffe_id: 'spiffe://example.org/a', extra: true }, 'TESSERA_REQUEST_INVALID'],
    [{}, 'TESSERA_REQUEST_INVALID'],
    ['{not json', 'TESSERA_REQUEST_MALFORMED'],
  ];
  for (const [body, code] of cases) {
    const r = await call('POST', '/v1/admin/join-tokens', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(errCode(r), code, JSON.stringify(body));
  }
});
