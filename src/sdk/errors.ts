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
