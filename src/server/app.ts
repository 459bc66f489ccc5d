import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../shared/logger.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { ERROR_CATALOGUE, TesseraError, isTesseraError, type ErrorCode } from '../shared/errors.js';
import { repeatedParameter } from './validate.js';
import { checkOriginAndHost, type GuardRefusal, type OriginPolicy } from './origin.js';
import { checkJsonInput } from '../shared/json-depth.js';
import { dpopChallengeOf, dpopWwwAuthenticate, parseAuthorization, type PresentedRequest } from '../dpop/index.js';
import { TOKEN_KIND_WORDS, tokenKindOf } from '../shared/token-kind.js';
import { NEXT_STEPS } from '../shared/next-steps.js';
import { bearerChallenge, challenge } from '../shared/www-authenticate.js';
import { chargeOperatorRefusal, type AuthFailureGuard } from '../shared/auth-failures.js';
import { checkRole, type OperatorRole } from '../admin/roles.js';

/**
 * Who called an operator endpoint (docs/operators.md). `tokenId` is the operator id: the operator
 * token's `adm_…` id (also for a console session made with that token), or
 * `oidc:<issuer-host>:<sub>` for an OIDC console session.
 */
export interface AdminPrincipal {
  readonly kind: 'admin';
  readonly tokenId: string;
  readonly name: string;
  readonly role: OperatorRole;
  readonly via: 'token' | 'session';
  readonly sessionId?: string;
}

/**
 * Verifies an agent or task token (src/tokens) and its DPoP binding (src/dpop, RFC 9449) for
 * this request, and returns the caller; throws TESSERA_TOKEN_* / TESSERA_DPOP_* errors.
 */
export interface AgentAuthenticator {
  authenticate(token: string, meta: RequestMeta, request: PresentedRequest): Promise<AgentPrincipal>;
}

export interface AdminAuthenticator {
  /** Resolves the admin principal for a presented bearer token, or throws TESSERA_ADMIN_TOKEN_INVALID. */
  authenticate(token: string): Promise<AdminPrincipal>;
}

/** Per-request facts every audit event needs. */
export interface RequestMeta {
  readonly requestId: string;
  readonly source: string;
  readonly replica: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    admin?: AdminPrincipal;
    agent?: AgentPrincipal;
  }
  interface FastifyContextConfig {
    /** Errors on this route use the RFC 6749 §5.2 shape. */
    oauth?: boolean;
    /** The route bounds the nesting depth of its body itself (MAX_JSON_DEPTH), e.g. to audit the refusal. */
    ownJsonDepth?: boolean;
    /** An operator POST route that changes nothing: the `auditor` role may call it (src/admin/roles.ts). */
    readOnly?: boolean;
    /** The operator route answers with a secret's value: never for the `auditor` role (src/admin/roles.ts). */
    revealsSecret?: boolean;
  }
}

export interface AppOptions {
  logger: Logger;
  replicaId: string;
  bodyLimit: number;
  trustProxy?: boolean;
  admin: AdminAuthenticator;
  agents: AgentAuthenticator;
  /** Called on every error response (metrics, audit of refusals). */
  onError?: (req: FastifyRequest, err: TesseraError) => void;
  /** Origin and Host checks on every route (src/server/origin.ts); none when absent (unit tests of routes). */
  originPolicy?: OriginPolicy;
  /** Called for each request refused by the Origin/Host check (metrics). */
  onGuardRefused?: (what: GuardRefusal) => void;
  /**
   * DPoP (src/dpop): the algorithms accepted for proofs (the `algs` of the `DPoP` challenge next
   * to `Bearer` on a 401 without a token), and the server nonce for `DPoP-Nonce` on answers to
   * DPoP requests (undefined when nonces are off).
   */
  dpop?: { readonly algs: readonly string[]; nonce(): string | undefined };
  /**
   * Refused admin tokens per source (src/shared/auth-failures.ts): checked before the token is
   * looked at, charged and audited (`auth.admin_refused`, aggregated) per refusal. Agent tokens
   * go through `agents`, which holds the same guard.
   */
  authFailures?: AuthFailureGuard;
  /**
   * Operator console sessions (src/console): the operator of a request without an `Authorization`
   * header, from its session cookie (undefined when it has none); CSRF and secret-value checks included.
   */
  consoleSessions?: {
    authenticate(req: FastifyRequest): Promise<AdminPrincipal | undefined>;
    /** Whether the session of this request is still live (no activity recorded, no CSRF or fetch-site check): for long requests. */
    stillLive(req: FastifyRequest, sessionId: string): Promise<boolean>;
  };
}

/** Request headers a browser client may send cross-origin (CORS preflight), MCP's included. */
const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, dpop';
/** Response headers a browser client may read: the MCP session id, auth challenges, limits, DPoP nonces. */
const CORS_EXPOSE_HEADERS = 'mcp-session-id, mcp-protocol-version, www-authenticate, retry-after, x-request-id, dpop-nonce';

/** Longest path parameter (`:id`, `:name`) routed (fastify's default); longer ones are refused. */
const MAX_PARAM_LENGTH = 100;

const MULTI_VALUED_PARAMS = new Set(['audience', 'resource']);

export function createApp(options: AppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as unknown as FastifyBaseLogger,
    // Per-request log lines are off: request metrics and the audit log record requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    trustProxy: options.trustProxy ?? false,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    return503OnClosing: true,
    // fastify 5: router options go under routerOptions (the top-level key prints FSTDEP022 at every start).
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Errors fastify raises before routing (a URL whose "%" starts no valid escape) get the same
    // body and a stable code like every other error.
    frameworkErrors: (error, req, reply) => {
      // The URL itself is never echoed (it may carry anything a client put there).
      const err = error.code === 'FST_ERR_BAD_URL'
        ? new TesseraError('TESSERA_REQUEST_MALFORMED', 'the request URL is not valid: a "%" must start a percent-encoded UTF-8 byte such as %20 (RFC 3986 §2.1)')
        : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? new TesseraError('TESSERA_REQUEST_INVALID', `a path parameter is longer than ${MAX_PARAM_LENGTH} characters; no id or name Tessera issues is that long`)
          : toTesseraError(error);
      sendError(req, reply, err);
    },
  });

  // RFC 6749 §3.2: token endpoint parameters are form-encoded, and must not repeat.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    const params = new URLSearchParams(body as string);
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of params) {
      // RFC 8693 §2.1 lets `audience` and `resource` repeat; every other parameter is single.
      if (MULTI_VALUED_PARAMS.has(k)) {
        const prev = out[k];
        out[k] = prev === undefined ? [v] : [...(prev as string[]), v];
        continue;
      }
      if (Object.hasOwn(out, k)) {
        done(repeatedParameter(k), undefined);
        return;
      }
      out[k] = v;
    }
    done(null, out);
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
    const policy = options.originPolicy;
    if (!policy) return;
    // MCP transports 2025-11-25 §"Security Warning": Origin (and, on loopback, Host) before anything else.
    const refused = checkOriginAndHost(policy, req.headers);
    if (refused) {
      options.onGuardRefused?.(refused);
      throw refused === 'origin'
        ? new TesseraError('TESSERA_REQUEST_ORIGIN_NOT_ALLOWED', 'requests from this Origin are not allowed; an operator can add it to server.allowed_origins')
        : new TesseraError('TESSERA_REQUEST_HOST_NOT_ALLOWED', 'the Host header names an address this server does not answer for; use its configured address, or add the name to server.allowed_hosts');
    }
    const origin = req.headers.origin;
    if (typeof origin !== 'string') return;
    // An allowed origin may read the answer (CORS). Set on the raw response so that hijacked
    // replies (/mcp) carry it too. No credentials mode: Tessera uses bearer tokens, not cookies.
    reply.raw.setHeader('access-control-allow-origin', origin);
    reply.raw.setHeader('access-control-expose-headers', CORS_EXPOSE_HEADERS);
    reply.raw.setHeader('vary', 'Origin');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      // CORS preflight (Fetch standard §4.8), answered for every route.
      return reply.code(204).headers({
        'access-control-allow-methods': 'GET, POST, PUT, DELETE',
        'access-control-allow-headers': CORS_ALLOW_HEADERS,
        'access-control-max-age': '600',
      }).send();
    }
  });

  // No input structure may be deeper than MAX_JSON_DEPTH (ADR 0041): every walker further in
  // (canonical JSON, schema checks, policy context, scrubbing, JSON.stringify) is then safe from
  // stack exhaustion. JSON.parse itself is iterative; this check is too. Runs before
  // authentication (refusing garbage costs less than verifying a token for it), on every route
  // but those that bound depth themselves (the MCP gateway: it audits a too-deep tool call).
  app.addHook('preValidation', async (req) => {
    if (req.routeOptions.config?.ownJsonDepth === true) return;
    if (req.body !== null && typeof req.body === 'object') checkJsonInput(req.body, 'the request body');
  });

  app.setNotFoundHandler((req, reply) => {
    sendError(req, reply, new TesseraError('TESSERA_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  app.setErrorHandler((error, req, reply) => {
    const err = toTesseraError(error);
    if (err.code === 'TESSERA_INTERNAL') req.log.error({ err: error, reqId: req.id }, 'unhandled error');
    options.onError?.(req, err);
    sendError(req, reply, err, options.dpop?.algs);
  });

  app.decorateRequest('admin', undefined);
  app.decorate('requireAdmin', async (req: FastifyRequest) => {
    // No Authorization header at all: a console session cookie, if the request carries one.
    const session = req.headers.authorization === undefined ? await options.consoleSessions?.authenticate(req) : undefined;
    if (session) {
      req.admin = session;
      // The same role rule as for a bearer token (an auditor's session changes nothing).
      checkRole(req.admin, req.routeOptions.config, req.method);
      return;
    }
    const token = bearerToken(req);
    if (!token) throw new TesseraError('TESSERA_ADMIN_TOKEN_MISSING', 'this endpoint needs `Authorization: Bearer <admin token>` (set TESSERA_TOKEN for the CLI)');
    const meta = app.requestMeta(req);
    // Before the token is hashed and looked up: a source that sent too many refused credentials.
    options.authFailures?.admit(meta);
    try {
      // An agent's or a join token on an operator endpoint: say which (its shape only; nothing is verified).
      const kind = tokenKindOf(token);
      if (kind === 'jwt' || kind === 'join') {
        throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', `this is ${TOKEN_KIND_WORDS[kind]}; operator endpoints need an admin token (tsr_admin_…, printed by \`tessera init\` or \`tessera dev\`)`);
      }
      req.admin = await options.admin.authenticate(token);
    } catch (e) {
      const guard = options.authFailures;
      if (guard && isTesseraError(e) && e.status === 401) await chargeOperatorRefusal(guard, { source: meta.source, replica: meta.replica, requestId: meta.requestId }, e.code, { action: 'admin.authenticate', resource: 'admin-api' });
      throw e;
    }
    // The operator's role, once for every operator route, from the route's config.
    checkRole(req.admin, req.routeOptions.config, req.method);
  });

  // A long operator request (the console's event stream) asks this before each thing it sends:
  // the credential that opened it must still be valid — not revoked, not expired, the session
  // not signed out or idle (A11-2). Never throws; false on any doubt (fail closed).
  app.decorate('adminStillValid', async (req: FastifyRequest): Promise<boolean> => {
    const a = req.admin;
    if (!a) return false;
    try {
      if (a.via === 'session') return a.sessionId !== undefined && options.consoleSessions !== undefined && (await options.consoleSessions.stillLive(req, a.sessionId));
      const token = bearerToken(req);
      if (!token) return false;
      const p = await options.admin.authenticate(token);
      return p.tokenId === a.tokenId && p.role === a.role;
    } catch {
      return false;
    }
  });

  app.decorateRequest('agent', undefined);
  app.decorate('requireAgent', async (req: FastifyRequest, reply: FastifyReply) => {
    const presented = parseAuthorization(req.headers.authorization);
    const login = NEXT_STEPS.login();
    if (!presented) throw new TesseraError('TESSERA_TOKEN_MISSING', `this endpoint needs \`Authorization: Bearer <agent token>\` (or \`Authorization: DPoP <token>\` with a \`DPoP\` proof for a DPoP-bound token); log in with ${login.route} first`, { next_step: login });
    if (presented.scheme === 'DPoP') {
      // RFC 9449 §8.2 / §9: the current nonce on every answer to a DPoP request (success or not).
      const nonce = options.dpop?.nonce();
      if (nonce) reply.header('dpop-nonce', nonce);
    }
    req.agent = await options.agents.authenticate(presented.token, app.requestMeta(req), { scheme: presented.scheme, method: req.method, target: req.url, proof: req.headers.dpop });
  });

  app.decorate('requestMeta', (req: FastifyRequest): RequestMeta => ({ requestId: req.id, source: req.ip, replica: options.replicaId }));
  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler for operator routes. */
    requireAdmin: (req: FastifyRequest) => Promise<void>;
    /**
     * For a request `requireAdmin` admitted and that lasts (a stream): true while its operator
     * token (same id and role) or console session is still valid now. Resolves false, never throws.
     */
    adminStillValid: (req: FastifyRequest) => Promise<boolean>;
    /** preHandler for agent-facing routes: verifies the token (Bearer, or DPoP with its proof) and sets req.agent. */
    requireAgent: (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
    requestMeta: (req: FastifyRequest) => RequestMeta;
  }
}

/** The bearer token of a request (RFC 6750 §2.1), or undefined. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(h);
  return m ? m[1] : undefined;
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'TESSERA_REQUEST_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'TESSERA_REQUEST_MALFORMED',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'TESSERA_REQUEST_MALFORMED',
  FST_ERR_CTP_INVALID_JSON_BODY: 'TESSERA_REQUEST_MALFORMED',
};

export function toTesseraError(error: unknown): TesseraError {
  if (isTesseraError(error)) return error;
  const e = error as { code?: string; statusCode?: number; message?: string };
  const mapped = e.code ? FASTIFY_CODES[e.code] : undefined;
  if (mapped) return new TesseraError(mapped, publicMessage(mapped, e.message));
  if (error instanceof SyntaxError || (e.statusCode === 400 && /JSON/i.test(e.message ?? ''))) {
    return new TesseraError('TESSERA_REQUEST_MALFORMED', 'the body is not valid JSON');
  }
  if (e.statusCode === 415) return new TesseraError('TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE', publicMessage('TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE'));
  if (e.statusCode === 413) return new TesseraError('TESSERA_REQUEST_TOO_LARGE', publicMessage('TESSERA_REQUEST_TOO_LARGE'));
  if (e.statusCode === 400) return new TesseraError('TESSERA_REQUEST_MALFORMED', 'the request could not be parsed');
  return new TesseraError('TESSERA_INTERNAL', 'internal error; the request id finds it in the server log');
}

function publicMessage(code: ErrorCode, _raw?: string): string {
  switch (code) {
    case 'TESSERA_REQUEST_TOO_LARGE':
      return 'the body is larger than the server accepts (server.body_limit_bytes)';
    case 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE':
      return 'unsupported Content-Type; send application/json (or application/x-www-form-urlencoded on OAuth endpoints)';
    default:
      return ERROR_CATALOGUE[code].description;
  }
}

export function sendError(req: FastifyRequest, reply: FastifyReply, err: TesseraError, dpopAlgs?: readonly string[]): void {
  const oauth = req.routeOptions?.config?.oauth === true && err.oauthError;
  const retry = retryAfterOf(err);
  if (retry !== undefined) reply.header('retry-after', String(retry)); // RFC 9110 §10.2.3
  const dpop = dpopChallengeOf(err);
  if (dpop?.nonce) reply.header('dpop-nonce', dpop.nonce); // RFC 9449 §8, §9
  // RFC 9449 §5 / RFC 6749 §5.2: the token endpoint answers a refused DPoP proof with 400.
  const status = oauth && dpop && err.status === 401 ? 400 : err.status;
  if (status === 401) {
    if (dpop) reply.header('www-authenticate', dpopWwwAuthenticate(err, dpop, { realm: 'tessera' })); // RFC 9449 §7.1
    else {
      const bearer = bearerChallenge({ realm: 'tessera', error: err.oauthError });
      // No token at all: both schemes are offered (RFC 9449 §7.1).
      reply.header('www-authenticate', err.code === 'TESSERA_TOKEN_MISSING' && dpopAlgs ? `${bearer}, ${challenge('DPoP', { realm: 'tessera', algs: dpopAlgs.join(' ') })}` : bearer);
    }
  }
  if (oauth) {
    // RFC 6749 §5.2 shape, with Tessera's stable code alongside (and its details: which field,
    // which verification step — §5.2 allows additional members).
    void reply.status(status).send({ error: err.oauthError, error_description: err.message, code: err.code, request_id: req.id, ...(err.details ? { details: err.details } : {}) });
    return;
  }
  void reply.status(status).send({ error: { code: err.code, message: err.message, request_id: req.id, ...(err.details ? { details: err.details } : {}) } });
}

/** Seconds a refused client should wait (`details.retry_after_s` of 429/503 errors), for `Retry-After`. */
export function retryAfterOf(err: TesseraError): number | undefined {
  const v = err.details?.retry_after_s;
  return (err.status === 429 || err.status === 503) && typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.ceil(v) : undefined;
}
