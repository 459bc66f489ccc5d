import type { SinkBatch } from './lines.js';

/** An external audit sink (the store is not one: log.ts writes it in the commit transaction). */
export interface AuditSink {
  readonly name: string;
  /**
   * True when `write` resolving means the batch is durable there, so it counts for "at least one
   * sink recorded the event" (audit fails closed). Forwarders (http, syslog) queue and deliver
   * later: they never count.
   */
  readonly durable: boolean;
  write(batch: SinkBatch): Promise<void>;
  /** Flushes what can be flushed (bounded) and releases resources. */
  close?(): Promise<void>;
}
