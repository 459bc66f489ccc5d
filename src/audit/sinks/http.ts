import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { forwardingSink, PermanentDeliveryError, type Forwarder, type ForwardingSettings } from './forwarder.js';
import type { AuditSink } from './types.js';
import { describeDuration } from '../../shared/duration.js';

export interface HttpSinkOptions extends ForwardingSettings {
  /** http:// or https:// (TLS, verified against the system CAs plus `ca`); never with user:password@. */
  readonly url: string;
  /** Header to authenticate with, its value already resolved from the secret env/file (never logged). */
  readonly auth?: { readonly header: string; readonly value: string };
  /** Extra trusted CA certificates (PEM) for https. */
  readonly ca?: string;
}

const RETRYABLE = new Set([408, 425, 429]);

/**
 * POSTs batches of JSON lines (`application/x-ndjson`, one record or signed head per line, see
 * lines.ts) to a central collector. Asynchronous (a bounded queue, retries with backoff): it
 * does not make an event durable before the request is answered, so it never counts for
 * failing closed. 2xx accepts a batch; 408, 425, 429, 5xx and network errors are retried;
 * any other status drops the batch (logged and counted, never retried forever).
 */
export function httpSink(o: HttpSinkOptions): AuditSink & { forwarder: Forwarder } {
  const url = new URL(o.url);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const where = `${url.origin}${url.pathname}`; // for logs: never the query or credentials

  function deliver(lines: readonly string[]): Promise<void> {
    const body = Buffer.from(lines.join(''), 'utf8');
    return new Promise<void>((resolve, reject) => {
      const headers: Record<string, string | number> = { 'content-type': 'application/x-ndjson', 'content-length': body.length, 'user-agent': 'tessera-audit' };
      if (o.auth) headers[o.auth.header] = o.auth.value;
      const req = send(url, { method: 'POST', headers, timeout: o.timeoutMs, ...(o.ca ? { ca: o.ca } : {}) }, (res: IncomingMessage) => {
        res.resume(); // the body is not needed; drain it so the socket is freed
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else if (status >= 500 || RETRYABLE.has(status)) reject(new Error(`collector ${where} answered HTTP ${status}`));
          else reject(new PermanentDeliveryError(`collector ${where} refused the batch with HTTP ${status}`));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`collector ${where} did not answer within ${describeDuration(o.timeoutMs)} (its timeout)`)));
      req.on('error', (e: NodeJS.ErrnoException) => reject(new Error(`collector ${where}: ${e.code ?? e.message}`)));
      req.end(body);
    });
  }

  return forwardingSink('http', deliver, o);
}
