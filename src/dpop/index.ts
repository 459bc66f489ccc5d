/** DPoP (RFC 9449): sender-constrained tokens. See docs/dpop.md. */
export { createDpopGuard, parseAuthorization, isDelegated, DPOP_REQUIREMENTS, type DpopGuard, type DpopGuardDeps, type DpopSettings, type DpopRequirement, type IssuedKind, type PresentedRequest, type PresentedToken } from './guard.js';
export { dpopSettingsOf } from './settings.js';
export { dpopChallengeOf, dpopWwwAuthenticate, withDpopChallenge, type DpopChallenge } from './challenge.js';
export { createHtuMatcher, htuBasesOf, normalizeUri, normalizeRequestPath, type HtuMatcher } from './htu.js';
export { DPOP_ALGORITHMS, isDpopAlgorithm, jwkThumbprint, type DpopAlgorithm } from './jwk.js';
export { accessTokenHash, MAX_PROOF_BYTES } from './proof.js';
