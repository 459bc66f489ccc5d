import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createApp, type AdminAuthenticator, type AgentAuthenticator } from '../../src/server/app.js';
import { silentLogger } from '../../src/shared/logger.js';
import { TesseraError } from '../../src/shared/errors.js';
import { registerSecretRoutes } from '../../src/secrets/routes.js';
import { fixture, principal, GlobAuthorizer, type Fixture } from './helpers.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const AGENT = 'agent-token-for-tests-0123456789';

// Small in-test authenticators; the real ones live in src/admin and src/tokens.
const admins: AdminAuthenticator = {
  async authenticate(token) {
    if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'bad admin token');
    return { kind: 'admin', tokenId: 'adm_test', name: 'test', role: 'admin', via: 'token' };
  },
};
const agents: AgentAuthenticator = {
  async authenticate(token) {
    if (token !== AGENT) throw new TesseraError('TESSERA_TOKEN_SIGNATURE_INVALID', 'bad agent token');
    return principal();
  },
};

let app: FastifyInstance;
let f: Fixture;
let port: number;
const authz = new GlobAuthorizer([{ action: 'secret.read', glob: 'team/**' }]);

before(async () => {
  f = await fixture({ maxValueBytes: 64 });
  app = createApp({ logger: silentLogger, replicaId: 'r1', bodyLimit: 64 * 1024, admin: admins, agents });
  registerSecretRoutes(app, { kv: f.kv, authorizer: authz.pipeline });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});
after(async () => {
  await app.close();
  await f.store.close();
});

 
type Json = any;

/** Raw HTTP (not fetch): fetch's URL parser would normalise `..` and `%2e%2e` before sending. */
function call(method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<{ status: number; json: Json }> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const put = (path: string, body: unknown) => call('PUT', `/v1/admin/secrets/${path}`, { token: ADMIN, body });

test('operator round trip: put, get, versions, list, delete', async () => {
  let r = await put('team/db/password', { value: 'hunter2', mode: 'read', description: 'db', owner: 'ops', rotation_period: '30d' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json, { path: 'team/db/password', version: 1 });
  r = await put('team/db/password', { value: 'hunter3' });
  assert.equal(r.json.version, 2);

  r = await call('GET', '/v1/admin/secrets/team/db/password', { token: ADMIN });
  assert.equal(r.status, 200);
  assert.equal(r.json.value, 'hunter3');
  assert.equal(r.json.version, 2);
  assert.equal(r.json.metadata.mode, 'read');
  assert.equal(r.json.metadata.rotation_period_s, 30 * 86400);
  assert.equal(r.json.metadata.owner, 'ops');

  r = await call('GET', '/v1/admin/secrets/team/db/password?version=1', { token: ADMIN });
  assert.equal(r.json.value, 'hunter2');
  r = await call('GET', '/v1/admin/secrets/team/db/password?version=0', { token: ADMIN });
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
  r = await call('GET', '/v1/admin/secrets/team/db/password?version=9', { token: ADMIN });
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'TESSERA_SECRET_NOT_FOUND');

  await put('team/other', { value: 'x' });
  await put('elsewhere/one', { value: 'y' });
  r = await call('GET', '/v1/admin/secrets?prefix=team', { token: ADMIN });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.secrets.map((s: { path: string }) => s.path), ['team/db/password', 'team/other']);
  assert.ok(!JSON.stringify(r.json).includes('hunter'), 'a listing never carries values');
  r = await call('GET', '/v1/admin/secrets?prefix=team/', { token: ADMIN });
  assert.equal(r.json.error.code, 'TESSERA_SECRET_PATH_INVALID');

  const reads = f.audit.events.filter((e) => e.kind === 'secret.read' && e.action === 'secret.admin_read');
  assert.ok(reads.length >= 2, 'operator reads are audited');
  assert.equal(reads[0]!.actor.id, 'admin:adm_test');
  assert.ok(reads[0]!.where?.requestId);

  r = await call('DELETE', '/v1/admin/secrets/team/other', { token: ADMIN });
  assert.deepEqual(r.json, { path: 'team/other', deleted: true, versions_destroyed: 1 });
  r = await call('GET', '/v1/admin/secrets/team/other', { token: ADMIN });
  assert.equal(r.json.error.code, 'TESSERA_SECRET_NOT_FOUND');
});

test('operator routes need an admin token', async () => {
  let r = await call('GET', '/v1/admin/secrets/team/db/password');
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  r = await call('GET', '/v1/admin/secrets/team/db/password', { token: AGENT });
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  r = await call('PUT', '/v1/admin/secrets/team/x', { body: { value: 'v' } });
  assert.equal(r.status, 401);
});

const traversal: [string, string][] = [
  ['dot-dot', 'team/../elsewhere/one'],
  ['encoded dot-dot', 'team/%2e%2e/elsewhere/one'],
  ['encoded upper-case dot-dot', 'team/%2E%2E/elsewhere/one'],
  ['encoded slash', 'team%2Fdb%2Fpassword'],
  ['encoded dot-dot-slash', '%2e%2e%2fetc%2fpasswd'],
  ['double-encoded', 'team/%252e%252e/x'],
  ['dot segment', 'team/./db/password'],
  ['empty segment', 'team//db/password'],
  ['trailing slash', 'team/db/'],
  ['bad character', 'team/db:password'],
  ['encoded space', 'team/db%20password'],
  ['empty path', ''],
];

for (const [name, path] of traversal) {
  test(`path refused on every route: ${name}`, async () => {
    for (const [method, token, body] of [
      ['GET', ADMIN, undefined],
      ['PUT', ADMIN, { value: 'v' }],
      ['DELETE', ADMIN, undefined],
    ] as const) {
      const r = await call(method, `/v1/admin/secrets/${path}`, { token, body });
      assert.equal(r.json?.error?.code, 'TESSERA_SECRET_PATH_INVALID', `${method} ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(r.status, 400);
      // Refused whatever the decoding gives; the message names the character the client encoded.
      if (path.includes('%')) assert.match(r.json.error.message, /percent-encoded|segment \d+ (contains|is)/);
    }
    const r = await call('GET', `/v1/secrets/${path}`, { token: AGENT });
    assert.equal(r.json?.error?.code, 'TESSERA_SECRET_PATH_INVALID', `agent GET ${path}`);
  });
}

test('a percent-encoded path is refused naming the character the client encoded (a space is a space, not "percent-encoding")', async () => {
  const cases: [string, RegExp][] = [
    ['bad%20path/x', /invalid secret path "bad path\/x": segment 1 contains " "; allowed characters are A-Z a-z 0-9 \. _ -/],
    ['team/%2e%2e/x', /segment 2 is "\.\."; relative segments are not allowed/],
    ['team/caf%C3%A9', /segment 2 contains "é"/],
    // Decodes to a valid path: the encoding itself is the fault.
    ['team%2Fdb', /percent-encoded characters are not allowed in a secret path/],
    ['team/%61', /percent-encoded characters are not allowed/],
  ];
  for (const [path, re] of cases) {
    const r = await call('PUT', `/v1/admin/secrets/${path}`, { token: ADMIN, body: { value: 'v' } });
    assert.equal(r.status, 400, path);
    assert.equal(r.json.error.code, 'TESSERA_SECRET_PATH_INVALID', `${path}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.error.message, re, path);
  }
  // Not decodable at all: refused before routing, with a stable code too.
  const r = await call('PUT', '/v1/admin/secrets/team/%zz', { token: ADMIN, body: { value: 'v' } });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_MALFORMED');
  assert.match(r.json.error.message, /a "%" must start a percent-encoded UTF-8 byte/);
});

test('value validation over HTTP', async () => {
  let r = await put('team/v', { value: 'x'.repeat(65) });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'TESSERA_SECRET_VALUE_INVALID');
  r = await put('team/v', { value: 42 });
  assert.equal(r.json.error.code, 'TESSERA_SECRET_VALUE_INVALID');
  r = await put('team/v', { mode: 'read' });
  assert.equal(r.json.error.code, 'TESSERA_SECRET_VALUE_INVALID');
  r = await put('team/v', { value: '' });
  assert.equal(r.json.error.code, 'TESSERA_SECRET_VALUE_INVALID');
  r = await put('team/v', { value: 'ok', mode: 'write' });
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
  r = await put('team/v', { value: 'ok', extra: 1 });
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
  r = await put('team/v', { value: 'ok', rotation_period: 'soon' });
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
  r = await put('team/v', { value: 'ok', rotation_period: '250ms' });
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
});

test('agent read: read-mode only, only if policy allows', async () => {
  await put('team/api/read-key', { value: 'agent-can-see', mode: 'read' });
  await put('team/api/inject-key', { value: 'agent-cannot-see' });
  await put('private/read-key', { value: 'forbidden', mode: 'read' });

  let r = await call('GET', '/v1/secrets/team/api/read-key', { token: AGENT });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { path: 'team/api/read-key', version: 1, value: 'agent-can-see' });

  r = await call('GET', '/v1/secrets/team/api/inject-key', { token: AGENT });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, 'TESSERA_SECRET_NOT_READABLE');
  assert.ok(!JSON.stringify(r.json).includes('agent-cannot-see'));

  r = await call('GET', '/v1/secrets/private/read-key', { token: AGENT });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, 'TESSERA_POLICY_DENIED');

  r = await call('GET', '/v1/secrets/team/api/read-key');
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'TESSERA_TOKEN_MISSING');
  r = await call('GET', '/v1/secrets/team/api/read-key', { token: ADMIN });
  assert.equal(r.status, 401);

  const denied = f.audit.events.filter((e) => e.kind === 'secret.read' && e.result === 'deny');
  assert.ok(denied.some((e) => e.reason?.code === 'TESSERA_POLICY_DENIED' && e.resource === 'secret:private/read-key' && e.where?.requestId));
  assert.ok(denied.some((e) => e.reason?.code === 'TESSERA_SECRET_NOT_READABLE'));
  assert.ok(!JSON.stringify(f.audit.events).includes('agent-can-see'), 'values never reach the audit log');
});
