import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../shared/logger.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { ERROR_CATALOGUE, TesseraError, isTesseraError, type ErrorCode } from '../shared/errors.js';
import { checkJsonInput } from '../shared/json-depth.js';

/** Who called an operator endpoint. */
export interface AdminPrincipal {
  readonly kind: 'admin';
  readonly tokenId: string;
}

/** Verifies an agent or task token (src/tokens) and returns the caller; throws TESSERA_TOKEN_* errors. */
export interface AgentAuthenticator {
  authenticate(token: string, meta: RequestMeta): Promise<AgentPrincipal>;
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
}

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
        done(new TesseraError('TESSERA_REQUEST_INVALID', `parameter "${k}" is repeated; each parameter may appear once (RFC 6749 §3.2)`), undefined);
        return;
      }
      out[k] = v;
    }
    done(null, out);
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    reply.header('cache-control', 'no-store');
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
    sendError(req, reply, err);
  });

  app.decorateRequest('admin', undefined);
  app.decorate('requireAdmin', async (req: FastifyRequest) => {
    const token = bearerToken(req);
    if (!token) throw new TesseraError('TESSERA_ADMIN_TOKEN_MISSING', 'this endpoint needs `Authorization: Bearer <admin token>` (set TESSERA_TOKEN for the CLI)');
    req.admin = await options.admin.authenticate(token);
  });

  app.decorateRequest('agent', undefined);
  app.decorate('requireAgent', async (req: FastifyRequest) => {
    const token = bearerToken(req);
    if (!token) throw new TesseraError('TESSERA_TOKEN_MISSING', 'this endpoint needs `Authorization: Bearer <agent token>`; log in with POST /v1/oauth/token first');
    req.agent = await options.agents.authenticate(token, app.requestMeta(req));
  });

  app.decorate('requestMeta', (req: FastifyRequest): RequestMeta => ({ requestId: req.id, source: req.ip, replica: options.replicaId }));
  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler for operator routes. */
    requireAdmin: (req: FastifyRequest) => Promise<void>;
    /** preHandler for agent-facing routes: verifies the bearer token and sets req.agent. */
    requireAgent: (req: FastifyRequest) => Promise<void>;
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

export function sendError(req: FastifyRequest, reply: FastifyReply, err: TesseraError): void {
  const oauth = req.routeOptions?.config?.oauth === true && err.oauthError;
  if (err.status === 401) {
    const realm = 'realm="tessera"';
    reply.header('www-authenticate', err.oauthError ? `Bearer ${realm}, error="${err.oauthError}"` : `Bearer ${realm}`);
  }
  if (oauth) {
    // RFC 6749 §5.2 shape, with Tessera's stable code alongside.
    void reply.status(err.status).send({ error: err.oauthError, error_description: err.message, code: err.code, request_id: req.id });
    return;
  }
  void reply.status(err.status).send({ error: { code: err.code, message: err.message, request_id: req.id, ...(err.details ? { details: err.details } : {}) } });
}
