export { createApp, bearerToken, sendError, toTesseraError, type AdminAuthenticator, type AgentAuthenticator, type AdminPrincipal, type RequestMeta, type AppOptions } from './app.js';
export { parseInput } from './validate.js';
