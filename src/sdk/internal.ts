/**
 * What a `Task` needs from the `TesseraClient` that opened it (or that acts as a sub-agent),
 * behind a symbol that `tessera-broker/sdk` does not export: not part of the public API, and
 * never the token itself as a property (it is fetched, fresh, on each use).
 */
import type { DpopSession } from './dpop.js';
import type { Transport } from './http.js';

/** RFC 8693 §2.1 grant type and token type identifiers. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const JOIN_TOKEN_TYPE = 'urn:tessera:token-type:join-token';
/** RFC 8693 §3: the type of Tessera's own agent and task tokens when exchanged. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export const clientInternals = Symbol('tessera.sdk.client');

export interface ClientInternals {
  readonly transport: Transport;
  /** The client's DPoP key and nonces; undefined with `dpop: false`. */
  readonly dpop: DpopSession | undefined;
  /** Wall-clock milliseconds (the client's `clock`). */
  now(): number;
  /** The current valid agent token (refreshed first when needed) and whether it is DPoP-bound. */
  current(): Promise<{ token: string; bound: boolean }>;
}

export interface HasClientInternals {
  readonly [clientInternals]: () => ClientInternals;
}
