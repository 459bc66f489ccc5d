import { MemoryAuditWriter as Base } from '../../src/audit/port.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { recordAuditEvents } from './leak-registry.js';

/** In-memory audit writer for unit tests; every event also goes to the suite-wide leak scan. */
export class MemoryAuditWriter extends Base {
  override async append(event: AuditEvent): Promise<void> {
    await super.append(event);
    recordAuditEvents([JSON.stringify(event)]);
  }
}
