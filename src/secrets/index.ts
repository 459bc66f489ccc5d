export { parseSecretPath, parseSecretPrefix, folderAncestors, isUnderPrefix, matchesPathGlob, SECRET_PATH_LIMITS, type SecretPath } from './path.js';
export {
  createKvService,
  secretMetaSchema,
  valueAad,
  dataKeyAad,
  DEFAULT_MAX_VALUE_BYTES,
  SECRET_MODES,
  type KvService,
  type KvDeps,
  type SecretMode,
  type SecretMetaInput,
  type SecretMetadata,
  type SecretValue,
  type AuditContext,
} from './kv.js';
export { rotateMasterKey, SIGNING_KEY_AAD, SEALED_META_PREFIX, type RotationReport, type RotationProgress, type RotateDeps } from './rotate.js';
export { registerSecretRoutes, type SecretRouteDeps } from './routes.js';
export { createKeySealer, aesGcmSeal, aesGcmOpen, type Sealer } from './sealer.js';
export {
  decodeMasterKey,
  masterKeyId,
  loadMasterKeyFile,
  loadMasterKeyEnv,
  generateMasterKeyFile,
  masterSealer,
  resolveMasterKey,
  DEFAULT_MASTER_KEY_FILE,
  type ResolvedMasterKey,
} from './master-key.js';
