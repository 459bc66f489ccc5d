/**
 * `tessera injector`'s HTTPS server (docs/k8s-injector.md): `POST /mutate` answers
 * AdmissionReviews with mutatePod, `GET /healthz` answers 200. Plain node:https, no framework:
 * one route, and the API server waits for it on every pod creation (goal ≤ 5 ms p99).
 *
 * Answers: 200 with an AdmissionReview for every request that carries a uid (a refusal is
 * `allowed: false` with a status: the API server treats any non-200 as a webhook failure and
 * shows only a generic message); 400/413 with `{"error":{"code","message"}}` for a body that is
 * not an AdmissionReview at all; 404/405 for other routes. Never a 5xx for any input.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isTesseraError, TesseraError, type ErrorCode } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { mutatePod } from './mutate.js';
import { loadTls, type TlsMaterial } from './tls.js';
import type { InjectorSettings } from './inject.js';

/** Largest AdmissionReview read: twice the largest object etcd stores (1.5 MiB) plus the envelope. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** A larger body is still drained up to this much, so the client reads the 413; beyond it the connection is cut. */
const DRAIN_BYTES = 4 * MAX_BODY_BYTES;
/** How long close() lets requests in flight finish. */
const CLOSE_DRAIN_MS = 5_000;

export interface InjectorServer {
  /** `https://host:port` actually bound (port 0 → the chosen port). */
  readonly url: string;
  /** Re-reads the certificate files now; true when a new pair was loaded. Never throws (a bad pair is logged and the old one kept). */
  reloadTls(): boolean;
  close(): Promise<void>;
}

export interface InjectorDeps {
  readonly settings: InjectorSettings;
  readonly logger: Logger;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(listen.slice(i + 1)) };
}

function send(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...(close ? { connection: 'close' } : {}) });
  res.end(text);
}

function sendError(res: ServerResponse, code: ErrorCode, message: string, close = false): void {
  send(res, new TesseraError(code, message).status, { error: { code, message } }, close);
}

/** Reads the body up to MAX_BODY_BYTES; null (after answering 413) when it is larger. */
function readBody(req: IncomingMessage, res: ServerResponse): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    const chunks: Buffer[] = [];
    let size = 0;
    let over = declared > MAX_BODY_BYTES;
    const tooLarge = (): void => {
      sendError(res, 'TESSERA_INJECTOR_BODY_TOO_LARGE', `the AdmissionReview is larger than ${MAX_BODY_BYTES} bytes`, true);
      resolve(null);
    };
    if (declared > DRAIN_BYTES) {
      tooLarge();
      res.once('finish', () => req.destroy());
      return;
    }
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) over = true;
      if (size > DRAIN_BYTES) req.destroy();
      else if (!over) chunks.push(c);
    });
    req.on('end', () => (over ? tooLarge() : resolve(Buffer.concat(chunks, size))));
    req.on('error', () => resolve(null));
    req.on('close', () => {
      if (!req.complete) resolve(null);
    });
  });
}

async function handleMutate(req: IncomingMessage, res: ServerResponse, deps: InjectorDeps): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    return sendError(res, 'TESSERA_INJECTOR_REVIEW_MALFORMED', `Content-Type must be application/json (got ${JSON.stringify(type.slice(0, 64))})`);
  }
  const body = await readBody(req, res);
  if (body === null) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return sendError(res, 'TESSERA_INJECTOR_REVIEW_MALFORMED', 'the body is not valid JSON (an AdmissionReview admission.k8s.io/v1 was expected)');
  }
  try {
    const review = mutatePod(parsed, deps.settings);
    const r = review.response;
    if (!r.allowed) deps.logger.info({ uid: r.uid, status: r.status?.code }, `injector refused a pod: ${r.status?.message ?? ''}`);
    else if (r.patch) deps.logger.debug({ uid: r.uid }, 'injector mutated a pod');
    send(res, 200, review);
  } catch (e) {
    if (isTesseraError(e)) return sendError(res, e.code, e.message);
    deps.logger.error({ err: { message: (e as Error).message } }, 'injector failed on a request');
    sendError(res, 'TESSERA_INTERNAL', 'unexpected error in the injector; see its log');
  }
}

function route(req: IncomingMessage, res: ServerResponse, deps: InjectorDeps): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz') {
    if (req.method === 'GET' || req.method === 'HEAD') return send(res, 200, { status: 'ok' });
    return sendError(res, 'TESSERA_METHOD_NOT_ALLOWED', '/healthz answers GET');
  }
  if (path === '/mutate') {
    if (req.method === 'POST') return void handleMutate(req, res, deps);
    return sendError(res, 'TESSERA_METHOD_NOT_ALLOWED', '/mutate answers POST (an AdmissionReview from the Kubernetes API server)');
  }
  req.resume();
  sendError(res, 'TESSERA_NOT_FOUND', 'the injector serves POST /mutate and GET /healthz');
}

/**
 * Starts the webhook. Throws TESSERA_INJECTOR_TLS_INVALID when the certificate pair cannot be
 * used; then polls the files every `tls_reload_interval` and swaps the pair in when it changes.
 */
export async function startInjector(deps: InjectorDeps): Promise<InjectorServer> {
  const s = deps.settings;
  let tls: TlsMaterial = loadTls(s.tls_cert_file, s.tls_key_file);
  let closing = false;
  /** Answers not yet sent: at close they are told to end their connection (`Connection: close`). */
  const pending = new Set<ServerResponse>();
  const server: Server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 30_000 }, (req, res) => {
    if (closing) res.shouldKeepAlive = false;
    else {
      pending.add(res);
      res.once('close', () => pending.delete(res));
    }
    route(req, res, deps);
  });
  server.on('tlsClientError', () => undefined); // scanners and health checkers without TLS: nothing to log per connection
  const { host, port } = splitListen(s.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  deps.logger.info({ fingerprint: tls.fingerprint, not_after: tls.notAfter }, 'injector certificate loaded');
  const reloadTls = (): boolean => {
    try {
      const next = loadTls(s.tls_cert_file, s.tls_key_file);
      if (next.digest === tls.digest) return false;
      server.setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
      tls = next;
      deps.logger.info({ fingerprint: tls.fingerprint, not_after: tls.notAfter }, 'injector certificate reloaded');
      return true;
    } catch (e) {
      deps.logger.warn({ code: e instanceof TesseraError ? e.code : undefined }, `injector certificate not reloaded, the previous one stays in use: ${(e as Error).message}`);
      return false;
    }
  };
  const timer = setInterval(reloadTls, s.tls_reload_interval);
  timer.unref();
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `https://${shownHost}:${addr.port}`,
    reloadTls,
    // Stop accepting, close idle keep-alive connections, let requests in flight finish (an
    // admission cut off mid-way is a refused pod under failurePolicy: Fail), cut the rest after 5 s.
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        closing = true;
        for (const res of pending) if (!res.headersSent) res.shouldKeepAlive = false;
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_DRAIN_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
