/**
 * HTTP routes of Tessera's authorization server (server.ts): the browser-facing authorization
 * endpoint and the OpenID Provider's callback. The token endpoint (`/v1/oauth/token`) and RFC
 * 7009 revocation are the token routes' (src/tokens/routes.ts), which hand these grants over.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestMeta } from '../../server/app.js';
import type { AuthorizationServer } from './server.js';

export function registerAuthorizationRoutes(app: FastifyInstance, deps: { server: AuthorizationServer; issuer: string; admitSource?: (meta: RequestMeta) => void }): void {
  // The per-source login limit (tokens.login_rate_limit.per_source), before any work: an
  // authorization request may fetch a client's metadata document and starts a login.
  const onRequest = async (req: FastifyRequest): Promise<void> => deps.admitSource?.(app.requestMeta(req));
  // RFC 6749 §4.1.1. Errors about the client or its redirect URI are shown here (JSON with the
  // code), never redirected (§4.1.2.1); every other error goes back to the client's redirect URI.
  app.get('/v1/oauth/authorize', { config: { oauth: true }, onRequest }, async (req, reply) => {
    const location = await deps.server.authorize(req.query, app.requestMeta(req));
    return reply.header('cache-control', 'no-store').redirect(location, 302);
  });

  // The provider's redirect after the person logged in (or refused).
  app.get('/v1/oauth/callback', { config: { oauth: true }, onRequest }, async (req, reply) => {
    const url = new URL(req.url, deps.issuer);
    const location = await deps.server.callback(url, app.requestMeta(req));
    return reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(location, 302);
  });
}
