export { createAuthorizationServer, GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, CODE_PREFIX, REFRESH_PREFIX, type AuthorizationServer, type AuthorizationServerDeps, type GrantTokenResponse } from './server.js';
export { createClientResolver, clientSpiffeId, redirectMatches, metadataUrlProblem, isPrivateAddress, type ClientResolver, type OAuthClient } from './clients.js';
export { createFederatedLogin, type FederatedLogin } from './login.js';
export { registerAuthorizationRoutes } from './routes.js';
