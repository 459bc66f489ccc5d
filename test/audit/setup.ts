import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { createKeySealer, type Sealer } from '../../src/secrets/sealer.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { createAuditLog, type AuditLogOptions } from '../../src/audit/log.js';
import type { AuditEvent } from '../../src/audit/events.js';

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tessera-audit-'));
}

export async function openStore(file = ':memory:'): Promise<Store> {
  const store = openSqliteStore({ file });
  await store.migrate();
  return store;
}

export function testSealer(key = randomBytes(32)): Sealer {
  return createKeySealer(key, 'mk_test');
}

export async function makeLog(overrides: Partial<AuditLogOptions> = {}) {
  const store = overrides.store ?? (await openStore());
  const clock = new ManualClock();
  const metrics = new MetricsRegistry();
  const log = await createAuditLog({
    store,
    clock,
    sealer: overrides.sealer ?? testSealer(),
    replicaId: 'r1',
    logger: silentLogger,
    metrics,
    checkpointEveryMs: 0,
    ...overrides,
  });
  return { store, clock, metrics, log };
}

export function ev(i: number, extra: Partial<AuditEvent> = {}): AuditEvent {
  return {
    kind: 'policy.decision',
    actor: { id: `spiffe://tessera.local/agent/a${i % 3}`, chain: ['user:alice'], user: 'alice' },
    action: 'secret.read',
    resource: `secret:db/${i}`,
    result: i % 2 ? 'allow' : 'deny',
    reason: { policies: ['p1'] },
    txn: `txn-${i % 4}`,
    purpose: 'test',
    where: { source: '127.0.0.1', requestId: `req-${i}` },
    details: { principal: `a${i}`, cached: false },
    ...extra,
  } as AuditEvent;
}

/** Appends one at a time (one batch each), so checkpoints land exactly every N events. */
export async function appendSequential(log: { append(e: AuditEvent): Promise<void> }, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) await log.append(ev(i));
}
