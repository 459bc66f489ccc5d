/**
 * `tessera-broker/sdk` — the agent-side client. No server code: only fetch, node:fs and node:crypto.
 */
export { TesseraClient, systemSdkClock, TOKEN_EXCHANGE_GRANT, JWT_TOKEN_TYPE, JOIN_TOKEN_TYPE, ACCESS_TOKEN_TYPE } from './client.js';
export { Task } from './task.js';
export type { OpenTaskOptions, DelegateOptions, ActorSource } from './task.js';
export type { TesseraClientOptions, SdkClock, SecretValue, Credential, TokenResponse, AuthorizedFetch } from './client.js';
export { DpopKey, DpopSession, isNonceChallenge } from './dpop.js';
export { TesseraApiError, TesseraAuthError, TesseraTaskError, TesseraConnectionError } from './errors.js';
export { Transport, encodePath, normalizeAddr } from './http.js';
export type { FetchLike, TransportOptions, RequestOptions } from './http.js';
export { decodeJwt, looksLikeJwt } from './jwt.js';
export type { DecodedJwt } from './jwt.js';
