export { configSchema, attestorConfig, duration, type TesseraConfig, type AttestorConfig } from './schema.js';
export { parseConfig, loadConfigFile, loadConfig, readConfigFile, type ConfigOverrides } from './load.js';
export { parseDuration, formatDuration } from './duration.js';
export { checkConfigPaths, type ConfigCheck, type Finding as ConfigFinding } from './check.js';
export { postgresUrl } from './store-url.js';
