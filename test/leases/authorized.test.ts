import { test } from 'node:test';
import assert from 'node:assert/strict';
import { issueAuthorized } from '../../src/leases/authorized.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { TesseraError } from '../../src/shared/errors.js';
import { createRequestAuthorizer } from '../../src/pipeline/authorize.js';

// The authorize-then-issue path shared by POST /v1/creds and the MCP gateway's credential injection.
const principal = (scope?: string[]): AgentPrincipal => ({
  spiffeId: 'spiffe://td/ns/a/sa/b', trustDomain: 'td', path: '/ns/a/sa/b', attributes: {}, jti: 'j'.repeat(22), expiresAt: Date.UTC(2099, 0, 1), ...(scope ? { scope } : {}),
});
const allowIf = (ok: boolean) => createRequestAuthorizer({ authorize: () => ({ allowed: ok, policies: ok ? ['p-allow'] : [], errors: [], cached: false }) });

test('issueAuthorized: policy ∩ token scope, then issue', async () => {
  const issued: unknown[] = [];
  const leases = { issue: async (r: unknown) => (issued.push(r), { lease_id: 'l1' }) };
  const code = (c: string) => (e: unknown) => e instanceof TesseraError && e.code === c;

  await assert.rejects(issueAuthorized({ leases, authorizer: allowIf(false) }, { principal: principal(), engine: 'postgres', role: 'ro' }), code('TESSERA_POLICY_DENIED'));
  await assert.rejects(issueAuthorized({ leases, authorizer: allowIf(true) }, { principal: principal(['cred:postgres/other']), engine: 'postgres', role: 'ro' }), code('TESSERA_TOKEN_INSUFFICIENT_SCOPE'));
  assert.equal(issued.length, 0, 'nothing is issued when either refuses');

  assert.deepEqual(await issueAuthorized({ leases, authorizer: allowIf(true) }, { principal: principal(['cred:postgres/*']), engine: 'postgres', role: 'ro', ttlMs: 60_000 }), { lease_id: 'l1' });
  assert.deepEqual(await issueAuthorized({ leases, authorizer: allowIf(true) }, { principal: principal(), engine: 'postgres', role: 'ro' }), { lease_id: 'l1' });
  assert.equal(issued.length, 2);
});
