import type { AuditEvent } from './events.js';

/**
 * What every service depends on to audit. `append` resolves when the event is durable in at
 * least one sink; it rejects with TESSERA_AUDIT_UNAVAILABLE when none could write, and the
 * caller must then fail the request (audit fails closed).
 */
export interface AuditWriter {
  append(event: AuditEvent): Promise<void>;
  /** HMAC-SHA256 with the audit key, hex; for identifiers that must not appear in clear. */
  hmac(value: string): string;
}

/** An AuditWriter that keeps events in memory: for unit tests of other services. */
export class MemoryAuditWriter implements AuditWriter {
  readonly events: AuditEvent[] = [];
  failing = false;
  async append(event: AuditEvent): Promise<void> {
    if (this.failing) {
      const { TesseraError } = await import('../shared/errors.js');
      throw new TesseraError('TESSERA_AUDIT_UNAVAILABLE', 'audit sink unavailable (test)');
    }
    this.events.push(event);
  }
  hmac(value: string): string {
    // Deterministic, non-reversible in tests too.
    return `hmac:${Buffer.from(value).length}:${simpleHash(value)}`;
  }
}

function simpleHash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}
