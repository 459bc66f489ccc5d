/**
 * Proxy limits (src/proxy/limits.ts) on a manual clock: the two-bucket sliding window for
 * requests (counted at admit) and tokens (recorded after the response), separate counters per
 * agent, task and user, exact Retry-After seconds, refused requests not counted, the key cap
 * (idle counters dropped, fail closed with `capacity` when all are active), usage rows, metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProxyLimits, limitError, type RouteLimits } from '../../src/proxy/limits.js';
import { registerProxyUsageRoutes } from '../../src/proxy/usage-routes.js';
import { createApp, type AdminAuthenticator, type AgentAuthenticator } from '../../src/server/app.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';

const A = 'spiffe://tessera.local/agent/a';
const B = 'spiffe://tessera.local/agent/b';
const C = 'spiffe://tessera.local/agent/c';

function setup(maxKeys?: number) {
  const clock = new ManualClock(); // 2026-01-01T00:00:00Z: a window boundary for 60 s windows
  const metrics = new MetricsRegistry();
  const limits = createProxyLimits({ clock, metrics, ...(maxKeys ? { maxKeys } : {}) });
  return { clock, metrics, limits };
}

test('requests: the limit per window, then the exact Retry-After of the sliding window', () => {
  const { clock, limits } = setup();
  const l: RouteLimits = { windowMs: 60_000, requests: 3 };
  for (let i = 0; i < 3; i++) assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: true });
  // Estimate 3 + 1 > 3. Admitted again when 3 × (1 − f) + 1 ≤ 3 in the next window: f = 1/3, 80 s.
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: false, retryAfterSec: 80, which: 'requests', per: 'agent' });
  clock.advance(79_000); // f = 19/60: 3 × 41/60 = 2.05 → 3.05 > 3
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: false, retryAfterSec: 1, which: 'requests', per: 'agent' });
  clock.advance(1_000);
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: true });
  // Refused requests were not counted: 2 (3 × 2/3) + 1 admitted = 3 in the window.
  assert.deepEqual(limits.usage({ agent: A })[0]!.window.requests, 3);
  assert.deepEqual(limits.usage({ agent: A })[0]!.since_start.requests, 4);
});

test('requests: no burst across a window edge (sliding, not fixed)', () => {
  const { clock, limits } = setup();
  const l: RouteLimits = { windowMs: 60_000, requests: 10 };
  clock.advance(59_000);
  for (let i = 0; i < 10; i++) assert.equal(limits.admit('r', { agent: A }, l).ok, true);
  clock.advance(2_000); // 1 s into the next window: 10 × 59/60 = 9.83 → no room
  assert.deepEqual(limits.admit('r', { agent: A }, l), { ok: false, retryAfterSec: 5, which: 'requests', per: 'agent' });
  clock.advance(5_000); // f = 6/60: 10 × 0.9 = 9 → 10 ≤ 10
  assert.deepEqual(limits.admit('r', { agent: A }, l), { ok: true });
  assert.deepEqual(limits.admit('r', { agent: A }, l), { ok: false, retryAfterSec: 6, which: 'requests', per: 'agent' });
});

test('tokens: admitted while under the limit; the request that crosses it completes; exact Retry-After', () => {
  const { clock, limits } = setup();
  const l: RouteLimits = { windowMs: 60_000, tokens: 1000 };
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: true });
  limits.record('openai', { agent: A }, { input: 400, output: 200, total: 600 });
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: true });
  limits.record('openai', { agent: A }, { input: 300, output: 200, total: 500 });
  // 1100 ≥ 1000. Under it when 1100 × (1 − f) < 1000 next window: f > 1/11, 65.45 s → 66.
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: false, retryAfterSec: 66, which: 'tokens', per: 'agent' });
  clock.advance(65_000); // 1100 × 55/60 = 1008.3
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: false, retryAfterSec: 1, which: 'tokens', per: 'agent' });
  clock.advance(1_000); // 1100 × 54/60 = 990
  assert.deepEqual(limits.admit('openai', { agent: A }, l), { ok: true });
  assert.deepEqual(limits.usage({ agent: A }), [{
    route: 'openai', per: 'agent', agent: A, window_ms: 60_000,
    window: { requests: 3, input: 630, output: 360, total: 990 },
    since_start: { requests: 3, input: 700, output: 400, total: 1100 },
  }]);
});

test('separate counters per agent, task and user; the refusal names which', () => {
  const { limits } = setup();
  const l: RouteLimits = { windowMs: 60_000, requests: 2 };
  // Task limit: two agents working in one task.
  assert.equal(limits.admit('r', { agent: A, task: 'task_T' }, l).ok, true);
  assert.equal(limits.admit('r', { agent: B, task: 'task_T' }, l).ok, true);
  assert.deepEqual(limits.admit('r', { agent: C, task: 'task_T' }, l), { ok: false, retryAfterSec: 90, which: 'requests', per: 'task' });
  // C was counted nowhere (not even its own agent counter).
  assert.deepEqual(limits.usage({ agent: C }), []);
  // User limit: two agents for one person, each in its own task.
  assert.equal(limits.admit('r', { agent: C, task: 'task_1', user: 'alice' }, l).ok, true);
  assert.equal(limits.admit('r', { agent: C, task: 'task_2', user: 'alice' }, l).ok, true);
  assert.deepEqual(limits.admit('r', { agent: B, task: 'task_3', user: 'alice' }, l), { ok: false, retryAfterSec: 90, which: 'requests', per: 'user' });
  // Agent limit first when the agent is the one out.
  assert.deepEqual(limits.admit('r', { agent: C, task: 'task_4', user: 'bob' }, l), { ok: false, retryAfterSec: 90, which: 'requests', per: 'agent' });
  // Another route: its own counters.
  assert.equal(limits.admit('other', { agent: C, task: 'task_T', user: 'alice' }, l).ok, true);
  assert.deepEqual(limits.usage({ route: 'r', task: 'task_T', user: 'alice' }).map((r) => [r.per, r.task ?? r.user, r.window.requests]), [['task', 'task_T', 2], ['user', 'alice', 2]]);
  assert.deepEqual(limits.usage({ route: 'r' }).map((r) => `${r.per}:${r.agent ?? r.task ?? r.user}:${r.since_start.requests}`), [
    `agent:${A}:1`, `agent:${B}:1`, `agent:${C}:2`, 'task:task_1:1', 'task:task_2:1', 'task:task_T:2', 'user:alice:2',
  ]);
});

test('tokens are recorded for every key of the request', () => {
  const { limits } = setup();
  const l: RouteLimits = { windowMs: 60_000, tokens: 100 };
  limits.admit('r', { agent: A, task: 'task_T', user: 'alice' }, l);
  limits.record('r', { agent: A, task: 'task_T', user: 'alice' }, { input: 70, output: 30, total: 100 });
  assert.deepEqual(limits.admit('r', { agent: B, task: 'task_T' }, l), { ok: false, retryAfterSec: 61, which: 'tokens', per: 'task' });
  assert.deepEqual(limits.admit('r', { agent: B, user: 'alice' }, l), { ok: false, retryAfterSec: 61, which: 'tokens', per: 'user' });
  assert.deepEqual(limits.admit('r', { agent: B, task: 'task_U', user: 'bob' }, l), { ok: true });
});

test('a route with no limits is never refused and still counted; a limit below 1 refuses all', () => {
  const { limits } = setup();
  for (let i = 0; i < 1000; i++) assert.equal(limits.admit('free', { agent: A }, undefined).ok, true);
  limits.record('free', { agent: A }, { input: 5, output: 6, total: 11 });
  assert.deepEqual(limits.usage({ route: 'free' })[0]!.since_start, { requests: 1000, input: 5, output: 6, total: 11 });
  assert.deepEqual(limits.usage({ route: 'free' })[0]!.window_ms, 60_000);
  assert.deepEqual(limits.admit('zero', { agent: A }, { windowMs: 10_000, requests: 0 }), { ok: false, retryAfterSec: 10, which: 'requests', per: 'agent' });
  assert.deepEqual(limits.admit('zero', { agent: A }, { windowMs: 10_000, tokens: 0 }), { ok: false, retryAfterSec: 11, which: 'tokens', per: 'agent' });
});

test('a changed window length starts the window counts afresh (totals kept)', () => {
  const { limits } = setup();
  limits.admit('r', { agent: A }, { windowMs: 60_000, requests: 1 });
  assert.equal(limits.admit('r', { agent: A }, { windowMs: 60_000, requests: 1 }).ok, false);
  assert.equal(limits.admit('r', { agent: A }, { windowMs: 30_000, requests: 1 }).ok, true);
  assert.deepEqual(limits.usage({ agent: A })[0]!.since_start.requests, 2);
});

test('the key cap: active counters are kept, a new key is refused (capacity) until one goes idle', () => {
  const { clock, metrics, limits } = setup(3);
  const l: RouteLimits = { windowMs: 60_000, requests: 100 };
  assert.equal(limits.admit('r', { agent: A, task: 'task_1', user: 'alice' }, l).ok, true);
  assert.equal(limits.size, 3);
  // Held keys keep working.
  assert.equal(limits.admit('r', { agent: A, task: 'task_1', user: 'alice' }, l).ok, true);
  // A new key: no room, fail closed; its counters idle 2 windows after their window start.
  assert.deepEqual(limits.admit('r', { agent: B }, l), { ok: false, retryAfterSec: 120, which: 'capacity', per: 'agent' });
  assert.deepEqual(limits.admit('r', { agent: A, task: 'task_2', user: 'alice' }, l), { ok: false, retryAfterSec: 120, which: 'capacity', per: 'task' });
  clock.advance(119_000);
  assert.deepEqual(limits.admit('r', { agent: B }, l), { ok: false, retryAfterSec: 1, which: 'capacity', per: 'agent' });
  clock.advance(1_000);
  assert.deepEqual(limits.admit('r', { agent: B }, l), { ok: true });
  assert.equal(limits.size, 1);
  assert.deepEqual(limits.usage({}).map((r) => r.agent), [B]);
  assert.equal(metrics.counter('tessera_proxy_limit_refusals_total', '').get({ route: 'r', which: 'capacity', per: 'agent' }), 2);
  assert.equal(metrics.counter('tessera_proxy_limit_refusals_total', '').get({ route: 'r', which: 'capacity', per: 'task' }), 1);
});

test('bounded under a flood of new task ids', () => {
  const { clock, limits } = setup(100);
  const l: RouteLimits = { windowMs: 1_000, requests: 1_000_000 };
  let refused = 0;
  let admittedAfterRefusal = 0;
  for (let i = 0; i < 20_000; i++) {
    if (i % 100 === 0) clock.advance(500);
    const r = limits.admit('r', { agent: A, task: `task_${i}` }, l);
    if (!r.ok) {
      refused++;
      assert.equal(r.which, 'capacity');
    } else if (refused > 0) admittedAfterRefusal++;
    assert.ok(limits.size <= 100);
  }
  assert.ok(refused > 0 && admittedAfterRefusal > 0, `${refused} refused, ${admittedAfterRefusal} admitted after`);
});

test('metrics: requests and tokens per route and kind, refusals per route/which/per; no id labels', async () => {
  const { metrics, limits } = setup();
  const l: RouteLimits = { windowMs: 60_000, requests: 1 };
  limits.admit('openai', { agent: A, task: 'task_T' }, l);
  limits.record('openai', { agent: A, task: 'task_T' }, { input: 12, output: 7, total: 19 });
  limits.admit('openai', { agent: A, task: 'task_T' }, l);
  const text = await metrics.render();
  assert.match(text, /^tessera_proxy_usage_requests_total\{route="openai"\} 1$/m);
  assert.match(text, /^tessera_proxy_usage_tokens_total\{kind="input",route="openai"\} 12$/m);
  assert.match(text, /^tessera_proxy_usage_tokens_total\{kind="output",route="openai"\} 7$/m);
  assert.match(text, /^tessera_proxy_limit_refusals_total\{per="agent",route="openai",which="requests"\} 1$/m);
  assert.doesNotMatch(text, /spiffe|task_T/);
});

test('record after the counter was dropped counts it anew; a clock stepping back does not corrupt counts', () => {
  const { clock, limits } = setup(1);
  limits.admit('r', { agent: A }, { windowMs: 60_000, requests: 5 });
  clock.advance(180_000);
  assert.equal(limits.admit('r', { agent: B }, { windowMs: 60_000, requests: 5 }).ok, true); // A dropped
  clock.advance(180_000);
  limits.record('r', { agent: A }, { input: 1, output: 2, total: 3 }); // B idle: dropped for A
  assert.deepEqual(limits.usage({}).map((r) => [r.agent, r.since_start]), [[A, { requests: 0, input: 1, output: 2, total: 3 }]]);
  clock.advance(-120_000);
  limits.record('r', { agent: A }, { input: 1, output: 1, total: 2 });
  assert.deepEqual(limits.usage({ agent: A })[0]!.since_start, { requests: 0, input: 2, output: 3, total: 5 });
});

test('limitError: 429 TESSERA_PROXY_RATE_LIMITED / 503 TESSERA_PROXY_LIMITS_FULL with retry_after_s', () => {
  const e = limitError('openai', { ok: false, retryAfterSec: 80, which: 'tokens', per: 'task' });
  assert.deepEqual([e.code, e.status, e.message, e.details], ['TESSERA_PROXY_RATE_LIMITED', 429, 'the model tokens limit of route openai per task is used up for this window; retry in 80 s', { route: 'openai', which: 'tokens', per: 'task', retry_after_s: 80 }]);
  const f = limitError('openai', { ok: false, retryAfterSec: 3, which: 'capacity', per: 'agent' });
  assert.deepEqual([f.code, f.status, f.details], ['TESSERA_PROXY_LIMITS_FULL', 503, { route: 'openai', retry_after_s: 3 }]);
});

const ADMIN_TOKEN = 'test-admin-token-for-proxy-usage';
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

test('GET /v1/admin/proxy/usage: rows per filter, admin token required, bad query refused with the exact code', async (t) => {
  const { limits } = setup();
  limits.admit('openai', { agent: A, task: 'task_T', user: 'alice' }, { windowMs: 60_000, tokens: 1000 });
  limits.record('openai', { agent: A, task: 'task_T', user: 'alice' }, { input: 12, output: 7, total: 19 });
  limits.admit('claude', { agent: B }, undefined);
  const app = createApp({ logger: silentLogger, replicaId: 'r1', bodyLimit: 65536, admin, agents });
  registerProxyUsageRoutes(app, { limits });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/admin/proxy/usage`;
  const get = (q: string, token = ADMIN_TOKEN) => fetch(`${base}${q}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  const all = await get('');
  assert.equal(all.status, 200);
  const rows = ((await all.json()) as { rows: { route: string; per: string }[] }).rows;
  assert.deepEqual(rows.map((r) => `${r.route}/${r.per}`), ['claude/agent', 'openai/agent', 'openai/task', 'openai/user']);
  const byTask = await get('?task=task_T&route=openai');
  assert.deepEqual(await byTask.json(), { rows: [{
    route: 'openai', per: 'task', task: 'task_T', window_ms: 60_000,
    window: { requests: 1, input: 12, output: 7, total: 19 }, since_start: { requests: 1, input: 12, output: 7, total: 19 },
  }] });
  const byAgent = await get(`?agent=${encodeURIComponent(B)}`);
  assert.deepEqual(((await byAgent.json()) as { rows: { agent: string; window_ms: number }[] }).rows.map((r) => [r.agent, r.window_ms]), [[B, 60_000]]);

  const code = async (r: Response): Promise<string> => ((await r.json()) as { error?: { code?: string }; code?: string }).error?.code ?? '';
  for (const [q, expected, status] of [
    ['?route=Bad Route', 'TESSERA_REQUEST_INVALID', 400],
    ['?route=openai&route=claude', 'TESSERA_REQUEST_INVALID', 400],
    ['?since=1h', 'TESSERA_REQUEST_INVALID', 400],
    ['?agent=', 'TESSERA_REQUEST_INVALID', 400],
    [`?user=${'u'.repeat(300)}`, 'TESSERA_REQUEST_INVALID', 400],
  ] as const) {
    const r = await get(q);
    assert.equal(r.status, status, q);
    assert.equal(await code(r), expected, q);
  }
  const noToken = await get('', '');
  assert.equal(noToken.status, 401);
  assert.equal(await code(noToken), 'TESSERA_ADMIN_TOKEN_MISSING');
  const badToken = await get('', 'tsr_admin_wrong');
  assert.equal(await code(badToken), 'TESSERA_ADMIN_TOKEN_INVALID');
});
