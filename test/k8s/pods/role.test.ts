/**
 * Roles at login (docs/policies.md#roles): a Kubernetes agent logs in to a real Tessera
 * (src/main.ts, SQLite) with `scope=role:<name>`; Cedar `role.assume` decides; the agent token
 * carries `tessera.role` and later decisions see `context.role`, also through task tokens.
 * (No Kubernetes API is involved: the service-account tokens are signed by a JWKS file.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness } from '../../e2e/harness.js';
import { makeKey, sign } from '../../identity/keys.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const ROLE_POLICY = `@id("healthcare-may-be-reader")
permit (principal, action == Tessera::Action::"role.assume", resource == Tessera::Role::"reader")
when { principal.attestor_kind == "kubernetes" && principal.namespace == "healthcare" };

@id("reader-role-reads-billing")
permit (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"billing/prod")
when { context has role && context.role == "reader" };
`;

test('scope=role:<name> at login: Cedar role.assume decides; the role reaches later decisions as context.role', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-role-'));
  for (const f of readdirSync('examples/policies')) if (f.endsWith('.cedar')) copyFileSync(join('examples/policies', f), join(dir, f));
  writeFileSync(join(dir, 'roles.cedar'), ROLE_POLICY);
  const keyDir = mkdtempSync(join(tmpdir(), 'tessera-role-keys-'));
  const key = await makeKey('RS256', 'cluster-key-1');
  const jwksFile = join(keyDir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const h = await startHarness({
    policyDir: dir,
    config: { attestors: [{ kind: 'jwt', name: 'k8s-prod', issuer: ISSUER, audience: 'tessera', jwks_file: jwksFile, template: 'kubernetes', algorithms: ['RS256'] }] },
  });
  t.after(() => h.close());
  const value = `billing-${Math.random().toString(36).slice(2)}`;
  h.sensitive.add(value);
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/billing/prod/report', { value, mode: 'read' })).status, 200);

  const saTokens = new Map<string, string>();
  const saToken = async (ns: string): Promise<string> => {
    const known = saTokens.get(ns);
    if (known) return known;
    const now = Math.floor(Date.now() / 1000);
    const tok = await sign(key, { iss: ISSUER, aud: ['tessera'], sub: `system:serviceaccount:${ns}:agent`, iat: now, exp: now + 600, 'kubernetes.io': { namespace: ns, serviceaccount: { name: 'agent' } } });
    h.sensitive.add(tok);
    saTokens.set(ns, tok);
    return tok;
  };
  const exchange = async (params: Record<string, string>): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', ...params }) });
    const body = (await res.json()) as any;
    if (body.access_token) h.sensitive.add(body.access_token);
    return { status: res.status, body };
  };
  const login = async (ns: string, scope?: string) => exchange({ subject_token: await saToken(ns), subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', ...(scope !== undefined ? { scope } : {}) });
  const read = (token: string) => h.agent(token, 'GET', '/v1/secrets/billing/prod/report');

  // Permitted: the token carries the role; policy sees it.
  const withRole = await login('healthcare', 'role:reader');
  assert.equal(withRole.status, 200, JSON.stringify(withRole.body));
  const claims = JSON.parse(Buffer.from(withRole.body.access_token.split('.')[1], 'base64url').toString()) as { tessera: { role?: string } };
  assert.equal(claims.tessera.role, 'reader');
  const ok = await read(withRole.body.access_token);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.value, value);
  // The same agent without the role: the reader policy does not apply.
  const plain = await login('healthcare');
  assert.equal(plain.status, 200);
  const denied = await read(plain.body.access_token);
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, 'TESSERA_POLICY_DENIED');

  // A task opened with the role token carries the role too.
  const task = await exchange({ subject_token: withRole.body.access_token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'secret:billing/**', purpose: 'monthly report' });
  assert.equal(task.status, 200, JSON.stringify(task.body));
  const viaTask = await read(task.body.access_token);
  assert.equal(viaTask.status, 200, JSON.stringify(viaTask.body));

  // Refused: no policy lets this agent assume the role (another role, another namespace).
  for (const [ns, scope] of [['healthcare', 'role:admin'], ['billing', 'role:reader']] as const) {
    const r = await login(ns, scope);
    assert.equal(r.status, 400, `${ns} ${scope}`);
    assert.equal(r.body.error, 'invalid_scope');
    assert.equal(r.body.code, 'TESSERA_ROLE_NOT_PERMITTED');
  }
  // Malformed role scopes.
  for (const scope of ['role:Admin', 'role:a/b', 'role:', 'role:reader role:admin', 'secret:billing/**', `role:${'a'.repeat(64)}`, 'role:ré', 'role:-x']) {
    const r = await login('healthcare', scope);
    assert.equal(r.status, 400, scope);
    assert.equal(r.body.error, 'invalid_scope', scope);
    assert.equal(r.body.code, 'TESSERA_ROLE_INVALID', scope);
  }
  // The what-if API answers role.assume for an agent role (Role::<name>, no engine).
  const principal = { spiffe_id: 'spiffe://tessera.local/ns/healthcare/sa/agent', attestor: 'k8s-prod', attestor_kind: 'kubernetes', attributes: { namespace: 'healthcare', service_account: 'agent' } };
  const whatIf = await h.admin('POST', '/v1/admin/policy/check', { principal, action: 'role.assume', resource: 'Role::reader' });
  assert.equal(whatIf.status, 200, JSON.stringify(whatIf.body));
  assert.equal(whatIf.body.decision ?? (whatIf.body.allowed ? 'allow' : 'deny'), 'allow', JSON.stringify(whatIf.body));
  const whatIfNo = await h.admin('POST', '/v1/admin/policy/check', { principal, action: 'role.assume', resource: 'Role::admin' });
  assert.equal(whatIfNo.body.decision ?? (whatIfNo.body.allowed ? 'allow' : 'deny'), 'deny', JSON.stringify(whatIfNo.body));
  // The login event records the role.
  const events = await h.admin('GET', '/v1/admin/audit?kind=auth.login&limit=50');
  assert.ok(events.body.events.some((e: any) => e.event.result === 'success' && e.event.details?.role === 'reader'));
  assert.ok(events.body.events.some((e: any) => e.event.result === 'failure' && e.event.reason?.code === 'TESSERA_ROLE_NOT_PERMITTED'));
});
