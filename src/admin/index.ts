export { createAdminTokenService, ADMIN_TOKEN_PREFIX, type AdminTokenService } from './tokens.js';
