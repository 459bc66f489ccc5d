/**
 * The operator console's server side: sign-in, sessions and CSRF (docs/console.md, ADR 0236–0238).
 * The front end is built from console/ and served at /ui (src/console/static.ts).
 */
export { consoleConfigSchema, type ConsoleConfig, type ConsoleOidcConfig } from './config.js';
export { readSessionCookie, sessionSetCookie, clearSessionCookie, sessionCookieName, SESSION_COOKIE, SECURE_SESSION_COOKIE, type CookieOptions, type SessionCookie } from './cookie.js';
export { createConsoleSessionService, csrfTokenOf, type ConsoleSessionService, type ConsoleOperator, type LiveSession, type SessionView } from './sessions.js';
export { createConsoleRequestAuth, type ConsoleRequestAuth, type SessionPrincipal } from './request.js';
export { createConsoleOidc, type ConsoleOidc } from './oidc.js';
export { registerConsoleRoutes } from './routes.js';
export { countLiveSessions, pruneConsoleRows } from './store.js';
export { roleOf } from './roles.js';
