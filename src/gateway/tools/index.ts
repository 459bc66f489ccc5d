/** Tessera's declarative gateway tools (`http`, `postgres`); see docs/gateway-tools.md. */
export {
  httpToolConfig,
  postgresToolConfig,
  httpCredentialConfig,
  declarativeToolConfig,
  declarativeToolsConfig,
  toolServerName,
  toolName,
  parseDeclarativeTools,
  type HttpToolConfig,
  type PostgresToolConfig,
  type DeclarativeToolConfig,
} from './config.js';
export { createDeclarativeProviders, type DeclarativeProviderDeps } from './providers.js';
export { compileArgSchema, type ArgValidator, type JsonSchema } from './json-schema.js';
