/**
 * Task tokens and delegation (issue 8 "Performance"), loopback only, bounded. Every row against
 * its baseline in the same run:
 *  - open a root task / delegate a child over HTTP (RFC 8693 exchange, Cedar token.delegate, the
 *    task row and its audit event committed together, audit on) vs raw node:crypto ES256
 *    sign+verify pairs on one core. Each exchange is one verification (the subject token is
 *    re-presented: a verified-token cache hit, as an orchestrator does) and one signature. Goal:
 *    ≥ 0.5 of the raw limit. Context rows: the server's event-loop CPU per exchange (Linux
 *    /proc, unaffected by time spent waiting for a core) against one raw pair's CPU.
 *  - verify a depth-5 delegated task token with its revocation check (task and 5 ancestors,
 *    chain, user, jti: in-memory sets with 1,000 unrelated revocations in force) vs an agent
 *    token, in process (the token service the enforcement points use), with the verified-token
 *    cache off (ECDSA every time: the claims of a task token are larger) and on (what an agent
 *    re-presenting its token sees). Goal: ≤ 1.2× the agent token's time.
 *  - revoke a task tree of 10,000 nodes (root → 20 → 400 → 9,579, inserted in the store
 *    directly; tokens minted for a sample of nodes) with leases issued under 300 of them:
 *    requests with those tokens in 4 loops during the revocation; none sent after the call
 *    returned may be accepted (goal 0), and the leases must all be dropped within 10 s (the call
 *    returns once they are).
 * Rate limits are lifted (the bench measures the exchange, not the limiter). Numbers from this
 * shared 2-core machine are indicative only; see docs/benchmarks.md.
 */
import http from 'node:http';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { startTessera, type RunningTessera } from '../src/main.js';
import { silentLogger } from '../src/shared/logger.js';
import { systemClock } from '../src/shared/clock.js';
import { resolveMasterKey } from '../src/secrets/index.js';
import { createKeyManager, createTokenService, type TokenService } from '../src/tokens/index.js';
import { createRevocationService } from '../src/revocations/index.js';
import { createTrustDomains } from '../src/identity/trust-domains.js';
import { MemoryAuditWriter } from '../src/audit/port.js';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { insertTask, nestActors, type TaskNode } from '../src/tasks/index.js';
import type { DynamicEngine, EngineData } from '../src/leases/index.js';
import { httpLoad, loadToolLabel, type HttpLoadResult } from './http-load.js';
import { throughput, type BenchResult } from './lib.js';

const CONCURRENCY = 32;
const SECONDS = 3;
const GOAL_EXCHANGE = 0.5;
const GOAL_VERIFY = 1.2;
const TREE = { fanout: [20, 20, 24], leases: 300, sampleTokens: 200 } as const;
const LEASES_GOAL_MS = 10_000;
const ORCH = 'spiffe://tessera.local/ns/bench/sa/orchestrator';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';

const POLICIES = `
@id("bench-delegate") permit (principal, action == Tessera::Action::"token.delegate", resource) when { principal.trust_domain == "tessera.local" };
@id("bench-creds") permit (principal, action == Tessera::Action::"cred.issue", resource in Tessera::Engine::"bench") when { principal.trust_domain == "tessera.local" };
`;

/** A dynamic engine over a map: the revocation path (disable, then cleanup) without a network. */
class BenchEngine implements DynamicEngine {
  readonly name = 'bench';
  readonly live = new Set<string>();
  role(name: string) {
    return name === 'reader' ? { defaultTtlMs: 600_000, maxTtlMs: 600_000, renewable: false } : undefined;
  }
  prepare(lease: { id: string }): EngineData {
    return { username: `b_${lease.id}` };
  }
  async create(_lease: unknown, data: EngineData) {
    this.live.add(String(data.username));
    return { data: { username: String(data.username), password: randomBytes(12).toString('base64url') } };
  }
  async disable(data: EngineData): Promise<void> {
    this.live.delete(String(data.username));
  }
  async revoke(): Promise<void> {}
  // The batched revocation path, as the PostgreSQL engine has it (one backend round trip per chunk).
  async disableMany(items: readonly EngineData[]): Promise<{ failed: { index: number; error: unknown }[] }> {
    for (const d of items) this.live.delete(String(d.username));
    return { failed: [] };
  }
  async revokeMany(): Promise<{ failed: { index: number; error: unknown }[] }> {
    return { failed: [] };
  }
}

function rawPairs(): number {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.from(`${Buffer.from('{"alg":"ES256","kid":"k"}').toString('base64url')}.${randomBytes(600).toString('base64url')}`);
  const opts = { dsaEncoding: 'ieee-p1363' as const };
  let n = 0;
  const start = performance.now();
  while (performance.now() < start + 1500 && n < 200_000) {
    const s = sign('sha256', data, { key: privateKey, ...opts });
    if (!verify('sha256', data, { key: publicKey, ...opts }, s)) throw new Error('raw verify failed');
    n++;
  }
  return (n / (performance.now() - start)) * 1000;
}

/**
 * CPU time of this process's main thread (the event loop) and of the whole process, in clock
 * ticks (Linux /proc; undefined elsewhere). Unlike throughput, it hardly depends on how many
 * other processes share the machine: time spent waiting for a core is not counted.
 */
function cpuTicks(): { main: number; all: number } | undefined {
  const read = (path: string): number => {
    const f = readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime (proc(5) fields 14, 15)
  };
  try {
    return { main: read(`/proc/self/task/${process.pid}/stat`), all: read('/proc/self/stat') };
  } catch {
    return undefined;
  }
}
const TICK_US = 10_000; // USER_HZ = 100 on Linux

/** Raw sign+verify CPU per pair on this thread, µs (the per-exchange crypto floor). */
function rawPairCpuUs(): number | undefined {
  const t0 = cpuTicks();
  const w0 = performance.now();
  const rate = rawPairs();
  const t1 = cpuTicks();
  if (!t0 || !t1 || t1.main === t0.main) return undefined;
  return (((t1.main - t0.main) * TICK_US) / (((performance.now() - w0) / 1000) * rate));
}

function checked(what: string, r: HttpLoadResult): number {
  if (r.unexpected > 0) throw new Error(`${what}: ${r.unexpected} unexpected responses (${r.tool}), first: ${r.firstUnexpected ?? '?'}`);
  return r.rps;
}

/** The fields of Tessera's answers the bench reads. */
interface Answer {
  readonly access_token: string;
  readonly txn: string;
  readonly token: string;
  readonly leases_revoked: number;
}

export async function post(url: string, path: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: Answer }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json()) as Answer };
}

export async function start(dir: string, engine?: DynamicEngine): Promise<RunningTessera> {
  const policyDir = join(dir, 'policies');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'bench.cedar'), POLICIES);
  const lifted = { per_second: 1_000_000, burst: 1_000_000 };
  const config = parseConfig({
    data_dir: dir, server: { listen: '127.0.0.1:0' }, policy: { dir: policyDir, watch: false }, audit: { sinks: [{ kind: 'store' }] }, log: { level: 'silent' },
    tokens: { agent_ttl: '15m', login_rate_limit: { per_identity: lifted, per_source: lifted }, delegation: { rate_limit: lifted, max_depth: 5 } },
  });
  return startTessera({ config, mode: 'dev', logger: silentLogger, ...(engine ? { engines: [engine] } : {}) });
}

export async function login(t: RunningTessera, spiffeId: string): Promise<string> {
  const admin = { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' };
  const jt = await post(t.url, '/v1/admin/join-tokens', JSON.stringify({ spiffe_id: spiffeId, ttl: '10m' }), admin);
  const r = await post(t.url, '/v1/oauth/token', new URLSearchParams({ grant_type: GRANT, subject_token: jt.body.token, subject_token_type: 'urn:tessera:token-type:join-token' }).toString(), { 'content-type': 'application/x-www-form-urlencoded' });
  if (r.status !== 200) throw new Error(`bench login: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.access_token;
}

export const form = (p: Record<string, string>): string => new URLSearchParams({ grant_type: GRANT, subject_token_type: ACCESS, ...p }).toString();

/** Root task opening and delegation over HTTP vs raw sign+verify. */
export async function exchanges(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-tasks-'));
  const t = await start(dir);
  try {
    const agent = await login(t, ORCH);
    const rootBody = form({ subject_token: agent, scope: 'secret:bench/** tool:bench/*', purpose: 'bench root task' });
    const root = await post(t.url, '/v1/oauth/token', rootBody, { 'content-type': 'application/x-www-form-urlencoded' });
    if (root.status !== 200) throw new Error(`bench root task: ${root.status} ${JSON.stringify(root.body)}`);
    const childBody = form({ subject_token: root.body.access_token, label: 'worker', scope: 'secret:bench/a' });
    const base = { url: t.url, concurrency: CONCURRENCY, seconds: SECONDS, method: 'POST', path: '/v1/oauth/token', contentType: 'application/x-www-form-urlencoded', expectStatus: 200 };
    const raw1 = rawPairs();
    const c0 = cpuTicks();
    const openRun = await httpLoad({ ...base, bodies: [rootBody] });
    const c1 = cpuTicks();
    const delegateRun = await httpLoad({ ...base, bodies: [childBody] });
    const c2 = cpuTicks();
    const open = checked('open root task', openRun);
    const delegate = checked('delegate', delegateRun);
    const pairs = Math.max(raw1, rawPairs());
    const pairCpu = rawPairCpuUs();
    const both = 1 / (1 / open + 1 / delegate);
    const baseline = { name: 'node:crypto ES256 sign+verify pairs, one core', value: pairs, unit: 'pairs/s' };
    const client = loadToolLabel();
    return [
      { name: `open a root task over HTTP (RFC 8693, Cedar token.delegate, task row + audit event committed, concurrency ${CONCURRENCY}, ${client})`, value: open, unit: 'exchanges/s', baseline, ratio: open / pairs, goal: '≥ 50 % of raw sign+verify', met: open / pairs >= GOAL_EXCHANGE },
      { name: `delegate a child (label) over HTTP (narrowing, Cedar, task row + audit, concurrency ${CONCURRENCY}, ${client})`, value: delegate, unit: 'exchanges/s', baseline, ratio: delegate / pairs, goal: '≥ 50 % of raw sign+verify', met: delegate / pairs >= GOAL_EXCHANGE },
      { name: 'open + delegate, as one pair (harmonic combination of the two rows above) — context', value: both, unit: 'pairs/s', baseline, ratio: both / pairs },
      ...cpuRows(openRun, delegateRun, c0, c1, c2, pairCpu),
    ];
  } finally {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Context: CPU per exchange (event loop, and the whole server process: + libuv pool signing and
 * fdatasync), measured (warm-up included) during the two runs above, against the CPU of one raw
 * sign+verify pair. The throughput goal needs the event loop's share at ≤ 2 × a raw pair.
 */
function cpuRows(openRun: HttpLoadResult, delegateRun: HttpLoadResult, c0: ReturnType<typeof cpuTicks>, c1: ReturnType<typeof cpuTicks>, c2: ReturnType<typeof cpuTicks>, pairCpu: number | undefined): BenchResult[] {
  if (!c0 || !c1 || !c2 || pairCpu === undefined) return [];
  const rows: BenchResult[] = [];
  const baseline = { name: 'CPU of one raw ES256 sign+verify pair, same thread', value: pairCpu, unit: 'µs' };
  for (const [what, run, a, b] of [['open a root task', openRun, c0, c1], ['delegate a child', delegateRun, c1, c2]] as const) {
    const n = run.requests + (run.warmupRequests ?? 0);
    if (n <= 0) continue;
    const main = ((b.main - a.main) * TICK_US) / n;
    const all = ((b.all - a.all) * TICK_US) / n;
    // With the node fallback client the process also runs the client (a worker thread): no whole-process figure then.
    const whole = run.tool === 'wrk' ? `; the whole process: ${Math.round(all)} µs` : '';
    rows.push({ name: `${what}: server event-loop CPU per exchange (Linux /proc, ${n} exchanges${whole}) — context`, value: main, unit: 'µs', baseline, ratio: main / pairCpu, ratioNote: 'event-loop CPU / raw pair CPU' });
  }
  return rows;
}

/** A token service with a real revocation index holding 1,000 unrelated revocations. */
async function verifier(cacheSize: number): Promise<{ tokens: TokenService; agent: string; task: string; close: () => Promise<void> }> {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const audit = new MemoryAuditWriter();
  const trustDomains = createTrustDomains('tessera.local');
  const noLeases = { matched: 0, revoked: 0, retrying: 0, disabled: 0, irrevocable: 0 };
  const revocations = createRevocationService({
    store, clock: systemClock, audit, trustDomains, agents: { isKnown: async () => true },
    leases: { revoke: async () => ({ lease_id: '', state: 'revoked' }), revokeByOwner: async () => noLeases, revokeByTask: async () => noLeases, revokeByUser: async () => noLeases, get: async () => undefined, countRevocable: async () => 0 },
  });
  for (let i = 0; i < 1000; i++) await revocations.revoke({ kind: i % 2 ? 'task' : 'agent', target: i % 2 ? `task_${String(i).padStart(22, '0')}` : `spiffe://tessera.local/ns/other/sa/a${i}` });
  const master = { sealer: resolveMasterKey({ config: {}, dataDir: mkdtempSync(join(tmpdir(), 'tessera-bench-mk-')), dev: true, env: {} }).sealer };
  const keys = createKeyManager({ store, sealer: master.sealer, clock: systemClock, audit, rotationPeriodMs: 86_400_000, overlapMs: 3_600_000, maxTokenTtlMs: 900_000 });
  await keys.ensureKeys();
  const issuer = 'https://tessera.bench';
  const tokens = createTokenService({ keys, clock: systemClock, issuer, agentTtlMs: 900_000, skewMs: 30_000, revocations, trustDomains, verifiedCacheSize: cacheSize });
  const facts = { attestor: 'k8s-prod', attestorKind: 'kubernetes' as const, attributes: { namespace: 'bench', service_account: 'orchestrator', pod: 'p-1' } };
  const agent = tokens.issueAgentToken({ spiffeId: ORCH, ...facts }, { audience: [issuer] }).token;
  const txns = Array.from({ length: 6 }, (_, i) => `task_${String(100_000 + i).padStart(22, '0')}`);
  const actors = [{ sub: ORCH }, ...Array.from({ length: 5 }, (_, i) => (i % 2 ? { sub: ORCH, label: `worker-${i}` } : { sub: `spiffe://tessera.local/ns/bench/sa/sub-${i}` }))];
  const task = tokens.issueTaskToken({
    sub: ORCH, aud: issuer, exp: Math.floor(Date.now() / 1000) + 900, act: nestActors(actors), txn: txns[5]!, ptxn: txns[4]!, rtxn: txns[0]!, anc: txns.slice(0, 5),
    scope: 'secret:bench/a/** tool:bench/query cred:bench/reader', purpose: 'bench: a depth-5 delegated task', depth: 5, max_depth: 8, tctx: { ticket: 'INC-42', step: '5' },
    tessera: { attestor: facts.attestor, kind: facts.attestorKind, attrs: facts.attributes },
  }).token;
  return { tokens, agent, task, close: () => store.close() };
}

export async function verification(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  for (const [cache, label] of [[0, 'verified-token cache off: ECDSA every time'], [10_000, 'verified-token cache on: the token re-presented']] as const) {
    const v = await verifier(cache);
    try {
      const run = (token: string) => throughput(() => v.tokens.verify(token, { audience: 'https://tessera.bench' }), { ms: 2000, concurrency: CONCURRENCY, maxOps: 2_000_000 });
      // Interleaved twice, the better of each: the machine is shared.
      const agentRate = Math.max(await run(v.agent), await run(v.agent));
      const taskRate = Math.max(await run(v.task), await run(v.task));
      const ratio = agentRate / taskRate; // time per task verification / time per agent verification
      out.push({
        name: `verify a depth-5 delegated task token with its revocation check (task + 5 ancestors + chain; 1,000 revocations in force), in process, ${label}`,
        value: taskRate, unit: 'verifications/s', baseline: { name: 'the same for an agent token', value: agentRate, unit: 'verifications/s' }, ratio, ratioNote: 'time per task token / per agent token', goal: `≤ ${GOAL_VERIFY}×`, met: ratio <= GOAL_VERIFY,
      });
    } finally {
      await v.close();
    }
  }
  return out;
}

interface Reply { status: number; sentAt: number }

function get(agent: http.Agent, url: URL, path: string, token: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = http.request({ host: url.hostname, port: url.port, method: 'GET', path, headers: { authorization: `Bearer ${token}` }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sentAt }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

/** A 10,000-node tree, leases under 300 nodes; revoke the root while requests run. */
export async function treeRevocation(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-tree-'));
  const engine = new BenchEngine();
  const t = await start(dir, engine);
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    const agentToken = await login(t, ORCH);
    const root = await post(t.url, '/v1/oauth/token', form({ subject_token: agentToken, scope: 'cred:bench/reader', purpose: 'bench tree', max_depth: '3' }), { 'content-type': 'application/x-www-form-urlencoded' });
    if (root.status !== 200) throw new Error(`bench tree root: ${root.status} ${JSON.stringify(root.body)}`);
    const rootTxn = root.body.txn;
    const rootClaims = JSON.parse(Buffer.from(root.body.access_token.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number; tessera: { attestor: string; kind: 'join_token'; attrs: Record<string, string> } };
    // The tree below the root, written straight to the store (setup, not measured).
    const now = Date.now();
    const nodes: { node: TaskNode; anc: string[] }[] = [];
    let level: { txn: string; anc: string[] }[] = [{ txn: rootTxn, anc: [] }];
    for (let d = 1; d <= TREE.fanout.length; d++) {
      const next: { txn: string; anc: string[] }[] = [];
      for (const p of level) {
        for (let i = 0; i < TREE.fanout[d - 1]!; i++) {
          if (nodes.length + 1 >= 10_000) break;
          const txn = `task_${randomBytes(16).toString('base64url')}`;
          const anc = [...p.anc, p.txn];
          const actors = [{ sub: ORCH }, ...anc.slice(1).map((_, k) => ({ sub: ORCH, label: `l${k}` })), { sub: ORCH, label: `n${d}` }];
          nodes.push({ anc, node: { txn, parent: p.txn, root: rootTxn, depth: d, maxDepth: 3, sub: ORCH, actor: ORCH, actors, label: `n${d}`, user: null, scope: ['cred:bench/reader'], purpose: 'bench tree', tctx: {}, audience: [t.url], jkt: null, jtiHmac: randomBytes(32).toString('hex'), createdAt: now, expiresAt: rootClaims.exp * 1000 } });
          next.push({ txn, anc });
        }
      }
      level = next;
    }
    for (let i = 0; i < nodes.length; i += 500) {
      await t.store.transaction(async (tx) => {
        for (const n of nodes.slice(i, i + 500)) await insertTask(tx, n.node, n.anc);
      });
    }
    // Tokens for a sample of the deepest nodes, signed by the server's own key.
    const master = resolveMasterKey({ config: t.config.master_key, dataDir: dir, dev: true, env: process.env });
    const keys = createKeyManager({ store: t.store, sealer: master.sealer, clock: systemClock, audit: t.audit, rotationPeriodMs: t.config.tokens.signing.rotation_period, overlapMs: t.config.tokens.signing.overlap, maxTokenTtlMs: t.config.tokens.task_ttl });
    await keys.ensureKeys();
    const minter = createTokenService({ keys, clock: systemClock, issuer: t.url, agentTtlMs: 300_000, skewMs: 30_000, revocations: { isRevoked: () => false, isAgentRevoked: () => false }, trustDomains: createTrustDomains('tessera.local') });
    const deep = nodes.filter((n) => n.node.depth === 3);
    const sample = Array.from({ length: TREE.sampleTokens }, (_, i) => deep[Math.floor((i * deep.length) / TREE.sampleTokens)]!);
    const tokens = sample.map((n) => minter.issueTaskToken({
      sub: ORCH, aud: t.url, exp: rootClaims.exp, act: nestActors(n.node.actors), txn: n.node.txn, ptxn: n.node.parent!, rtxn: rootTxn, anc: n.anc,
      scope: 'cred:bench/reader', purpose: 'bench tree', depth: 3, max_depth: 3, tessera: rootClaims.tessera,
    }).token);
    // Leases under 300 nodes.
    for (let i = 0; i < TREE.leases; i++) {
      const r = await post(t.url, '/v1/creds/bench/reader', '{}', { authorization: `Bearer ${tokens[i % tokens.length]}`, 'content-type': 'application/json' });
      if (r.status !== 201) throw new Error(`bench lease: ${r.status} ${JSON.stringify(r.body)}`);
    }
    const url = new URL(t.url);
    let returnedAt = Infinity;
    let acceptedAfter = 0;
    let stop = false;
    let k = 0;
    const deadline = performance.now() + 60_000;
    const loop = async (): Promise<void> => {
      while (!stop && performance.now() < deadline) {
        const r = await get(httpAgent, url, '/v1/whoami', tokens[k++ % tokens.length]!);
        if (r.status === 200 && r.sentAt > returnedAt) acceptedAfter++;
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    await new Promise((r) => setTimeout(r, 50));
    const startedAt = performance.now();
    const rev = await post(t.url, '/v1/admin/revocations', JSON.stringify({ kind: 'task', target: rootTxn, reason: 'bench' }), { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' });
    returnedAt = performance.now();
    if (rev.status !== 201) throw new Error(`bench revoke: ${rev.status} ${JSON.stringify(rev.body)}`);
    // Keep the loops going a little after the return, bounded by request count.
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(loops);
    const dropMs = returnedAt - startedAt;
    if (rev.body.leases_revoked + 1 < TREE.leases || engine.live.size > 0) throw new Error(`bench: ${rev.body.leases_revoked} of ${TREE.leases} leases revoked, ${engine.live.size} credentials live`);
    const baseline = { name: 'the 10 s bound', value: LEASES_GOAL_MS, unit: 'ms' };
    return [
      { name: `revoke a task tree of ${nodes.length + 1} nodes: requests sent after the call returned and still accepted (4 loops, ${TREE.sampleTokens} depth-3 tokens)`, value: acceptedAfter, unit: 'requests', goal: '0', met: acceptedAfter === 0 },
      { name: `revoke a task tree of ${nodes.length + 1} nodes: the call, ${rev.body.leases_revoked} leases under the tree dropped at their backend before it returns`, value: dropMs, unit: 'ms', baseline, ratio: dropMs / LEASES_GOAL_MS, ratioNote: 'time / bound', goal: '≤ 10 s', met: dropMs <= LEASES_GOAL_MS },
    ];
  } finally {
    httpAgent.destroy();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  return [...(await exchanges()), ...(await verification()), ...(await treeRevocation())];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
