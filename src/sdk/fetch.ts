/**
 * A fetch that authorizes every request (`Authorization: Bearer …`, or `Authorization: DPoP …`
 * with a fresh proof, RFC 9449 §7.1), remembers server nonces and retries once when the server
 * asks for a new one (RFC 9449 §9). Shared by `TesseraClient` and `Task`.
 */
import { isNonceChallenge, type DpopSession } from './dpop.js';
import type { FetchLike } from './http.js';

/** A fetch the MCP SDK's transports (and anything else) accept. */
export type AuthorizedFetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

/** `authorize(method, url)` gives the headers for ONE request (a proof is single-use). */
export function authorizingFetch(authorize: (method: string, url: string) => Promise<Record<string, string>>, dpop: () => DpopSession | undefined, base: FetchLike): AuthorizedFetch {
  return async (input, init = {}) => {
    const url = input.toString();
    const method = init.method ?? 'GET';
    const send = async (): Promise<Response> => {
      const headers = new Headers(init.headers);
      for (const [k, v] of Object.entries(await authorize(method, url))) headers.set(k, v);
      const res = await base(url, { ...init, headers });
      dpop()?.observe(url, res.headers);
      return res;
    };
    const res = await send();
    // Retry only bodies that can be sent again (the MCP SDK sends JSON text).
    const replayable = init.body === undefined || init.body === null || typeof init.body === 'string';
    if (dpop() && replayable && isNonceChallenge(res.status, res.headers) && res.headers.get('dpop-nonce')) {
      await res.body?.cancel().catch(() => undefined);
      return send();
    }
    return res;
  };
}
