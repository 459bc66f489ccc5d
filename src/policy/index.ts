export * from './types.js';
export { SCHEMA_TEXT, CEDAR_NAMESPACE } from './schema.js';
export { createPolicyEngine, type PolicyEngine, type PolicyEngineOptions, type PolicyStatus, type Explanation, type ReloadOutcome } from './engine.js';
export { validatePolicyDir, loadPolicyDir, formatPolicyError, type PolicyFileError } from './loader.js';
export { runPolicyTests, type PolicyTestReport, type PolicyTestCaseResult } from './test-runner.js';
export { registerPolicyRoutes } from './routes.js';
export { checkRequestSchema, toPolicyRequest, type CheckRequest } from './check.js';
export { parseResourceRef, toCedarRequest } from './entities.js';
export { parseScope, scopeCovers, isSubset, requiredScopeFor, authorizeWithScope, SCOPE_KINDS, type Scope, type ScopeKind } from './scope.js';
