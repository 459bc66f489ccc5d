export { MemoryAuditWriter } from '../../src/audit/port.js';
