import { MemoryAuditWriter as Base } from '../../src/audit/port.js';
import { recordAuditEvents } from './leak-registry.js';

/** In-memory audit writer for unit tests; every event also goes to the suite-wide leak scan. */
export class MemoryAuditWriter extends Base {
  protected override onRecord = (events: readonly unknown[]): void => recordAuditEvents(events.map((e) => JSON.stringify(e)));
}
