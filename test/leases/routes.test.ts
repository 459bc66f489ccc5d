import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createApp } from '../../src/server/app.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import type { Authorizer, PolicyRequest } from '../../src/policy/types.js';
import { createLeaseService, registerLeaseRoutes } from '../../src/leases/index.js';
import { createRevocationService, registerRevocationRoutes } from '../../src/revocations/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { createTrustDomains } from '../../src/identity/trust-domains.js';
import { createRequestAuthorizer } from '../../src/pipeline/authorize.js';

function principal(name: string, extra: Partial<AgentPrincipal> = {}): AgentPrincipal {
  return { spiffeId: `spiffe://example.org/${name}`, trustDomain: 'example.org', path: `/${name}`, attributes: {}, jti: `jti-${name}`, expiresAt: Date.UTC(2030, 0, 1), ...extra };
}

const ADMIN = 'admin-token-for-tests-0123456789';
const agents: Record<string, AgentPrincipal> = {
  'agent-alice': principal('alice', { task: 'task-1' }),
  'agent-bob': principal('bob'),
  'agent-scoped': principal('carol', { scope: ['cred:mem/other'] }),
};

/** Test policy: alice, bob and carol may issue mem/reader; nobody may issue mem/secret. */
const authorizer: Authorizer = {
  authorize(req: PolicyRequest) {
    const ok = req.action === 'cred.issue' && req.resource.type === 'Role' && req.resource.role !== 'secret';
    return { allowed: ok, policies: ok ? ['test:permit-reader'] : ['test:forbid-secret'], errors: [], cached: false };
  },
};

async function start() {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(Date.now());
  const audit = new MemoryAuditWriter();
  const engine = new MemoryEngine('mem', {
    reader: { defaultTtlMs: 60_000, maxTtlMs: 300_000, renewable: true },
    secret: { defaultTtlMs: 60_000, maxTtlMs: 300_000, renewable: true },
    capped: { defaultTtlMs: 60_000, maxTtlMs: 150_000, renewable: true },
  });
  const leases = createLeaseService({ store, clock, audit, engines: [engine], maxRevokeAttempts: 2 });
  const revocations = createRevocationService({ store, clock, audit, leases, trustDomains: createTrustDomains('example.org') });
  await revocations.refresh();
  const app = createApp({
    logger: silentLogger,
    replicaId: 'test',
    bodyLimit: 65536,
    admin: {
      async authenticate(token) {
        if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'bad admin token');
        return { kind: 'admin', tokenId: 'adm_test', name: 'test', role: 'admin', via: 'token' };
      },
    },
    agents: {
      // Stands in for the token service: a fixed bearer per principal, refused when revoked.
      async authenticate(token) {
        const p = agents[token];
        if (!p) throw new TesseraError('TESSERA_TOKEN_SIGNATURE_INVALID', 'unknown test token');
        if (revocations.isRevoked({ spiffeId: p.spiffeId, jti: p.jti, issuedAt: 0, ...(p.task ? { task: p.task } : {}) })) throw new TesseraError('TESSERA_TOKEN_REVOKED', 'revoked');
        return p;
      },
    },
  });
  registerLeaseRoutes(app, { leases, authorizer: createRequestAuthorizer(authorizer) });
  registerRevocationRoutes(app, { revocations, clock });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  after(() => app.close());
  async function call(method: string, path: string, token?: string, body?: unknown) {
    const res = await fetch(base + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as Record<string, unknown> & { error?: { code: string; message?: string; details?: Record<string, unknown> } };
    return { status: res.status, json };
  }
  return { call, engine, leases, clock, revocations };
}

test('issue, renew and revoke a lease through HTTP', async () => {
  const { call, engine } = await start();
  const issued = await call('POST', '/v1/creds/mem/reader', 'agent-alice', { ttl: '30s' });
  assert.equal(issued.status, 201);
  const id = issued.json.lease_id as string;
  assert.match(id, /^lease_/);
  assert.equal(issued.json.renewable, true);
  assert.ok(!Number.isNaN(Date.parse(issued.json.expires_at as string)));
  assert.equal((issued.json.data as { username: string }).username, `tsr_${id}`);
  // No body at all uses the role default TTL.
  const noBody = await call('POST', '/v1/creds/mem/reader', 'agent-alice');
  assert.equal(noBody.status, 201);

  const renewed = await call('POST', `/v1/leases/${id}/renew`, 'agent-alice', { increment: 120 });
  assert.equal(renewed.status, 200);
  assert.ok(Date.parse(renewed.json.expires_at as string) > Date.parse(issued.json.expires_at as string));

  // Another agent's lease: not found (its existence is not revealed).
  assert.equal((await call('POST', `/v1/leases/${id}/renew`, 'agent-bob', {})).json.error?.code, 'TESSERA_LEASE_NOT_FOUND');
  assert.equal((await call('DELETE', `/v1/leases/${id}`, 'agent-bob')).json.error?.code, 'TESSERA_LEASE_NOT_FOUND');

  const del = await call('DELETE', `/v1/leases/${id}`, 'agent-alice');
  assert.deepEqual(del.json, { lease_id: id, state: 'revoked' });
  assert.equal(engine.credentials.has(`tsr_${id}`), false);
  assert.equal((await call('POST', `/v1/leases/${id}/renew`, 'agent-alice', {})).json.error?.code, 'TESSERA_LEASE_EXPIRED');
});

test("renew through HTTP, the issue's numbers: TTL 60 s, max 150 s; extended from now, capped at the max, refused only at the cap", async () => {
  const { call, clock } = await start();
  const t0 = clock.now();
  const issued = await call('POST', '/v1/creds/mem/capped', 'agent-alice', {});
  assert.equal(issued.status, 201);
  const id = issued.json.lease_id as string;
  const renew = (body: unknown) => call('POST', `/v1/leases/${id}/renew`, 'agent-alice', body);
  let r = await renew({ increment: 10 }); // 90 s remain before the cap: granted
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json, { lease_id: id, expires_at: new Date(t0 + 10_000).toISOString(), ttl: 10, renewable: true });
  clock.advance(4_000);
  r = await renew({ increment: '1h' }); // above the max TTL: capped, not an error
  assert.deepEqual([r.status, r.json.expires_at, r.json.ttl, r.json.renewable], [200, new Date(t0 + 150_000).toISOString(), 146, false]);
  for (const body of [{ increment: 10 }, {}]) {
    r = await renew(body);
    assert.deepEqual([r.status, r.json.error?.code], [400, 'TESSERA_LEASE_NOT_RENEWABLE'], JSON.stringify(body));
    assert.match(r.json.error?.message ?? '', /already reaches its max TTL/);
  }
  const fresh = (await call('POST', '/v1/creds/mem/capped', 'agent-alice', {})).json.lease_id as string;
  const bad: [unknown, number, string][] = [
    [{ increment: 0 }, 400, 'TESSERA_REQUEST_INVALID'],
    [{ increment: -5 }, 400, 'TESSERA_REQUEST_INVALID'],
    [{ increment: 'soon' }, 400, 'TESSERA_LEASE_TTL_INVALID'],
    [{ increment: '0s' }, 400, 'TESSERA_LEASE_TTL_INVALID'],
    [{ increment: 10, extra: 1 }, 400, 'TESSERA_REQUEST_INVALID'],
  ];
  for (const [body, status, errCode] of bad) {
    const x = await call('POST', `/v1/leases/${fresh}/renew`, 'agent-alice', body);
    assert.deepEqual([x.status, x.json.error?.code], [status, errCode], JSON.stringify(body));
  }
});

test('bad inputs on agent routes get stable codes', async () => {
  const { call } = await start();
  const cases: [string, string, string | undefined, unknown, number, string][] = [
    ['POST', '/v1/creds/nope/reader', 'agent-alice', {}, 404, 'TESSERA_ENGINE_NOT_FOUND'],
    ['POST', '/v1/creds/mem/nope', 'agent-alice', {}, 404, 'TESSERA_ENGINE_NOT_FOUND'],
    ['POST', '/v1/creds/mem/reader', 'agent-alice', { ttl: '1h' }, 400, 'TESSERA_LEASE_TTL_INVALID'],
    ['POST', '/v1/creds/mem/reader', 'agent-alice', { ttl: 'soon' }, 400, 'TESSERA_LEASE_TTL_INVALID'],
    ['POST', '/v1/creds/mem/reader', 'agent-alice', { ttl: -1 }, 400, 'TESSERA_REQUEST_INVALID'],
    ['POST', '/v1/creds/mem/reader', 'agent-alice', { ttl: 10, extra: 1 }, 400, 'TESSERA_REQUEST_INVALID'],
    ['POST', '/v1/creds/mem/reader', 'agent-alice', '{"ttl":', 400, 'TESSERA_REQUEST_MALFORMED'],
    ['POST', '/v1/creds/MEM/reader', 'agent-alice', {}, 400, 'TESSERA_REQUEST_INVALID'],
    ['POST', '/v1/creds/mem/secret', 'agent-alice', {}, 403, 'TESSERA_POLICY_DENIED'],
    ['POST', '/v1/creds/mem/reader', 'agent-scoped', {}, 403, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE'],
    ['POST', '/v1/creds/mem/reader', undefined, {}, 401, 'TESSERA_TOKEN_MISSING'],
    ['POST', '/v1/creds/mem/reader', 'agent-nobody', {}, 401, 'TESSERA_TOKEN_SIGNATURE_INVALID'],
    ['POST', '/v1/leases/lease_nope/renew', 'agent-alice', {}, 404, 'TESSERA_LEASE_NOT_FOUND'],
    ['POST', '/v1/leases/bad%20id/renew', 'agent-alice', {}, 400, 'TESSERA_REQUEST_INVALID'],
    ['DELETE', '/v1/leases/lease_nope', 'agent-alice', undefined, 404, 'TESSERA_LEASE_NOT_FOUND'],
    ['GET', '/v1/admin/leases', 'agent-alice', undefined, 401, 'TESSERA_ADMIN_TOKEN_INVALID'],
  ];
  for (const [method, path, token, body, status, errCode] of cases) {
    const r = await call(method, path, token, body);
    assert.equal(r.json.error?.code, errCode, `${method} ${path} ${JSON.stringify(body)}`);
    assert.equal(r.status, status, `${method} ${path}`);
  }
  const denied = await call('POST', '/v1/creds/mem/secret', 'agent-alice', {});
  assert.deepEqual(denied.json.error?.details?.policies, ['test:forbid-secret']);
});

test('operator lists and revokes leases', async () => {
  const { call, engine } = await start();
  const a = await call('POST', '/v1/creds/mem/reader', 'agent-alice', {});
  await call('POST', '/v1/creds/mem/reader', 'agent-bob', {});
  let list = await call('GET', `/v1/admin/leases?owner=${encodeURIComponent('spiffe://example.org/alice')}`, ADMIN);
  assert.equal((list.json.leases as unknown[]).length, 1);
  assert.ok(!JSON.stringify(list.json).includes('password'));
  const del = await call('DELETE', `/v1/admin/leases/${a.json.lease_id as string}`, ADMIN);
  assert.equal(del.json.state, 'revoked');
  list = await call('GET', '/v1/admin/leases?state=active', ADMIN);
  assert.equal((list.json.leases as unknown[]).length, 1);
  // Irrevocable: the backend is down for every attempt.
  engine.down = true;
  const b = await call('POST', '/v1/creds/mem/reader', 'agent-bob', {});
  assert.equal(b.json.error?.code, 'TESSERA_ENGINE_UNAVAILABLE');
  assert.equal(b.status, 503);
  const bobLease = ((await call('GET', '/v1/admin/leases?state=active', ADMIN)).json.leases as { lease_id: string }[])[0]!;
  await call('DELETE', `/v1/admin/leases/${bobLease.lease_id}`, ADMIN);
  const second = await call('DELETE', `/v1/admin/leases/${bobLease.lease_id}`, ADMIN);
  assert.equal(second.json.state, 'irrevocable');
  const irr = await call('GET', '/v1/admin/leases?irrevocable=true', ADMIN);
  assert.deepEqual((irr.json.leases as { lease_id: string }[]).map((l) => l.lease_id), [bobLease.lease_id]);
  assert.equal((await call('GET', '/v1/admin/leases?state=bogus', ADMIN)).json.error?.code, 'TESSERA_REQUEST_INVALID');
  assert.equal((await call('GET', '/v1/admin/leases', undefined)).json.error?.code, 'TESSERA_ADMIN_TOKEN_MISSING');
});

test('kill switch through HTTP: the next request of a revoked agent is refused, its leases are gone, lift restores it', async () => {
  const { call, engine } = await start();
  const lease = await call('POST', '/v1/creds/mem/reader', 'agent-alice', {});
  assert.equal(lease.status, 201);
  const r = await call('POST', '/v1/admin/revocations', ADMIN, { kind: 'agent', target: 'spiffe://example.org/alice', reason: 'incident 42' });
  assert.equal(r.status, 201);
  assert.equal(r.json.kind, 'agent');
  assert.equal(r.json.leases_revoked, 1);
  assert.equal(r.json.expires_at, null);
  assert.match(r.json.id as string, /^rev_/);
  // The first request after the revoke call returned.
  const refused = await call('POST', '/v1/creds/mem/reader', 'agent-alice', {});
  assert.equal(refused.status, 401);
  assert.equal(refused.json.error?.code, 'TESSERA_TOKEN_REVOKED');
  assert.equal(engine.credentials.size, 0);
  assert.equal((await call('POST', '/v1/creds/mem/reader', 'agent-bob', {})).status, 201);

  const list = await call('GET', '/v1/admin/revocations?active=true', ADMIN);
  assert.equal((list.json.revocations as { active: boolean }[])[0]?.active, true);
  const lifted = await call('DELETE', `/v1/admin/revocations/${r.json.id as string}`, ADMIN);
  assert.equal(lifted.status, 200);
  assert.equal(lifted.json.active, false);
  assert.equal((await call('POST', '/v1/creds/mem/reader', 'agent-alice', {})).status, 201);
  assert.equal((await call('DELETE', `/v1/admin/revocations/${r.json.id as string}`, ADMIN)).json.error?.code, 'TESSERA_REVOCATION_NOT_FOUND');
});

test('bad revocation requests get stable codes', async () => {
  const { call } = await start();
  const cases: [unknown, string][] = [
    [{ kind: 'agent', target: 'alice' }, 'TESSERA_REVOCATION_INVALID'],
    [{ kind: 'agent', target: 'spiffe://example.org/a?b' }, 'TESSERA_REVOCATION_INVALID'],
    [{ kind: 'robot', target: 'x' }, 'TESSERA_REVOCATION_INVALID'],
    [{ kind: 'task' }, 'TESSERA_REVOCATION_INVALID'],
    [{ kind: 'task', target: 't', ttl: 'forever' }, 'TESSERA_REVOCATION_INVALID'],
    [{ kind: 'task', target: 't', ttl: -3 }, 'TESSERA_REVOCATION_INVALID'],
    [{ kind: 'task', target: 't', extra: true }, 'TESSERA_REVOCATION_INVALID'],
    [{ kind: 'lease', target: 'lease_nope' }, 'TESSERA_LEASE_NOT_FOUND'],
  ];
  for (const [body, errCode] of cases) assert.equal((await call('POST', '/v1/admin/revocations', ADMIN, body)).json.error?.code, errCode, JSON.stringify(body));
  assert.equal((await call('POST', '/v1/admin/revocations', undefined, { kind: 'task', target: 't' })).json.error?.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  assert.equal((await call('DELETE', '/v1/admin/revocations/rev_nope', ADMIN)).json.error?.code, 'TESSERA_REVOCATION_NOT_FOUND');
  assert.equal((await call('GET', '/v1/admin/revocations?kind=robot', ADMIN)).json.error?.code, 'TESSERA_REQUEST_INVALID');
  const temp = await call('POST', '/v1/admin/revocations', ADMIN, { kind: 'user', target: 'u-7', ttl: '1h' });
  assert.equal(temp.status, 201);
  assert.equal(Date.parse(temp.json.expires_at as string) - Date.parse(temp.json.created_at as string), 3_600_000);
});
