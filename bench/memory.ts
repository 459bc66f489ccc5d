/**
 * Resident memory of the BUILT server (dist/, started the way an operator starts it:
 * `node bin/tessera.js init` then `node bin/tessera.js server --config tessera.yaml`, as a child
 * process), read from /proc/<pid>/status (VmRSS: resident set now; VmHWM: its peak):
 *  - idle: ready (GET /readyz 200), then 3 s without requests;
 *  - loaded: after 1,000 distinct agents logged in (RFC 8693 exchange, `jwt` attestor with a
 *    local JWKS, Kubernetes template: 1,000 SPIFFE IDs) and those agents took 10,000 leases
 *    (10 each) from the PostgreSQL engine against a real throwaway PostgreSQL cluster
 *    (test/helpers/postgres.ts), 16 requests in flight; read 3 s after the last answer. The
 *    leases stay active (TTL 1 h), so they are all in the store and the PostgreSQL server.
 * Baseline, same run: a bare Node.js HTTP server (`node -e`, one `http.createServer`), the
 * floor every Node server starts from on this machine. Goal (issue): ≤ 200 MB loaded.
 * The whole measurement is repeated (context rows) with the server started with
 * MALLOC_ARENA_MAX=2: under load most of the growth is glibc arenas of worker threads (ADR 0186).
 * The store is SQLite (the default); the whole run is loopback. If dist/ is older than src/
 * (bin/tessera.js would then run the TypeScript sources through tsx), the bench builds first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, withDatabase } from '../test/helpers/postgres.js';
import { freePort, type BenchResult } from './lib.js';

const ROOT = new URL('..', import.meta.url).pathname;
const AGENTS = 1000;
const LEASES = 10_000;
const CONCURRENCY = 16;
const GOAL_MB = 200;
const ISSUER = 'https://bench-k8s.invalid';
const AUDIENCE = 'tessera-memory-bench';
const TD = 'bench.local';

/** VmRSS and VmHWM of a process, in MiB. */
export function rssOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** The same staleness rule as bin/tessera.js: every src/**.ts has a dist/src/**.js at least as new. */
function distIsCurrent(dir = join(ROOT, 'src'), out = join(ROOT, 'dist', 'src')): boolean {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const src = join(dir, e.name);
    if (e.isDirectory()) {
      if (!distIsCurrent(src, join(out, e.name))) return false;
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
      const built = join(out, `${e.name.slice(0, -3)}.js`);
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(src).mtimeMs) return false;
    }
  }
  return true;
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}: ${log().slice(-500)}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`the server was not ready within 60 s: ${log().slice(-500)}`);
}

/** Runs `fn(i)` for i in [0, n) with `concurrency` in flight. */
async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

function subjectToken(key: KeyObject, kid: string, i: number): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'ES256', kid, typ: 'JWT' })}.${b64({
    iss: ISSUER, aud: AUDIENCE, sub: `system:serviceaccount:bench:agent-${i}`, iat: now, nbf: now, exp: now + 3600,
    'kubernetes.io': { namespace: 'bench', serviceaccount: { name: `agent-${i}`, uid: `u${i}` }, pod: { name: `agent-${i}-pod`, uid: `p${i}` } },
  })}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** RSS of a bare Node HTTP server started the same way (child process, idle 3 s). */
async function bareNodeRss(): Promise<number> {
  const child = spawn(process.execPath, ['-e', "require('node:http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', () => process.stdout.write('up\\n'))"], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (c) => reject(new Error(`bare node exited with ${c}`)));
    });
    await sleep(3000);
    return rssOf(child.pid!).rss;
  } finally {
    child.kill('SIGTERM');
  }
}

async function json(res: Response, what: string, status = 200): Promise<Record<string, unknown>> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`${what}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Investigation hook (scratch scripts): called at the idle and loaded measurement points. */
let probe: ((at: 'idle' | 'loaded', pid: number) => Promise<void>) | undefined;
export function setProbe(fn: typeof probe): void {
  probe = fn;
}

export async function run(): Promise<BenchResult[]> {
  if (!distIsCurrent()) {
    process.stderr.write('  dist/ is older than src/: building (npm run build) so the built package is measured\n');
    const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit', timeout: 600_000 });
    if (b.status !== 0 || !distIsCurrent()) throw new Error('npm run build failed; the built server cannot be measured');
  }
  const baseline = await bareNodeRss();
  // The judged rows: the server as it starts by default. Context: the same load with glibc's
  // malloc arenas capped at 2 (docs/adr/0186-memory-thread-arenas.md), an operator's setting.
  const rows = await measure(baseline, {}, '', true);
  if (process.env.MALLOC_ARENA_MAX === undefined) {
    const capped = await measure(baseline, { MALLOC_ARENA_MAX: '2' }, ', started with MALLOC_ARENA_MAX=2 — context', false);
    rows.push(...capped.filter((r) => !r.name.startsWith('peak')));
  }
  return rows;
}

async function measure(baseline: number, env: Record<string, string>, suffix: string, judged: boolean): Promise<BenchResult[]> {
  const cluster = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-memory-'));
  let server: ChildProcess | undefined;
  try {
    // PostgreSQL: a management role for the engine and a group the leased users join.
    const su = new pg.Client({ connectionString: withDatabase(cluster.adminUrl, 'tessera') });
    await su.connect();
    const mgmtPassword = randomBytes(16).toString('hex');
    await su.query(`CREATE ROLE bench_mgmt LOGIN CREATEROLE PASSWORD '${mgmtPassword}'`);
    await su.query('GRANT pg_signal_backend TO bench_mgmt');
    await su.query('CREATE ROLE bench_reader NOLOGIN');
    await su.end();
    const mgmt = new URL(withDatabase(cluster.adminUrl, 'tessera'));
    mgmt.username = 'bench_mgmt';
    mgmt.password = mgmtPassword;

    // Tessera: a jwt attestor (Kubernetes template), a policy letting the bench namespace take
    // leases, every default otherwise but the per-source login limit (1,000 logins from one address).
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const kid = 'bench-k8s';
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }] }));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'bench.cedar'), `@id("bench-leases")
permit (principal, action == Tessera::Action::"cred.issue", resource == Tessera::Role::"postgres/reader")
when { principal.trust_domain == "${TD}" && principal.attestor_kind == "kubernetes" && principal.attestor == "k8s-bench" && principal.namespace == "bench" };
`);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    writeFileSync(join(dir, 'tessera.yaml'), `data_dir: ${join(dir, 'data')}
trust_domain: ${TD}
server:
  listen: 127.0.0.1:${port}
policy:
  dir: ${join(dir, 'policies')}
log:
  level: warn
tokens:
  login_rate_limit:
    per_source: { per_second: 100000, burst: 100000 }
attestors:
  - kind: jwt
    name: k8s-bench
    issuer: ${ISSUER}
    audience: ${AUDIENCE}
    jwks_file: ${join(dir, 'jwks.json')}
    template: kubernetes
    algorithms: [ES256]
`);
    const cli = [join(ROOT, 'bin', 'tessera.js')];
    const init = spawnSync(process.execPath, [...cli, 'init', '--config', join(dir, 'tessera.yaml'), '--out', join(dir, 'admin.token')], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    if (init.status !== 0) throw new Error(`tessera init failed: ${init.stderr.slice(-500)}`);
    const adminToken = readFileSync(join(dir, 'admin.token'), 'utf8').trim();

    let log = '';
    // TESSERA_BENCH_SERVER_NODE_ARGS: extra Node flags for the server (investigation, e.g. --heapsnapshot-signal=SIGUSR2).
    const nodeArgs = (process.env.TESSERA_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
    server = spawn(process.execPath, [...nodeArgs, ...cli, 'server', '--config', join(dir, 'tessera.yaml')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    server.stdout!.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-4000); });
    server.stderr!.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-4000); });
    await waitReady(url, server, () => log);
    const pid = server.pid!;
    await sleep(3000);
    const idle = rssOf(pid);
    await probe?.('idle', pid);

    const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    await json(await fetch(`${url}/v1/admin/engines/postgres/bench`, { method: 'PUT', headers: admin, body: JSON.stringify({ connection_url: mgmt.toString(), username_prefix: 'tsrm_', pool_size: 8 }) }), 'engine configure');
    await json(await fetch(`${url}/v1/admin/engines/postgres/bench/roles/reader`, { method: 'PUT', headers: admin, body: JSON.stringify({ groups: ['bench_reader'], default_ttl: '1h', max_ttl: '2h' }) }), 'engine role');

    const agentTokens: string[] = new Array<string>(AGENTS);
    await pool(AGENTS, CONCURRENCY, async (i) => {
      const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: subjectToken(privateKey, kid, i), subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
      const r = await json(await fetch(`${url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }), `login of agent ${i}`);
      agentTokens[i] = String(r.access_token);
    });
    await pool(LEASES, CONCURRENCY, async (i) => {
      await json(await fetch(`${url}/v1/creds/postgres/reader`, { method: 'POST', headers: { authorization: `Bearer ${agentTokens[i % AGENTS]}`, 'content-type': 'application/json' }, body: '{}' }), `lease ${i}`, 201);
    });
    await sleep(3000);
    const loaded = rssOf(pid);
    await probe?.('loaded', pid);

    const base = { name: 'bare Node.js HTTP server (node -e, idle)', value: baseline, unit: 'MB' };
    return [
      { name: `RSS of the built server (bin/tessera.js server), idle after start${suffix}`, value: idle.rss, unit: 'MB', baseline: base, ratio: idle.rss / baseline, ratioNote: 'tessera / bare node' },
      {
        name: `RSS of the built server after ${AGENTS.toLocaleString('en-US')} agents logged in and took ${LEASES.toLocaleString('en-US')} PostgreSQL leases (all active)${suffix}`,
        value: loaded.rss, unit: 'MB', baseline: base, ratio: loaded.rss / baseline, ratioNote: 'tessera / bare node', ...(judged ? { goal: `≤ ${GOAL_MB} MB loaded`, met: loaded.rss <= GOAL_MB } : {}),
      },
      { name: 'peak RSS of the built server during the run (VmHWM) — context', value: loaded.hwm, unit: 'MB', baseline: base, ratio: loaded.hwm / baseline, ratioNote: 'tessera / bare node' },
    ];
  } finally {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { server?.kill('SIGKILL'); resolve(); }, 15_000);
        server!.once('exit', () => { clearTimeout(t); resolve(); });
      });
    }
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
