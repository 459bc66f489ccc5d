/**
 * End to end through real HTTP against the whole composition (src/main.ts): an agent logs in,
 * reads what policy allows and nothing else, gets a lease, is killed by the kill switch, and the
 * audit log verifies and leaks nothing.
 */
import { test } from 'node:test';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { startHarness, auditTexts, type Harness } from './harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';

const READER = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';

// The demo policies plus one for the in-memory test engine: the join-token reader, pinned by ID
// and attestor (a join token proves no namespace, ADR 0021).
const MEMDB_POLICY = `@id("memdb-readonly")
permit (principal == Tessera::Agent::"${READER}", action == Tessera::Action::"cred.issue", resource == Tessera::Role::"memdb/readonly")
when { principal.attestor_kind == "join_token" && principal.attestor == "join_token" };`;

function policiesWith(extra: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-policies-'));
  for (const f of readdirSync('examples/policies')) if (f.endsWith('.cedar')) copyFileSync(join('examples/policies', f), join(dir, f));
  writeFileSync(join(dir, 'memdb.cedar'), extra);
  return dir;
}
const OTHER = 'spiffe://tessera.local/ns/billing/sa/invoicer';

test('agent flow: login, policy-checked secrets, leases, kill switch, audit', async (t) => {
  const engine = new MemoryEngine('memdb', { readonly: { defaultTtlMs: 60_000, maxTtlMs: 120_000, renewable: true } });
  const h: Harness = await startHarness({ engines: [engine], policyDir: policiesWith(MEMDB_POLICY) });
  t.after(() => h.close());

  const readValue = `db-password-${Math.random().toString(36).slice(2)}-e2e`;
  const injectValue = `sk-e2e${'x'.repeat(24)}${Math.random().toString(36).slice(2)}`;
  h.sensitive.add(readValue);
  h.sensitive.add(injectValue);

  // Operator writes secrets: one readable by agents, one inject-only (the default mode).
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/healthcare/prod/agents/patient-reader/db-password', { value: readValue, mode: 'read' })).status, 200);
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/healthcare/prod/agents/patient-reader/openai-api-key', { value: injectValue })).status, 200);
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/billing/prod/stripe', { value: readValue, mode: 'read' })).status, 200);

  const token = await h.login(await h.joinToken(READER));

  // Allowed by the healthcare-reader policy.
  const ok = await h.agent(token, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/db-password');
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.value, readValue);
  // Inject-mode secrets are never returned to an agent.
  const inj = await h.agent(token, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/openai-api-key');
  assert.equal(inj.status, 403);
  assert.equal(inj.body.error.code, 'TESSERA_SECRET_NOT_READABLE');
  assert.ok(!JSON.stringify(inj.body).includes(injectValue));
  // Outside the folder the policy names: default deny.
  const denied = await h.agent(token, 'GET', '/v1/secrets/billing/prod/stripe');
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, 'TESSERA_POLICY_DENIED');

  // A lease through the healthcare-db-readonly policy.
  const lease = await h.agent(token, 'POST', '/v1/creds/memdb/readonly', {});
  assert.equal(lease.status, 201, JSON.stringify(lease.body));
  assert.ok(lease.body.lease_id);
  for (const v of Object.values(lease.body.data as Record<string, unknown>)) if (typeof v === 'string' && v.length >= 8) h.sensitive.add(v);
  assert.equal(engine.credentials.size, 1);

  // Another agent is not allowed the same credential.
  const other = await h.login(await h.joinToken(OTHER));
  const otherLease = await h.agent(other, 'POST', '/v1/creds/memdb/readonly', {});
  assert.equal(otherLease.status, 403);

  // Kill switch: the revoke call returns, and the very next request with the unexpired token is refused.
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: READER, reason: 'incident-42' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  const t0 = performance.now();
  const refused = await h.agent(token, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/db-password');
  const elapsed = performance.now() - t0;
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error.code, 'TESSERA_TOKEN_REVOKED');
  t.diagnostic(`kill switch: first refused request ${elapsed.toFixed(1)} ms after the revoke call returned`);
  // Its lease is revoked, and its logins are refused while the revocation stands.
  assert.equal(engine.credentials.size, 0);
  await assert.rejects(h.login(await h.joinToken(READER)), (e: { body?: { code?: string } }) => e.body?.code === 'TESSERA_AGENT_REVOKED');
  // The other agent is unaffected.
  assert.equal((await h.agent(other, 'GET', '/v1/secrets/billing/prod/stripe')).status, 403);

  // Lifting the revocation lets the agent log in again.
  assert.equal((await h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`)).status, 200);
  const again = await h.login(await h.joinToken(READER));
  assert.equal((await h.agent(again, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/db-password')).status, 200);

  // A replayed join token is refused.
  const jt = await h.joinToken(READER);
  await h.login(jt);
  await assert.rejects(h.login(jt), (e: { body?: { code?: string; error?: string } }) => e.body?.code === 'TESSERA_JOIN_TOKEN_REUSED' && e.body.error === 'invalid_grant');

  // Audit: verifies, and no secret or token appears in any event.
  // Verification runs as a background job; `wait` answers when it has finished.
  const verify = await h.admin('POST', '/v1/admin/audit/verify', { full: true, wait: true });
  assert.equal(verify.status, 200);
  assert.equal(verify.body.job.state, 'done');
  assert.equal(verify.body.job.result.ok, true, JSON.stringify(verify.body.job.result.problems));
  const events = await auditTexts(h);
  assert.ok(events.length > 10);
  for (const { text } of events) {
    for (const s of h.sensitive) {
      assert.ok(!text.includes(s), `an audit event contains a secret or token (${s.slice(0, 6)}…)`);
      // JWTs: the signature part alone must not appear either.
      const sig = s.split('.')[2];
      if (sig && sig.length > 20) assert.ok(!text.includes(sig), 'an audit event contains a token signature');
    }
  }
  const kinds = new Set(events.map((e) => e.kind));
  for (const k of ['auth.login', 'auth.join_token_reuse', 'auth.token_refused', 'secret.read', 'secret.written', 'lease.created', 'lease.revoked', 'revocation.created', 'revocation.lifted', 'join_token.created']) {
    assert.ok(kinds.has(k), `expected an audit event of kind ${k}; saw ${[...kinds].join(', ')}`);
  }
});

test('system endpoints: health, readiness, metrics, OpenAPI with every route summarised', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const health = await fetch(`${h.url}/healthz`);
  assert.equal(health.status, 200);
  const ready = (await (await fetch(`${h.url}/readyz`)).json()) as { status: string; checks: Record<string, { ok: boolean; detail?: unknown }> };
  assert.equal(ready.status, 'ready');
  assert.ok(ready.checks.store?.ok && ready.checks.signing_keys?.ok);
  // Unfinished revocations are a detail of readiness, never a reason to stop serving.
  assert.deepEqual(ready.checks.leases, { ok: true, detail: { revoking: 0, disabled: 0, irrevocable: 0 } });

  await h.login(await h.joinToken(READER));
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  for (const name of ['tessera_http_requests_total', 'tessera_http_request_duration_seconds', 'tessera_tokens_issued_total', 'tessera_policy_decisions_total', 'tessera_leases_active', 'tessera_leases_disabled', 'tessera_leases_irrevocable', 'tessera_audit_events_total', 'tessera_audit_lag_seconds']) {
    assert.ok(metrics.includes(name), `metric ${name} missing`);
  }
  assert.match(metrics, /tessera_tokens_issued_total\{type="agent"\} 1/);

  const doc = (await (await fetch(`${h.url}/v1/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { summary: string }>> };
  assert.equal(doc.openapi, '3.1.0');
  const unsummarised: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(ops)) if (op.summary.startsWith(m.toUpperCase() + ' ')) unsummarised.push(`${m} ${path}`);
  assert.deepEqual(unsummarised, [], 'add these routes to ROUTE_SUMMARIES in src/server/openapi.ts');
  assert.ok(doc.paths['/v1/oauth/token']?.post);
});

test('bad input at the edge: content types, bodies, admin tokens, unknown routes', async (t) => {
  const h = await startHarness({ config: { server: { listen: '127.0.0.1:0', body_limit_bytes: 4096 } } });
  t.after(() => h.close());
  const post = (path: string, body: string, type: string, token?: string) =>
    fetch(h.url + path, { method: 'POST', headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body }).then(async (r) => ({ status: r.status, headers: r.headers, body: (await r.json()) as any }));

  const malformed = await post('/v1/admin/revocations', '{"kind":', 'application/json', h.adminToken);
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.error.code, 'TESSERA_REQUEST_MALFORMED');
  const big = await post('/v1/admin/revocations', JSON.stringify({ kind: 'agent', target: 'x'.repeat(10_000) }), 'application/json', h.adminToken);
  assert.equal(big.status, 413);
  assert.equal(big.body.error.code, 'TESSERA_REQUEST_TOO_LARGE');
  const xml = await post('/v1/admin/revocations', '<x/>', 'application/xml', h.adminToken);
  assert.equal(xml.status, 415);
  assert.equal(xml.body.error.code, 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  const noAdmin = await post('/v1/admin/revocations', '{}', 'application/json');
  assert.equal(noAdmin.status, 401);
  assert.equal(noAdmin.body.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  assert.match(noAdmin.headers.get('www-authenticate') ?? '', /^Bearer /);
  const wrongAdmin = await post('/v1/admin/revocations', '{}', 'application/json', 'tsr_admin_not-the-right-token-at-all');
  assert.equal(wrongAdmin.status, 401);
  assert.equal(wrongAdmin.body.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  const tokenJson = await post('/v1/oauth/token', '{}', 'application/json');
  assert.equal(tokenJson.status, 415);
  assert.equal(tokenJson.body.error, 'invalid_request');
  const grant = await post('/v1/oauth/token', 'grant_type=password&username=a&password=b', 'application/x-www-form-urlencoded');
  assert.equal(grant.status, 400);
  assert.equal(grant.body.error, 'unsupported_grant_type');
  assert.equal(grant.body.code, 'TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE');
  const unknown = await fetch(`${h.url}/v1/nope`);
  assert.equal(unknown.status, 404);
  assert.equal(((await unknown.json()) as any).error.code, 'TESSERA_NOT_FOUND');
  const noToken = await fetch(`${h.url}/v1/secrets/a/b`);
  assert.equal(noToken.status, 401);
  assert.equal(((await noToken.json()) as any).error.code, 'TESSERA_TOKEN_MISSING');
});
