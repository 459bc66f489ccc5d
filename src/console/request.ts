/**
 * Authentication of operator requests by the console's session cookie (called from
 * `app.requireAdmin` when a request has no `Authorization` header; docs/console.md "Sessions
 * and CSRF"). In order:
 * 1. the cookie is read strictly (src/console/cookie.ts): twice (cookie tossing) or malformed → 401;
 * 2. `Sec-Fetch-Site` other than `same-origin` / `none` → 403 TESSERA_CONSOLE_CSRF (defence in
 *    depth next to SameSite=Strict: a sibling subdomain is "same-site" and gets Strict cookies);
 * 3. the session is resolved (expiry, idle timeout, operator token revoked) → 401;
 * 4. a route marked `config: { revealsSecret: true }` → 403 TESSERA_CONSOLE_SECRET_HIDDEN;
 * 5. a method other than GET/HEAD needs `X-CSRF-Token` equal to the session's → else 403 TESSERA_CONSOLE_CSRF.
 */
import type { FastifyRequest } from 'fastify';
import type { AuditWhere } from '../audit/events.js';
import { chargeOperatorRefusal, type AuthFailureGuard } from '../shared/auth-failures.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { readSessionCookie, sessionCookieName, type CookieOptions } from './cookie.js';
import { csrfMatches, type ConsoleSessionService, type LiveSession } from './sessions.js';

/** The operator principal of a session (the shape of `AdminPrincipal` with `via: 'session'`). */
export interface SessionPrincipal {
  readonly kind: 'admin';
  readonly tokenId: string;
  readonly name: string;
  readonly role: 'admin' | 'auditor';
  readonly via: 'session';
  readonly sessionId: string;
}

export interface ConsoleRequestDeps {
  readonly sessions: ConsoleSessionService;
  readonly cookie: CookieOptions;
  /** Refused session cookies per source, like refused admin tokens (src/shared/auth-failures.ts). */
  readonly failures?: AuthFailureGuard;
  readonly whereOf: (req: FastifyRequest) => AuditWhere & { source: string };
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);
const MAX_CSRF_HEADER = 256;

export interface ConsoleRequestAuth {
  /** The session principal of a request carrying the session cookie; undefined when it carries none. Throws TESSERA_CONSOLE_*. */
  authenticate(req: FastifyRequest): Promise<SessionPrincipal | undefined>;
  /** The live session of a request (console session routes): `csrf` also demands the CSRF header. Throws TESSERA_CONSOLE_SESSION_MISSING when there is no cookie. */
  session(req: FastifyRequest, options: { csrf: boolean }): Promise<{ value: string; live: LiveSession }>;
  /**
   * Whether the request's session cookie still names the live session `sessionId` (for a long
   * request such as the event stream: re-read from the store, an end noticed is recorded; the
   * read is not activity, so an open stream does not keep an idle session alive). Never throws.
   */
  stillLive(req: FastifyRequest, sessionId: string): Promise<boolean>;
}

export function createConsoleRequestAuth(deps: ConsoleRequestDeps): ConsoleRequestAuth {
  const name = sessionCookieName(deps.cookie);

  async function refuse(req: FastifyRequest, err: TesseraError): Promise<never> {
    const guard = deps.failures;
    if (guard) await chargeOperatorRefusal(guard, deps.whereOf(req), err.code, { action: 'admin.authenticate', resource: 'console-session' });
    throw err;
  }

  async function resolve(req: FastifyRequest, csrf: boolean): Promise<{ value: string; live: LiveSession } | undefined> {
    const cookie = readSessionCookie(req.headers.cookie, name);
    if (cookie.kind === 'absent') return undefined;
    checkFetchSite(req);
    const where = deps.whereOf(req);
    deps.failures?.admit(where);
    if (cookie.kind !== 'one') {
      return refuse(req, new TesseraError('TESSERA_CONSOLE_COOKIE_INVALID', cookie.kind === 'ambiguous'
        ? `the request carries the ${name} cookie more than once (another site on this domain may have planted one); clear this site's cookies and sign in again`
        : `the ${name} cookie is not a session Tessera issued; sign in again`));
    }
    let live: LiveSession;
    try {
      live = await deps.sessions.resolve(cookie.value, where);
    } catch (e) {
      // A value no session ever had is a guess: charged like a refused token. A known session
      // that ended is an operator who must sign in again, not an attack.
      if (isTesseraError(e) && e.details?.unknown === true) return refuse(req, e);
      throw e;
    }
    if (csrf) checkCsrf(req, live);
    return { value: cookie.value, live };
  }

  return {
    async authenticate(req) {
      const r = await resolve(req, false);
      if (!r) return undefined;
      if (req.routeOptions.config?.revealsSecret === true) {
        throw new TesseraError('TESSERA_CONSOLE_SECRET_HIDDEN', 'the console never reads secret values, even for an admin; read it with an operator token (`tessera kv get`) if you must');
      }
      if (!SAFE_METHODS.has(req.method)) checkCsrf(req, r.live);
      const op = r.live.operator;
      return { kind: 'admin', tokenId: op.id, name: op.name, role: op.role, via: 'session', sessionId: r.live.sessionId };
    },
    async stillLive(req, sessionId) {
      const cookie = readSessionCookie(req.headers.cookie, name);
      if (cookie.kind !== 'one') return false;
      try {
        return (await deps.sessions.resolve(cookie.value, deps.whereOf(req), { touch: false })).sessionId === sessionId;
      } catch {
        return false;
      }
    },
    async session(req, options) {
      const r = await resolve(req, options.csrf);
      if (!r) throw new TesseraError('TESSERA_CONSOLE_SESSION_MISSING', 'no console session: sign in on the console\'s sign-in page (/ui/) with an operator token or your OpenID Provider');
      return r;
    },
  };
}

/** Sec-Fetch-Site (Fetch Metadata, W3C): only same-origin requests and direct navigations (`none`) may use the session. */
export function checkFetchSite(req: FastifyRequest): void {
  const site = req.headers['sec-fetch-site'];
  if (site === undefined || site === 'same-origin' || site === 'none') return;
  throw new TesseraError('TESSERA_CONSOLE_CSRF', `a console session is only accepted from Tessera's own pages (Sec-Fetch-Site: ${typeof site === 'string' ? site.slice(0, 32) : 'repeated'}); this request came from another site`);
}

function checkCsrf(req: FastifyRequest, live: LiveSession): void {
  const h = req.headers['x-csrf-token'];
  if (typeof h !== 'string' || h.length === 0) {
    throw new TesseraError('TESSERA_CONSOLE_CSRF', 'a console request that changes something needs the X-CSRF-Token header (the csrf_token the console received at sign-in)');
  }
  if (h.length > MAX_CSRF_HEADER || !csrfMatches(live, h)) {
    throw new TesseraError('TESSERA_CONSOLE_CSRF', 'the X-CSRF-Token header is not this session\'s CSRF token; reload the console to get the current one');
  }
}
