import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { AttestedIdentity } from './types.js';

/**
 * Keeps the `agents` table (who has logged in, when last, how often) without putting a durable
 * write on every login: sightings are merged in memory and written in one transaction per
 * interval (and at close). The table is an inventory for operators, not a security record —
 * the audit log has every login — so losing the last interval in a crash is acceptable, while a
 * per-login fsync would cap login throughput (bench/tokens.ts).
 */
export interface AgentRegistry {
  record(identity: AttestedIdentity): void;
  /** Whether this SPIFFE ID ever logged in: pending sightings of this replica, else the table (other replicas' last second may not be there yet). */
  isKnown(spiffeId: string): Promise<boolean>;
  flush(): Promise<void>;
  start(): void;
  close(): Promise<void>;
}

interface Pending {
  attestor: string;
  attributes: string;
  first: number;
  last: number;
  count: number;
}

export function createAgentRegistry(deps: { store: Store; clock: Clock; logger?: Logger; flushIntervalMs?: number; maxPending?: number }): AgentRegistry {
  const { store, clock } = deps;
  const maxPending = deps.maxPending ?? 5000;
  let pending = new Map<string, Pending>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  async function writeBatch(batch: Map<string, Pending>): Promise<void> {
    if (batch.size === 0) return;
    await store.transaction(async (tx) => {
      for (const [spiffeId, p] of batch) {
        // Portable upsert (SQLite ≥ 3.24, PostgreSQL ≥ 9.5).
        await tx.run(
          `INSERT INTO agents (spiffe_id, attestor, attributes, first_seen, last_seen, logins) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (spiffe_id) DO UPDATE SET attestor = excluded.attestor, attributes = excluded.attributes, last_seen = excluded.last_seen, logins = agents.logins + excluded.logins`,
          [spiffeId, p.attestor, p.attributes, p.first, p.last, p.count],
        );
      }
    });
  }

  const registry: AgentRegistry = {
    record(identity) {
      const now = clock.now();
      const p = pending.get(identity.spiffeId);
      if (p) {
        p.last = now;
        p.count++;
        p.attestor = identity.attestor;
        p.attributes = JSON.stringify(identity.attributes);
      } else {
        pending.set(identity.spiffeId, { attestor: identity.attestor, attributes: JSON.stringify(identity.attributes), first: now, last: now, count: 1 });
        if (pending.size >= maxPending) void registry.flush();
      }
    },
    async isKnown(spiffeId) {
      if (pending.has(spiffeId)) return true;
      return (await store.get<{ x: number }>('SELECT 1 AS x FROM agents WHERE spiffe_id = ?', [spiffeId])) !== undefined;
    },
    flush() {
      const batch = pending;
      pending = new Map();
      flushing = flushing.then(() =>
        writeBatch(batch).catch((e: unknown) => {
          deps.logger?.warn({ err: (e as Error).message }, 'agent inventory flush failed; will retry');
          for (const [k, v] of batch) if (!pending.has(k)) pending.set(k, v);
        }),
      );
      return flushing;
    },
    start() {
      timer ??= setInterval(() => void registry.flush(), deps.flushIntervalMs ?? 1000);
      timer.unref();
    },
    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await registry.flush();
    },
  };
  return registry;
}
