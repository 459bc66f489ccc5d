import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createApp, type AdminAuthenticator, type AgentAuthenticator } from '../../src/server/app.js';
import { registerPolicyRoutes } from '../../src/policy/routes.js';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { TesseraError } from '../../src/shared/errors.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { tempDir } from './helpers.js';

const ADMIN_TOKEN = 'test-admin-token';
const admin: AdminAuthenticator = {
  async authenticate(token) {
    if (token !== ADMIN_TOKEN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'bad admin token');
    return { kind: 'admin', tokenId: 't1', name: 'test', role: 'admin', via: 'token' };
  },
};
const agents: AgentAuthenticator = {
  async authenticate() {
    throw new TesseraError('TESSERA_TOKEN_MISSING', 'no agents in this test');
  },
};

async function setup(t: { after: (fn: () => unknown) => void }) {
  const dir = tempDir(t);
  for (const f of readdirSync('examples/policies')) if (f.endsWith('.cedar')) writeFileSync(join(dir, f), readFileSync(join('examples/policies', f)));
  const policy = createPolicyEngine({ dir, clock: new ManualClock(), logger: silentLogger, audit: new MemoryAuditWriter(), watch: false });
  await policy.load();
  const app = createApp({ logger: silentLogger, replicaId: 'r1', bodyLimit: 65536, admin, agents });
  registerPolicyRoutes(app, { policy });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const addr = app.server.address() as { port: number };
  const post = (body: unknown, token = ADMIN_TOKEN) =>
    fetch(`http://127.0.0.1:${addr.port}/v1/admin/policy/check`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  return { post, base: `http://127.0.0.1:${addr.port}` };
}

const reader = {
  spiffe_id: 'spiffe://tessera.local/ns/healthcare/sa/patient-reader',
  attestor: 'k8s-prod',
  attestor_kind: 'kubernetes',
  attributes: { namespace: 'healthcare', service_account: 'patient-reader' },
};

test('POST /v1/admin/policy/check answers allow/deny and names the policies', async (t) => {
  const { post } = await setup(t);
  const allow = await post({ principal: reader, action: 'secret.read', resource: 'Secret::healthcare/prod/db' });
  assert.equal(allow.status, 200);
  assert.deepEqual(await allow.json(), { decision: 'allow', policies: [{ id: 'healthcare-reader', effect: 'permit', file: 'healthcare.cedar', line: 11 }], errors: [] });

  const deny = await post({ principal: reader, action: 'secret.read', resource: { type: 'Secret', path: 'healthcare/prod/incident/x' } });
  const body = (await deny.json()) as { decision: string; policies: { id: string }[] };
  assert.equal(body.decision, 'deny');
  assert.deepEqual(body.policies.map((p) => p.id), ['incident-freeze-healthcare']);

  const tool = await post({ principal: { spiffe_id: 'spiffe://tessera.local/ns/r/sa/a', attestor: 'k8s-prod', attributes: { 'label.team': 'records' } }, action: 'tool.call', resource: { type: 'Tool', server: 'records', tool: 'query' }, context: { args: { ward: 'cardiology' } } });
  assert.equal(((await tool.json()) as { decision: string }).decision, 'allow');

  // The what-if sees what runtime sees: the reader's ID from a CI attestor, or without a kind, is refused.
  for (const principal of [
    { spiffe_id: reader.spiffe_id },
    { spiffe_id: reader.spiffe_id, attestor: 'gitlab', attestor_kind: 'jwt' },
    { spiffe_id: 'spiffe://tessera.local/ci/evil/ns/healthcare/sa/patient-reader/main', attestor: 'gitlab', attestor_kind: 'jwt', attributes: { 'label.namespace': 'healthcare' } },
  ]) {
    const r = await post({ principal, action: 'secret.read', resource: 'Secret::healthcare/prod/db' });
    assert.equal(((await r.json()) as { decision: string }).decision, 'deny', JSON.stringify(principal));
  }
});

test('policy check refuses bad input with TESSERA_POLICY_REQUEST_INVALID and needs an admin token', async (t) => {
  const { post, base } = await setup(t);
  const bad: unknown[] = [
    {},
    { principal: { spiffe_id: 'not-a-spiffe-id' }, action: 'secret.read', resource: 'Secret::a' },
    { principal: reader, action: 'secret.write', resource: 'Secret::a' },
    { principal: reader, action: 'secret.read', resource: 'Bucket::a' },
    { principal: reader, action: 'secret.read', resource: { type: 'Bucket', path: 'a' } },
    { principal: reader, action: 'secret.read', resource: 'Secret::a', context: { depth: 3 } },
    { principal: reader, action: 'tool.call', resource: 'Tool::a/b', context: { args: { x: { __entity: { type: 'T', id: 'x' } } } } },
    // Kubernetes attributes without a Kubernetes attestor would be ignored at run time: refused here.
    { principal: { spiffe_id: reader.spiffe_id, attributes: { namespace: 'healthcare' } }, action: 'secret.read', resource: 'Secret::a' },
    { principal: { ...reader, attestor_kind: 'jwt' }, action: 'secret.read', resource: 'Secret::a' },
    { principal: { spiffe_id: reader.spiffe_id, attributes: { pod: 'p' }, attestor_kind: 'join_token' }, action: 'secret.read', resource: 'Secret::a' },
    { principal: { ...reader, attestor_kind: 'k8s' }, action: 'secret.read', resource: 'Secret::a' },
    { principal: { ...reader, attestor: '' }, action: 'secret.read', resource: 'Secret::a' },
  ];
  for (const b of bad) {
    const r = await post(b);
    assert.equal(r.status, 400, JSON.stringify(b));
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'TESSERA_POLICY_REQUEST_INVALID', JSON.stringify(b));
  }
  const noAuth = await post({ principal: reader, action: 'secret.read', resource: 'Secret::a' }, '');
  assert.equal(noAuth.status, 401);
  assert.equal(((await noAuth.json()) as { error: { code: string } }).error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  const status = await fetch(`${base}/v1/admin/policy/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const s = (await status.json()) as { ready: boolean; policies: number; last_error: unknown };
  assert.equal(s.ready, true);
  assert.ok(s.policies >= 6);
  assert.equal(s.last_error, null);
});
