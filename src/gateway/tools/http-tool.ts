/**
 * `http` declarative tools: Tessera itself calls a fixed-origin HTTP API with a credential the
 * agent never sees.
 *
 * Security properties (see docs/gateway-tools.md):
 *  - The origin is fixed by config (url-template.ts); arguments only fill percent-encoded path
 *    segments and query values, and a JSON body. Arguments never become headers, so an agent
 *    cannot supply or override authentication.
 *  - Redirects are never followed (undici `request` follows none): a 3xx is returned to the
 *    agent as an error, so the credential is sent only to the configured URL. Following even
 *    same-origin redirects would let a compromised upstream bounce the request elsewhere.
 *  - The response is read up to `max_response_bytes` and the request is bounded by `timeout`
 *    (covering connect, headers and body).
 *  - The credential is registered with the call's scrubber in every form Tessera computes
 *    (the core also scrubs plain/base64/hex/URL/JSON forms of the raw secret).
 */
import type { Dispatcher } from 'undici';

/**
 * undici loads with the first request (a server that never calls out does not hold it:
 * docs/adr/0121-memory.md). The module promise is kept: `import()` on every request went
 * through the ESM loader's resolve each time (ADR 0294).
 */
let undiciModule: Promise<typeof import('undici')> | undefined;
const undici = (): Promise<typeof import('undici')> => (undiciModule ??= import('undici'));
import type { Clock } from '../../shared/clock.js';
import { fail, TesseraError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { GatewayTool, ToolCallContext, ToolResult } from '../types.js';
import type { HttpToolConfig } from './config.js';
import { compileArgSchema } from './json-schema.js';
import { requireHeaderSafe } from '../header-value.js';
import { encodeStrict, parseUrlTemplate, renderUrl } from './url-template.js';
import { downstreamHeaderValue } from '../downstream.js';
import { describeDuration } from '../../shared/duration.js';

export interface DeclarativeToolDeps {
  /** undici dispatcher (Agent, Pool, ProxyAgent, MockAgent...); default: undici's global dispatcher. */
  readonly dispatcher?: Dispatcher;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface CompiledTool {
  readonly tool: GatewayTool;
  /** Throws TESSERA_TOOL_ARGS_INVALID naming the argument (src/gateway/tools/json-schema.ts). */
  validate(args: unknown): void;
  call(args: Readonly<Record<string, unknown>>, ctx: ToolCallContext): Promise<ToolResult>;
}

const USER_AGENT = 'tessera-gateway';

/** Aborts with our timeout or the caller's signal; tells which fired. */
export function withTimeout(parent: AbortSignal, ms: number): { signal: AbortSignal; timedOut: () => boolean; dispose: () => void } {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error('timeout'));
  }, ms);
  const onAbort = (): void => controller.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    dispose: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}

export function compileHttpTool(cfg: HttpToolConfig, deps: DeclarativeToolDeps): CompiledTool {
  const validator = compileArgSchema(cfg.input_schema);
  const template = parseUrlTemplate(cfg.url);
  const id = `${cfg.server}/${cfg.name}`;
  const bodyMode = cfg.body ?? (['POST', 'PUT', 'PATCH'].includes(cfg.method) ? 'json' : 'none');
  const tool: GatewayTool = {
    name: cfg.name,
    ...(cfg.description !== undefined ? { description: cfg.description } : {}),
    inputSchema: validator.schema,
    ...(cfg.annotations ? { annotations: cfg.annotations } : {}),
  };

  async function call(args: Readonly<Record<string, unknown>>, ctx: ToolCallContext): Promise<ToolResult> {
    validator.validate(args);
    const headers: Record<string, string> = { 'user-agent': USER_AGENT };
    for (const [name, value] of Object.entries(cfg.headers)) {
      headers[name.toLowerCase()] = typeof value === 'string' ? value : requireHeaderSafe(await ctx.resolveSecret(value.secret), id, name, { secret: value.secret });
    }
    const extraQuery: [string, string][] = [];
    const cred = cfg.credential;
    if (cred?.in === 'header') {
      headers[cred.name.toLowerCase()] = `${cred.prefix}${requireHeaderSafe(await ctx.resolveSecret(cred.secret), id, cred.name, { secret: cred.secret })}`;
    } else if (cred?.in === 'query') {
      const secret = await ctx.resolveSecret(cred.secret);
      ctx.addSensitive(encodeStrict(secret)); // our encoding differs from encodeURIComponent on !'()*
      extraQuery.push([cred.name, secret]);
    } else if (cred?.in === 'basic') {
      let userPass: string;
      if (cred.secret !== undefined) {
        userPass = await ctx.resolveSecret(cred.secret);
        if (!userPass.includes(':')) throw fail('TESSERA_TOOL_UPSTREAM_FAILED', `${id}: the basic-auth secret must hold "user:password" (RFC 7617 §2); fix the secret at credential.secret`);
      } else {
        const user = cred.username ?? (await ctx.resolveSecret(cred.username_secret!));
        userPass = `${user}:${await ctx.resolveSecret(cred.password_secret!)}`;
      }
      // RFC 7617 §2 with charset UTF-8 (§2.1).
      const token = Buffer.from(userPass, 'utf8').toString('base64');
      ctx.addSensitive(userPass);
      ctx.addSensitive(token);
      headers.authorization = `Basic ${token}`;
    }
    if (cfg.task_token) {
      // The caller's task context for the upstream (gateway.tools[].task_token); scrubbed from what it returns.
      const tt = cfg.task_token;
      const token = await ctx.downstreamToken(tt.audience, tt.ttl);
      ctx.addSensitive(token);
      headers[tt.header.toLowerCase()] = downstreamHeaderValue(tt.header, token);
    }

    const url = renderUrl(template, args, extraQuery);
    let body: string | undefined;
    if (bodyMode === 'json') {
      const rest: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(args)) if (!template.variables.has(k)) rest[k] = v;
      body = JSON.stringify(rest);
      headers['content-type'] = 'application/json';
    }

    const started = deps.clock.now();
    const t = withTimeout(ctx.signal, cfg.timeout);
    try {
      let res: Dispatcher.ResponseData;
      try {
        res = await (await undici()).request(url, {
          method: cfg.method,
          headers,
          ...(body !== undefined ? { body } : {}),
          signal: t.signal,
          headersTimeout: cfg.timeout,
          bodyTimeout: cfg.timeout,
          ...(deps.dispatcher ? { dispatcher: deps.dispatcher } : {}),
        });
      } catch (e) {
        throw mapError(e, t.timedOut(), ctx.signal, id, template.origin, cfg.timeout);
      }
      // Destroying the body below makes undici emit an AbortError; it is expected, not a crash.
      res.body.on('error', () => undefined);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > cfg.max_response_bytes) {
        res.body.destroy();
        throw fail('TESSERA_TOOL_RESPONSE_TOO_LARGE', `${id}: the upstream response is ${declared} bytes, over max_response_bytes (${cfg.max_response_bytes})`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const chunk of res.body) {
          const b = chunk as Buffer;
          size += b.length;
          if (size > cfg.max_response_bytes) {
            res.body.destroy();
            throw fail('TESSERA_TOOL_RESPONSE_TOO_LARGE', `${id}: the upstream response exceeded max_response_bytes (${cfg.max_response_bytes})`);
          }
          chunks.push(b);
        }
      } catch (e) {
        if (e instanceof TesseraError) throw e;
        throw mapError(e, t.timedOut(), ctx.signal, id, template.origin, cfg.timeout);
      }
      const text = new TextDecoder('utf-8').decode(Buffer.concat(chunks));
      const status = res.statusCode;
      deps.logger.debug({ tool: id, status, bytes: size, ms: deps.clock.now() - started }, 'declarative http tool call');
      return toResult(status, res.headers['content-type'], text);
    } finally {
      t.dispose();
    }
  }

  return { tool, validate: validator.validate, call };
}

function toResult(status: number, contentType: string | string[] | undefined, text: string): ToolResult {
  const ct = (Array.isArray(contentType) ? contentType[0] : contentType) ?? '';
  let structured: Record<string, unknown> | undefined;
  // RFC 8259 media type application/json, or any +json structured suffix (RFC 6839 §3.1).
  if (/^application\/([a-z0-9.+-]+\+)?json\b/i.test(ct.trim())) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) structured = parsed as Record<string, unknown>;
    } catch {
      // Not JSON after all: return the text only.
    }
  }
  if (status >= 300 && status < 400) {
    return {
      content: [{ type: 'text', text: `upstream answered HTTP ${status} (a redirect); Tessera does not follow redirects, so the credential is only ever sent to the configured URL` }],
      isError: true,
    };
  }
  const isError = status >= 400;
  return {
    content: [{ type: 'text', text: isError ? `upstream answered HTTP ${status}${text ? `: ${text}` : ''}` : text }],
    ...(structured ? { structuredContent: structured } : {}),
    isError,
  };
}

function mapError(e: unknown, timedOut: boolean, callerSignal: AbortSignal, id: string, origin: string, timeoutMs: number): unknown {
  if (e instanceof TesseraError) return e;
  const code = (e as { code?: string }).code;
  if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return fail('TESSERA_TOOL_TIMEOUT', `${id}: ${origin} did not answer within ${describeDuration(timeoutMs)} (the tool's timeout)`);
  }
  if (callerSignal.aborted) return callerSignal.reason ?? e;
  // Only the error code / class: an undici message could echo the URL, which may carry a query credential.
  const what = code ?? (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
  return new TesseraError('TESSERA_TOOL_UPSTREAM_FAILED', `${id}: could not reach ${origin} (${what})`, { upstream: origin });
}
