export { createAuditLog, checkpointPublicKey, recordLine, META_HMAC_KEY, META_CHECKPOINT_KEY, META_PUBLIC_KEY, META_HEAD, type AuditLog, type AuditLogOptions, type AuditSinkConfig } from './log.js';
export { registerAuditRoutes } from './routes.js';
export { tailAudit, loadCheckpoints, loadHead, type AuditEntry, type AuditTailQuery, type AuditTailResult } from './query.js';
export { verifyStore, verifyAudit, type StoreVerifyOptions, type StoreVerifyResult } from './verify.js';
export { canonicalize, chainHash, createChainVerifier, verifyChain, signCheckpoint, signHead, verifyCheckpoint, verifyHead, GENESIS_HASH, type Checkpoint, type Problem, type ProblemKind, type StoredRecord, type VerifyResult } from './chain.js';
export { validateEvent } from './validate.js';
export type { AuditWriter } from './port.js';
export type { AuditEvent, AuditEventKind, AuditRecord, AuditActor, AuditResult } from './events.js';
