/**
 * The proxy's authenticate step (docs/proxy.md "Authentication"): which header carries the agent's
 * or task's token, and the refusal's shape. The verification itself is the one request pipeline's
 * (src/pipeline/authenticate.ts createRequestAuthenticator, audience `<issuer>/proxy`, RFC 8707):
 * signature, audience, revocation of the token, agent, task and ancestors, user and chain, DPoP
 * binding — never a copy.
 *
 * Where the token may come from:
 *   - `Proxy-Authorization: Bearer <token>` (RFC 9110 §11.7.1) — forward, CONNECT and reverse;
 *   - `Proxy-Authorization: Basic base64(<any user>:<token>)` (RFC 7617) — what clients send for
 *     a proxy URL `http://agent:<token>@host:port`; forward, CONNECT and reverse;
 *   - `Authorization: Bearer <token>` or `Authorization: DPoP <token>` + `DPoP` proof
 *     (RFC 9449 §7) — reverse routes only (a forward request's `Authorization` is meant for the
 *     upstream: it is stripped, never read as Tessera's).
 * Refusals: 407 + `Proxy-Authenticate` for forward/CONNECT (RFC 9110 §15.5.8), 401 +
 * `WWW-Authenticate` on reverse routes (RFC 6750 §3, RFC 9449 §7.1); the code stays the pipeline's.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { AgentAuthenticator, RequestMeta } from '../server/app.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { TesseraError } from '../shared/errors.js';

/** How a request reached the proxy. `intercepted`: decrypted from a CONNECT tunnel (its token is the tunnel's). */
export type ProxyMode = 'reverse' | 'forward' | 'intercepted';

export interface PresentedProxyToken {
  readonly token: string;
  readonly scheme: 'Bearer' | 'DPoP';
  readonly header: 'proxy-authorization' | 'authorization';
}

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
export const PROXY_REALM = 'tessera-proxy';

/**
 * The token of `Proxy-Authorization` (Bearer or Basic), undefined when the header is absent.
 * Throws 407 TESSERA_PROXY_AUTH_MALFORMED for another scheme or an undecodable Basic value.
 */
export function proxyAuthorizationToken(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const m = /^([A-Za-z]+)[ ]+(\S+)\s*$/.exec(value);
  if (!m) throw new TesseraError('TESSERA_PROXY_AUTH_MALFORMED', 'Proxy-Authorization must be `Bearer <token>` or `Basic <base64 of user:token>`');
  const scheme = m[1]!.toLowerCase();
  const cred = m[2]!;
  if (scheme === 'bearer' && TOKEN68.test(cred)) return cred;
  if (scheme === 'basic') {
    // RFC 7617 §2: user-id ":" password; the token is the password (the user name is ignored).
    const text = /^[A-Za-z0-9+/]+=*$/.test(cred) ? Buffer.from(cred, 'base64').toString('utf8') : '';
    const i = text.indexOf(':');
    const token = i >= 0 ? decodeUserinfo(text.slice(i + 1)) : '';
    if (token && TOKEN68.test(token)) return token;
    throw new TesseraError('TESSERA_PROXY_AUTH_MALFORMED', 'Proxy-Authorization Basic must decode to `<user>:<token>` with the agent or task token as the password (proxy URL http://agent:<token>@host:port)');
  }
  throw new TesseraError('TESSERA_PROXY_AUTH_MALFORMED', `Proxy-Authorization scheme "${m[1]!.slice(0, 20)}" is not accepted; use Bearer or Basic`);
}

/** Some clients percent-encode the proxy URL's password before sending it (`%2B`): accept both. */
function decodeUserinfo(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The presented token for `mode`, or undefined when none. Throws TESSERA_PROXY_AUTH_MALFORMED. */
export function presentedToken(headers: IncomingHttpHeaders, mode: Exclude<ProxyMode, 'intercepted'>): PresentedProxyToken | undefined {
  const proxy = proxyAuthorizationToken(single(headers['proxy-authorization']));
  if (proxy !== undefined) return { token: proxy, scheme: 'Bearer', header: 'proxy-authorization' };
  if (mode !== 'reverse') return undefined;
  const auth = single(headers.authorization);
  if (auth === undefined) return undefined;
  const m = /^(Bearer|DPoP)[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(auth);
  if (!m) return undefined;
  return { token: m[2]!, scheme: m[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer', header: 'authorization' };
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export interface ProxyAuthRequest {
  readonly headers: IncomingHttpHeaders;
  readonly method: string;
  /** The request target as received (for the DPoP `htu` check on reverse routes). */
  readonly target: string;
}

export interface ProxyAuthenticator {
  /**
   * Authenticates a request (reverse or forward). Throws the pipeline's TESSERA_* refusal, or
   * TESSERA_TOKEN_MISSING (reverse) / TESSERA_PROXY_AUTH_REQUIRED (forward) without a token.
   */
  authenticate(req: ProxyAuthRequest, mode: Exclude<ProxyMode, 'intercepted'>, meta: RequestMeta): Promise<{ principal: AgentPrincipal; token: string }>;
  /** Re-authenticates a token already presented (a CONNECT tunnel's, for each request inside it). */
  authenticateToken(token: string, meta: RequestMeta, req: Pick<ProxyAuthRequest, 'method' | 'target'>): Promise<AgentPrincipal>;
}

/**
 * @param authenticator the pipeline's authenticator for `<issuer>/proxy` (with the proxy's DPoP guard).
 * @param audience the proxy's audience, for the messages.
 */
export function createProxyAuthenticator(authenticator: AgentAuthenticator, audience: string): ProxyAuthenticator {
  return {
    async authenticate(req, mode, meta) {
      const p = presentedToken(req.headers, mode);
      if (!p) {
        throw mode === 'reverse'
          ? new TesseraError('TESSERA_TOKEN_MISSING', `the proxy needs the agent or task token (audience ${audience}): \`Authorization: Bearer <token>\`, \`Proxy-Authorization: Bearer <token>\`, or \`Authorization: DPoP <token>\` with a \`DPoP\` proof`)
          : new TesseraError('TESSERA_PROXY_AUTH_REQUIRED', `the proxy needs the agent or task token (audience ${audience}) as \`Proxy-Authorization: Bearer <token>\` or as the password of the proxy URL (http://agent:<token>@host:port)`);
      }
      const principal = await authenticator.authenticate(p.token, meta, { scheme: p.scheme, method: req.method, target: req.target, proof: p.scheme === 'DPoP' ? req.headers.dpop : undefined });
      return { principal, token: p.token };
    },
    authenticateToken(token, meta, req) {
      return authenticator.authenticate(token, meta, { scheme: 'Bearer', method: req.method, target: req.target, proof: undefined });
    },
  };
}

/** `Proxy-Authenticate` challenges (RFC 9110 §11.7.1): Basic for clients that only know a proxy URL's user:password, and Bearer. */
export const PROXY_CHALLENGE = `Basic realm="${PROXY_REALM}", Bearer realm="${PROXY_REALM}"`;
