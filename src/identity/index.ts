export type { Attestation, AttestedIdentity } from './types.js';
export { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT } from './types.js';
export { parseSpiffeId, isSpiffeId, isTrustDomain, isPathSegment, spiffeIdProblem, describeSpiffeIdProblem, type SpiffeId, type SpiffeIdProblem } from './spiffe-id.js';
export { compileTemplate, type CompiledTemplate } from './template.js';
export { createJoinTokenService, JOIN_TOKEN_PREFIX, JOIN_TOKEN_MAX_TTL_MS, type JoinTokenService, type CreatedJoinToken, type JoinTokenInfo } from './join-tokens.js';
export { createAttestation, JWT_SVID_ALGORITHMS, type AttestationDeps } from './attestation.js';
export { parseSpiffeBundle } from './bundle.js';
export { registerIdentityRoutes } from './routes.js';
export { createAgentRegistry, type AgentRegistry } from './agent-registry.js';
