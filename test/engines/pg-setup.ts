/**
 * Shared setup for the postgres engine tests: a real PostgreSQL database (test/helpers/postgres.ts),
 * a management role with CREATEROLE + pg_signal_backend (not a superuser), a read-only group role
 * with SELECT on one table, a real SQLite store, the real lease manager, revocation service and
 * HTTP app. Roles are cluster-wide, so every setup uses its own username prefix and role names.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createApp } from '../../src/server/app.js';
import { createKeySealer } from '../../src/secrets/sealer.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import type { Authorizer, PolicyRequest } from '../../src/policy/types.js';
import { createLeaseService, registerLeaseRoutes, type LeaseService } from '../../src/leases/index.js';
import { createRevocationService, registerRevocationRoutes } from '../../src/revocations/index.js';
import { createPostgresEngine, registerPostgresEngineRoutes, type PostgresEngine } from '../../src/engines/postgres/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { registerSensitive } from '../helpers/leak-registry.js';
import type { Sealer } from '../../src/secrets/sealer.js';
import { createTestDatabase, withDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createTrustDomains } from '../../src/identity/trust-domains.js';
import { createRequestAuthorizer } from '../../src/pipeline/authorize.js';

export const ADMIN = 'admin-token-for-engine-tests-0123456789';

export function principal(name: string, extra: Partial<AgentPrincipal> = {}): AgentPrincipal {
  return { spiffeId: `spiffe://example.org/${name}`, trustDomain: 'example.org', path: `/${name}`, attributes: {}, jti: `jti-${name}`, expiresAt: Date.UTC(2099, 0, 1), ...extra };
}

export interface PgFixture {
  readonly db: TestDatabase;
  readonly host: string;
  readonly port: number;
  /** Management role URL (CREATEROLE + pg_signal_backend). */
  readonly mgmtUrl: string;
  readonly mgmtUser: string;
  /** The test database's owner (no CREATEROLE). */
  readonly ownerUrl: string;
  readonly group: string;
  readonly tag: string;
  /** Runs SQL as superuser in the test database. */
  su<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Database users that carry `prefix`. */
  usersWithPrefix(prefix: string): Promise<string[]>;
  drop(): Promise<void>;
}

export async function pgFixture(name: string): Promise<PgFixture> {
  const db = await createTestDatabase(name);
  const tag = randomBytes(3).toString('hex');
  const mgmtUser = `mgmt_${tag}`;
  const mgmtPassword = randomBytes(16).toString('hex');
  registerSensitive(mgmtPassword);
  const group = `reader_${tag}`;
  const su = async <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = new pg.Client({ connectionString: db.adminUrl });
    await c.connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end();
    }
  };
  await su(`CREATE ROLE ${mgmtUser} LOGIN CREATEROLE PASSWORD '${mgmtPassword}'`);
  await su(`GRANT pg_signal_backend TO ${mgmtUser}`);
  await su(`CREATE ROLE ${group} NOLOGIN`);
  await su(`CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL)`);
  await su(`CREATE TABLE billing (id int PRIMARY KEY, amount int NOT NULL)`);
  await su(`INSERT INTO patients VALUES (1, 'Ada'), (2, 'Grace')`);
  await su(`GRANT USAGE ON SCHEMA public TO ${group}`);
  await su(`GRANT SELECT ON patients TO ${group}`);
  const u = new URL(db.adminUrl);
  const mgmt = new URL(db.adminUrl);
  mgmt.username = mgmtUser;
  mgmt.password = mgmtPassword;
  return {
    db,
    host: u.hostname,
    port: Number(u.port),
    mgmtUrl: mgmt.toString(),
    mgmtUser,
    ownerUrl: db.url,
    group,
    tag,
    su,
    async usersWithPrefix(prefix) {
      const rows = await su<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE left(rolname, length($1)) = $1 ORDER BY 1`, [prefix]);
      return rows.map((r) => r.rolname);
    },
    async drop() {
      const users = await su<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, [`%${tag}%`]);
      await db.drop();
      const c = new pg.Client({ connectionString: db.clusterAdminUrl });
      await c.connect();
      try {
        for (const { rolname } of users) await c.query(`DROP ROLE IF EXISTS "${rolname}"`).catch(() => undefined);
      } finally {
        await c.end();
      }
    },
  };
}

/** Logs in as an issued user (SCRAM-SHA-256 per pg_hba.conf) with `pg`. */
export async function loginAs(data: { host: string; port: number; database: string; username: string; password: string }): Promise<pg.Client> {
  const c = new pg.Client({ host: data.host, port: data.port, database: data.database, user: data.username, password: data.password, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

export interface Harness {
  readonly store: Store;
  readonly clock: ManualClock;
  readonly audit: MemoryAuditWriter;
  readonly leases: LeaseService;
  readonly postgres: PostgresEngine;
  readonly revocations: ReturnType<typeof createRevocationService>;
  readonly base: string;
  readonly sealer: Sealer;
  readonly metrics: MetricsRegistry;
  call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> & { error?: { code: string; message: string } } }>;
  close(): Promise<void>;
}

const agents: Record<string, AgentPrincipal> = {
  'agent-reader': principal('ns/healthcare/sa/patient-reader'),
  'agent-other': principal('ns/billing/sa/other'),
};

/** Test policy: every agent may issue any postgres role except `forbidden`. */
const authorizer: Authorizer = {
  authorize(req: PolicyRequest) {
    const ok = req.action === 'cred.issue' && req.resource.type === 'Role' && req.resource.role !== 'forbidden';
    return { allowed: ok, policies: ok ? ['test:permit'] : ['test:deny'], errors: [], cached: false };
  },
};

export async function harness(opts: { store?: Store; maxRevokeAttempts?: number } = {}): Promise<Harness> {
  const store = opts.store ?? openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(Date.now());
  const audit = new MemoryAuditWriter();
  const sealer = createKeySealer(randomBytes(32), 'test-key');
  const metrics = new MetricsRegistry();
  const postgres = createPostgresEngine({ store, sealer, clock, logger: silentLogger, audit, metrics });
  await postgres.start();
  const leases = createLeaseService({ store, clock, audit, metrics, engines: [postgres.engine], maxRevokeAttempts: opts.maxRevokeAttempts ?? 3, backoff: { baseMs: 1000, maxMs: 4000 }, engineTimeoutMs: 10_000 });
  const revocations = createRevocationService({ store, clock, audit, leases, trustDomains: createTrustDomains('example.org') });
  await revocations.refresh();
  const app = createApp({
    logger: silentLogger,
    replicaId: 'test',
    bodyLimit: 65536,
    admin: {
      async authenticate(token) {
        if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'bad admin token');
        return { kind: 'admin', tokenId: 'adm_test', name: 'test', role: 'admin', via: 'token' };
      },
    },
    agents: {
      async authenticate(token) {
        const p = agents[token];
        if (!p) throw new TesseraError('TESSERA_TOKEN_SIGNATURE_INVALID', 'unknown test token');
        if (revocations.isRevoked({ spiffeId: p.spiffeId, jti: p.jti, issuedAt: 0 })) throw new TesseraError('TESSERA_TOKEN_REVOKED', 'revoked');
        return p;
      },
    },
  });
  registerLeaseRoutes(app, { leases, authorizer: createRequestAuthorizer(authorizer) });
  registerRevocationRoutes(app, { revocations, clock });
  registerPostgresEngineRoutes(app, { postgres });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    store,
    clock,
    audit,
    leases,
    postgres,
    revocations,
    base,
    sealer,
    metrics,
    async call(method, path, token, body) {
      const res = await fetch(base + path, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string }; data?: { password?: string } };
      // Every issued password joins the suite-wide audit leak scan.
      if (typeof json.data?.password === 'string') registerSensitive(json.data.password);
      return { status: res.status, json };
    },
    async close() {
      await leases.stopReaper();
      await postgres.stop();
      await app.close();
      await store.close();
    },
  };
}

export { withDatabase };
