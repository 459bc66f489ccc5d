export { createKeyManager, type KeyManager, type KeyManagerDeps, type PublicJwk } from './keys.js';
export { createTokenService, auditTokenRefusal, DOWNSTREAM_TOKEN_TYP, type TokenService, type TokenServiceDeps, type IssuedToken, type AgentTokenClaims, type TokenKind, type VerifiedToken, type TaskTokenInput } from './service.js';
export { createTokenExchange, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS, type TokenExchange, type TokenExchangeDeps, type TokenExchangeResponse } from './exchange.js';
export { registerTokenRoutes, type TokenRouteDeps, type TokenRevoker } from './routes.js';
export { parseProtectedHeader, signEs256, type JwsHeader } from './jws.js';
