/**
 * Token hot paths against the raw ES256 limit, same machine, same run, loopback only.
 *
 * - Baselines: jose ES256 sign+verify (CompactSign + compactVerify, WebCrypto) and jose verify
 *   alone, each at concurrency 1 and 32 (WebCrypto runs on the libuv pool, so concurrency can
 *   raise it); the higher figure is the "raw limit". node:crypto sign/verify (what src/tokens
 *   uses) is reported too, so the choice stays measured.
 * - Login: RFC 8693 token exchange over HTTP with a real one-time join token per request,
 *   file-backed SQLite (WAL) store and the real hash-chained audit log on it (src/audit).
 * - Verification: GET on an agent-only route (app.requireAgent) over HTTP.
 * Goal (issue): ≥ 50 % of the raw limit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { createServer } from 'node:net';
import { CompactSign, compactVerify } from 'jose';
import { Pool } from 'undici';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { createKeySealer } from '../src/secrets/sealer.js';
import { systemClock } from '../src/shared/clock.js';
import { silentLogger } from '../src/shared/logger.js';
import { TesseraError } from '../src/shared/errors.js';
import { createAuditLog } from '../src/audit/log.js';
import { createApp } from '../src/server/app.js';
import { createJoinTokenService } from '../src/identity/join-tokens.js';
import { createAttestation } from '../src/identity/attestation.js';
import { TOKEN_TYPE_JOIN } from '../src/identity/types.js';
import { createKeyManager, createTokenService, createTokenExchange, createAgentAuthenticator, registerTokenRoutes, GRANT_TOKEN_EXCHANGE } from '../src/tokens/index.js';
import type { RevocationChecker } from '../src/shared/revocation.js';
import { throughput, type BenchResult } from './lib.js';

const MS = 2000;
const CONCURRENCY = 32;
const LOGIN_MAX = 4000;
const VERIFY_MAX = 200_000;
const RAW_MAX = 400_000;

const noRevocations: RevocationChecker = { isRevoked: () => false, isAgentRevoked: () => false };

async function rawLimits(): Promise<{ signVerify: number; verifyOnly: number; nodeSignVerify: number; nodeVerify: number }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const payload = new TextEncoder().encode(JSON.stringify({ iss: 'https://tessera.local', sub: 'spiffe://tessera.local/ns/a/sa/b', aud: 'https://tessera.local', exp: 2e9, iat: 1.9e9, jti: 'x'.repeat(22) }));
  const jws = await new CompactSign(payload).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' }).sign(privateKey);
  const signVerify = async (): Promise<void> => {
    const t = await new CompactSign(payload).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' }).sign(privateKey);
    await compactVerify(t, publicKey, { algorithms: ['ES256'] });
  };
  const verifyOnly = async (): Promise<void> => {
    await compactVerify(jws, publicKey, { algorithms: ['ES256'] });
  };
  const sv = Math.max(await throughput(signVerify, { ms: MS, maxOps: RAW_MAX }), await throughput(signVerify, { ms: MS, maxOps: RAW_MAX, concurrency: CONCURRENCY }));
  const v = Math.max(await throughput(verifyOnly, { ms: MS, maxOps: RAW_MAX }), await throughput(verifyOnly, { ms: MS, maxOps: RAW_MAX, concurrency: CONCURRENCY }));
  const input = Buffer.from(jws.split('.').slice(0, 2).join('.'));
  const sig = Buffer.from(jws.split('.')[2]!, 'base64url');
  const nodeSignVerify = await throughput(() => {
    const s = sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, s);
  }, { ms: MS, maxOps: RAW_MAX });
  const nodeVerify = await throughput(() => verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig), { ms: MS, maxOps: RAW_MAX });
  return { signVerify: sv, verifyOnly: v, nodeSignVerify, nodeVerify };
}

export async function run(): Promise<BenchResult[]> {
  const raw = await rawLimits();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-tokens-'));
  const store = openSqliteStore({ file: join(dir, 'tessera.db') });
  try {
    await store.migrate();
    const clock = systemClock;
    const sealer = createKeySealer(randomBytes(32), 'mk_bench');
    const audit = await createAuditLog({ store, clock, sealer, replicaId: 'r1', logger: silentLogger });
    const keys = createKeyManager({ store, sealer, clock, audit, rotationPeriodMs: 86_400_000, overlapMs: 3_600_000, maxTokenTtlMs: 300_000 });
    await keys.ensureKeys();
    const app = createApp({
      logger: silentLogger, replicaId: 'r1', bodyLimit: 64 * 1024,
      admin: { authenticate: async () => { throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'no admin in the bench'); } },
      // Filled in below, once the issuer (the listening address) is known.
      agents: { authenticate: (t, m) => agents.authenticate(t, m) },
    });
    const port = await new Promise<number>((resolve) => {
      // Reserve a port first: the issuer URL is part of the token.
      const s = createServer().listen(0, '127.0.0.1', () => {
        const a = s.address() as { port: number };
        s.close(() => resolve(a.port));
      });
    });
    const issuer = `http://127.0.0.1:${port}`;
    const tokens = createTokenService({ keys, clock, issuer, agentTtlMs: 300_000, skewMs: 30_000, revocations: noRevocations });
    const agents = createAgentAuthenticator(tokens, { audience: issuer, audit });
    const joinTokens = createJoinTokenService({ store, clock, audit, trustDomain: 'tessera.local' });
    const attestation = createAttestation({ attestors: [{ kind: 'join_token', name: 'join_token', max_ttl: 3_600_000 }], trustDomain: 'tessera.local', joinTokens, clock, audit, store });
    const exchange = createTokenExchange({ attestation, tokens, revocations: noRevocations, audit, defaultAudience: issuer, allowedAudiences: [issuer] });
    registerTokenRoutes(app, { exchange, keys, tokens, revoker: { revokeToken: async () => undefined }, audit, issuer, audiences: [issuer] });
    app.get('/bench/whoami', { preHandler: app.requireAgent }, async (req) => ({ sub: req.agent!.spiffeId }));
    await app.listen({ host: '127.0.0.1', port });
    const pool = new Pool(issuer, { connections: CONCURRENCY, pipelining: 1 });
    try {
      // One-time join tokens, created before timing (they are what a login consumes).
      const join: string[] = [];
      for (let i = 0; i < LOGIN_MAX; i++) join.push((await joinTokens.create({ spiffeId: `spiffe://tessera.local/ns/bench/sa/a${i % 50}`, ttlMs: 3_600_000 })).token);
      await audit.flush();
      let next = 0;
      let lastToken = '';
      const login = await throughput(async () => {
        const jt = join[next++];
        if (!jt) return;
        const res = await pool.request({
          path: '/v1/oauth/token', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: GRANT_TOKEN_EXCHANGE, subject_token: jt, subject_token_type: TOKEN_TYPE_JOIN }).toString(),
        });
        const body = (await res.body.json()) as { access_token?: string };
        if (res.statusCode !== 200 || !body.access_token) throw new Error(`login failed: ${res.statusCode} ${JSON.stringify(body)}`);
        lastToken = body.access_token;
      }, { ms: MS, maxOps: LOGIN_MAX, concurrency: CONCURRENCY });

      const auth = { authorization: `Bearer ${lastToken}` };
      const verified = await throughput(async () => {
        const res = await pool.request({ path: '/bench/whoami', method: 'GET', headers: auth });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`verify failed: ${res.statusCode}`);
      }, { ms: MS, maxOps: VERIFY_MAX, concurrency: CONCURRENCY });

      // The HTTP floor: the same server answering an unauthenticated route (no token work).
      const floor = await throughput(async () => {
        const res = await pool.request({ path: '/.well-known/oauth-authorization-server', method: 'GET' });
        await res.body.dump();
      }, { ms: MS, maxOps: VERIFY_MAX, concurrency: CONCURRENCY });
      await audit.flush();

      return [
        {
          name: `login over HTTP (RFC 8693 exchange, join token consumed, durable SQLite, hash-chained audit on), ${CONCURRENCY} concurrent`,
          value: Math.round(login), unit: 'ops/s',
          baseline: { name: 'raw jose ES256 sign+verify (best of concurrency 1/32)', value: Math.round(raw.signVerify), unit: 'ops/s' },
          ratio: login / raw.signVerify, ratioNote: 'login / raw (higher is better)',
          goal: '≥ 50 % of the raw ES256 limit', met: login / raw.signVerify >= 0.5,
        },
        {
          name: `token verification over HTTP (agent-only route), ${CONCURRENCY} concurrent`,
          value: Math.round(verified), unit: 'ops/s',
          baseline: { name: 'raw jose ES256 compactVerify (best of concurrency 1/32)', value: Math.round(raw.verifyOnly), unit: 'ops/s' },
          ratio: verified / raw.verifyOnly, ratioNote: 'verified / raw (higher is better)',
          goal: '≥ 50 % of the raw ES256 limit', met: verified / raw.verifyOnly >= 0.5,
        },
        {
          name: 'HTTP floor: same server, unauthenticated metadata GET (no token work)',
          value: Math.round(floor), unit: 'ops/s',
          baseline: { name: 'token verification over HTTP', value: Math.round(verified), unit: 'ops/s' },
          ratio: verified / floor, ratioNote: 'verified / floor: share of HTTP capacity kept with verification on',
        },
        {
          name: 'node:crypto ES256 sign+verify (what src/tokens uses), concurrency 1',
          value: Math.round(raw.nodeSignVerify), unit: 'ops/s',
          baseline: { name: 'raw jose ES256 sign+verify', value: Math.round(raw.signVerify), unit: 'ops/s' },
          ratio: raw.nodeSignVerify / raw.signVerify, ratioNote: 'node:crypto / jose',
        },
        {
          name: 'node:crypto ES256 verify, concurrency 1',
          value: Math.round(raw.nodeVerify), unit: 'ops/s',
          baseline: { name: 'raw jose ES256 compactVerify', value: Math.round(raw.verifyOnly), unit: 'ops/s' },
          ratio: raw.nodeVerify / raw.verifyOnly, ratioNote: 'node:crypto / jose',
        },
      ];
    } finally {
      await pool.close();
      await app.close();
      await audit.close();
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((r) => console.log(JSON.stringify(r, null, 2)), (e) => {
    console.error(e);
    process.exit(1);
  });
}
