/**
 * DPoP-bound requests against unbound ones, over HTTP, same route, same run (issue 8:
 * "DPoP-bound request: ≤ 1.5× an unbound one").
 *
 * The whole server (src/main.ts), loopback only, bounded. One agent logs in twice: once with a
 * DPoP proof (a token bound to its ES256 key) and once without (a Bearer token). Both tokens are
 * re-presented, so their own verification is a cache hit either way; what the bound request adds
 * is the proof: parse, key lookup (cached per key), htm/htu/iat/ath checks, one ECDSA P-256
 * verification (node:crypto on the libuv pool) and the jti replay-cache entry. Each request
 * carries its own proof (a proof is good once), made before the run.
 *
 * Rows:
 *  - throughput, secret read (verify + DPoP + Cedar + KV decrypt + audit): the goal row — a
 *    real agent request;
 *  - throughput, GET /v1/whoami (authentication only): context, the worst case, where the proof's
 *    ECDSA verification is most of the work;
 *  - p50 latency of sequential requests on both routes: context (one request at a time).
 * Ratios are time ratios: unbound throughput / bound throughput, bound p50 / unbound p50.
 */
import { generateKeyPairSync, randomBytes, sign, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { startTessera } from '../src/main.js';
import { silentLogger } from '../src/shared/logger.js';
import { percentile, type BenchResult } from './lib.js';
import { httpLoad, loadToolLabel, type HttpLoadResult } from './http-load.js';

const CONCURRENCY = 32;
const SECONDS = 3;
const WARMUP = 1;
const SEQUENTIAL = 1500;
const GOAL = 1.5;
/** Proofs made per run: at least the requests of the Bearer run of the same route, plus margin. */
const MAX_PROOFS = 200_000;

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function prover() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } });
  return (htm: string, htu: string, token?: string): string => {
    const claims: Record<string, unknown> = { jti: randomBytes(16).toString('base64url'), htm, htu, iat: Math.floor(Date.now() / 1000) };
    if (token) claims.ath = createHash('sha256').update(token).digest('base64url');
    const input = `${header}.${b64(claims)}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
}

function checked(what: string, r: HttpLoadResult): number {
  if (r.unexpected > 0) throw new Error(`${what}: ${r.unexpected} unexpected responses (${r.tool}), first: ${r.firstUnexpected ?? '?'}`);
  if (r.capped) throw new Error(`${what}: ran out of proofs (the rate would be understated)`);
  return r.rps;
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-dpop-'));
  const policies = join(dir, 'policies');
  mkdirSync(policies);
  writeFileSync(join(policies, 'bench.cedar'), '@id("bench") permit (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"bench") when { principal.trust_domain == "tessera.local" };\n');
  const config = parseConfig({
    data_dir: dir,
    server: { listen: '127.0.0.1:0' },
    policy: { dir: policies, watch: false },
    audit: { sinks: [{ kind: 'store' }] },
    log: { level: 'silent' },
    // One key sends every proof of the run: the per-key replay quota is raised to the total.
    tokens: { dpop: { replay_cache_size: 1_000_000, replay_cache_per_key: 1_000_000 } },
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger });
  try {
    const url = tessera.url;
    const admin = { authorization: `Bearer ${tessera.adminToken}`, 'content-type': 'application/json' };
    const put = await fetch(`${url}/v1/admin/secrets/bench/s`, { method: 'PUT', headers: admin, body: JSON.stringify({ value: 'bench-value', mode: 'read' }) });
    if (put.status !== 200) throw new Error(`bench secret write failed: ${put.status}`);
    const proof = prover();
    const login = async (bound: boolean): Promise<string> => {
      const j = await fetch(`${url}/v1/admin/join-tokens`, { method: 'POST', headers: admin, body: JSON.stringify({ spiffe_id: 'spiffe://tessera.local/ns/bench/sa/agent', ttl: '10m' }) });
      const joinToken = ((await j.json()) as { token: string }).token;
      const res = await fetch(`${url}/v1/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(bound ? { dpop: proof('POST', `${url}/v1/oauth/token`) } : {}) },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: joinToken, subject_token_type: 'urn:tessera:token-type:join-token' }),
      });
      const body = (await res.json()) as { access_token?: string; token_type?: string };
      if (res.status !== 200 || !body.access_token || body.token_type !== (bound ? 'DPoP' : 'Bearer')) throw new Error(`bench login failed: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    };
    const bearer = await login(false);
    const bound = await login(true);
    const client = loadToolLabel();
    const base = { url, concurrency: CONCURRENCY, seconds: SECONDS, warmupSeconds: WARMUP, method: 'GET', expectStatus: 200 };

    const pair = async (path: string): Promise<{ unbound: number; bound: number }> => {
      const unbound = checked(`${path} Bearer`, await httpLoad({ ...base, path, tokens: [bearer] }));
      // Enough single-use proofs for the bound run at 3× the unbound rate: it is slower on a
      // steady machine, but on a shared one the load can drop between the two runs (with too few,
      // the client would cycle back to used proofs: TESSERA_DPOP_REPLAYED).
      const n = Math.min(MAX_PROOFS, Math.ceil(unbound * (SECONDS + WARMUP) * 3) + 5000);
      const proofs = Array.from({ length: n }, () => proof('GET', url + path, bound));
      const boundRps = checked(`${path} DPoP`, await httpLoad({ ...base, path, tokens: [bound], scheme: 'DPoP', cycled: { name: 'DPoP', values: proofs } }));
      return { unbound, bound: boundRps };
    };
    const secret = await pair('/v1/secrets/bench/s');
    const whoami = await pair('/v1/whoami');

    // One request at a time, bound and unbound alternating (so drift in the machine's load hits
    // both alike): p50 of each, proofs made outside the timed part.
    const sequential = async (path: string): Promise<{ unbound: number; bound: number }> => {
      const out = { unbound: [] as number[], bound: [] as number[] };
      for (let i = 0; i < 2 * SEQUENTIAL; i++) {
        const dpop = i % 2 === 1;
        const headers: Record<string, string> = dpop ? { authorization: `DPoP ${bound}`, dpop: proof('GET', url + path, bound) } : { authorization: `Bearer ${bearer}` };
        const t = process.hrtime.bigint();
        const res = await fetch(url + path, { headers });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
        (dpop ? out.bound : out.unbound).push(Number(process.hrtime.bigint() - t) / 1000);
      }
      return { unbound: percentile(out.unbound.sort((a, b) => a - b), 50), bound: percentile(out.bound.sort((a, b) => a - b), 50) };
    };
    const seqSecret = await sequential('/v1/secrets/bench/s');
    const seqWho = await sequential('/v1/whoami');
    const seq = { secretUnbound: seqSecret.unbound, secretBound: seqSecret.bound, whoUnbound: seqWho.unbound, whoBound: seqWho.bound };

    const tput = (u: number) => ({ name: `the same request with a Bearer token (cache hit), concurrency ${CONCURRENCY}`, value: u, unit: 'req/s' });
    return [
      {
        name: `DPoP-bound secret read over HTTP (proof per request: ECDSA verify + replay cache; verify + Cedar + KV decrypt + audit, concurrency ${CONCURRENCY}, ${client})`,
        value: secret.bound, unit: 'req/s', baseline: tput(secret.unbound), ratio: secret.unbound / secret.bound, ratioNote: 'time per request, bound / unbound',
        goal: `≤ ${GOAL}× an unbound request`, met: secret.unbound / secret.bound <= GOAL,
      },
      {
        name: `DPoP-bound GET /v1/whoami over HTTP (authentication only: the proof is most of the work, concurrency ${CONCURRENCY}, ${client}) — context, worst case`,
        value: whoami.bound, unit: 'req/s', baseline: tput(whoami.unbound), ratio: whoami.unbound / whoami.bound, ratioNote: 'time per request, bound / unbound',
      },
      {
        name: 'DPoP-bound secret read, p50 of sequential requests (one at a time, alternating with Bearer, Node fetch) — context',
        value: seq.secretBound, unit: 'µs', baseline: { name: 'Bearer, same route', value: seq.secretUnbound, unit: 'µs' }, ratio: seq.secretBound / seq.secretUnbound, ratioNote: 'bound / unbound',
      },
      {
        name: 'DPoP-bound GET /v1/whoami, p50 of sequential requests (one at a time, alternating with Bearer, Node fetch) — context',
        value: seq.whoBound, unit: 'µs', baseline: { name: 'Bearer, same route', value: seq.whoUnbound, unit: 'µs' }, ratio: seq.whoBound / seq.whoUnbound, ratioNote: 'bound / unbound',
      },
    ];
  } finally {
    await tessera.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
