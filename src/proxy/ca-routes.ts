/**
 * GET /v1/proxy/ca.pem — the proxy's interception CA certificate (public: it is what clients
 * must trust; the private key never leaves the store sealed). docs/proxy-tls.md.
 *
 * Content-Type `application/x-pem-file` (the de-facto type for PEM; no IANA registration
 * exists), `X-Tessera-CA-Fingerprint` with the SHA-256 fingerprint so a script can pin it.
 */
import type { FastifyInstance } from 'fastify';
import type { ProxyCa } from './ca.js';

export const PROXY_CA_PATH = '/v1/proxy/ca.pem';
export const PEM_CONTENT_TYPE = 'application/x-pem-file';

export function registerProxyCaRoutes(app: FastifyInstance, deps: { ca: ProxyCa }): void {
  app.get(PROXY_CA_PATH, async (_req, reply) =>
    reply
      .type(PEM_CONTENT_TYPE)
      .header('cache-control', 'public, max-age=300')
      .header('x-tessera-ca-fingerprint', deps.ca.fingerprint)
      .header('content-disposition', 'attachment; filename="tessera-proxy-ca.pem"')
      .send(deps.ca.certificatePem.endsWith('\n') ? deps.ca.certificatePem : `${deps.ca.certificatePem}\n`),
  );
}
