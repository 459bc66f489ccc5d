/**
 * The console's sign-in routes (docs/console.md "Signing in"):
 * - `POST /v1/console/session` `{ token }` → 201 session view + `Set-Cookie`;
 * - `GET /v1/console/session` → 200 session view (its `csrf_token` too), or 401;
 * - `DELETE /v1/console/session` (X-CSRF-Token) → 204, cookie cleared;
 * - `GET /v1/console/config` (no auth) → `{ oidc, version }`;
 * - `GET /v1/console/oidc/login` → 302 to the provider; `GET /v1/console/oidc/callback` → session + 302 `/ui/`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditWhere } from '../audit/events.js';
import type { AdminAuthenticator, AdminPrincipal } from '../server/app.js';
import { parseInput } from '../server/validate.js';
import { chargeOperatorRefusal, type AuthFailureGuard } from '../shared/auth-failures.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { TOKEN_KIND_WORDS, tokenKindOf } from '../shared/token-kind.js';
import { sourceKey, type TokenBuckets } from '../shared/rate-limit.js';
import { clearSessionCookie, readSessionCookie, sessionSetCookie, type CookieOptions } from './cookie.js';
import { OIDC_LOGIN_TTL_MS, type ConsoleOidc } from './oidc.js';
import { checkFetchSite, type ConsoleRequestAuth } from './request.js';
import type { ConsoleOperator, ConsoleSessionService } from './sessions.js';

export interface ConsoleRouteDeps {
  readonly sessions: ConsoleSessionService;
  readonly auth: ConsoleRequestAuth;
  /** The operator token service (src/admin/tokens.ts). */
  readonly admin: AdminAuthenticator;
  readonly cookie: CookieOptions;
  readonly failures?: AuthFailureGuard;
  readonly oidc?: ConsoleOidc;
  /**
   * OIDC sign-ins started per source address (`tokens.login_rate_limit.per_source`): each start
   * stores a row for up to 10 minutes, before anyone is authenticated, so an unbounded source
   * could fill the store (A11-4).
   */
  readonly oidcStarts?: TokenBuckets;
  readonly version: string;
}

const signInBody = z.object({ token: z.string().min(1).max(512) }).strict();

/** The browser-binding cookie of an OIDC sign-in in progress (SameSite=Lax: it must survive the provider's redirect back). */
const OIDC_COOKIE = 'tessera_oidc';
const oidcCookieName = (c: CookieOptions): string => (c.secure ? `__Host-${OIDC_COOKIE}` : OIDC_COOKIE);

export function registerConsoleRoutes(app: FastifyInstance, deps: ConsoleRouteDeps): void {
  const { sessions, auth, cookie } = deps;
  const whereOf = (req: FastifyRequest): AuditWhere & { source: string } => {
    const m = app.requestMeta(req);
    return { source: m.source, replica: m.replica, requestId: m.requestId };
  };

  async function startSession(reply: FastifyReply, operator: ConsoleOperator, via: 'token' | 'oidc', tokenId: string | null, where: AuditWhere) {
    const s = await sessions.start(operator, via, tokenId, where);
    reply.header('set-cookie', sessionSetCookie(s.value, s.maxAgeS, cookie));
    return s.session.view;
  }

  app.post('/v1/console/session', async (req, reply) => {
    checkFetchSite(req);
    const where = whereOf(req);
    const body = parseInput(signInBody, req.body ?? {}, 'request body');
    // Before the token is hashed and looked up: a source that sent too many refused credentials.
    deps.failures?.admit(where);
    let principal: AdminPrincipal;
    try {
      const kind = tokenKindOf(body.token);
      if (kind === 'jwt' || kind === 'join') {
        throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', `this is ${TOKEN_KIND_WORDS[kind]}; the console needs an operator token (tsr_admin_…)`);
      }
      principal = await deps.admin.authenticate(body.token);
    } catch (e) {
      const guard = deps.failures;
      if (guard && isTesseraError(e) && e.status === 401) await chargeOperatorRefusal(guard, where, e.code, { action: 'console.sign_in', resource: 'console-session' });
      throw e;
    }
    const view = await startSession(reply, operatorOf(principal), 'token', principal.tokenId, where);
    return reply.code(201).send(view);
  });

  app.get('/v1/console/session', async (req) => (await auth.session(req, { csrf: false })).live.view);

  app.delete('/v1/console/session', async (req, reply) => {
    const { value } = await auth.session(req, { csrf: true });
    await sessions.end(value, whereOf(req));
    return reply.code(204).header('set-cookie', clearSessionCookie(cookie)).send();
  });

  app.get('/v1/console/config', async () => ({ oidc: deps.oidc !== undefined, version: deps.version }));

  const oidc = deps.oidc;
  if (!oidc) return;
  const bindingName = oidcCookieName(cookie);

  app.get('/v1/console/oidc/login', async (req, reply) => {
    const taken = deps.oidcStarts?.take(sourceKey(req.ip));
    if (taken && !taken.ok) {
      const retry = Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
      throw new TesseraError('TESSERA_LOGIN_RATE_LIMITED', `too many sign-ins started from this address (tokens.login_rate_limit.per_source); retry in ${retry} s`, { limit: 'console.oidc_sign_ins_per_source', retry_after_s: retry });
    }
    const { url, binding } = await oidc.begin();
    const attrs = [`${bindingName}=${binding}`, 'Path=/', `Max-Age=${OIDC_LOGIN_TTL_MS / 1000}`, 'HttpOnly', 'SameSite=Lax', ...(cookie.secure ? ['Secure'] : [])].join('; ');
    return reply.header('set-cookie', attrs).header('referrer-policy', 'no-referrer').redirect(url.href, 302);
  });

  app.get('/v1/console/oidc/callback', async (req, reply) => {
    const where = whereOf(req);
    deps.failures?.admit(where);
    const clear = [`${bindingName}=`, 'Path=/', 'Max-Age=0', 'HttpOnly', 'SameSite=Lax', ...(cookie.secure ? ['Secure'] : [])].join('; ');
    reply.header('set-cookie', clear).header('referrer-policy', 'no-referrer');
    const bound = readSessionCookie(req.headers.cookie, bindingName);
    let operator: ConsoleOperator;
    try {
      // Only the query matters (state, code, iss, error); the path is this route's.
      const q = req.url.indexOf('?');
      operator = await oidc.finish(q < 0 ? '' : req.url.slice(q), bound.kind === 'one' ? bound.value : undefined);
    } catch (e) {
      if (isTesseraError(e) && deps.failures && (e.code === 'TESSERA_CONSOLE_OIDC_FAILED' || e.code === 'TESSERA_CONSOLE_NO_ROLE')) {
        deps.failures.charge(where);
        await deps.failures.events.append({
          kind: 'auth.admin_refused', actor: { id: 'unauthenticated' }, action: 'console.sign_in', resource: 'console-oidc', result: 'deny',
          reason: { code: e.code }, where, details: { code: e.code },
        }).catch(() => undefined);
      }
      throw e;
    }
    // Both cookies: the binding one cleared (above), the session one set (fastify appends Set-Cookie).
    await startSession(reply, operator, 'oidc', null, where);
    return reply.redirect('/ui/', 302);
  });
}

/** The console operator of an authenticated operator token. */
function operatorOf(p: AdminPrincipal): ConsoleOperator {
  return { id: p.tokenId, name: p.name, role: p.role };
}
