import type { Logger } from '../../shared/logger.js';
import type { MetricsRegistry } from '../../shared/metrics.js';
import { batchLines } from './lines.js';
import type { AuditSink } from './types.js';

/** Thrown by a `deliver` function when retrying cannot help (e.g. HTTP 400/401/403): the lines are dropped. */
export class PermanentDeliveryError extends Error {}

/** Queue and retry settings of a forwarder (`audit.sinks[]` of kind http, syslog). */
export interface QueueSettings {
  /** Most lines held; when full, the oldest are dropped (counted and logged). */
  readonly maxQueue: number;
  /** Most lines per delivery. */
  readonly batchMaxLines: number;
  /** First retry delay, ms; doubles per failure up to retryMaxMs (full jitter). */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
}

export interface ForwarderOptions extends QueueSettings {
  /** Metrics/log label: `http`, `syslog`. */
  readonly name: string;
  /** Sends lines in order; resolves when the receiver accepted them all. */
  readonly deliver: (lines: readonly string[]) => Promise<void>;
  /** Jitter source in [0, 1): Math.random by default. */
  readonly random?: () => number;
}

export interface Forwarder {
  /** Queues lines for delivery; never blocks and never throws. */
  enqueue(lines: readonly string[]): void;
  /** Stops retrying after `graceMs` of trying to deliver what is queued; then discards the rest. */
  close(graceMs: number): Promise<void>;
  /** Queued lines, delivered and dropped counts (tests, /readyz details). */
  stats(): { queued: number; delivered: number; dropped: number; failures: number };
}

/**
 * Asynchronous, ordered, at-least-once delivery with a bounded queue and exponential backoff:
 * the machinery of the http and syslog sinks. One delivery is in flight at a time; a failed
 * delivery is retried (same lines, then more) until it succeeds, it fails permanently, or the
 * lines are pushed out of the queue by newer ones.
 */
export function createForwarder(o: ForwarderOptions): Forwarder {
  const random = o.random ?? Math.random;
  const errors = o.metrics?.counter('tessera_audit_sink_errors_total', 'Batches an audit sink failed to write, by sink.');
  const droppedTotal = o.metrics?.counter('tessera_audit_sink_dropped_total', 'Audit lines a forwarding sink (http, syslog) dropped: queue full or refused by the receiver, by sink.');
  const queueGauge = o.metrics?.gauge('tessera_audit_sink_queue', 'Audit lines waiting in a forwarding sink (http, syslog), by sink.');

  // A FIFO of lines; `base` is the absolute index of items[0] so in-flight ranges survive drops.
  let items: string[] = [];
  let base = 0;
  let delivered = 0;
  let dropped = 0;
  let failures = 0;
  let running: Promise<void> | null = null;
  let closing = false;
  let deadline = Infinity;
  let overflowing = false;
  let wake: (() => void) | null = null;

  const queued = (): number => items.length;
  const setGauge = (): void => queueGauge?.set(items.length, { sink: o.name });

  function dropFront(n: number, reason: 'queue_full' | 'refused' | 'closed'): void {
    if (n <= 0) return;
    items = items.slice(n);
    base += n;
    dropped += n;
    droppedTotal?.inc({ sink: o.name }, n);
    if (reason !== 'queue_full') return;
    if (!overflowing) o.logger.error({ sink: o.name, max_queue: o.maxQueue }, 'audit sink queue full: dropping the oldest lines (the receiver is down or too slow)');
    overflowing = true;
  }

  /** Backoff; unref'd (it must not keep the process alive) except while close() waits on it. */
  function sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      if (!closing) t.unref();
      function done(): void {
        clearTimeout(t);
        wake = null;
        resolve();
      }
      wake = done;
    });
  }

  async function pump(): Promise<void> {
    let attempt = 0;
    while (items.length > 0 && !(closing && Date.now() >= deadline)) {
      const start = base;
      const lines = items.slice(0, o.batchMaxLines);
      try {
        await o.deliver(lines);
        const done = Math.max(0, start + lines.length - base); // some may have been dropped meanwhile
        items = items.slice(done);
        base += done;
        delivered += lines.length;
        if (attempt > 0) o.logger.info({ sink: o.name, attempts: attempt + 1 }, 'audit sink delivering again');
        attempt = 0;
        overflowing = false;
      } catch (e) {
        failures++;
        errors?.inc({ sink: o.name });
        if (e instanceof PermanentDeliveryError) {
          o.logger.error({ sink: o.name, err: e.message, lines: lines.length }, 'audit sink refused a batch; it is dropped');
          dropFront(Math.max(0, start + lines.length - base), 'refused');
          attempt = 0;
        } else {
          attempt++;
          o.logger.warn({ sink: o.name, err: (e as Error).message, attempt, queued: items.length }, 'audit sink delivery failed; will retry');
          if (closing) {
            if (Date.now() >= deadline) break;
          }
          const cap = Math.min(o.retryMaxMs, o.retryInitialMs * 2 ** Math.min(attempt - 1, 30));
          await sleep(closing ? Math.min(cap, Math.max(0, deadline - Date.now())) : Math.max(1, Math.floor(cap * (0.5 + random() / 2))));
        }
      }
      setGauge();
    }
  }

  function kick(): void {
    if (running) return;
    running = pump().finally(() => {
      running = null;
      if (items.length > 0 && !closing) kick();
    });
  }

  return {
    enqueue(lines) {
      if (closing || lines.length === 0) return;
      items.push(...lines);
      if (items.length > o.maxQueue) dropFront(items.length - o.maxQueue, 'queue_full');
      setGauge();
      kick();
    },
    async close(graceMs) {
      closing = true;
      deadline = Date.now() + graceMs;
      wake?.(); // the pending backoff (unref'd) ends now; later ones, while closing, keep the loop alive
      if (items.length > 0 && !running) kick();
      while (running) await running;
      if (items.length > 0) {
        o.logger.error({ sink: o.name, lines: items.length }, 'audit sink closed with undelivered lines');
        dropFront(items.length, 'closed');
      }
      setGauge();
    },
    stats: () => ({ queued: queued(), delivered, dropped, failures }),
  };
}

/** Queue, retry and timeout settings every forwarding sink takes (`audit.sinks[]` of kind http, syslog). */
export interface ForwardingSettings extends QueueSettings {
  /** Bound on one delivery, ms; also bounds the delivery attempts at close (at most 5 s). */
  readonly timeoutMs: number;
}

/**
 * An audit sink that forwards each committed batch's lines (records, then the signed head) with
 * `deliver` through a forwarder. Never durable: it does not count for failing closed. `closeTransport`
 * runs after the queue is delivered or abandoned (sockets).
 */
export function forwardingSink(
  name: 'http' | 'syslog',
  deliver: (lines: readonly string[]) => Promise<void>,
  o: ForwardingSettings,
  closeTransport?: () => Promise<void>,
): AuditSink & { forwarder: Forwarder } {
  const { maxQueue, batchMaxLines, retryInitialMs, retryMaxMs, logger, metrics } = o;
  const forwarder = createForwarder({ name, deliver, maxQueue, batchMaxLines, retryInitialMs, retryMaxMs, logger, ...(metrics ? { metrics } : {}) });
  return {
    name,
    durable: false,
    forwarder,
    async write(batch) {
      forwarder.enqueue(batchLines(batch));
    },
    async close() {
      await forwarder.close(Math.min(5000, o.timeoutMs));
      await closeTransport?.();
    },
  };
}
