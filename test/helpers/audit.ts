import { MemoryAuditWriter as Base, type AuditEventsOf } from '../../src/audit/port.js';
import type { AuditEvent } from '../../src/audit/events.js';
import type { SqlExecutor, Store } from '../../src/store/port.js';
import { recordAuditEvents } from './leak-registry.js';

/** In-memory audit writer for unit tests; every event also goes to the suite-wide leak scan. */
export class MemoryAuditWriter extends Base {
  override async append(event: AuditEvent): Promise<void> {
    await super.append(event);
    recordAuditEvents([JSON.stringify(event)]);
  }
  override async commit<T>(store: Store, change: (tx: SqlExecutor) => Promise<T>, events: AuditEventsOf<T>): Promise<T> {
    const before = this.events.length;
    const value = await super.commit(store, change, events);
    recordAuditEvents(this.events.slice(before).map((e) => JSON.stringify(e)));
    return value;
  }
}
