/**
 * Typed errors of the client SDK. Every error carries a stable `code`: the server's
 * `TESSERA_<AREA>_<WHAT>` code when the server refused, or a `TESSERA_SDK_*` code for a
 * failure detected on the client. None of them ever carries a token or a secret value.
 */
export class TesseraApiError extends Error {
  readonly code: string;
  /** HTTP status returned by the server (0 when the error was detected client-side). */
  readonly status: number;
  readonly requestId: string | undefined;
  /** RFC 6749 §5.2 error name, when the error came from the OAuth token endpoint. */
  readonly oauthError: string | undefined;
  /**
   * The error's `details` object as the server sent it (e.g. `field`, `retry_after_s`,
   * `next_step: { route, cli }`), when there was one. Never holds a token or a secret value.
   */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(init: { code: string; status: number; message: string; requestId?: string; oauthError?: string; details?: Record<string, unknown> }, options?: { cause?: unknown }) {
    super(init.message, options);
    this.name = 'TesseraApiError';
    this.code = init.code;
    this.status = init.status;
    this.requestId = init.requestId;
    this.oauthError = init.oauthError;
    this.details = init.details;
  }
}

/**
 * Authentication failed or is impossible: the server rejected the token or the attestation
 * (401, or an RFC 6749 `invalid_grant`/`invalid_token`), the client is not logged in, or the
 * current token expired and cannot be renewed (a join token is single-use).
 */
export class TesseraAuthError extends TesseraApiError {
  constructor(init: ConstructorParameters<typeof TesseraApiError>[0], options?: { cause?: unknown }) {
    super(init, options);
    this.name = 'TesseraAuthError';
  }
}

/**
 * The token endpoint refused to open or delegate a task (RFC 8693 §2.2.2) for a reason other
 * than the tokens themselves: a wider scope than the parent's (`TESSERA_TASK_SCOPE_WIDENED`,
 * `oauthError` `invalid_scope`), a malformed scope (`TESSERA_OAUTH_INVALID_SCOPE`), a lifetime
 * beyond the parent's (`TESSERA_TASK_LIFETIME_EXCEEDED`, `details.max_s`), depth
 * (`TESSERA_TASK_DEPTH_EXCEEDED`, `TESSERA_TASK_MAX_DEPTH_RAISED`), audiences
 * (`TESSERA_TASK_AUDIENCE_WIDENED`), task facts (`TESSERA_TASK_CONTEXT_CHANGED`), binding
 * (`TESSERA_TASK_BINDING_REQUIRED`, `TESSERA_TASK_KEY_MISMATCH`), policy
 * (`TESSERA_TASK_DELEGATION_DENIED`), a bad parameter (`TESSERA_TASK_PARAMETER_INVALID`,
 * `details.field`) or the rate limit (`TESSERA_TASK_RATE_LIMITED`, status 429). The code is the
 * server's, unchanged (docs/tasks.md "Narrowing rules", docs/errors.md). A subject or actor token
 * that did not verify (expired, revoked) is a `TesseraAuthError` instead.
 */
export class TesseraTaskError extends TesseraApiError {
  constructor(init: ConstructorParameters<typeof TesseraApiError>[0], options?: { cause?: unknown }) {
    super(init, options);
    this.name = 'TesseraTaskError';
  }
}

/** The server could not be reached (refused, DNS, TLS, timeout) or did not answer like Tessera. */
export class TesseraConnectionError extends Error {
  readonly code: 'TESSERA_SDK_CONNECT_FAILED' | 'TESSERA_SDK_RESPONSE_INVALID';
  readonly addr: string;

  constructor(code: TesseraConnectionError['code'], addr: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TesseraConnectionError';
    this.code = code;
    this.addr = addr;
  }
}
