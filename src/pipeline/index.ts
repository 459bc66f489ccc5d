/**
 * The one request pipeline (DESIGN.md "Request pipeline"): authenticate → authorize (scope ∩
 * Cedar for the acting agent ∩ the user) → credential → execute → redact → audit. Every
 * enforcement point is an adapter around these steps, not a copy of them.
 */
export { createRequestAuthorizer, refusalOf, type RequestAuthorizer } from './authorize.js';
export { createRequestAuthenticator, type RequestAuthenticatorDeps } from './authenticate.js';
