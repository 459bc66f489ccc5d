/**
 * Exit codes and error wording of `tessera mcp` (docs/cli.md "Exit codes and errors"). No
 * message ever carries a token: the SDK's errors do not, and the gateway never echoes one.
 */
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TesseraApiError, TesseraAuthError, TesseraConnectionError } from '../../sdk/errors.js';

/** Exit codes, the same as the CLI's (docs/cli.md): refused, usage, cannot connect. */
export const RELAY_EXIT = { OK: 0, REFUSED: 1, USAGE: 2, CONNECT: 3 } as const;

/** A failure the relay words itself (a refresh that cannot or did not succeed). */
export class RelayError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RelayError';
  }
}

export function describe(err: unknown): { code: string; message: string; exitCode: number } {
  if (err instanceof RelayError) return { code: err.code, message: err.message, exitCode: RELAY_EXIT.REFUSED };
  if (err instanceof TesseraAuthError || err instanceof TesseraApiError) {
    return { code: err.code, message: err.message, exitCode: RELAY_EXIT.REFUSED };
  }
  if (err instanceof TesseraConnectionError) return { code: err.code, message: err.message, exitCode: RELAY_EXIT.CONNECT };
  if (err instanceof StreamableHTTPError) {
    // The SDK puts the gateway's answer in the message; the gateway never echoes a token.
    return { code: 'TESSERA_GATEWAY_RELAY_REFUSED', message: `the gateway answered ${err.code ?? 'an error'}: ${err.message.slice(0, 500)}`, exitCode: RELAY_EXIT.REFUSED };
  }
  const e = err as { message?: unknown; cause?: { code?: unknown } };
  const cause = typeof e?.cause?.code === 'string' ? ` (${e.cause.code})` : '';
  return { code: 'TESSERA_GATEWAY_RELAY_FAILED', message: `${typeof e?.message === 'string' ? e.message : String(err)}${cause}`, exitCode: RELAY_EXIT.CONNECT };
}

