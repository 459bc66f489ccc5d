export { createPostgresEngine, engineError, openLeaseUsernames, urlMetaKey, ENGINE_NAME, type EngineHealth, type EngineInspection, type PostgresEngine, type PostgresEngineDeps, type PostgresDynamicEngine, type PgEngineData, type CallCtx } from './engine.js';
export { registerPostgresEngineRoutes } from './routes.js';
export { scramSha256Verifier, encodePassword, DEFAULT_SCRAM_ITERATIONS } from './scram.js';
export { quoteIdent, quoteLiteral, parseTemplate, renderTemplate, PLACEHOLDERS } from './sql.js';
export { DEFAULT_PREFIX } from './config.js';
