/**
 * Drift (docs/drift.md): what runs held against what was declared and approved — upstream MCP
 * tool definitions (pinned), PostgreSQL engine group roles, the loaded policy set, secret hygiene.
 */
export { driftConfigSchema, DIGEST_RE, SEVERITIES, type DriftConfig, type Severity } from './config.js';
export { toolDigest, canonical, PINNED_TOOL_FIELDS, type ToolDigest } from './digest.js';
export { createToolPinning, parseToolRef, DRIFT_META_KEY, type ToolPinning, type ToolPinView } from './tool-gate.js';
export { createPolicyDrift, type PolicyDrift, type PolicySourceInfo } from './policy-drift.js';
export { createEngineDrift, type EngineDrift } from './engine-drift.js';
export { createReadRecorder, type ReadRecorder } from './reads.js';
export { createDriftService, type DriftService, type DriftReport } from './service.js';
export { registerDriftRoutes } from './routes.js';
export { FINDING_KINDS, severityRank, type Finding, type FindingKind } from './findings.js';
export { gitSourceOf, type GitSource } from './git.js';
