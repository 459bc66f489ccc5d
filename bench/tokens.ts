/**
 * Token hot paths through the whole server (src/main.ts), loopback only, bounded.
 *
 * Raw limit, same run: node:crypto ES256 sign+verify pairs per second on one core (a login is one
 * verification of the attestation token and one signature), and verifications per second (a
 * request is one verification). Measured:
 *  - login throughput: RFC 8693 token exchange over HTTP with a `jwt` attestor reading a local
 *    JWKS file (subject tokens are reusable, so no one-time join token is consumed), audit on.
 *    Twice: with fresh subject tokens, more distinct than the attestation cache holds
 *    (src/identity/attestation.ts, 10,000) cycled in order, so every login verifies the
 *    attestation JWT (the goal row: the honest comparison with raw sign+verify); and with a fleet
 *    of pods re-presenting the same projected token, as the SDK does every few minutes (cache
 *    hits: the attestation is not re-verified, every other login step still runs);
 *  - token verification throughput: `GET /v1/whoami` verifies the bearer
 *    token and answers its identity without touching the store — verification and HTTP only. Twice: with
 *    more distinct tokens than the service's verified-token cache holds, cycled in order (every
 *    request misses the cache and runs ECDSA: the honest comparison with the raw limit), and with
 *    one token repeated (cache hits: what an agent re-using its token sees);
 *  - for context: a policy-checked secret read (verify + Cedar + KV decrypt + audit).
 *  - for context: `GET /healthz` (no token, no crypto), the HTTP stack's own ceiling here.
 * The load generator is bench/http-load.ts: `wrk` in its own process when installed (keep-alive,
 * concurrency 32), else a Node client in a worker thread whose own cost then dominates — the row
 * names say which ran. Goal (issue): ≥ 50 % of the raw limit. See docs/benchmarks.md.
 * The server runs with the heap settings of `tessera server` (src/shared/heap-tuning.ts).
 */
import { generateKeyPairSync, sign, verify, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify } from 'jose';
import { parseConfig } from '../src/config/index.js';
import { startTessera } from '../src/main.js';
import { silentLogger } from '../src/shared/logger.js';
import { systemClock } from '../src/shared/clock.js';
import { resolveMasterKey } from '../src/secrets/index.js';
import { createKeyManager, createTokenService } from '../src/tokens/index.js';
import type { BenchResult } from './lib.js';
import { httpLoad, loadToolLabel, type HttpLoadResult } from './http-load.js';
import { createTrustDomains } from '../src/identity/trust-domains.js';
import { tuneServerHeap } from '../src/shared/heap-tuning.js';

const CONCURRENCY = 32;
const SECONDS = 3;
const DISTINCT_TOKENS = 12_000;
/** Fresh subject tokens: more than the attestation cache (10,000) holds, so a cycle always misses. */
const FRESH_SUBJECTS = 20_000;
/** Re-presented subject tokens: a fleet of pods re-logging in with the token it already used. */
const REPEATED_SUBJECTS = 2_000;
const GOAL = 0.5;
const ISSUER = 'https://bench-issuer.invalid';
const AUDIENCE = 'tessera-bench';

/** ES256 sign+verify pairs/s and verifications/s on this thread (one core), bounded in time. */
function rawLimits(): { pairs: number; verifies: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.from(`${Buffer.from('{"alg":"ES256","kid":"k"}').toString('base64url')}.${randomBytes(300).toString('base64url')}`);
  const opts = { dsaEncoding: 'ieee-p1363' as const };
  const timed = (fn: () => void): number => {
    for (let i = 0; i < 200; i++) fn(); // warm-up
    let n = 0;
    const start = performance.now();
    const end = start + 1500;
    while (performance.now() < end && n < 500_000) {
      fn();
      n++;
    }
    return (n / (performance.now() - start)) * 1000;
  };
  const sig = sign('sha256', data, { key: privateKey, ...opts });
  const pairs = timed(() => {
    const s = sign('sha256', data, { key: privateKey, ...opts });
    if (!verify('sha256', data, { key: publicKey, ...opts }, s)) throw new Error('raw verify failed');
  });
  const verifies = timed(() => {
    if (!verify('sha256', data, { key: publicKey, ...opts }, sig)) throw new Error('raw verify failed');
  });
  return { pairs, verifies };
}

/** jose compactVerify (WebCrypto on the libuv pool) with 32 verifications in flight, bounded in time. */
async function joseVerifyRate(): Promise<number> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = `${Buffer.from('{"alg":"ES256","kid":"k"}').toString('base64url')}.${randomBytes(300).toString('base64url')}`;
  const token = `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  let n = 0;
  const start = performance.now();
  const end = start + 1500;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end && n < 500_000) {
      n++;
      await compactVerify(token, publicKey, { algorithms: ['ES256'] });
    }
  }));
  return (n / (performance.now() - start)) * 1000;
}

function checked(what: string, r: HttpLoadResult): number {
  if (r.unexpected > 0) throw new Error(`${what}: ${r.unexpected} unexpected responses (${r.tool}), first: ${r.firstUnexpected ?? '?'}`);
  return r.rps;
}

/** A Kubernetes-shaped ES256 subject token for the `jwt` attestor (template `kubernetes`). */
function subjectToken(key: KeyObject, kid: string, pod: string): string {
  const now = Math.floor(Date.now() / 1000);
  const h = Buffer.from(JSON.stringify({ alg: 'ES256', kid, typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(JSON.stringify({
    iss: ISSUER, aud: AUDIENCE, sub: 'system:serviceaccount:healthcare:patient-reader', iat: now, nbf: now, exp: now + 3600,
    'kubernetes.io': { namespace: 'healthcare', serviceaccount: { name: 'patient-reader', uid: 'u1' }, pod: { name: pod, uid: 'p1' } },
  })).toString('base64url');
  const s = sign('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return `${h}.${p}.${s}`;
}

export async function run(): Promise<BenchResult[]> {
  tuneServerHeap();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-tokens-'));
  const kid = 'bench-k8s';
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }] }));
  const config = parseConfig({
    data_dir: dir,
    server: { listen: '127.0.0.1:0' },
    policy: { dir: 'examples/policies', watch: false },
    audit: { sinks: [{ kind: 'store' }] },
    log: { level: 'silent' },
    // Every login comes from one address and (re-presented) one identity: the login limits are
    // lifted so the bench measures the login path, not the limiter's refusals.
    // The 2,000 re-presenting pods share one identity: its cache quota is raised above that
    // (a fleet larger than tokens.verified_cache_per_agent would otherwise re-verify).
    tokens: { login_rate_limit: { per_identity: { per_second: 1_000_000, burst: 1_000_000 }, per_source: { per_second: 1_000_000, burst: 1_000_000 } }, verified_cache_per_agent: 10_000 },
    attestors: [
      { kind: 'join_token', name: 'join_token' },
      { kind: 'jwt', name: 'k8s-prod', issuer: ISSUER, audience: AUDIENCE, jwks_file: jwksFile, template: 'kubernetes', algorithms: ['ES256'] },
    ],
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger });
  try {
    const url = tessera.url;
    const loginBody = (t: string): string => new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: t, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    }).toString();
    const loginBodies = Array.from({ length: REPEATED_SUBJECTS }, (_, i) => loginBody(subjectToken(privateKey, kid, `pod-${i}`)));
    const freshBodies = Array.from({ length: FRESH_SUBJECTS }, (_, i) => loginBody(subjectToken(privateKey, kid, `fresh-pod-${i}`)));

    // One login to get an agent token, and a read-mode secret the demo policy allows.
    const res = await fetch(`${url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: loginBodies[0] });
    const body = (await res.json()) as { access_token?: string };
    if (res.status !== 200 || !body.access_token) throw new Error(`bench login failed: ${res.status} ${JSON.stringify(body)}`);
    const token = body.access_token;
    const secretPath = '/v1/secrets/healthcare/prod/agents/patient-reader/bench';
    const put = await fetch(`${url}/v1/admin/secrets/healthcare/prod/agents/patient-reader/bench`, {
      method: 'PUT', headers: { authorization: `Bearer ${tessera.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ value: 'bench-value', mode: 'read' }),
    });
    if (put.status !== 200) throw new Error(`bench secret write failed: ${put.status}`);

    // Distinct agent tokens, signed by the server's own active key (same store, same master
    // key), more than the verified-token cache holds (default 10,000) so a cycle always misses.
    const master = resolveMasterKey({ config: config.master_key, dataDir: dir, dev: true, env: process.env });
    const keys = createKeyManager({ store: tessera.store, sealer: master.sealer, clock: systemClock, audit: tessera.audit, rotationPeriodMs: config.tokens.signing.rotation_period, overlapMs: config.tokens.signing.overlap, maxTokenTtlMs: config.tokens.task_ttl });
    await keys.ensureKeys();
    const minter = createTokenService({ keys, clock: systemClock, issuer: url, agentTtlMs: 300_000, skewMs: 30_000, revocations: { isRevoked: () => false, isAgentRevoked: () => false }, trustDomains: createTrustDomains('tessera.local') });
    const distinct = Array.from({ length: DISTINCT_TOKENS }, (_, i) =>
      minter.issueAgentToken({ spiffeId: 'spiffe://tessera.local/ns/healthcare/sa/patient-reader', attestor: 'k8s-prod', attestorKind: 'kubernetes', attributes: { namespace: 'healthcare', service_account: 'patient-reader', pod: `pod-${i}` } }, { audience: [url] }).token);

    const raw = rawLimits();
    const base = { url, concurrency: CONCURRENCY, seconds: SECONDS };
    const client = loadToolLabel();
    const healthz = checked('healthz', await httpLoad({ ...base, method: 'GET', path: '/healthz', expectStatus: 200 }));
    const loginFresh = checked('login (fresh subject tokens)', await httpLoad({ ...base, method: 'POST', path: '/v1/oauth/token', contentType: 'application/x-www-form-urlencoded', bodies: freshBodies, expectStatus: 200 }));
    const loginRepeated = checked('login (re-presented subject tokens)', await httpLoad({ ...base, method: 'POST', path: '/v1/oauth/token', contentType: 'application/x-www-form-urlencoded', bodies: loginBodies, expectStatus: 200 }));
    const verifyMiss = checked('verify (distinct tokens)', await httpLoad({ ...base, method: 'GET', path: '/v1/whoami', tokens: distinct, expectStatus: 200 }));
    const verifyHit = checked('verify (one token)', await httpLoad({ ...base, method: 'GET', path: '/v1/whoami', tokens: [token], expectStatus: 200 }));
    const secretRead = checked('secret read', await httpLoad({ ...base, method: 'GET', path: secretPath, tokens: [token], expectStatus: 200 }));
    const joseVerify = await joseVerifyRate();
    const rawAgain = rawLimits(); // the machine's state after the load: report the better of the two
    const pairs = Math.max(raw.pairs, rawAgain.pairs);
    const verifies = Math.max(raw.verifies, rawAgain.verifies);

    const pairBaseline = { name: 'node:crypto ES256 sign+verify pairs, one core', value: pairs, unit: 'pairs/s' };
    const verifyBaseline = { name: 'node:crypto ES256 verify, one core', value: verifies, unit: 'ops/s' };
    return [
      {
        name: `login over HTTP, fresh subject tokens (${FRESH_SUBJECTS.toLocaleString('en-US')} distinct, cycled: every login verifies the attestation JWT; RFC 8693 exchange, jwt attestor with local JWKS, audit on, concurrency ${CONCURRENCY}, ${client})`,
        value: loginFresh, unit: 'logins/s', baseline: pairBaseline, ratio: loginFresh / pairs, goal: '≥ 50 % of raw sign+verify', met: loginFresh / pairs >= GOAL,
      },
      {
        name: `login over HTTP, re-presented subject tokens (${REPEATED_SUBJECTS.toLocaleString('en-US')} pods re-logging in with the same token: attestation cache hits, signing + revocation + audit still per login, concurrency ${CONCURRENCY}, ${client}) — context`,
        value: loginRepeated, unit: 'logins/s', baseline: pairBaseline, ratio: loginRepeated / pairs,
      },
      {
        name: `token verification over HTTP, ${DISTINCT_TOKENS.toLocaleString('en-US')} distinct tokens (ECDSA every request, no store access, concurrency ${CONCURRENCY}, ${client})`,
        value: verifyMiss, unit: 'req/s', baseline: verifyBaseline, ratio: verifyMiss / verifies, goal: '≥ 50 % of raw verify', met: verifyMiss / verifies >= GOAL,
      },
      {
        name: `token verification over HTTP, one token repeated (verified-token cache hits, concurrency ${CONCURRENCY}, ${client}) — context`,
        value: verifyHit, unit: 'req/s', baseline: verifyBaseline, ratio: verifyHit / verifies,
      },
      {
        name: `GET /healthz over HTTP (no token, no crypto: the HTTP stack's ceiling on this machine, ${client}) — context`,
        value: healthz, unit: 'req/s', baseline: verifyBaseline, ratio: healthz / verifies,
      },
      {
        name: `jose compactVerify (WebCrypto, ${CONCURRENCY} in flight, no HTTP) — context: the library alternative to the node:crypto verify src/tokens uses`,
        value: joseVerify, unit: 'ops/s', baseline: verifyBaseline, ratio: joseVerify / verifies,
      },
      {
        name: `secret read over HTTP (verify + Cedar + KV decrypt + audit, concurrency ${CONCURRENCY}, ${client}) — context`,
        value: secretRead, unit: 'req/s', baseline: verifyBaseline, ratio: secretRead / verifies,
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
