/** Dynamic secrets engines. Each implements the lease manager's `DynamicEngine` (src/leases/engine.ts). */
export { createPostgresEngine, registerPostgresEngineRoutes, type EngineHealth, type PostgresEngine, type PostgresEngineDeps } from './postgres/index.js';
