/**
 * The console's only way to the server: same-origin JSON calls to the operator API, signed in
 * by the session cookie (HttpOnly: this code never sees it). Every call that changes something
 * carries the session's CSRF token in `X-CSRF-Token` (docs/console.md "Sessions and CSRF").
 * Errors become `ApiError` with the API's stable code and its human message.
 */

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly requestId?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

let csrfToken: string | undefined;
let onUnauthorized: (() => void) | undefined;

/** Set after sign-in (and on every session refresh); cleared on sign-out. */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

/** Called when any call answers 401 (session ended, expired or its token revoked). */
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

interface ErrorBody {
  error?: { code?: string; message?: string; request_id?: string; details?: Record<string, unknown> } | string;
  error_description?: string;
  code?: string;
  request_id?: string;
}

function toApiError(status: number, body: unknown, statusText: string): ApiError {
  const b = (body ?? {}) as ErrorBody;
  if (b.error && typeof b.error === 'object') {
    return new ApiError(b.error.code ?? `HTTP_${status}`, b.error.message ?? statusText, status, b.error.request_id, b.error.details);
  }
  // RFC 6749 §5.2 shape (OAuth endpoints), with Tessera's code alongside.
  if (typeof b.error === 'string') return new ApiError(b.code ?? b.error, b.error_description ?? b.error, status, b.request_id);
  return new ApiError(`HTTP_${status}`, statusText || 'the server answered without a message', status);
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch {
    throw new ApiError('CONSOLE_NETWORK', 'Tessera did not answer; check that the server is running and reachable', 0);
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    if (res.status === 401) onUnauthorized?.();
    throw toApiError(res.status, json, res.statusText);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, body ?? {}),
  del: <T>(path: string) => request<T>('DELETE', path),
};

/** A query string from defined values only: `qs({ a: 1, b: undefined })` → `?a=1`. */
export function qs(params: Record<string, string | number | boolean | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}
