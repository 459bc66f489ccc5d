/**
 * Exposure windows (docs/exposure.md, ADR 0150) through the real server: agent tokens, task
 * tokens, a lease and an injected secret's use are recorded issued → closed; a task tree
 * revocation and an RFC 7009 revocation close windows at their time; expiry is computed and then
 * swept into the histogram. The clock is a ManualClock, so every window length is exact. Run on
 * SQLite and on PostgreSQL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHarness, type Harness } from '../e2e/harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { ManualClock } from '../../src/shared/clock.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import { runCli, type Runtime } from '../../src/cli/index.js';
import { ORCH, SUB, TASK_POLICIES, openTask, delegate, policyDir } from '../tasks/helpers.js';

const S = 1000;
const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };

async function cli(h: Harness, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, runtime, { stdout: { write: (x: string) => ((stdout += x), true) }, stderr: { write: (x: string) => ((stderr += x), true) }, env: { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.adminToken } });
  return { code, stdout, stderr };
}

function group(report: any, key: string): any {
  const g = report.groups.find((x: any) => x.key === key);
  assert.ok(g, `no group ${key} in ${JSON.stringify(report.groups)}`);
  return g;
}

async function exposure(h: Harness, query: string): Promise<any> {
  const r = await h.admin('GET', `/v1/admin/exposure${query}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function metric(h: Harness, line: string): Promise<number | undefined> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

async function revokeHolder(h: Harness, token: string): Promise<void> {
  const r = await fetch(`${h.url}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
  assert.equal(r.status, 200);
}

/** The scenario, on whichever store `config` selects. */
async function scenario(t: { after(fn: () => Promise<void>): void }, config?: Record<string, unknown>): Promise<void> {
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  const t0 = clock.now();
  const h = await startHarness({ policyDir: policyDir(), engines: [new MemoryEngine('mem')], clock, ...(config ? { config } : {}) });
  t.after(() => h.close());

  const orch = await h.login(await h.joinToken(ORCH)); // T+0, agent token for 300 s (tokens.agent_ttl)
  clock.advance(10 * S);
  const root = await openTask(h, orch, { scope: 'cred:mem/reader secret:team/**', requested_ttl: '120' }); // T+10 → T+130
  clock.advance(5 * S);
  const child = await delegate(h, root.token, { label: 'worker', scope: 'cred:mem/reader' }); // T+15
  clock.advance(5 * S);
  const lease = await h.agent(child.token, 'POST', '/v1/creds/mem/reader', {}); // T+20, 60 s
  assert.equal(lease.status, 201, JSON.stringify(lease.body));
  h.sensitive.add(String(lease.body.data.password));

  // Live before the kill: the lease and both task tokens, by their ids (never a token).
  const before = await exposure(h, '?by=kind');
  assert.deepEqual(before.live.map((l: any) => l.kind).sort(), ['agent_token', 'lease', 'task_token', 'task_token']);
  assert.equal(before.live.find((l: any) => l.kind === 'lease').id, lease.body.lease_id);
  assert.equal(before.live.find((l: any) => l.kind === 'lease').remaining_s, 60);

  clock.advance(30 * S);
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn, reason: 'kill switch' }); // T+50
  assert.equal(rev.status, 201, JSON.stringify(rev.body));

  clock.advance(10 * S);
  const sub = await h.login(await h.joinToken(SUB)); // T+60
  clock.advance(10 * S);
  await revokeHolder(h, sub); // T+70: RFC 7009
  clock.advance(10 * S); // T+80

  const byKind = await exposure(h, '?by=kind&since=1h');
  assert.equal(byKind.by, 'kind');
  assert.equal(Date.parse(byKind.generated_at), t0 + 80 * S);
  assert.equal(Date.parse(byKind.since), t0 + 80 * S - 3_600_000);
  assert.deepEqual(group(byKind, 'agent_token'), { key: 'agent_token', count: 2, live: 1, p50_s: 10, p95_s: 80, max_s: 80, credential_seconds: 90 });
  assert.deepEqual(group(byKind, 'task_token'), { key: 'task_token', count: 2, live: 0, p50_s: 35, p95_s: 40, max_s: 40, credential_seconds: 75 });
  assert.deepEqual(group(byKind, 'lease'), { key: 'lease', count: 1, live: 0, p50_s: 30, p95_s: 30, max_s: 30, credential_seconds: 30 });
  // Only the first agent token is live: 220 s left of its 300.
  assert.equal(byKind.live.length, 1);
  const live = byKind.live[0];
  assert.equal(live.kind, 'agent_token');
  assert.equal(live.agent, ORCH);
  assert.equal(live.remaining_s, 220);
  assert.equal(Date.parse(live.issued_at), t0);
  assert.equal(Date.parse(live.expires_at), t0 + 300 * S);
  await h.tessera.audit.flush();
  const login = await h.tessera.store.get<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'auth.login' ORDER BY seq LIMIT 1");
  assert.equal(live.id, JSON.parse(login!.body).details.token_jti_hmac, 'a token is named by its jti HMAC');

  const byTask = await exposure(h, '?by=task');
  assert.deepEqual(group(byTask, root.txn), { key: root.txn, count: 3, live: 0, p50_s: 35, p95_s: 40, max_s: 40, credential_seconds: 105 });
  assert.equal(group(byTask, '-').count, 2);
  const byAgent = await exposure(h, '?by=agent');
  assert.deepEqual(group(byAgent, ORCH), { key: ORCH, count: 4, live: 1, p50_s: 35, p95_s: 80, max_s: 80, credential_seconds: 185 });
  assert.deepEqual(group(byAgent, SUB), { key: SUB, count: 1, live: 0, p50_s: 10, p95_s: 10, max_s: 10, credential_seconds: 10 });
  assert.equal(group(await exposure(h, '?by=user'), '-').count, 5);
  const leasesOnly = await exposure(h, '?by=agent&kind=lease');
  assert.equal(leasesOnly.kind, 'lease');
  assert.deepEqual(leasesOnly.groups.map((g: any) => [g.key, g.count]), [[ORCH, 1]]);
  assert.deepEqual(leasesOnly.live, []);
  // A window issued before `since` is outside the groups.
  assert.equal(group(await exposure(h, '?by=kind&since=65s'), 'agent_token').count, 1);

  // Revocations observed the windows they closed; live credentials by kind.
  assert.equal(await metric(h, 'tessera_credential_exposure_seconds_count{kind="task_token"}'), 2);
  assert.equal(await metric(h, 'tessera_credential_exposure_seconds_sum{kind="task_token"}'), 75);
  assert.equal(await metric(h, 'tessera_credential_exposure_seconds_count{kind="lease"}'), 1);
  assert.equal(await metric(h, 'tessera_credential_exposure_seconds_count{kind="agent_token"}'), 1);
  assert.equal(await metric(h, 'tessera_credentials_live{kind="agent_token"}'), 1);
  assert.equal(await metric(h, 'tessera_credentials_live{kind="task_token"}'), 0);

  // Expiry needs no timer: computed at once, observed by the next sweep, exactly once.
  clock.advance(320 * S); // T+400, the first agent token expired at T+300
  const after = await exposure(h, '?by=kind&since=1h');
  assert.deepEqual(after.live, []);
  assert.deepEqual(group(after, 'agent_token'), { key: 'agent_token', count: 2, live: 0, p50_s: 10, p95_s: 300, max_s: 300, credential_seconds: 310 });
  assert.equal(await h.tessera.exposure.sweepOnce(), 1);
  assert.equal(await h.tessera.exposure.sweepOnce(), 0);
  assert.equal(await metric(h, 'tessera_credential_exposure_seconds_count{kind="agent_token"}'), 2);
  assert.equal(await metric(h, 'tessera_credential_exposure_seconds_sum{kind="agent_token"}'), 310);
  assert.equal(await metric(h, 'tessera_credentials_live{kind="agent_token"}'), 0);
}

test('windows, percentiles, live and credential-seconds of tokens and a lease through a tree revocation (SQLite)', async (t) => {
  await scenario(t);
});

test('the same on PostgreSQL', async (t) => {
  const db = await createTestDatabase('exposure');
  t.after(() => db.drop());
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 7).toString('base64');
  await scenario(t, { store: { kind: 'postgres', url: db.url }, master_key: { env: 'TESSERA_TEST_MASTER_KEY' } });
});

test('an agent revocation closes its tokens and the task tokens it acts in; a lift reopens them', async (t) => {
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  const h = await startHarness({ policyDir: policyDir(), clock });
  t.after(() => h.close());
  const orch = await h.login(await h.joinToken(ORCH));
  const sub = await h.login(await h.joinToken(SUB));
  clock.advance(5 * S);
  const root = await openTask(h, orch, { requested_ttl: '200' });
  // A sub-agent's own task token: ORCH is in its chain.
  await delegate(h, root.token, { actor_token: sub, actor_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'secret:team/**' });
  clock.advance(5 * S);
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: ORCH });
  assert.equal(rev.status, 201);
  const r = await exposure(h, '?by=kind');
  // Left live: the sub-agent's own agent token only.
  assert.deepEqual(r.live.map((l: any) => [l.kind, l.agent]), [['agent_token', SUB]]);
  assert.deepEqual(group(r, 'task_token'), { key: 'task_token', count: 2, live: 0, p50_s: 5, p95_s: 5, max_s: 5, credential_seconds: 10 });
  clock.advance(5 * S);
  assert.equal((await h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`)).status, 200);
  const lifted = await exposure(h, '?by=kind');
  assert.deepEqual(lifted.live.map((l: any) => l.kind).sort(), ['agent_token', 'agent_token', 'task_token', 'task_token']);
});

test('a secret injected by a gateway tool is exposed for the call\'s duration', async (t) => {
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  const vault: ToolProvider = {
    server: 'vault',
    async listTools() {
      return [{ name: 'fetch', inputSchema: { type: 'object' } }];
    },
    async callTool(_tool, _args, ctx) {
      await ctx.resolveSecret('team/api-key');
      clock.advance(2 * S); // the upstream call takes 2 s
      return { content: [{ type: 'text', text: 'done' }] };
    },
    async close() {},
  };
  const policies = `${TASK_POLICIES}\n@id("vault-fetch") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"vault/fetch");\n`;
  const h = await startHarness({ policyDir: policyDir(policies), clock, providers: [vault] });
  t.after(() => h.close());
  const secret = 'sk-exposure-test-0123456789';
  h.sensitive.add(secret);
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/team/api-key', { value: secret })).status < 300, true);
  const token = await h.login(await h.joinToken(ORCH), `${h.tessera.url}/mcp`);
  const client = new Client({ name: 'exposure-test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  t.after(() => client.close());
  const res = await client.callTool({ name: 'vault__fetch', arguments: {} });
  assert.notEqual(res.isError, true, JSON.stringify(res));
  const r = await exposure(h, '?by=agent&kind=secret_use');
  assert.deepEqual(r.groups, [{ key: ORCH, count: 1, live: 0, p50_s: 2, p95_s: 2, max_s: 2, credential_seconds: 2 }]);
  assert.deepEqual(r.live, []);
  assert.equal(await metric(h, 'tessera_credential_exposure_seconds_count{kind="secret_use"}'), 1);
  const row = await h.tessera.store.get<{ resource: string }>("SELECT resource FROM exposures WHERE kind = 'secret_use'");
  assert.equal(row?.resource, 'kv/team/api-key -> vault__fetch');

  // The CLI: a readable table, and the API's own JSON with --json.
  const human = await cli(h, ['exposure', '--by', 'agent', '--since', '1h']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^exposure by agent since \S+/);
  assert.match(human.stdout, /AGENT\s+COUNT\s+LIVE\s+P50\s+P95\s+MAX\s+CREDENTIAL-SECONDS/);
  assert.ok(human.stdout.split('\n').some((l) => l.startsWith(ORCH) && /\s2\s+1\s+/.test(l)), human.stdout);
  assert.match(human.stdout, /live now \(1\):\nKIND\s+ID\s+AGENT/);
  assert.doesNotMatch(human.stdout, new RegExp(token.slice(-20)));
  const json = await cli(h, ['exposure', '--kind', 'secret_use', '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout).groups, [{ key: 'secret_use', count: 1, live: 0, p50_s: 2, p95_s: 2, max_s: 2, credential_seconds: 2 }]);
  const bad = await cli(h, ['exposure', '--since', 'yesterday']);
  assert.equal(bad.code, 2, 'a malformed --since is refused before any request');
});

test('bad query values are refused, each with its code', async (t) => {
  const h = await startHarness({ policyDir: policyDir() });
  t.after(() => h.close());
  const cases: [string, string][] = [
    ['?by=bogus', 'TESSERA_EXPOSURE_BY_INVALID'],
    ['?by=', 'TESSERA_EXPOSURE_BY_INVALID'],
    ['?by=Agent', 'TESSERA_EXPOSURE_BY_INVALID'],
    ['?kind=token', 'TESSERA_EXPOSURE_KIND_INVALID'],
    ['?kind=', 'TESSERA_EXPOSURE_KIND_INVALID'],
    ['?since=yesterday', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=-24h', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=0s', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=24', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=400d', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=2999-01-01T00:00:00Z', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=2026-13-01T00:00:00Z', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=2026-01-01', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=1e400', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?since=99999999999999999999d', 'TESSERA_EXPOSURE_SINCE_INVALID'],
    ['?group=agent', 'TESSERA_EXPOSURE_QUERY_INVALID'],
    ['?by=agent&by=task', 'TESSERA_EXPOSURE_QUERY_INVALID'],
    [`?since=${'1'.repeat(100)}s`, 'TESSERA_EXPOSURE_QUERY_INVALID'],
  ];
  for (const [q, code] of cases) {
    const r = await h.admin('GET', `/v1/admin/exposure${q}`);
    assert.equal(r.status, 400, `${q}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code, `${q}: ${JSON.stringify(r.body)}`);
  }
  // The defaults, and the accepted forms.
  const d = await exposure(h, '');
  assert.equal(d.by, 'kind');
  assert.equal(Date.parse(d.generated_at) - Date.parse(d.since), 86_400_000);
  for (const q of ['?since=2026-01-01T00:00:00Z', '?since=30m', '?since=7d', '?since=90s&by=user&kind=secret_use']) await exposure(h, q);
  // Operators only.
  const anon = await fetch(`${h.url}/v1/admin/exposure`);
  assert.equal(anon.status, 401);
});
