import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import type { RevocationChecker } from '../../src/shared/revocation.js';
import { createApp } from '../../src/server/app.js';
import { createKeySealer } from '../../src/secrets/sealer.js';
import { createJoinTokenService, type JoinTokenService } from '../../src/identity/join-tokens.js';
import { createAttestation } from '../../src/identity/attestation.js';
import type { AttestorConfig } from '../../src/config/schema.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { createKeyManager, type KeyManager } from '../../src/tokens/keys.js';
import { createTokenService, type TokenService } from '../../src/tokens/service.js';
import { createRequestAuthenticator } from '../../src/pipeline/authenticate.js';
import { createTokenExchange } from '../../src/tokens/exchange.js';
import { registerTokenRoutes } from '../../src/tokens/routes.js';
import { createTrustDomains } from '../../src/identity/trust-domains.js';
import { testDpopGuard } from '../helpers/dpop.js';

/** A RevocationChecker backed by Sets (the real one lives in src/revocations). */
export class SetRevocations implements RevocationChecker {
  readonly jtis = new Set<string>();
  readonly agents = new Set<string>();
  readonly revokedTokens: string[] = [];
  readonly users = new Set<string>();
  isRevoked(s: { spiffeId: string; jti: string; task?: string; ancestors?: readonly string[]; user?: string }): boolean {
    return this.jtis.has(s.jti) || this.agents.has(s.spiffeId) || (s.task !== undefined && this.tasks.has(s.task)) || (s.ancestors ?? []).some((t) => this.tasks.has(t)) || (s.user !== undefined && this.users.has(s.user));
  }
  isAgentRevoked(spiffeId: string): boolean {
    return this.agents.has(spiffeId);
  }
  readonly tasks = new Set<string>();
  async revokeToken(jti: string): Promise<void> {
    this.jtis.add(jti);
    this.revokedTokens.push(jti);
  }
  async revoke(req: { kind: 'task'; target: string }): Promise<void> {
    this.tasks.add(req.target);
  }
}

export const MINUTE = 60_000;
export const TRUST_DOMAIN = 'example.org';
export const AGENT = `spiffe://${TRUST_DOMAIN}/ns/prod/sa/reader`;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Harness {
  app: FastifyInstance;
  base: string;
  store: Store;
  clock: ManualClock;
  audit: MemoryAuditWriter;
  keys: KeyManager;
  tokens: TokenService;
  revocations: SetRevocations;
  joinTokens: JoinTokenService;
  metrics: MetricsRegistry;
  masterKey: Buffer;
  close(): Promise<void>;
}

/** A real Tessera token stack on 127.0.0.1: sqlite store, sealed keys, real join-token attestation. */
export async function startHarness(opts: { bodyLimit?: number; attestors?: readonly AttestorConfig[] } = {}): Promise<Harness> {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
  const audit = new MemoryAuditWriter();
  const masterKey = randomBytes(32);
  const sealer = createKeySealer(masterKey, 'mk-test');
  const metrics = new MetricsRegistry();
  const revocations = new SetRevocations();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const keys = createKeyManager({ store, sealer, clock, audit, rotationPeriodMs: 24 * 60 * MINUTE, overlapMs: 60 * MINUTE, maxTokenTtlMs: 5 * MINUTE });
  await keys.ensureKeys();
  const tokens = createTokenService({ keys, clock, issuer, agentTtlMs: 5 * MINUTE, skewMs: 30_000, revocations, trustDomains: createTrustDomains(TRUST_DOMAIN), metrics });
  const joinTokens = createJoinTokenService({ store, clock, audit, maxTtlMs: 60 * MINUTE, trustDomain: TRUST_DOMAIN });
  const attestation = createAttestation({ attestors: [{ kind: 'join_token', name: 'join_token', max_ttl: 60 * MINUTE }, ...(opts.attestors ?? [])], trustDomain: TRUST_DOMAIN, joinTokens, clock, audit, store, metrics });
  const audiences = [issuer, `${issuer}/mcp`];
  const dpop = testDpopGuard({ clock, issuer });
  const exchange = createTokenExchange({ attestation, tokens, revocations, audit, dpop, defaultAudience: issuer, allowedAudiences: audiences });
  const app = createApp({
    logger: silentLogger,
    replicaId: 'r1',
    bodyLimit: opts.bodyLimit ?? 32 * 1024,
    admin: { authenticate: async () => { throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'no admins in this test'); } },
    agents: createRequestAuthenticator({ tokens, audit, dpop }, { audience: issuer }),
  });
  registerTokenRoutes(app, { exchange, keys, tokens, revoker: revocations, audit, issuer, audiences, dpopAlgorithms: dpop.settings.algorithms, dpop });
  // A tiny agent-only route, so verification is exercised through real HTTP.
  app.get('/test/whoami', { preHandler: app.requireAgent }, async (req) => ({ spiffeId: req.agent!.spiffeId, attributes: req.agent!.attributes, path: req.agent!.path }));
  await app.listen({ host: '127.0.0.1', port });
  return {
    app, base: issuer, store, clock, audit, keys, tokens, revocations, joinTokens, metrics, masterKey,
    async close() {
      await app.close();
      await store.close();
    },
  };
}
