export { createAdminTokenService, ADMIN_TOKEN_PREFIX, DEV_CREATOR, OPERATOR_TOKEN_NAME, type AdminTokenService, type OperatorToken, type CreateOperatorToken } from './tokens.js';
export { checkRole, roleAllows, OPERATOR_ROLES, type OperatorRole, type RoleRouteConfig } from './roles.js';
export { registerOperatorTokenRoutes, OPERATOR_TOKEN_TTL_DEFAULT_MS, OPERATOR_TOKEN_TTL_MAX_MS } from './routes.js';
