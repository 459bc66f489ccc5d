/**
 * The proxy's adapter around the one request pipeline (DESIGN.md "Request pipeline"; docs/proxy.md):
 *
 *   target → authenticate (auth.ts, audience `<issuer>/proxy`) → authorize (Cedar `http.request`
 *   on `Route::"<name>"` with `context.http`, token scope `http:<name>`) → credential
 *   (credential.ts) → execute (undici, streamed both ways, bounded, timed out, never following
 *   redirects) → redact (the response streamed through the scrubber) → audit (one `proxy.request`
 *   event, a pass-through event of the grouped flush, ADR 0185).
 *
 * Errors are JSON `{ error: { code, message, request_id } }` with a stable code; only a real
 * upstream failure is a 5xx (502 TESSERA_PROXY_UPSTREAM_UNAVAILABLE, 504 …_UPSTREAM_TIMEOUT,
 * 502 …_CREDENTIAL_UNAVAILABLE when the route's credential source fails).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { AuditWriter } from '../audit/port.js';
import type { AuditWhere } from '../audit/events.js';
import { createScrubber, type Scrubber, type ScrubHit, type SecretInput } from '../gateway/scrub/index.js';
import type { SecretUseRecorder } from '../gateway/types.js';
import { refusalOf, type RequestAuthorizer } from '../pipeline/authorize.js';
import type { HttpRequestContext } from '../policy/entities.js';
import type { PolicyRequest } from '../policy/types.js';
import type { Clock } from '../shared/clock.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Counter, Histogram, MetricsRegistry } from '../shared/metrics.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { bearerChallenge } from '../shared/www-authenticate.js';
import { dpopChallengeOf, dpopWwwAuthenticate } from '../dpop/index.js';
import { retryAfterOf } from '../server/app.js';
import { PROXY_CHALLENGE, type ProxyAuthenticator, type ProxyMode } from './auth.js';
import type { CredentialProvider, InjectedCredential } from './credential.js';
import type { CompiledRoute, RouteTable } from './route-table.js';
import type { ScrubSessionFactory } from './seams.js';
import type { ScrubSession } from './scrub-stream.js';
import { forwardHeaders, readBodyFields, refuseForwardedToken, rewriteLocation, scrubResponseHeaders } from './hygiene.js';
import type { Metered, ProxyMetering } from './metering.js';

/** What a request inside a CONNECT tunnel carries from the tunnel (connect.ts, server.ts). */
export interface TunnelBinding {
  readonly principal: AgentPrincipal;
  readonly token: string;
  readonly host: string;
  readonly port: number;
  readonly route: string;
}

export interface ProxyRequestDeps {
  readonly routes: RouteTable;
  readonly auth: ProxyAuthenticator;
  readonly authorizer: RequestAuthorizer;
  readonly credentials: CredentialProvider;
  readonly audit: Pick<AuditWriter, 'append'>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly replica: string;
  /** Request body bound, bytes (`proxy.max_request_bytes`). */
  readonly maxRequestBytes: number;
  /** Upstream response headers / idle body timeout, and the idle bound on the agent's request body, ms (`proxy.timeout`). */
  readonly timeoutMs: number;
  /** The streamed scrubber of answers (scrub-stream.ts createScrubSession). */
  readonly scrubSession: ScrubSessionFactory;
  readonly forwardHeaders?: (incoming: IncomingMessage['headers'], strip: readonly string[]) => Record<string, string | string[]>;
  /** Exposure windows of injected kv secrets (src/exposure, ADR 0150). */
  readonly secretUses?: SecretUseRecorder;
  /** Called with the principal of each authenticated request's socket (the kill switch cuts it on revocation). */
  readonly onAuthenticated?: (socket: IncomingMessage['socket'], principal: AgentPrincipal) => void;
  /** `<issuer>/proxy`: in the 401 challenge. */
  readonly audience: string;
  /** DPoP nonce for answers to DPoP requests (RFC 9449 §9). */
  readonly dpopNonce?: () => string | undefined;
  /** Route limits, preset headers and usage counting (PROVIDERS part, src/proxy/metering.ts). */
  readonly metering?: ProxyMetering;
}

export interface ProxyRequestHandler {
  handle(req: IncomingMessage, res: ServerResponse, mode: ProxyMode, tunnel?: TunnelBinding): void;
}

/** Where the request goes. */
interface Target {
  readonly route: CompiledRoute;
  /** Path as sent upstream (percent-encoding kept), no query. */
  readonly path: string;
  /** `?…` as received, or "". */
  readonly search: string;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const SEGMENT_ID = /^(?:\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?=[A-Za-z0-9_~.%:-]*\d)[A-Za-z0-9_~.%:-]{20,})$/i;
const TOKEN_METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;
/** Response fields not passed back (hop-by-hop, RFC 9110 §7.6.1; content-length: scrubbing may change the length). */
const RESPONSE_DROP: readonly string[] = ['content-length'];

/**
 * The path template of the audit event: id-like segments (numbers, UUIDs, long tokens with a
 * digit) become `{id}`, so the log keeps the API shape without identifiers or path-borne tokens.
 */
export function pathTemplate(path: string): string {
  return path.split('/').map((s) => (SEGMENT_ID.test(s) ? '{id}' : s)).join('/');
}

/**
 * Checks a path (as received, before the query) can be appended to a base path without escaping
 * it: no "." or ".." segment (also percent-encoded), no backslash, no control character, no
 * malformed percent-encoding. Percent-encoding is kept as received. Throws 400 TESSERA_PROXY_PATH_INVALID.
 */
export function checkPath(path: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f\\]/.test(path)) throw new TesseraError('TESSERA_PROXY_PATH_INVALID', 'the request path holds a control character, a space or a backslash');
  if (/%(?![0-9A-Fa-f]{2})/.test(path)) throw new TesseraError('TESSERA_PROXY_PATH_INVALID', 'the request path holds a "%" that starts no valid percent-encoded byte');
  for (const seg of path.split('/')) {
    const s = seg.replace(/%2e/gi, '.');
    if (s === '.' || s === '..') throw new TesseraError('TESSERA_PROXY_PATH_INVALID', 'the request path holds a "." or ".." segment (also percent-encoded); send the normalized path');
  }
}

/** Why the upstream request was cut: the agent's connection closed first. */
function clientGone(): Error {
  return Object.assign(new Error('the agent closed the connection before the answer was complete'), { code: 'UND_ERR_ABORTED' });
}

/** A Content-Length value as a number (undefined when absent or not one plain decimal). */
function lengthOf(v: string | string[] | undefined): number | undefined {
  return typeof v === 'string' && /^[0-9]{1,15}$/.test(v) ? Number(v) : undefined;
}

function splitTarget(url: string): { path: string; search: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, search: '' } : { path: url.slice(0, q), search: url.slice(q) };
}

/** The query parameter names (never values), decoded, at most 256. */
export function queryKeys(search: string): string[] {
  if (search.length <= 1) return [];
  const keys = new Set<string>();
  for (const part of search.slice(1).split('&')) {
    if (!part) continue;
    const k = part.split('=', 1)[0]!;
    try {
      keys.add(decodeURIComponent(k.replace(/\+/g, ' ')));
    } catch {
      keys.add(k);
    }
    if (keys.size >= 256) break;
  }
  return [...keys];
}

/** Maps an undici failure to the proxy's error: the SSRF guard's own TesseraError, a timeout (504) or an unreachable upstream (502). */
export function upstreamFailure(e: unknown, route: string): TesseraError {
  for (let x = e, i = 0; x && i < 4; x = (x as { cause?: unknown }).cause, i++) if (isTesseraError(x)) return x;
  const code = (e as { code?: string } | undefined)?.code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new TesseraError('TESSERA_PROXY_UPSTREAM_TIMEOUT', `the upstream of route "${route}" did not answer within proxy.timeout`, { route });
  }
  const cause = (e as { cause?: { code?: string } } | undefined)?.cause?.code;
  return new TesseraError('TESSERA_PROXY_UPSTREAM_UNAVAILABLE', `the upstream of route "${route}" could not be reached or failed (${cause ?? code ?? 'error'})`, { route });
}

/** 408: the agent sent no request body bytes for `idleMs` (a slow-body hold; A10-6). */
function bodyIdle(idleMs: number): TesseraError {
  return new TesseraError('TESSERA_PROXY_BODY_TIMEOUT', `the request body stalled: no bytes for ${Math.round(idleMs / 1000)} s (proxy.timeout); send the body without pauses, or raise proxy.timeout`, { timeout_ms: idleMs });
}

/**
 * A byte counter that refuses a body over `max` (413) and one that stalls for `idleMs` between
 * chunks (408): a request body trickled a byte at a time must not hold a connection, an
 * upstream request and a credential open forever (the proxy server has no overall request timeout,
 * because answers may stream for long).
 */
function bounded(max: number, idleMs: number, count: (n: number) => void): Transform {
  let seen = 0;
  let timer: NodeJS.Timeout | undefined;
  const t: Transform = new Transform({
    transform(chunk: Buffer, _e, cb) {
      arm();
      seen += chunk.length;
      count(chunk.length);
      if (seen > max) cb(new TesseraError('TESSERA_PROXY_BODY_TOO_LARGE', `the request body is larger than proxy.max_request_bytes (${max} bytes)`, { limit: max }));
      else cb(null, chunk);
    },
    flush(cb) {
      clearTimeout(timer);
      cb();
    },
    destroy(err, cb) {
      clearTimeout(timer);
      cb(err);
    },
  });
  function arm(): void {
    clearTimeout(timer);
    timer = setTimeout(() => t.destroy(bodyIdle(idleMs)), idleMs);
    timer.unref();
  }
  arm();
  return t;
}

/** Reads a JSON body up to `max` bytes (413 beyond), stalling at most `idleMs` between chunks (408). */
function readBounded(req: IncomingMessage, max: number, idleMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    let timer: NodeJS.Timeout | undefined;
    const fail = (e: unknown): void => {
      clearTimeout(timer);
      req.removeAllListeners('data');
      req.resume();
      reject(e);
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(bodyIdle(idleMs)), idleMs);
      timer.unref();
    };
    arm();
    req.on('data', (c: Buffer) => {
      arm();
      n += c.length;
      if (n > max) {
        fail(new TesseraError('TESSERA_PROXY_BODY_TOO_LARGE', `the request body is larger than proxy.max_request_bytes (${max} bytes)`, { limit: max }));
        return;
      }
      parts.push(c);
    });
    req.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
    req.once('error', (e) => fail(e));
  });
}

interface Metrics {
  readonly requests: Counter;
  readonly bytes: Counter;
  readonly latency: Histogram;
}

function proxyMetrics(m: MetricsRegistry | undefined): Metrics | undefined {
  if (!m) return undefined;
  return {
    requests: m.counter('tessera_proxy_requests_total', 'Requests answered by the injection proxy, by route and status class (route "-": no route)'),
    bytes: m.counter('tessera_proxy_bytes_total', 'Body bytes through the injection proxy, by route and direction (in: agent → upstream, out: upstream → agent)'),
    latency: m.histogram('tessera_proxy_request_duration_seconds', 'Injection proxy requests from arrival to the last response byte, by route'),
  };
}

/** Scrubbers kept for the same injected values (a kv secret is the same on every request): no per-request compilation. */
const SCRUBBER_CACHE = 256;

export function createProxyRequestHandler(deps: ProxyRequestDeps): ProxyRequestHandler {
  const metrics = proxyMetrics(deps.metrics);
  const scrubbers = new Map<string, Scrubber>();
  /** By the credential's own `secrets` list (a kv route's credential object is reused while its value is the same). */
  const scrubberOf = new WeakMap<readonly SecretInput[], Scrubber>();
  /** Only the values injected here are scrubbed: shape detection (JWT-like strings …) would alter legitimate API payloads. */
  function scrubberFor(secrets: readonly SecretInput[]): Scrubber {
    const known = scrubberOf.get(secrets);
    if (known) return known;
    const key = secrets.map((x) => `${x.label ?? ''}\u0000${x.value}`).join('\u0001');
    let s = scrubbers.get(key);
    if (!s) {
      if (scrubbers.size >= SCRUBBER_CACHE) scrubbers.clear();
      s = createScrubber(secrets, { shapes: false });
      scrubbers.set(key, s);
    }
    scrubberOf.set(secrets, s);
    return s;
  }
  const forward = deps.forwardHeaders ?? forwardHeaders;

  /** The route and upstream path of a request. Throws 404/403/400 codes. */
  function targetOf(req: IncomingMessage, mode: ProxyMode, tunnel: TunnelBinding | undefined): Target {
    const url = req.url ?? '/';
    if (mode === 'intercepted') {
      const route = deps.routes.byName(tunnel!.route);
      if (!route) throw new TesseraError('TESSERA_PROXY_NO_ROUTE', `no proxy route serves ${tunnel!.host}`);
      const { path, search } = splitTarget(url.startsWith('/') ? url : '/');
      checkPath(path);
      return { route, path, search };
    }
    if (mode === 'forward') {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        throw new TesseraError('TESSERA_PROXY_PATH_INVALID', 'the absolute-form request target is not a URL');
      }
      if (u.protocol !== 'http:') throw new TesseraError('TESSERA_PROXY_PATH_INVALID', `absolute-form requests must be http:// (got ${u.protocol}); for https:// use CONNECT (HTTPS_PROXY)`);
      const host = u.hostname.replace(/^\[|\]$/g, '');
      const route = deps.routes.byHost(host);
      if (!route) throw new TesseraError('TESSERA_PROXY_NO_ROUTE', `no proxy route serves host "${host.slice(0, 253)}"; add it to a route's hosts in proxy.routes, or use a route's reverse URL http://<proxy>/<route>/…`, { host: host.slice(0, 253) });
      // The path as the client wrote it (WHATWG URL would normalize it: take it from the raw target).
      const afterAuthority = url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
      const { path, search } = splitTarget(afterAuthority.startsWith('/') ? afterAuthority.replace(/#.*$/, '') : `/${afterAuthority.replace(/#.*$/, '')}`);
      checkPath(path);
      return { route, path, search };
    }
    const { path: raw, search } = splitTarget(url);
    const slash = raw.indexOf('/', 1);
    const name = slash < 0 ? raw.slice(1) : raw.slice(1, slash);
    const route = deps.routes.byName(name);
    if (!route) throw new TesseraError('TESSERA_PROXY_ROUTE_NOT_FOUND', `no proxy route is named "${name.slice(0, 64)}"; reverse requests go to http://<proxy>/<route>/<path> (tessera proxy routes lists them)`);
    const rest = slash < 0 ? '' : raw.slice(slash);
    checkPath(rest);
    const path = route.basePath + rest || '/';
    return { route, path, search };
  }

  function sendError(req: IncomingMessage, res: ServerResponse, mode: ProxyMode, err: TesseraError, requestId: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    let status = err.status;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
    const retry = retryAfterOf(err);
    if (retry !== undefined) headers['retry-after'] = String(retry);
    if (status === 401 || status === 407) {
      if (mode === 'forward') {
        status = 407; // RFC 9110 §15.5.8: the proxy asks for credentials
        headers['proxy-authenticate'] = PROXY_CHALLENGE;
      } else {
        status = 401;
        const dpop = dpopChallengeOf(err);
        if (dpop) {
          headers['www-authenticate'] = dpopWwwAuthenticate(err, dpop, {});
          const nonce = dpop.nonce ?? deps.dpopNonce?.();
          if (nonce) headers['dpop-nonce'] = nonce;
        } else {
          headers['www-authenticate'] = err.code === 'TESSERA_TOKEN_MISSING' ? bearerChallenge({ realm: 'tessera-proxy' }) : bearerChallenge({ realm: 'tessera-proxy', error: 'invalid_token', error_description: err.message });
        }
      }
    }
    const body = JSON.stringify({ error: { code: err.code, message: err.message, request_id: requestId, ...(err.details ? { details: err.details } : {}) } });
    // A body not read is drained, so the connection stays usable (unless it is huge or stalled: then closed).
    if (!req.complete) {
      if (err.code === 'TESSERA_PROXY_BODY_TOO_LARGE' || err.code === 'TESSERA_PROXY_BODY_TIMEOUT') headers['connection'] = 'close';
      else req.resume();
    }
    res.writeHead(status, headers);
    res.end(body);
  }

  return {
    handle(req, res, mode, tunnel) {
      const t0 = process.hrtime.bigint();
      const requestId = randomUUID();
      const where: AuditWhere = { source: req.socket.remoteAddress ?? 'unknown', replica: deps.replica, requestId };
      let route: CompiledRoute | undefined;
      let principal: AgentPrincipal | undefined;
      let presented: string | undefined;
      let target: Target | undefined;
      let decision: { allowed: boolean; policies: readonly string[] } | undefined;
      let credential: InjectedCredential | undefined;
      let credentialAt = 0;
      let code: string | undefined;
      let upstreamStatus = 0;
      let bytesIn = 0;
      let bytesOut = 0;
      const redactions: Record<string, number> = {};
      let redactionCount = 0;
      /** For an OAuth route's token request (the only credential source that takes a signal); made when needed. */
      let abort: AbortController | undefined;
      /** The upstream exchange once undici started it; `gone`: the client left before it finished. */
      let upstream: Dispatcher.DispatchController | undefined;
      let gone = false;

      res.once('close', () => {
        if (!res.writableFinished) {
          gone = true;
          abort?.abort();
          if (upstream && !upstream.aborted) upstream.abort(clientGone());
        }
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const label = route?.name ?? '-';
        metrics?.requests.inc({ route: label, status: `${Math.floor(res.statusCode / 100)}xx` });
        if (bytesIn) metrics?.bytes.inc({ route: label, direction: 'in' }, bytesIn);
        if (bytesOut) metrics?.bytes.inc({ route: label, direction: 'out' }, bytesOut);
        metrics?.latency.observe(seconds, { route: label });
        credential?.release();
        if (credential?.secretPath && principal && deps.secretUses) {
          const p = principal;
          deps.secretUses.recordUse({ agent: p.spiffeId, task: p.task ?? null, root: p.rootTask ?? p.task ?? null, user: p.user ?? null, resource: `kv/${credential.secretPath} -> proxy:${label}`, startedAt: credentialAt, endedAt: deps.secretUses.now() });
        }
        // One event per authenticated request (a refused credential is audited by the pipeline as auth.token_refused).
        if (!principal || !route || !target) return;
        const completed = res.writableFinished;
        const result = decision && !decision.allowed ? 'deny' : code ? (res.statusCode >= 500 ? 'error' : 'failure') : completed ? 'success' : 'failure';
        void deps.audit.append({
          kind: 'proxy.request',
          actor: { id: principal.spiffeId, ...(principal.chain ? { chain: principal.chain } : {}), ...(principal.user ? { user: principal.user } : {}) },
          action: 'http.request', resource: `route:${route.name}`, result,
          ...(decision || code ? { reason: { ...(decision ? { policies: decision.policies } : {}), ...(code ? { code } : {}) } } : {}),
          ...(principal.task ? { txn: principal.task } : {}),
          ...(principal.purpose ? { purpose: principal.purpose } : {}),
          where,
          details: {
            route: route.name, mode, method: req.method ?? '', path_template: pathTemplate(target.path), status: res.statusCode,
            ...(upstreamStatus ? { upstream_status: upstreamStatus } : {}),
            bytes_in: bytesIn, bytes_out: bytesOut, latency_ms: Math.round(seconds * 1000 * 1000) / 1000,
            decision: decision ? (decision.allowed ? 'allow' : 'deny') : 'none',
            ...(credential ? { credential: credential.reference } : {}),
            redactions: redactionCount, ...(redactionCount ? { redacted: redactions } : {}),
            ...(completed ? {} : { aborted: true }),
          },
        }).catch((e: unknown) => deps.logger.warn({ err: (e as Error).message, request_id: requestId }, 'proxy: audit of a request failed'));
      });

      const fail = (e: unknown): void => {
        const err = isTesseraError(e) ? e : new TesseraError('TESSERA_INTERNAL', 'the proxy failed to handle the request; the request id finds it in the log');
        if (!isTesseraError(e)) deps.logger.error({ err: (e as Error)?.message, request_id: requestId }, 'proxy: unexpected error');
        code = err.code;
        sendError(req, res, mode, err, requestId);
      };

      void (async () => {
        const method = req.method ?? 'GET';
        if (!TOKEN_METHOD.test(method) || method === 'CONNECT' || method === 'TRACE') throw new TesseraError('TESSERA_PROXY_METHOD_INVALID', `method ${method.slice(0, 32)} is not forwarded by the proxy`);
        target = targetOf(req, mode, tunnel);
        route = target.route;
        const r = route;
        // authenticate
        if (mode === 'intercepted') {
          principal = await deps.auth.authenticateToken(tunnel!.token, where as { requestId: string; source: string; replica: string }, { method, target: req.url ?? '/' });
          presented = tunnel!.token;
        } else {
          const authenticated = await deps.auth.authenticate({ headers: req.headers, method, target: req.url ?? '/' }, mode, where as { requestId: string; source: string; replica: string });
          principal = authenticated.principal;
          presented = authenticated.token;
        }
        deps.onAuthenticated?.(req.socket, principal);
        // the body: bounded; read whole only when policy needs its JSON fields
        const declared = req.headers['content-length'];
        if (declared !== undefined && Number(declared) > deps.maxRequestBytes) throw new TesseraError('TESSERA_PROXY_BODY_TOO_LARGE', `the request body is larger than proxy.max_request_bytes (${deps.maxRequestBytes} bytes)`, { limit: deps.maxRequestBytes });
        const hasBody = req.headers['transfer-encoding'] !== undefined || (declared !== undefined && declared !== '0');
        let buffered: Buffer | undefined;
        let body: Record<string, string | number | boolean> = {};
        if (hasBody && (r.bodyFields.length > 0 || deps.metering?.needsBody(r)) && JSON_TYPE.test(req.headers['content-type'] ?? '')) {
          buffered = await readBounded(req, deps.maxRequestBytes, deps.timeoutMs);
          bytesIn = buffered.length;
        }
        if (hasBody && r.bodyFields.length > 0) {
          // Policy must see what the upstream will read: JSON only, duplicate names and non-scalar
          // values refused (src/proxy/hygiene.ts readBodyFields, ADR 0221).
          if (!buffered) throw new TesseraError('TESSERA_PROXY_BODY_INVALID', `route "${r.name}" reads body fields (${r.bodyFields.join(', ')}) for policy, so its request bodies must be JSON (Content-Type: application/json); for an endpoint that takes another body type, configure a route without body_fields`);
          body = readBodyFields(buffered.toString('utf8'), r.bodyFields, r.name);
        }
        // authorize: token scope http:<route> ∩ Cedar http.request on Route::"<route>" (∩ the user)
        const http: HttpRequestContext = { route: r.name, method, host: r.host, port: r.port, path: target.path, query_keys: queryKeys(target.search), body, tunnel: false };
        const request: PolicyRequest = { principal, action: 'http.request', resource: { type: 'Route', route: r.name }, context: { http } };
        const d = deps.authorizer.authorize(request);
        decision = d;
        if (!d.allowed) throw refusalOf(d, request, { denied: 'TESSERA_PROXY_DENIED', userDenied: 'TESSERA_PROXY_USER_DENIED', tried: `to ${method} ${target.path} through route "${r.name}"` });
        // limits (429/503), before any credential is obtained
        const metered: Metered | undefined = deps.metering?.admit(r, principal);
        if (buffered && deps.metering) buffered = deps.metering.rewriteBody(r, buffered, req.headers['content-type']) ?? buffered;
        // credential, just in time
        credentialAt = deps.secretUses?.now() ?? deps.clock.now();
        credential = await deps.credentials.obtain(r.config, principal, where, r.config.credential.oauth !== undefined ? (abort ??= new AbortController()).signal : undefined);
        const scrubber = scrubberFor(credential.secrets);
        // execute
        const headers = forward(req.headers, r.strip);
        // The agent's own Tessera token never travels on, wherever the client put it (A10-7).
        refuseForwardedToken(presented!, headers, target.search);
        headers['host'] = r.port === 443 || r.port === 80 ? r.host : `${r.host}:${r.port}`;
        // Identity encoding: a compressed body could not be scrubbed.
        headers['accept-encoding'] = 'identity';
        if (deps.metering) Object.assign(headers, deps.metering.extraHeaders(r, req.headers));
        if (credential.header) headers[credential.header.name] = credential.header.value;
        let search = target.search;
        if (credential.query) {
          const q = `${encodeURIComponent(credential.query.name)}=${encodeURIComponent(credential.query.value)}`;
          // the agent's own value of that parameter is dropped (it is the credential's place)
          const kept = search.length > 1 ? search.slice(1).split('&').filter((p) => p && queryKeys(`?${p.split('=', 1)[0]}`)[0] !== credential!.query!.name) : [];
          search = `?${[...kept, q].join('&')}`;
        }
        let requestBody: Buffer | Readable | undefined;
        if (buffered) requestBody = buffered;
        else if (hasBody && declared !== undefined && !req.readableFlowing && req.readableLength === Number(declared)) {
          // The whole declared body has already arrived (node buffered it while the request was
          // being authorized): sent as it is, with the request head in one write — no waiting,
          // nothing held that node did not already hold.
          requestBody = req.read() as Buffer;
          bytesIn = requestBody.length;
        } else if (hasBody) {
          const counter = bounded(deps.maxRequestBytes, deps.timeoutMs, (n) => (bytesIn += n));
          requestBody = req.pipe(counter);
          req.once('error', (e) => counter.destroy(e));
        }
        if (buffered) headers['content-length'] = String(buffered.length);
        else if (declared !== undefined && !req.headers['transfer-encoding']) headers['content-length'] = declared;
        // execute: undici's dispatch with a handler of the proxy's own (no response stream, no
        // AbortSignal, no promise per answer: ADR 0298); the answer is written from its callbacks.
        let started = false;
        /** The answer being sent (set when the upstream's head arrived). */
        let answer: { readonly controller: Dispatcher.DispatchController; readonly status: number; readonly session: ScrubSession; readonly declared: number | undefined; readonly tap: { push(c: Buffer): void; end(): void } | undefined; readonly headers: Record<string, string | string[]> } | undefined;
        let headWritten = false;
        let finished = false;
        let tapped = false;
        // Usage is recorded once, from what was read, whether the answer ended or was cut.
        const endTap = (): void => {
          if (tapped) return;
          tapped = true;
          answer?.tap?.end();
        };
        const writeHead = (length?: number): void => {
          headWritten = true;
          if (length !== undefined) answer!.headers['content-length'] = String(length);
          res.writeHead(answer!.status, answer!.headers);
        };
        /** Any failure of the upstream body or the scrubber cuts the answer (the audit event then carries the code). */
        const cut = (e: Error): void => {
          endTap();
          finished = true;
          if (!res.writableFinished && !code && !gone) code = upstreamFailure(e, r.name).code;
          if (upstream && !upstream.aborted) upstream.abort(e);
          res.destroy();
        };
        const finish = (last: Buffer): void => {
          finished = true;
          if (!headWritten) writeHead(last.length);
          res.end(last);
        };
        const resume = (): void => answer?.controller.resume();
        /** The upstream's head: status and headers checked, mapped and scrubbed; the body then streams through the scrub session. */
        const onHead = (controller: Dispatcher.DispatchController, status: number, upstreamHeaders: IncomingMessage['headers']): void => {
          upstreamStatus = status;
          // A compressed body could not be scrubbed (the agent would decompress the key): the
          // proxy asked for identity, so an upstream answering with another Content-Encoding is
          // refused, fail closed (a HEAD, 204 or 304 has no body to leak).
          const encoding = upstreamHeaders['content-encoding'];
          if (encoding !== undefined && !(method === 'HEAD' || status === 204 || status === 304) && String(encoding).trim().toLowerCase() !== 'identity') {
            throw new TesseraError('TESSERA_PROXY_UPSTREAM_UNAVAILABLE', `the upstream of route "${r.name}" answered with Content-Encoding ${JSON.stringify(String(encoding).slice(0, 32))} although identity was asked: a compressed body cannot be scrubbed`, { route: r.name });
          }
          // Hop-by-hop fields stop here (RFC 9110 §7.6.1); Content-Length too (a redaction changes the length).
          const out = forward(upstreamHeaders, RESPONSE_DROP);
          const location = out['location'];
          if (typeof location === 'string' && mode === 'reverse') {
            // A same-origin redirect under the base path is mapped back to the route (never followed here).
            const mapped = rewriteLocation(location, r.upstreamUrl, `/${r.name}`);
            if (mapped === undefined) delete out['location'];
            else out['location'] = mapped;
          }
          // Header values are scrubbed like the body (an upstream echoing the key in X-Echo,
          // WWW-Authenticate, Set-Cookie or a mapped Location); a field named by a secret is dropped.
          const scrubbedHeaders = scrubResponseHeaders(out, scrubber);
          for (const h of scrubbedHeaders.hits) {
            redactionCount++;
            redactions[h.form] = (redactions[h.form] ?? 0) + 1;
          }
          res.statusCode = status;
          // redact, streamed: only the tail that could start a value (or an incomplete UTF-8
          // sequence) is held across chunks (scrub-stream.ts). The upstream's Content-Length, when
          // it has one, tells which chunk is the last: that one is scrubbed whole, nothing held.
          const session = deps.scrubSession(scrubber, {
            shapes: false,
            onHits(hits: ScrubHit[]) {
              for (const h of hits) {
                redactionCount++;
                redactions[h.form] = (redactions[h.form] ?? 0) + 1;
              }
            },
          });
          const noBody = method === 'HEAD' || status === 204 || status === 304;
          const tap = metered && !noBody ? deps.metering?.usageTap(r, metered, status, upstreamHeaders['content-type']) : undefined;
          answer = { controller, status, session, declared: lengthOf(upstreamHeaders['content-length']), tap: tap || undefined, headers: scrubbedHeaders.headers };
          if (noBody) {
            // No body (and no Content-Length of Tessera's: a HEAD's would be wrong, a 204's is not allowed).
            finished = true;
            writeHead();
            res.end();
          }
        };
        const onData = (chunk: Buffer): void => {
          const a = answer!;
          bytesOut += chunk.length;
          a.tap?.push(chunk);
          if (finished) return;
          try {
            // The head goes with the first bytes (as node would send it anyway); a body scrubbed
            // whole at once goes with its length: one write, no chunked framing.
            if (a.declared !== undefined && bytesOut >= a.declared) return finish(a.session.end(chunk));
            const piece = a.session.write(chunk);
            if (piece.length === 0) return;
            if (!headWritten) writeHead();
            if (!res.write(piece)) {
              a.controller.pause();
              res.once('drain', resume);
            }
          } catch (e) {
            cut(e as Error);
          }
        };
        const onEnd = (): void => {
          endTap();
          if (finished) return;
          try {
            finish(answer!.session.end());
          } catch (e) {
            cut(e as Error);
          }
        };
        await new Promise<void>((resolve, reject) => {
          // dispatch reports its own failures through onResponseError (undici's DispatcherBase).
          r.dispatcher.dispatch({
            origin: r.origin, path: target!.path + search, method: method as Dispatcher.HttpMethod, headers, body: requestBody ?? null,
            headersTimeout: deps.timeoutMs, bodyTimeout: deps.timeoutMs,
          }, {
            onRequestStart(controller) {
              upstream = controller;
              if (gone) controller.abort(clientGone());
            },
            onResponseStart(controller, status, upstreamHeaders) {
              if (status < 200 || started) return; // 1xx (103 Early Hints …) are not passed on
              started = true;
              try {
                onHead(controller, status, upstreamHeaders);
                resolve();
              } catch (e) {
                // Refused at the head: the agent gets the error answer (the abort's
                // onResponseError must not cut the connection as for a failure mid-body).
                started = false;
                reject(e);
                controller.abort(e as Error);
              }
            },
            onResponseData(_controller, chunk) {
              onData(chunk);
            },
            onResponseEnd() {
              onEnd();
            },
            onResponseError(_controller, e) {
              if (!started) {
                const inner = (e as { cause?: unknown }).cause;
                reject(isTesseraError(e) ? e : isTesseraError(inner) ? inner : upstreamFailure(e, r.name));
                return;
              }
              endTap();
              if (!finished) cut(e);
            },
          });
        });
      })().catch(fail);
    },
  };
}
