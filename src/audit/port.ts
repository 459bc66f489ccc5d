import type { AuditEvent } from './events.js';
import type { SqlExecutor, Store } from '../store/port.js';
import { validateEvent } from './validate.js';

/**
 * The events an audited change records: given up front (validated before anything changes), or
 * derived from the change's result (validated inside the change's transaction; `null` = the
 * change turned out to change nothing, so there is nothing to record).
 */
export type AuditEventsOf<T> = AuditEvent | readonly AuditEvent[] | ((result: T) => AuditEvent | readonly AuditEvent[] | null);

/**
 * What every service depends on to audit (ADR 0041: every state change is audited or does not
 * happen).
 *
 * `append` records an event about something that changes no state (a read, a refusal, a
 * decision). It resolves when the event is durable in at least one sink and rejects with
 * TESSERA_AUDIT_UNAVAILABLE when none could write (the caller then fails the request: audit
 * fails closed), or TESSERA_AUDIT_EVENT_INVALID for a malformed event or one carrying a
 * token-like value.
 *
 * `commit` makes a state change and records its events atomically: `change` runs in the store
 * transaction (under a savepoint) that also inserts the audit rows, so both commit or neither
 * does. It resolves with the change's result once both are durable. It rejects — and nothing
 * changed — with the change's own error, with TESSERA_AUDIT_EVENT_INVALID (events refused), or
 * with the store's error (TESSERA_STORE_UNAVAILABLE / _CONFLICT) or TESSERA_AUDIT_UNAVAILABLE.
 * Rules for `change`: use only `tx` (on SQLite, the store itself waits for the open transaction:
 * using it inside deadlocks); no side effects outside `tx` — on PostgreSQL it may run more than
 * once (ADR 0003); never call the audit log from inside it (the batch waits for it); keep it
 * short (it holds the audit group commit). `store` must be the audit log's own store.
 */
export interface AuditWriter {
  append(event: AuditEvent): Promise<void>;
  commit<T>(store: Store, change: (tx: SqlExecutor) => Promise<T>, events: AuditEventsOf<T>): Promise<T>;
  /** HMAC-SHA256 with the audit key, hex; for identifiers that must not appear in clear. */
  hmac(value: string): string;
}

/**
 * An AuditWriter that keeps events in memory: for unit tests of other services. `commit` runs the
 * change in a transaction of the given store and records the events only if that commits; with
 * `failing` set, every append and commit is refused with TESSERA_AUDIT_UNAVAILABLE (and the
 * commit's change rolled back). Events are validated like the real log does.
 */
export class MemoryAuditWriter implements AuditWriter {
  readonly events: AuditEvent[] = [];
  failing = false;
  /** Called with the events of each append or commit once they are recorded (tests feed a leak scan with it). */
  protected onRecord?: (events: readonly AuditEvent[]) => void;
  async append(event: AuditEvent): Promise<void> {
    await this.refuseIfFailing();
    validateEvent(event);
    this.events.push(event);
    this.onRecord?.([event]);
  }
  async commit<T>(store: Store, change: (tx: SqlExecutor) => Promise<T>, events: AuditEventsOf<T>): Promise<T> {
    const upFront = typeof events === 'function' ? undefined : toList(events as AuditEvent | readonly AuditEvent[]);
    for (const e of upFront ?? []) validateEvent(e);
    let recorded: readonly AuditEvent[] = [];
    const value = await store.transaction(async (tx) => {
      const v = await change(tx);
      recorded = upFront ?? toList((events as (r: T) => AuditEvent | readonly AuditEvent[] | null)(v));
      for (const e of recorded) validateEvent(e);
      await this.refuseIfFailing();
      return v;
    });
    this.events.push(...recorded);
    this.onRecord?.(recorded);
    return value;
  }
  hmac(value: string): string {
    // Deterministic, non-reversible in tests too.
    return `hmac:${Buffer.from(value).length}:${simpleHash(value)}`;
  }
  private async refuseIfFailing(): Promise<void> {
    if (this.failing) {
      const { TesseraError } = await import('../shared/errors.js');
      throw new TesseraError('TESSERA_AUDIT_UNAVAILABLE', 'audit sink unavailable (test)');
    }
  }
}

function toList(e: AuditEvent | readonly AuditEvent[] | null | undefined): readonly AuditEvent[] {
  return e == null ? [] : Array.isArray(e) ? e : [e as AuditEvent];
}

function simpleHash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}
