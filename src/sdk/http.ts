import { TesseraApiError, TesseraAuthError, TesseraConnectionError } from './errors.js';
import { isNonceChallenge, type DpopSession } from './dpop.js';
import { describeDuration } from '../shared/duration.js';
import { deadline } from '../shared/deadline.js';

/** The subset of `fetch` the SDK needs; injectable so callers can add a dispatcher or proxy. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface TransportOptions {
  /** Base URL, e.g. `http://127.0.0.1:8200`. */
  addr: string;
  fetch?: FetchLike;
  /** Per-request timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
  /** Sent as `User-Agent`. */
  userAgent?: string;
}

export interface RequestOptions {
  token?: string;
  /** `Bearer` (default) or `DPoP` for a DPoP-bound token (RFC 9449 §7.1). */
  tokenType?: 'Bearer' | 'DPoP';
  /**
   * Sends a DPoP proof made for this request (with `ath` for a DPoP token), remembers the
   * server's `DPoP-Nonce`, and retries once when the server asks for a new nonce.
   */
  dpop?: DpopSession;
  /** JSON body. */
  json?: unknown;
  /**
   * `application/x-www-form-urlencoded` body (RFC 6749 §4.1.3 / RFC 8693 §2.1); an array value
   * repeats the parameter (RFC 8693 `audience`, RFC 8707 `resource`).
   */
  form?: Record<string, string | readonly string[] | undefined>;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
}

/**
 * Encodes a hierarchical path (`db/prod/password`) segment by segment, keeping the slashes.
 * Refuses empty, `.` and `..` segments: URL normalisation (RFC 3986 §5.2.4) would silently
 * collapse them, so `a/../b` would address `b` — a different secret than the caller named.
 */
export function encodePath(path: string): string {
  const segments = path.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new TesseraApiError({ code: 'TESSERA_SECRET_PATH_INVALID', status: 0, message: `"${path}" is not a valid secret path: no empty, "." or ".." segments, no leading or trailing "/"` });
  }
  return segments.map((s) => encodeURIComponent(s)).join('/');
}

export function normalizeAddr(addr: string): string {
  const trimmed = addr.trim().replace(/\/+$/, '');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TesseraConnectionError('TESSERA_SDK_CONNECT_FAILED', addr, `"${addr}" is not a valid server address; expected e.g. http://127.0.0.1:8200`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TesseraConnectionError('TESSERA_SDK_CONNECT_FAILED', addr, `"${addr}" must be an http:// or https:// address`);
  }
  return withScheme;
}

/**
 * One HTTP exchange with Tessera and the mapping of every failure class to a typed error.
 * Shared by the agent SDK and the operator CLI so both read errors the same way:
 *  - `{ error: { code, message, request_id } }` (Tessera API errors),
 *  - `{ error, error_description, code }` (RFC 6749 §5.2 on OAuth endpoints),
 *  - network failures and non-Tessera answers → `TesseraConnectionError`.
 */
export class Transport {
  readonly addr: string;
  private readonly fetchImpl: FetchLike;
  private readonly timeoutMs: number;
  private readonly userAgent: string;

  constructor(options: TransportOptions) {
    this.addr = normalizeAddr(options.addr);
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'tessera-sdk';
  }

  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.addr + path);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.userAgent };
    let body: string | undefined;
    if (options.form) {
      const form = new URLSearchParams();
      for (const [k, v] of Object.entries(options.form)) for (const x of v === undefined ? [] : typeof v === 'string' ? [v] : v) form.append(k, x);
      body = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }
    const scheme = options.tokenType ?? 'Bearer';
    if (options.token) headers.authorization = `${scheme} ${options.token}`;
    const limit = deadline(this.timeoutMs, options.signal);
    const signal = limit.signal;
    const dpop = options.dpop;
    const withProof = (): Record<string, string> => (dpop ? { ...headers, dpop: dpop.proof(method, url, scheme === 'DPoP' ? options.token : undefined) } : headers);

    let res: Response;
    let text: string;
    try {
      res = await this.fetchImpl(url.toString(), { method, headers: withProof(), body, signal, redirect: 'error' });
      text = await res.text();
      if (dpop) {
        dpop.observe(url, res.headers);
        // RFC 9449 §8, §9: the server wants its nonce in the proof; once, with the nonce it sent.
        if (isNonceChallenge(res.status, res.headers, safeJson(text)) && res.headers.get('dpop-nonce')) {
          res = await this.fetchImpl(url.toString(), { method, headers: withProof(), body, signal, redirect: 'error' });
          text = await res.text();
          dpop.observe(url, res.headers);
        }
      }
    } catch (err) {
      // Never include the request (it may hold a token) — only the address and the cause.
      const cause = err as { name?: string; cause?: { code?: string; message?: string }; message?: string };
      const why = cause.name === 'TimeoutError' ? `no answer within ${describeDuration(this.timeoutMs)}` : (cause.cause?.code ?? cause.cause?.message ?? cause.message ?? 'network error');
      throw new TesseraConnectionError('TESSERA_SDK_CONNECT_FAILED', this.addr, `cannot reach Tessera at ${this.addr} (${why}); check TESSERA_ADDR and that the server is running`, { cause: err });
    } finally {
      limit.done();
    }

    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (res.ok) throw new TesseraConnectionError('TESSERA_SDK_RESPONSE_INVALID', this.addr, `${method} ${path} answered ${res.status} with a body that is not JSON; is ${this.addr} a Tessera server?`);
      }
    }
    if (res.ok) return parsed as T;
    throw toApiError(res.status, parsed, this.addr, `${method} ${url.pathname}`);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function toApiError(status: number, body: unknown, addr: string, what: string): Error {
  const b = (body ?? {}) as Record<string, unknown>;
  let init: ConstructorParameters<typeof TesseraApiError>[0] | undefined;
  if (b.error && typeof b.error === 'object') {
    // Tessera API error shape.
    const e = b.error as Record<string, unknown>;
    const details = e.details && typeof e.details === 'object' && !Array.isArray(e.details) ? (e.details as Record<string, unknown>) : undefined;
    init = { code: String(e.code ?? 'TESSERA_UNKNOWN'), status, message: String(e.message ?? `${what} failed with ${status}`), requestId: typeof e.request_id === 'string' ? e.request_id : undefined, ...(details ? { details } : {}) };
  } else if (typeof b.error === 'string') {
    // RFC 6749 §5.2 shape (the token endpoint), with Tessera's stable `code` (and `details`) alongside.
    const details = b.details && typeof b.details === 'object' && !Array.isArray(b.details) ? (b.details as Record<string, unknown>) : undefined;
    init = {
      ...(details ? { details } : {}),
      code: typeof b.code === 'string' ? b.code : `OAUTH_${b.error.toUpperCase()}`,
      status,
      message: typeof b.error_description === 'string' ? b.error_description : b.error,
      requestId: typeof b.request_id === 'string' ? b.request_id : undefined,
      oauthError: b.error,
    };
  }
  if (!init) {
    return new TesseraConnectionError('TESSERA_SDK_RESPONSE_INVALID', addr, `${what} answered ${status} without a Tessera error body; is ${addr} a Tessera server (or a proxy in between)?`);
  }
  const auth = status === 401 || ['invalid_grant', 'invalid_token', 'invalid_client', 'invalid_dpop_proof', 'use_dpop_nonce'].includes(init.oauthError ?? '');
  return auth ? new TesseraAuthError(init) : new TesseraApiError(init);
}
