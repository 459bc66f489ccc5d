export { createRevocationService, validateTarget, REVOCATION_KINDS, type RevocationService, type RevocationServiceDeps, type Revocation, type RevocationCreated, type RevocationKind } from './service.js';
export { registerRevocationRoutes } from './routes.js';
