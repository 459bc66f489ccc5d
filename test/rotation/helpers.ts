/**
 * Shared setup for the rotation tests: a real store (SQLite in memory, or the PostgreSQL store
 * given), the real kv service, the real postgres engine, the rotation service, and a real HTTP
 * app with the secret, rotation and engine routes on 127.0.0.1. Admin auth is a fixed test token.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { SqlExecutor, Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createApp } from '../../src/server/app.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { createKvService, registerSecretRoutes, type KvService } from '../../src/secrets/index.js';
import { createPostgresEngine, registerPostgresEngineRoutes, type PostgresEngine } from '../../src/engines/postgres/index.js';
import { createRotationService, registerRotationRoutes, rotationConfigSchema, type RotationService } from '../../src/rotation/index.js';
import { createRequestAuthorizer } from '../../src/pipeline/authorize.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import type { Sealer } from '../../src/secrets/sealer.js';

export const ADMIN = 'admin-token-for-rotation-tests-0123456789';

export interface RotationHarness {
  readonly store: Store;
  readonly clock: ManualClock;
  readonly audit: MemoryAuditWriter;
  readonly kv: KvService;
  readonly sealer: Sealer;
  readonly postgres: PostgresEngine;
  readonly rotation: RotationService;
  readonly metrics: MetricsRegistry;
  readonly base: string;
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: any }>;
  close(): Promise<void>;
}

export async function rotationHarness(opts: { store?: Store; config?: Record<string, unknown>; sealer?: Sealer; clock?: ManualClock; singleProcess?: boolean; migrate?: boolean } = {}): Promise<RotationHarness> {
  const store = opts.store ?? openSqliteStore({ file: ':memory:' });
  if (opts.migrate !== false) await store.migrate();
  const clock = opts.clock ?? new ManualClock(Date.now());
  const audit = new MemoryAuditWriter();
  const sealer = opts.sealer ?? masterSealer(randomBytes(32));
  const metrics = new MetricsRegistry();
  const kv = createKvService({ store, sealer, clock, audit });
  const postgres = createPostgresEngine({ store, sealer, clock, logger: silentLogger, audit, metrics });
  await postgres.start();
  const config = rotationConfigSchema.parse(opts.config ?? {});
  const rotation = createRotationService({ store, kv, sealer, clock, audit, logger: silentLogger, metrics, config, engines: postgres.passwords, singleProcess: opts.singleProcess ?? store.dialect === 'sqlite' });
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
    agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_SIGNATURE_INVALID', 'no agents here'); } },
  });
  registerSecretRoutes(app, { kv, authorizer: createRequestAuthorizer({ authorize: () => ({ allowed: false, policies: [], errors: [], cached: false }) }), clock, checkRotator: (r) => rotation.checkRotator(r) });
  registerRotationRoutes(app, { rotation });
  registerPostgresEngineRoutes(app, { postgres });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    store, clock, audit, kv, sealer, postgres, rotation, metrics, base,
    async call(method, path, body, token = ADMIN) {
      const res = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, json: await res.json() };
    },
    async close() {
      await rotation.stop();
      await postgres.stop();
      await app.close();
      if (!opts.store) await store.close();
    },
  };
}

export interface RecordedCall {
  readonly headers: IncomingMessage['headers'];
  readonly body: Record<string, unknown>;
}

/** A local key-management service for the `http` rotator: records every call; `answer` decides the reply. */
export async function keyService(answer: (body: Record<string, unknown>, n: number) => { status: number; body: unknown; delayMs?: number }): Promise<{ url: string; calls: RecordedCall[]; close(): Promise<void> }> {
  const calls: RecordedCall[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        body = { unparsable: true };
      }
      calls.push({ headers: req.headers, body });
      const a = answer(body, calls.length);
      const send = () => {
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body));
      };
      if (a.delayMs) setTimeout(send, a.delayMs).unref();
      else send();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/keys`,
    calls,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/**
 * A real SQLite store whose next statement matching `failOn` (inside a transaction) fails once:
 * the store going away at the worst moment of a rotation. Everything else is the real store.
 */
export function storeFailingOnce(failOn: RegExp): { store: Store; real: Store; arm(): void } {
  let armed = false;
  const real = openSqliteStore({ file: ':memory:' });
  const failing = (ex: SqlExecutor): SqlExecutor => ({
    all: (s, p) => ex.all(s, p),
    get: (s, p) => ex.get(s, p),
    run: (s, p) => {
      if (armed && failOn.test(s)) {
        armed = false;
        return Promise.reject(new Error('disk full (injected)'));
      }
      return ex.run(s, p);
    },
  });
  const store = new Proxy(real, {
    get(t, k, r) {
      if (k === 'transaction') return (fn: (tx: SqlExecutor) => Promise<unknown>, o?: unknown) => t.transaction((tx) => fn(failing(tx)), o as never);
      const v = Reflect.get(t, k, r) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  }) as Store;
  return { store, real, arm: () => void (armed = true) };
}
