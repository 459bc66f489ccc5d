/**
 * The one error catalogue. Every error Tessera returns carries a stable code
 * `TESSERA_<AREA>_<WHAT>`, an HTTP status and, for OAuth endpoints, the RFC 6749 §5.2
 * error name. `docs/errors.md` documents every code; a test keeps the two in step.
 *
 * Add codes to the section of your feature; never rename or reuse a code.
 */
export interface ErrorSpec {
  readonly status: number;
  /** RFC 6749 §5.2 / RFC 6750 §3.1 error name used on OAuth endpoints. */
  readonly oauth?: string;
  readonly description: string;
}

export const ERROR_CATALOGUE = {
  // --- request / transport -------------------------------------------------------
  TESSERA_REQUEST_INVALID: { status: 400, oauth: 'invalid_request', description: 'The request body or parameters failed validation; the message names the field.' },
  TESSERA_REQUEST_MALFORMED: { status: 400, oauth: 'invalid_request', description: 'The body could not be parsed (malformed JSON or form encoding), or the URL holds a "%" that starts no valid percent-encoded byte.' },
  TESSERA_REQUEST_TOO_LARGE: { status: 413, oauth: 'invalid_request', description: 'The body is larger than the configured limit.' },
  TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE: { status: 415, oauth: 'invalid_request', description: 'The Content-Type is not accepted by this endpoint.' },
  TESSERA_REQUEST_TOO_DEEP: { status: 400, oauth: 'invalid_request', description: 'The JSON body (or a tool call\'s arguments) is nested deeper than 64 levels; flatten the structure.' },
  TESSERA_REQUEST_CREDENTIAL_LIKE: { status: 400, oauth: 'invalid_request', description: 'A name in the request (secret path, SPIFFE ID, engine or role name, label, task id, tool name…) contains what looks like a JWT or a Tessera token. Names are recorded in clear in listings and the audit log, so they must not carry credentials; the message names the field.' },
  TESSERA_NOT_FOUND: { status: 404, description: 'No such route or object; see /v1/openapi.json for the routes.' },
  TESSERA_METHOD_NOT_ALLOWED: { status: 405, description: 'The route exists but not with this method.' },
  TESSERA_INTERNAL: { status: 500, description: 'An unexpected error; the request id in the response finds it in the log.' },
  TESSERA_UNAVAILABLE: { status: 503, description: 'Tessera is not ready to serve (starting, or a dependency is down).' },

  // --- admin authentication ------------------------------------------------------
  TESSERA_ADMIN_TOKEN_MISSING: { status: 401, oauth: 'invalid_token', description: 'An operator endpoint was called without `Authorization: Bearer <admin token>`.' },
  TESSERA_ADMIN_TOKEN_INVALID: { status: 401, oauth: 'invalid_token', description: 'The admin token is not valid.' },
  TESSERA_ADMIN_TOKEN_EXPIRED: { status: 401, oauth: 'invalid_token', description: 'The operator token has passed its expiry (`expires_at`); an admin creates a new one with `tessera operator-token create` (docs/operators.md).' },
  TESSERA_ADMIN_ROLE_FORBIDDEN: { status: 403, oauth: 'insufficient_scope', description: 'The operator token has the `auditor` role, which may read but not change anything, and never read a secret value; use an admin token (docs/operators.md).' },
  TESSERA_ADMIN_TOKEN_NOT_FOUND: { status: 404, description: 'No operator token has this id (`tessera operator-token list` shows them).' },
  TESSERA_ADMIN_TOKEN_NAME_TAKEN: { status: 409, description: 'An operator token that is not revoked already has this name; choose another name, or revoke that token first.' },
  TESSERA_ADMIN_TOKEN_TTL_INVALID: { status: 400, oauth: 'invalid_request', description: 'The operator token `ttl` is not a duration such as `30d` or `12h`, is zero, or is longer than 365 days.' },
  TESSERA_ADMIN_LAST_TOKEN: { status: 409, description: 'Revoking this token would leave no active admin operator token, and nobody could operate Tessera any more; create another admin token first.' },

  // --- agent tokens (authentication of requests) ----------------------------------
  TESSERA_TOKEN_MISSING: { status: 401, oauth: 'invalid_token', description: 'No bearer token was presented; log in with POST /v1/oauth/token and send `Authorization: Bearer <token>`.' },
  TESSERA_TOKEN_MALFORMED: { status: 401, oauth: 'invalid_token', description: 'The token is not a well-formed JWS compact serialization.' },
  TESSERA_TOKEN_ALG_NOT_ALLOWED: { status: 401, oauth: 'invalid_token', description: 'The token header names an algorithm that is not allowed (for example `none` or HS256).' },
  TESSERA_TOKEN_KID_UNKNOWN: { status: 401, oauth: 'invalid_token', description: 'The token was signed with a key id that is not in the key set.' },
  TESSERA_TOKEN_SIGNATURE_INVALID: { status: 401, oauth: 'invalid_token', description: 'The token signature does not verify.' },
  TESSERA_TOKEN_EXPIRED: { status: 401, oauth: 'invalid_token', description: 'The token has expired (`exp`, with the allowed clock skew).' },
  TESSERA_TOKEN_NOT_YET_VALID: { status: 401, oauth: 'invalid_token', description: 'The token is not valid yet (`nbf`/`iat` in the future beyond the skew).' },
  TESSERA_TOKEN_AUDIENCE_INVALID: { status: 401, oauth: 'invalid_token', description: 'The token `aud` does not include this service.' },
  TESSERA_TOKEN_ISSUER_INVALID: { status: 401, oauth: 'invalid_token', description: 'The token `iss` is not the expected issuer.' },
  TESSERA_TOKEN_CLAIMS_INVALID: { status: 401, oauth: 'invalid_token', description: 'A required claim is missing or has the wrong type.' },
  TESSERA_TOKEN_REVOKED: { status: 401, oauth: 'invalid_token', description: 'The token, its agent or its task has been revoked.' },
  TESSERA_TOKEN_TRUST_DOMAIN_UNKNOWN: { status: 401, oauth: 'invalid_token', description: 'The token subject (`sub`) is in a trust domain this Tessera does not serve (its `trust_domain`, or a `spiffe` attestor\'s); log in again. Seen after a `spiffe` attestor is removed from the configuration.' },
  TESSERA_TOKEN_TYPE_INVALID: { status: 401, oauth: 'invalid_token', description: 'The token\'s JOSE `typ` is not one this use accepts (RFC 8725 §3.11): enforcement points take agent tokens (`JWT`) and task tokens (`tessera-task+jwt`); a downstream token (`tessera-downstream+jwt`, sent by the gateway to upstreams) or another type is refused. The message names the type presented and the one required.' },
  TESSERA_TOKEN_INSUFFICIENT_SCOPE: { status: 403, oauth: 'insufficient_scope', description: 'The token scope does not cover this request.' },

  // --- OAuth token endpoint --------------------------------------------------------
  TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE: { status: 400, oauth: 'unsupported_grant_type', description: 'Only `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693) is supported.' },
  TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE: { status: 400, oauth: 'invalid_request', description: 'The `subject_token_type` is not one Tessera accepts.' },
  TESSERA_OAUTH_INVALID_GRANT: { status: 400, oauth: 'invalid_grant', description: 'The subject token could not be verified or attested.' },
  TESSERA_OAUTH_INVALID_SCOPE: { status: 400, oauth: 'invalid_scope', description: 'The requested scope is malformed or wider than allowed.' },
  TESSERA_OAUTH_INVALID_TARGET: { status: 400, oauth: 'invalid_target', description: 'The requested audience/resource is not served by Tessera (RFC 8707).' },

  // --- tasks and delegation (src/tasks; docs/tasks.md) --------------------------------
  TESSERA_TASK_PARAMETER_INVALID: { status: 400, oauth: 'invalid_request', description: 'A task parameter of the token exchange is malformed: `purpose` (1–512 characters of plain text on one line), `tctx` (a JSON object of at most 16 string values, keys usable as Cedar attribute names), `label` (1–64 of A-Z a-z 0-9 . _ -), `requested_ttl` / `max_depth` (whole numbers in digits), `scope_mode` (`exact` or `trim`), or the choice between `actor_token` and `label`. `details.field` names it.' },
  TESSERA_TASK_CLAIM_PARAMETER: { status: 400, oauth: 'invalid_request', description: 'The token exchange carried a parameter named like a claim Tessera sets itself (`act`, `sub`, `txn`, `depth`, `cnf`, …): the actor chain, the task tree and the times come only from the tokens presented. Remove the parameter.' },
  TESSERA_TASK_SCOPE_WIDENED: { status: 400, oauth: 'invalid_scope', description: 'A delegated task asked for a scope its parent does not hold (glob containment: `**` is wider than `*`, `secret:a/bc` is not within `secret:a/b`). Ask for a narrower scope, or send `scope_mode=trim` to receive only the covered part.' },
  TESSERA_TASK_LIFETIME_EXCEEDED: { status: 400, oauth: 'invalid_request', description: 'The `requested_ttl` would outlive the subject token (a task never outlives what it derives from) or exceeds `tokens.task_ttl`; or the subject token expires now. `details.max_s` says what is left.' },
  TESSERA_TASK_DEPTH_EXCEEDED: { status: 400, oauth: 'invalid_request', description: 'The parent task is already at its tree\'s `max_depth`: it may not delegate further.' },
  TESSERA_TASK_MAX_DEPTH_RAISED: { status: 400, oauth: 'invalid_request', description: 'The requested `max_depth` is above the parent\'s (a child may lower it, never raise it) or, for a root task, above `tokens.delegation.max_depth`.' },
  TESSERA_TASK_AUDIENCE_WIDENED: { status: 400, oauth: 'invalid_target', description: 'A requested `audience`/`resource` is not an audience of the subject token: a task is usable only where what it derives from is.' },
  TESSERA_TASK_CONTEXT_CHANGED: { status: 400, oauth: 'invalid_request', description: 'The child\'s `tctx` gives another value to a fact its parent set; a child may add task facts, never change one.' },
  TESSERA_TASK_BINDING_REQUIRED: { status: 400, oauth: 'invalid_request', description: 'The exchange carried no DPoP proof (RFC 9449 §5) but needs one: the subject token is bound (a bound parent yields only bound children, proven with its key), the `actor_token` is bound (proven with the sub-agent\'s key), or the configuration requires binding for label sub-agents (`tokens.delegation.require_dpop_for_labels`). `details.field` names the bound token. Send a `DPoP` header signed with that key.' },
  TESSERA_TASK_KEY_MISMATCH: { status: 400, oauth: 'invalid_grant', description: 'The DPoP proof of the exchange is signed with another key than the one the subject token or the `actor_token` is bound to (`cnf.jkt`; `details.field` says which). A request carries one proof, so a bound parent cannot delegate to a sub-agent whose agent token is bound to another key: delegate to it from an unbound parent, with a proof by the sub-agent\'s key.' },
  TESSERA_TASK_PARENT_REQUIRED: { status: 400, oauth: 'invalid_request', description: 'The exchange names a sub-agent (`actor_token` or `label`) but its `subject_token` is an agent token: an agent token is not a parent task. Open a root task first and present that task token as the subject to delegate.' },
  TESSERA_TASK_ACTOR_TOKEN_INVALID: { status: 400, oauth: 'invalid_request', description: 'The `actor_token` is not the sub-agent\'s own agent token: a task token is not an identity; or `actor_token_type` is not `urn:ietf:params:oauth:token-type:access_token`; or the actor token failed verification (`details.cause`).' },
  TESSERA_TASK_DELEGATION_DENIED: { status: 400, oauth: 'invalid_request', description: 'Policy does not permit this agent to open or delegate this task (Cedar action `token.delegate`: principal = the delegating agent, resource = the sub-agent or `SubAgent::"<label>"`, `context.delegation` = the new task). RFC 8693 §2.2.2 answers a policy refusal with `invalid_request`.' },
  TESSERA_TASK_RATE_LIMITED: { status: 429, oauth: 'temporarily_unavailable', description: 'This agent opened or delegated more tasks per second than `tokens.delegation.rate_limit` allows; retry after the `Retry-After` seconds. Reuse a task token for its whole task instead of exchanging per request.' },
  TESSERA_TASK_NOT_FOUND: { status: 404, description: 'No task with this id (`txn`); list tasks with `GET /v1/admin/tasks` or `tessera task list`.' },
  TESSERA_OAUTH_NOT_ATTESTATION: { status: 400, oauth: 'invalid_grant', description: 'A Tessera agent or task token was presented as a login attestation (`subject_token_type` jwt): Tessera\'s own tokens never prove an identity. Log in with the platform token (Kubernetes, OIDC, SPIFFE, join token); to open or delegate a task, send the Tessera token with `subject_token_type=urn:ietf:params:oauth:token-type:access_token`.' },

  // --- users: agents acting for a person, Tessera's authorization server (src/users; docs/users.md) ---
  TESSERA_USER_ISSUER_UNTRUSTED: { status: 400, oauth: 'invalid_grant', description: 'The user token was issued by a provider that is not in `users.issuers` (its `iss`), or it is not a JWT at all. Add the provider, or present a token from a configured one.' },
  TESSERA_USER_TOKEN_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The user token does not verify: malformed, signed with an algorithm outside the issuer\'s `algorithms`, by a key not in its JWKS, or a bad signature; or `nbf`/`iat` lie in the future. `details.reason` says which.' },
  TESSERA_USER_TOKEN_EXPIRED: { status: 400, oauth: 'invalid_grant', description: 'The user token has expired (`exp`, with the clock skew), or is older than the issuer\'s `max_age` (from `iat`). Get a fresh token from the provider.' },
  TESSERA_USER_AUDIENCE_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The user token\'s `aud` names none of the issuer\'s configured `audience` values: it was issued for another service (token substitution).' },
  TESSERA_USER_TOKEN_TYPE_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The kind of user token does not match: an ID token where the issuer requires an access token (`users.issuers[].token: access_token`, RFC 9068 `typ: at+jwt`), an access token where it requires an ID token, or a token whose kind disagrees with `subject_token_type`.' },
  TESSERA_USER_CLAIM_MISSING: { status: 400, oauth: 'invalid_grant', description: 'The user token lacks the claim that names the person (`users.issuers[].user_id_claim`, `sub` by default).' },
  TESSERA_USER_CLAIM_INVALID: { status: 400, oauth: 'invalid_grant', description: 'A claim of the user token cannot be used: the user id is not 1–256 printable ASCII characters, is a SPIFFE ID or looks like a credential; or a mapped attribute or the groups claim has the wrong type, is too long, or (groups) holds more than 64 entries. Nothing is truncated.' },
  TESSERA_USER_JWKS_UNAVAILABLE: { status: 503, oauth: 'temporarily_unavailable', description: 'The provider\'s key set (or its OpenID discovery document) could not be fetched or is invalid; retry, and check `users.issuers[].jwks_url` / `discovery`.' },
  TESSERA_USER_ACTOR_REQUIRED: { status: 400, oauth: 'invalid_request', description: 'A user token was presented without `actor_token`: an agent acts for a person only with its own agent token as `actor_token` (RFC 8693 §2.1). A user token alone is not a login.' },
  TESSERA_USER_ACTOR_INVALID: { status: 400, oauth: 'invalid_request', description: 'The `actor_token` of an on-behalf-of exchange is not an agent token: a task token (or another token) is not an identity; `details.cause` gives the verification step that refused it.' },
  TESSERA_USER_REVOKED: { status: 400, oauth: 'invalid_grant', description: 'The person is revoked (`tessera revoke user`): no task may act for them until the revocation expires or is lifted.' },
  TESSERA_POLICY_USER_DENIED: { status: 403, oauth: 'insufficient_scope', description: 'The agent may do this, but the person it acts for may not: Cedar denies the user (principal = `User` with its mapped tags and `Group` parents, `context.actor` = the agent). Both must permit every request.' },
  TESSERA_OAUTH_CLIENT_INVALID: { status: 400, oauth: 'invalid_client', description: 'The `client_id` is neither a pre-registered client (`users.authorization_server.clients`) nor a usable client ID metadata document URL (https, with a path, whose document names the same `client_id`, within the size and time limits); or the code or refresh token was issued to another client.' },
  TESSERA_OAUTH_REDIRECT_URI_INVALID: { status: 400, oauth: 'invalid_request', description: 'The `redirect_uri` is not one of the client\'s registered redirect URIs (exact match; for a loopback `http://127.0.0.1` URI any port, RFC 8252 §7.3), or differs from the one the code was issued for. Tessera never redirects to an unregistered URI.' },
  TESSERA_OAUTH_PKCE_REQUIRED: { status: 400, oauth: 'invalid_request', description: 'The authorization request lacks `code_challenge` with `code_challenge_method=S256` (PKCE, RFC 7636; `plain` is refused), or the token request lacks `code_verifier`.' },
  TESSERA_OAUTH_PKCE_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The `code_verifier` does not match the code\'s `code_challenge` (RFC 7636 §4.6), or is not 43–128 characters of the unreserved set.' },
  TESSERA_OAUTH_CODE_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The authorization code is unknown, expired, or was already used. A code used twice also revokes what it first yielded (RFC 6749 §4.1.2): start the login again.' },
  TESSERA_OAUTH_STATE_INVALID: { status: 400, oauth: 'invalid_request', description: 'The provider redirected back with a `state` that matches no login in progress (unknown, expired, or already finished): a forged or replayed callback, or a login that took longer than `users.authorization_server.login_ttl`.' },
  TESSERA_OAUTH_LOGIN_FAILED: { status: 400, oauth: 'access_denied', description: 'The login at the OpenID Provider did not succeed: the provider answered with an error, or its code exchange or ID token failed Tessera\'s checks (issuer, audience, nonce, signature). `details.cause` says which.' },
  TESSERA_OAUTH_RESPONSE_TYPE_UNSUPPORTED: { status: 400, oauth: 'unsupported_response_type', description: 'Only `response_type=code` (the authorization code grant with PKCE) is supported.' },
  TESSERA_OAUTH_REFRESH_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The refresh token is unknown, expired (`refresh_token_ttl`), idle too long (`refresh_idle_ttl`), revoked, or its person is revoked. Log in again.' },
  TESSERA_OAUTH_REFRESH_REUSED: { status: 400, oauth: 'invalid_grant', description: 'A refresh token that was already rotated was presented again (RFC 9700 §4.14.2): it may have been stolen, so its whole family (every refresh token of that login) and the tasks it opened are revoked. Log in again.' },
  TESSERA_OAUTH_REFRESH_KEY_MISMATCH: { status: 400, oauth: 'invalid_grant', description: 'The refresh token is bound to a key (DPoP, RFC 9449 §5) and the request carried no proof, or a proof by another key.' },
  // --- DPoP: sender-constrained tokens (RFC 9449, docs/dpop.md) -------------------------
  // 401 with `WWW-Authenticate: DPoP error=…, algs=…` at resources; at the token endpoint the
  // same codes answer 400 with the RFC 6749 §5.2 body (RFC 9449 §5).
  TESSERA_DPOP_PROOF_MISSING: { status: 401, oauth: 'invalid_dpop_proof', description: 'A DPoP proof is needed and none was sent: a DPoP-bound token (or `Authorization: DPoP`) needs a `DPoP` header with a fresh proof on every request, and the token endpoint needs one when `tokens.dpop.require` asks for bound tokens of that kind (`always`: every login and task; `delegated`: every delegation, depth ≥ 1) (RFC 9449 §4, §5).' },
  TESSERA_DPOP_PROOF_MALFORMED: { status: 401, oauth: 'invalid_dpop_proof', description: 'The `DPoP` header is not one well-formed proof JWT: more than one header, not a JWS compact serialization, header or payload not JSON, `typ` not `dpop+jwt`, a `crit` parameter, or a required claim (`jti`, `htm`, `htu`, `iat`) missing or of the wrong type (RFC 9449 §4.2, §4.3). The message says which.' },
  TESSERA_DPOP_PROOF_TOO_LARGE: { status: 401, oauth: 'invalid_dpop_proof', description: 'The DPoP proof is longer than 8 KiB; a proof with an EC or Ed25519 key is well under 1 KiB.' },
  TESSERA_DPOP_ALG_NOT_ALLOWED: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof is signed with an algorithm Tessera does not accept: `none`, a symmetric (MAC) algorithm such as HS256, or one not in `tokens.dpop.algorithms` (RFC 9449 §4.3 check 5). `WWW-Authenticate` lists the accepted ones in `algs`.' },
  TESSERA_DPOP_KEY_INVALID: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof\'s `jwk` header is not an acceptable public key: missing, private key material (`d`, `p`, …), a symmetric key, a key type that does not fit `alg`, an RSA key under 2048 bits, or a point not on the curve (RFC 9449 §4.3 check 7).' },
  TESSERA_DPOP_SIGNATURE_INVALID: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof\'s signature does not verify with the public key in its own `jwk` header (RFC 9449 §4.3 check 6).' },
  TESSERA_DPOP_HTM_MISMATCH: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof\'s `htm` is not the method of this request (RFC 9449 §4.3 check 8); make a new proof for each request.' },
  TESSERA_DPOP_HTU_MISMATCH: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof\'s `htu` is not the URL of this request without query and fragment (RFC 9449 §4.3 check 9). Behind a proxy, Tessera compares with `server.public_url` plus the path; use that URL.' },
  TESSERA_DPOP_IAT_INVALID: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof\'s `iat` is further from Tessera\'s clock than `tokens.dpop.iat_window` (stale, or made in the future): make a fresh proof for each request, and check the client\'s clock (RFC 9449 §4.3 check 11).' },
  TESSERA_DPOP_REPLAYED: { status: 401, oauth: 'invalid_dpop_proof', description: 'This proof (its `jti`) was already used: a proof is good for one request (RFC 9449 §11.1). Make a new proof, with a new random `jti`, for each request.' },
  TESSERA_DPOP_ATH_MISMATCH: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof\'s `ath` is missing or is not base64url(SHA-256) of the access token sent with it (RFC 9449 §4.3 check 12): the proof was made for another token.' },
  TESSERA_DPOP_KEY_MISMATCH: { status: 401, oauth: 'invalid_dpop_proof', description: 'The proof is signed with another key than the one the token is bound to (its JWK thumbprint differs from the token\'s `cnf.jkt`, RFC 9449 §4.3 check 12, §6.1). Sign with the key used at login.' },
  TESSERA_DPOP_NONCE_REQUIRED: { status: 401, oauth: 'use_dpop_nonce', description: 'Tessera requires a server-provided nonce in DPoP proofs (`tokens.dpop.nonce`) and the proof has none, or an expired or unknown one. Retry with the nonce from the `DPoP-Nonce` response header (RFC 9449 §8, §9); DPoP clients such as the SDK and oauth4webapi do this by themselves.' },
  TESSERA_DPOP_TOKEN_BOUND: { status: 401, oauth: 'invalid_token', description: 'A DPoP-bound token (it has `cnf.jkt`) was presented as `Authorization: Bearer`; send it as `Authorization: DPoP <token>` with a `DPoP` proof (RFC 9449 §7.1).' },
  TESSERA_DPOP_TOKEN_NOT_BOUND: { status: 401, oauth: 'invalid_token', description: 'A token that is not DPoP-bound was presented with the `DPoP` scheme; send it as `Authorization: Bearer <token>`, or log in with a DPoP proof to get a bound token.' },
  TESSERA_DPOP_REQUIRED: { status: 401, oauth: 'invalid_token', description: 'Configuration (`tokens.dpop.require`) requires this token to be DPoP-bound, and it is not (`always`: any token; `delegated`: a task token at depth ≥ 1); log in (or exchange) again with a DPoP proof.' },
  TESSERA_DPOP_REPLAY_CACHE_FULL: { status: 503, description: 'The DPoP replay cache of this replica is full of proofs still inside their `iat` window (`tokens.dpop.replay_cache_size`), so no new proof can be remembered and it is refused (fail closed); retry after `Retry-After`, or raise the size.' },
  TESSERA_DPOP_RATE_LIMITED: { status: 429, description: 'This DPoP key already has `tokens.dpop.replay_cache_per_key` proofs inside their `iat` window on this replica; slow down or retry after `Retry-After`.' },

  // --- identity / attestation -------------------------------------------------------
  TESSERA_SPIFFE_ID_INVALID: { status: 400, oauth: 'invalid_request', description: 'The value is not a valid SPIFFE ID (see the SPIFFE ID specification §2).' },
  TESSERA_TRUST_DOMAIN_UNKNOWN: { status: 400, oauth: 'invalid_request', description: 'The SPIFFE ID is in a trust domain this Tessera does not serve: join tokens need its own `trust_domain`; agent revocations need that or a `spiffe` attestor\'s trust domain. The message lists the accepted ones.' },
  TESSERA_ATTEST_NO_ATTESTOR: { status: 400, oauth: 'invalid_grant', description: 'No configured attestor accepts this subject token (issuer or token type unknown).' },
  TESSERA_ATTEST_FAILED: { status: 400, oauth: 'invalid_grant', description: 'The attestation token failed verification; the message says which check.' },
  TESSERA_ATTEST_CLAIM_MISSING: { status: 400, oauth: 'invalid_grant', description: 'The attestation token lacks a claim the SPIFFE ID template needs.' },
  TESSERA_JOIN_TOKEN_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The join token is unknown or expired.' },
  TESSERA_JOIN_TOKEN_REUSED: { status: 400, oauth: 'invalid_grant', description: 'The join token was already used; join tokens are one-time. The attempt is audited.' },
  TESSERA_JOIN_TOKEN_TTL_INVALID: { status: 400, description: 'Join token TTL must be between 1 second and 1 hour.' },
  TESSERA_AGENT_REVOKED: { status: 400, oauth: 'invalid_grant', description: 'The agent is revoked; logins are refused until the revocation expires or an operator lifts it: the message and details.revocation_id name the revocation (`tessera revoke lift <id>`).' },
  TESSERA_KEY_UNAVAILABLE: { status: 503, description: 'No active signing key is available.' },
  TESSERA_BUNDLE_INVALID: { status: 500, description: 'A configured SPIFFE trust bundle or JWKS could not be loaded or parsed.' },

  // --- policy -------------------------------------------------------------------
  TESSERA_POLICY_DENIED: { status: 403, description: 'Policy does not permit this action (default deny, or a `forbid` matched).' },
  TESSERA_POLICY_INVALID: { status: 400, description: 'A policy file failed to parse or validate; the message names the file, line and problem.' },
  TESSERA_POLICY_NOT_LOADED: { status: 503, description: 'No valid policy set has been loaded yet.' },
  TESSERA_POLICY_REQUEST_INVALID: { status: 400, description: 'A policy check request names an unknown entity type, action or malformed context.' },
  TESSERA_POLICY_FILE_REFUSED: { status: 400, description: 'An entry of the policy directory was refused without being read: a symlink loop, a symlink that leads outside the directory or nowhere, a `*.cedar` entry that is not a regular file (a FIFO, socket or device), a file over 1 MiB, more than 1000 policy files, 10,000 entries or 16 levels. The load fails (the last good set stays active); the message names the entry.' },
  TESSERA_POLICY_TEST_FAILED: { status: 400, description: 'A policy test table had failing cases.' },

  // --- secrets ------------------------------------------------------------------
  TESSERA_SECRET_PATH_INVALID: { status: 400, description: 'The secret path is invalid (traversal, empty segment, bad character or too long).' },
  TESSERA_SECRET_NOT_FOUND: { status: 404, description: 'No secret (or no such version) at this path.' },
  TESSERA_SECRET_NOT_READABLE: { status: 403, description: 'The secret is in `inject` mode: it is only used by the gateway and proxy, never returned to an agent.' },
  TESSERA_SECRET_VALUE_INVALID: { status: 400, description: 'The secret value is missing, not a string, or larger than the limit.' },
  TESSERA_SECRET_DECRYPT_FAILED: { status: 500, description: 'A secret failed authenticated decryption (wrong master key, or the stored ciphertext was altered).' },
  TESSERA_MASTER_KEY_INVALID: { status: 500, description: 'The master key is missing, unreadable, not 32 bytes, or its file permissions are too open.' },

  // --- leases -------------------------------------------------------------------
  TESSERA_LEASE_NOT_FOUND: { status: 404, description: 'No such lease, or it belongs to another agent; list yours with `tessera lease list`.' },
  TESSERA_LEASE_EXPIRED: { status: 400, description: 'The lease has already expired or been revoked.' },
  TESSERA_LEASE_NOT_RENEWABLE: { status: 400, description: 'The lease cannot be renewed: it already reaches its max TTL, or its role is not renewable. Request a new credential.' },
  TESSERA_LEASE_TTL_INVALID: { status: 400, description: 'The requested TTL or renew increment is not a positive duration, or an issuance TTL exceeds the role max TTL (a renew increment beyond the cap is capped instead).' },
  TESSERA_ENGINE_NOT_FOUND: { status: 404, description: 'No such secrets engine or role; check the engine configuration.' },
  TESSERA_ENGINE_UNAVAILABLE: { status: 503, description: 'The engine backend is unreachable; issuance failed fast. Retry later.' },
  TESSERA_ENGINE_FAILED: { status: 502, description: 'The engine backend refused the operation; the message says why.' },

  // --- dynamic engines: postgres (src/engines/postgres) -------------------------------
  TESSERA_ENGINE_NAME_INVALID: { status: 400, description: 'An engine config, role, group role or username prefix name is outside the allowed characters (lowercase letters, digits, `_`, `-`; prefixes `[a-z][a-z0-9_]`, not `pg_`); the message names the field.' },
  TESSERA_ENGINE_TEMPLATE_INVALID: { status: 400, description: 'A custom creation or revocation statement is not exactly one SQL statement as PostgreSQL reads it (a second statement after `;`, an unterminated quote, dollar quote or comment, a `$n` parameter, a placeholder inside quotes or glued to text), or PostgreSQL refused it in the dry run when the role was saved; `details` name the field and the 1-based position.' },
  TESSERA_ENGINE_TTL_INVALID: { status: 400, description: 'A role default TTL or max TTL is not a positive duration, or the default TTL exceeds the max TTL.' },
  TESSERA_ENGINE_PRIVILEGE_MISSING: { status: 400, description: 'The management role in the engine connection URL lacks CREATEROLE (or superuser); grant it with `ALTER ROLE <name> CREATEROLE` and configure again.' },
  TESSERA_ENGINE_AUTH_FAILED: { status: 400, description: 'The database refused the management credentials in the connection URL (wrong user or password, or pg_hba.conf); fix the URL and configure again.' },
  TESSERA_ENGINE_GROUP_NOT_FOUND: { status: 400, description: 'A group role named by an engine role does not exist in the database, or carries the engine username prefix; create it first (see docs/engine-postgres.md).' },
  TESSERA_ENGINE_ROLE_CONFLICT: { status: 409, description: 'The role name is already used by another postgres engine configuration; role names are global across configurations (they form `/v1/creds/postgres/<role>`).' },
  TESSERA_ENGINE_IN_USE: { status: 409, description: 'The engine configuration or role still has roles or open leases; revoke them (`tessera revoke lease`, or revoke by prefix) and delete the roles first.' },
  TESSERA_ENGINE_LOCK_TIMEOUT: { status: 503, description: 'A step waited for a lock in the database (e.g. `ALTER ROLE` on a row of `pg_authid`) held by a session or prepared transaction that is not one of the affected database users, so Tessera did not end it; the message names it (pid, role, state, since when). A revocation is retried with backoff; end that transaction to let it finish.' },
  TESSERA_ENGINE_USER_BUSY: { status: 409, description: 'The lease\'s own database user holds a lock on its role (an uncommitted `ALTER ROLE CURRENT_USER …`, or a prepared transaction), so its `VALID UNTIL` cannot be extended; commit or roll back that transaction and renew again.' },
  TESSERA_ENGINE_ROLE_PRIVILEGED: { status: 400, description: 'An engine role would give its database users a privilege that escapes revocation or reaches beyond the role: an attribute (SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS), an ADMIN or GRANT option, members added to the user, a statement on another role (`ALTER ROLE`/`CREATE ROLE`/`SET ROLE` …), a `DO` block, or a group that is a `pg_*` built-in role or carries such an attribute (allowed only with `allow_privileged_groups: true`); the message names the statement or group. See docs/engine-postgres.md.' },
  TESSERA_ENGINE_USER_PRIVILEGED: { status: 409, description: 'Issuance refused: the database user created for a lease came out with a privilege its role must not give (an attribute, an ADMIN option, a member, or a privileged group: a group role was changed in the database after the engine role was saved), or a stored creation statement saved by an older version would give one; the user was rolled back and nothing was issued. An operator must fix the group role or save the engine role again.' },
  TESSERA_ENGINE_CONNECTION_INVALID: { status: 400, description: 'The `connection_url` given does not work: the host name does not resolve, nothing accepts connections there, the server did not answer within `connect_timeout`, the TLS settings do not match the server (`sslmode=require` against a server without TLS, an unreadable `sslcert`…), or a parameter is refused by the server. Nothing was saved; the message names the cause.' },
  TESSERA_ENGINE_ROLE_INVALID: { status: 400, description: 'PostgreSQL refused the role when it was checked in a dry run at save time (rolled back): e.g. a group that would make a circular membership (`0LP01`), or a cleanup step it cannot run; the message names the step and PostgreSQL\'s answer.' },

  // --- revocations / kill switch -----------------------------------------------------
  TESSERA_REVOCATION_INVALID: { status: 400, description: 'The revocation kind or target is invalid.' },
  TESSERA_REVOCATION_NOT_FOUND: { status: 404, description: 'No such revocation; list them with GET /v1/admin/revocations.' },

  // --- exposure windows (src/exposure; docs/exposure.md) ---------------------------------
  TESSERA_EXPOSURE_BY_INVALID: { status: 400, description: '`by` of GET /v1/admin/exposure is not one of `agent`, `task`, `user`, `kind`.' },
  TESSERA_EXPOSURE_SINCE_INVALID: { status: 400, description: '`since` of GET /v1/admin/exposure is neither an RFC 3339 time (`2026-01-01T00:00:00Z`) nor a duration back from now (`90s`, `30m`, `24h`, `7d`), or lies in the future or more than 366 days back.' },
  TESSERA_EXPOSURE_KIND_INVALID: { status: 400, description: '`kind` of GET /v1/admin/exposure is not one of `agent_token`, `task_token`, `lease`, `secret_use`.' },
  TESSERA_EXPOSURE_QUERY_INVALID: { status: 400, description: 'GET /v1/admin/exposure got a query parameter it does not know, or one twice; it takes `by`, `since` and `kind`.' },

  // --- limits and transport guards (per-principal limits, Origin/Host checks) ----------
  TESSERA_REQUEST_ORIGIN_NOT_ALLOWED: { status: 403, oauth: 'invalid_request', description: 'The request carries an `Origin` header that is not in `server.allowed_origins` (nor Tessera\'s own origin); browsers on other sites may not call Tessera (MCP transport spec 2025-11-25, DNS rebinding defence). Add the origin to `server.allowed_origins` if it is yours.' },
  TESSERA_REQUEST_HOST_NOT_ALLOWED: { status: 403, oauth: 'invalid_request', description: 'The `Host` header names neither the address Tessera listens on, nor `server.public_url`, nor an entry of `server.allowed_hosts` (checked on loopback listeners and whenever `server.allowed_hosts` is set: DNS rebinding defence). Use the configured address, or add the name to `server.allowed_hosts`.' },
  TESSERA_AUTH_RATE_LIMITED: { status: 429, oauth: 'temporarily_unavailable', description: 'Too many refused credentials (invalid, forged, expired or revoked tokens; failed logins) came from this source address (`server.auth_failure_rate_limit`); every credential from it is refused unchecked until the `Retry-After` seconds have passed. Fix the credential the client sends; a client that authenticates is never slowed down by this limit.' },
  TESSERA_LOGIN_RATE_LIMITED: { status: 429, oauth: 'temporarily_unavailable', description: 'Too many logins for this identity or from this source (`tokens.login_rate_limit`); retry after the `Retry-After` seconds. A client in a login loop should reuse its token until it nears expiry.' },
  TESSERA_GATEWAY_RATE_LIMITED: { status: 429, description: 'This agent sent more MCP requests per second than `gateway.rate_limit` allows; retry after the `Retry-After` seconds (also in `error.data.retry_after_s`).' },
  TESSERA_GATEWAY_SESSION_LIMIT: { status: 429, description: 'This agent already holds `gateway.max_sessions_per_agent` open MCP sessions; close one (HTTP DELETE with its `Mcp-Session-Id`) or wait for an idle one to expire (`Retry-After`).' },
  TESSERA_GATEWAY_INFLIGHT_LIMIT: { status: 429, description: 'This agent (`gateway.max_inflight_per_agent`) or this session (`gateway.max_inflight_per_session`) already has that many MCP requests in flight; wait for one to finish and retry.' },
  TESSERA_GATEWAY_UPSTREAM_LIMIT: { status: 429, description: 'This agent already runs `gateway.max_upstream_processes_per_agent` upstream processes; they stop after `gateway.idle_timeout` without calls or when their session closes.' },
  TESSERA_GATEWAY_BUSY: { status: 503, description: 'The gateway holds `gateway.max_sessions` open sessions (all agents together); retry after the `Retry-After` seconds or reach another replica.' },

  // --- audit --------------------------------------------------------------------
  TESSERA_AUDIT_UNAVAILABLE: { status: 503, description: 'No audit sink could record the event, so the request was refused (audit fails closed).' },
  TESSERA_AUDIT_VERIFY_FAILED: { status: 409, description: 'Audit verification found a modified, deleted, reordered, inserted or truncated event.' },
  TESSERA_AUDIT_EVENT_INVALID: { status: 500, description: 'A service tried to audit a malformed event or one carrying a token-like value; the event was refused. This is a bug: report it with the request id.' },
  TESSERA_AUDIT_KEY_UNAVAILABLE: { status: 500, description: 'The audit HMAC or checkpoint key stored in meta cannot be opened with the current master key; check the master key configuration.' },
  TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE: { status: 500, description: 'The http audit sink takes its auth header value from an environment variable or file (`audit.sinks[].auth`) that is unset, unreadable, empty or contains a line break; the server does not start.' },
  TESSERA_AUDIT_WITNESS_UNREADABLE: { status: 400, description: 'The `--witness` file (the output of a file, stdout or http audit sink) cannot be read; check the path and permissions.' },
  TESSERA_AUDIT_WITNESS_EMPTY: { status: 400, description: 'The witness holds no signed head of this audit log (wrong file, another installation\'s log, or a sink that never received a head), so it proves nothing; verification is refused rather than reported as ok.' },
  TESSERA_AUDIT_JOB_BUSY: { status: 409, description: 'Another audit job (verify or archive) is running on this replica; wait for it (GET /v1/admin/audit/jobs/<id>, the id is in the message) and retry.' },
  TESSERA_AUDIT_JOB_RESULT_INVALID: { status: 409, description: 'The stored result of an audit job does not carry a valid signature: someone edited the database. Run the verification again and treat the store as suspect.' },
  TESSERA_AUDIT_JOB_NOT_FOUND: { status: 404, description: 'No audit verify/archive job with this id (jobs are kept for the 100 most recent runs); start a new one with POST /v1/admin/audit/verify.' },
  TESSERA_AUDIT_ARCHIVE_NOT_CONFIGURED: { status: 409, description: 'Archiving needs `audit.retention.archive_dir` in tessera.yaml (or `--archive-dir` offline).' },
  TESSERA_AUDIT_ARCHIVE_UNVERIFIED: { status: 409, description: 'The segment to archive failed verification, so nothing was archived or pruned; run `tessera audit verify --full` and investigate first.' },
  TESSERA_AUDIT_ARCHIVE_WRITE_FAILED: { status: 500, description: 'The archive segment could not be written and synced to the archive directory, so nothing was pruned; check the directory (space, permissions).' },
  TESSERA_AUDIT_ARCHIVE_DIR_UNREADABLE: { status: 400, description: 'The `--archive-dir` given to verify is not a readable directory.' },

  // --- gateway: declarative tools (src/gateway/tools) ---------------------------------
  TESSERA_TOOL_NOT_FOUND: { status: 404, description: 'No declarative tool with this name in this server namespace; tools/list shows the tools you may call.' },
  TESSERA_TOOL_ARGS_INVALID: { status: 400, description: 'The tool arguments do not match its input schema; the message names the argument and the rule it breaks.' },
  TESSERA_TOOL_TIMEOUT: { status: 504, description: 'The tool did not finish within its configured `timeout` (HTTP request or SQL statement_timeout); retry, or ask the operator to raise it.' },
  TESSERA_TOOL_UPSTREAM_FAILED: { status: 502, description: 'The tool could not reach its upstream (connection refused, DNS, TLS, database login); the message says which; check the upstream and the tool configuration.' },
  TESSERA_TOOL_RESPONSE_TOO_LARGE: { status: 502, description: 'The upstream response exceeded the tool `max_response_bytes`; narrow the request or ask the operator to raise the limit.' },

  // --- gateway: MCP endpoint and upstream servers (src/gateway) ---------------------
  TESSERA_GATEWAY_SESSION_NOT_FOUND: { status: 404, description: 'The `Mcp-Session-Id` is unknown, expired, closed (revocation, idle, shutdown) or belongs to another agent; start a new session with `initialize`.' },
  TESSERA_GATEWAY_TOOL_NOT_FOUND: { status: 404, description: 'No tool with this name is served to you (names are `<server>__<tool>` as tools/list shows them, or `<server>/<tool>`); tools/list shows the tools you may call.' },
  TESSERA_GATEWAY_TOOL_NAME_REFUSED: { status: 404, description: 'The tool name is outside the MCP tool-name rules (1–128 characters of `A–Z a–z 0–9 _ - .`) or looks like a credential: Tessera never lists, renames or calls such a tool. An upstream that names a tool this way is recorded in the audit log (`gateway.tool_name_refused`); ask its maintainer to rename the tool.' },
  TESSERA_GATEWAY_TOOL_DENIED: { status: 403, description: 'Policy does not permit this tool call (`tool.call` on the tool, with these arguments in `context.args`); the audit log names the deciding policies.' },
  // MCP resources, prompts and completion through the gateway (docs/gateway.md "Resources", "Prompts").
  TESSERA_GATEWAY_RESOURCE_URI_INVALID: { status: 400, description: 'The resource URI is not one the gateway serves: not `tessera://<server>/<upstream URI>` (another scheme), longer than 2048 characters, embedding another gateway URI, or holding `.`/`..` segments, a percent-encoded `.`, `/`, `\\` or `%`, a space, a control character or a backslash, or not in its normalized spelling (an upper-case scheme, a percent-encoded unreserved character, a non-ASCII character, an empty path segment, `file://localhost`); `data.details.reason` says which. Use a URI exactly as resources/list or resources/templates/list gives it.' },
  TESSERA_GATEWAY_RESOURCE_NOT_FOUND: { status: 404, description: 'No resource with this URI is served to you: the gateway has no such server, or the upstream has no such resource. resources/list and resources/templates/list show what you may read.' },
  TESSERA_GATEWAY_RESOURCE_DENIED: { status: 403, description: 'Policy does not permit reading this resource (`resource.read` on `Resource::"<server>/<upstream URI>"`, the URI in `context.uri`); the audit log names the deciding policies.' },
  TESSERA_GATEWAY_PROMPT_NOT_FOUND: { status: 404, description: 'No prompt with this name is served to you (names are `<server>__<prompt>` as prompts/list shows them, or `<server>/<prompt>`); prompts/list shows the prompts you may get.' },
  TESSERA_GATEWAY_PROMPT_DENIED: { status: 403, description: 'Policy does not permit this prompt with these arguments (`prompt.get` on `Prompt::"<server>/<prompt>"`, the arguments in `context.args`); the audit log names the deciding policies.' },
  TESSERA_GATEWAY_PROMPT_ARGS_INVALID: { status: 400, description: 'The prompt arguments are refused: more than 32 of them, a name longer than 128 characters, a value longer than 8192 characters (32 KiB together), or a value that looks like a credential (a JWT or a Tessera token: prompt arguments become text the model reads and are never a place for secrets). `data.details.argument` names the argument; its value is never echoed.' },
  TESSERA_GATEWAY_COMPLETION_UNSUPPORTED: { status: 404, description: 'The upstream server that owns this prompt or resource template does not offer completions (it did not declare the `completions` capability); nothing was asked of it.' },
  TESSERA_GATEWAY_UPSTREAM_TIMEOUT: { status: 504, description: 'The upstream MCP server did not answer within `gateway.call_timeout`; retry, or ask the operator to raise it.' },
  TESSERA_GATEWAY_UPSTREAM_FAILED: { status: 502, description: 'The upstream MCP server could not be started or reached, or it exited during the call; it is restarted on the next call. The operator finds the cause in the server log.' },
  TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE: { status: 502, description: 'The upstream MCP server answered with a message larger than its `max_result_bytes` (default 4 MiB); the answer was discarded while it was read. Narrow the request, or ask the operator to raise the limit for that server.' },
  TESSERA_GATEWAY_SECRET_UNUSABLE: { status: 502, description: 'A secret the gateway sends as an HTTP header value (a declarative tool\'s `credential` with `in: header` or a `headers` entry, an upstream server\'s `headers`) holds a line break (CR, LF) or another control character, which no header may carry (RFC 9110 §5.5) — often the trailing newline of a key file. The message names the secret path and the header, never the value; store the value again without it (`tessera kv put PATH --from-file FILE` drops one trailing newline).' },
  TESSERA_GATEWAY_UPSTREAM_ERROR: { status: 502, description: 'The upstream MCP server answered with a JSON-RPC error; its message (scrubbed of secrets) is passed on.' },
  TESSERA_GATEWAY_MESSAGE_TOO_LARGE: { status: 413, description: 'The JSON-RPC message is larger than `gateway.max_message_bytes`.' },
  TESSERA_GATEWAY_REQUEST_INVALID: { status: 400, description: 'The body is not a valid JSON-RPC 2.0 message (or batch) for MCP Streamable HTTP.' },
  TESSERA_GATEWAY_PARAMS_INVALID: { status: 400, description: 'A JSON-RPC request or notification the gateway handles (initialize, ping, tools/list, tools/call, notifications/…) has params of the wrong shape — e.g. a tools/call `name` that is not a string or `arguments` that is not an object. Answered as JSON-RPC -32602; the message and `error.data.field` name the field.' },
  TESSERA_GATEWAY_METHOD_NOT_FOUND: { status: 404, description: 'The gateway does not serve this JSON-RPC method (it serves initialize, ping, tools/list and tools/call). Answered as JSON-RPC -32601.' },
  TESSERA_GATEWAY_BATCH_UNSUPPORTED: { status: 400, description: 'A JSON-RPC batch (an array of messages) was sent on a session whose MCP protocol version is 2025-06-18 or later, which removed batching, or in place of the one initialize request; send one message per HTTP request.' },
  TESSERA_GATEWAY_BATCH_TOO_LARGE: { status: 400, description: 'A JSON-RPC batch (MCP protocol versions before 2025-06-18 only) holds more messages than `gateway.max_batch_messages`; split it.' },
  TESSERA_GATEWAY_DUPLICATE_ID: { status: 400, description: 'A JSON-RPC request id is used twice in one batch, or by a request still in flight on the same session; every request in flight needs its own id.' },
  TESSERA_GATEWAY_RESPONSE_TOO_LARGE: { status: 502, description: 'The results of one HTTP request (a JSON-RPC batch\'s results added up) exceed `gateway.max_response_bytes`; the result that crossed the bound and any later one are replaced by this error. Send fewer calls per batch.' },
  // --- gateway: notifications and server→client requests (issue 9, ADR 0175–0177) ---
  TESSERA_GATEWAY_SERVER_REQUEST_DENIED: { status: 403, description: 'An upstream MCP server asked the agent\'s client for sampling (`sampling/createMessage`) or elicitation (`elicitation/create`) and policy does not permit it (`upstream.sample` / `upstream.elicit` on `Server::"<name>"`, denied by default). The upstream receives this as a JSON-RPC error; the refusal is audited (`gateway.server_request`).' },
  TESSERA_GATEWAY_CLIENT_CAPABILITY_MISSING: { status: 400, description: 'An upstream MCP server asked for sampling or elicitation (or a mode of it, e.g. URL elicitation) that the connected MCP client did not declare in its `initialize` capabilities; the upstream receives this as a JSON-RPC error.' },
  TESSERA_GATEWAY_SERVER_REQUEST_UNATTRIBUTED: { status: 409, description: 'An upstream MCP server sent a request or notification that the gateway cannot attribute to exactly one MCP session (several sessions share its connection and none or several calls are in flight): it is refused or dropped, never guessed, and counted (`tessera_gateway_relay_dropped_total`).' },
  TESSERA_GATEWAY_SERVER_REQUEST_LIMIT: { status: 429, description: 'A session already has `gateway.max_server_requests_per_session` sampling/elicitation requests waiting for its client; the upstream receives this as a JSON-RPC error and may retry later.' },
  TESSERA_GATEWAY_NOTIFICATIONS_DROPPED: { status: 429, description: 'Notifications for one MCP session were dropped: more were waiting than `gateway.max_queued_notifications`, or an upstream sent log messages faster than `gateway.log_messages_per_second`. Recorded once per session and reason in the audit log (`gateway.notifications_dropped`) and counted in `tessera_gateway_relay_dropped_total`.' },
  TESSERA_GATEWAY_SUBSCRIPTION_LIMIT: { status: 429, description: 'This MCP session already holds 256 resource subscriptions; unsubscribe (`resources/unsubscribe`) from one before subscribing to another.' },
  TESSERA_GATEWAY_SUBSCRIPTION_ENDED: { status: 409, description: 'A resource subscription was ended by the gateway: policy (or the session token\'s scope) no longer permits reading the resource, or its upstream connection stopped for a reason other than idleness (exit, revocation, policy change, shutdown). The client receives it in a `notifications/message` (level `warning`, logger `tessera`, `data.code`, `data.uri`); audited as `gateway.subscription_ended`. Subscribe again (re-authorized) if still wanted.' },
  TESSERA_GATEWAY_REQUEST_CANCELLED: { status: 400, description: 'The MCP client cancelled its request (`notifications/cancelled`); the gateway cancelled the upstream call and sends no answer (MCP "Cancellation"). Appears in the audit log only.' },
  TESSERA_GATEWAY_CLOSED: { status: 503, description: 'The gateway is shutting down; reconnect to another replica or retry later.' },
  TESSERA_GATEWAY_RELAY_REFUSED: { status: 502, description: 'Client side (`tessera mcp`): the gateway refused a relayed message (HTTP status in the message, e.g. 401 for an agent token it does not accept; a closed session (404) is renewed automatically and this code means the retry on the new session failed too); check the --audience and the agent policy.' },
  TESSERA_GATEWAY_RELAY_FAILED: { status: 503, description: 'Client side (`tessera mcp`): a message could not be relayed to the gateway (unreachable, or the relay itself failed); check --addr and that the server runs.' },

  // --- Proxy (core): the injection proxy's listener, routes, authentication, injection (src/proxy; docs/proxy.md) ---
  TESSERA_PROXY_NO_ROUTE: { status: 403, description: 'A forward-proxy (absolute-form) request named a host no proxy route serves; add a route with that host in `proxy.routes[].hosts`, or send the request to a route\'s reverse URL `http://<proxy>/<route>/…`.' },
  TESSERA_PROXY_ROUTE_NOT_FOUND: { status: 404, description: 'The first path segment of a reverse request (`/<route>/…`) names no configured proxy route; `tessera proxy routes` lists them.' },
  TESSERA_PROXY_AUTH_MALFORMED: { status: 407, description: 'The `Proxy-Authorization` header is neither `Bearer <token>` nor `Basic <base64 of user:token>`, or its Basic value does not decode to `user:password`.' },
  TESSERA_PROXY_DENIED: { status: 403, description: 'Policy does not permit this agent `http.request` on the route with this method, path and body (Cedar `context.http`); the deciding policies are in `details.policies`.' },
  TESSERA_PROXY_USER_DENIED: { status: 403, description: 'Policy permits the agent the request, but not for the user on whose behalf it acts (a User policy must permit `http.request` on the route too).' },
  TESSERA_PROXY_CONNECT_UNAVAILABLE: { status: 405, description: 'CONNECT (HTTPS_PROXY) is not available on this proxy listener (TLS interception is not set up); use the reverse route URL `http://<proxy>/<route>/…` or plain-HTTP forward proxying.' },
  TESSERA_PROXY_PATH_INVALID: { status: 400, description: 'The request path cannot be mapped under the route\'s upstream base path: a "." or ".." segment, an encoded "/", "\\" or ".", a malformed percent-encoding, or a control character.' },
  TESSERA_PROXY_BODY_TOO_LARGE: { status: 413, description: 'The request body is larger than `proxy.max_request_bytes`.' },
  TESSERA_PROXY_BODY_TIMEOUT: { status: 408, description: 'The agent\'s request body stalled: no bytes arrived for `proxy.timeout` (a body trickled slowly would otherwise hold the connection, the upstream request and the credential open). Send the body without long pauses, or raise `proxy.timeout`.' },
  TESSERA_PROXY_TOKEN_FORWARDED: { status: 400, description: 'The request carries the agent\'s own Tessera token somewhere the proxy would pass on to the upstream (a header it does not strip, or the query string, raw or percent-encoded); `details.where` says which (`header` with `details.name`, or `query`). Send the token only in `Proxy-Authorization` (or `Authorization` on a reverse route): Tessera adds the upstream\'s credential itself, and never forwards the agent\'s.' },
  TESSERA_PROXY_BODY_INVALID: { status: 400, description: 'The route reads `body_fields` for policy and the request body is not one JSON object it can read the same way as the upstream: not `application/json`, not parseable, not an object, a field named twice, or a field that is not a string, number or boolean. Send one JSON object; for an endpoint that takes another body type, configure a route without `body_fields`.' },
  TESSERA_PROXY_CREDENTIAL_UNAVAILABLE: { status: 502, description: 'The route\'s credential could not be obtained (the kv secret does not exist, the lease engine or the OAuth token endpoint failed) or is not safe to put in a header (CR, LF, NUL); an operator must fix the route\'s credential. The agent never sees the value.' },
  TESSERA_PROXY_UPSTREAM_UNAVAILABLE: { status: 502, description: 'The route\'s upstream could not be reached or failed mid-response (connection refused, reset, TLS failure).' },
  TESSERA_PROXY_UPSTREAM_TIMEOUT: { status: 504, description: 'The upstream sent no response headers (or no body data) within `proxy.timeout`.' },
  TESSERA_PROXY_METHOD_INVALID: { status: 400, description: 'The request method is not one the proxy forwards (CONNECT outside a forward-proxy request, TRACE, or a non-token method).' },
  // --- Proxy (TLS): interception CA, leaf certificates, CONNECT (src/proxy/ca.ts, intercept.ts, connect.ts; docs/proxy-tls.md) ---
  TESSERA_PROXY_CA_UNAVAILABLE: { status: 500, description: 'The proxy\'s interception CA stored in meta (`proxy_ca_cert`, `sealed:proxy-ca`) cannot be used: its private key does not open with the current master key, or the certificate is missing, unreadable, not a CA, or does not belong to that key. Check the master key configuration; the message says which.' },
  TESSERA_PROXY_CA_EXPIRED: { status: 503, description: 'The proxy\'s interception CA certificate has expired (it is valid 10 years from `tessera init`), so no leaf certificate can be minted for an intercepted host; see docs/proxy-tls.md "Rotation".' },
  TESSERA_PROXY_HOST_INVALID: { status: 400, description: 'A host name to intercept (the CONNECT host or the TLS SNI) is not a valid DNS name or IP literal: labels of 1–63 letters, digits and hyphens (not at either end), at most 253 characters, no wildcard, not ending in a numeric label.' },
  TESSERA_PROXY_CONNECT_TARGET_INVALID: { status: 400, description: 'The CONNECT request target is not an authority `host:port` (RFC 9110 §9.3.6): it is missing the port, has a port outside 1–65535, carries userinfo (`user@`), a path, query or fragment, an IPv6 address without brackets or with a zone id, or a host that is not a valid DNS name or IP literal. Send `CONNECT host:443 HTTP/1.1`.' },
  TESSERA_PROXY_AUTH_REQUIRED: { status: 407, description: 'The proxy request carries no usable agent or task token: send `Proxy-Authorization: Bearer <token>`, or put the token as the password of the proxy URL (`http://agent:<token>@host:port`). The `Proxy-Authenticate` header lists both schemes.' },
  TESSERA_PROXY_TUNNEL_DENIED: { status: 403, description: 'CONNECT to a host that has no proxy route: it is tunnelled untouched (no interception, no credential) only when policy permits `http.request` on `Route::"<host>"` with `context.http.tunnel == true` (and the token\'s scope includes `http:<host>`); no policy did. Add a route for the host, or a permit for the tunnel (docs/proxy-tls.md).' },
  TESSERA_PROXY_TUNNEL_LIMIT: { status: 429, description: 'This agent already holds `proxy.max_tunnels_per_agent` open CONNECT tunnels (intercepted or not); close one (clients close idle keep-alive connections) and retry.' },
  TESSERA_PROXY_TUNNEL_CONNECT_FAILED: { status: 502, description: 'The proxy could not open the TCP connection to the vetted address of a tunnelled host (refused, reset, unreachable); the message says why.' },
  TESSERA_PROXY_TUNNEL_TIMEOUT: { status: 504, description: 'The TCP connection to a tunnelled host did not open within `proxy.timeout`.' },
  TESSERA_PROXY_SNI_MISMATCH: { status: 421, description: 'The TLS client asked (SNI) for another host than the one it named in CONNECT; the intercepted tunnel is closed (TLS alert) and the refusal audited (`proxy.tunnel`, result deny). A client sends the CONNECT host as SNI; a different one is an attempt to obtain a certificate or a route for a host the request was not authorized for.' },
  TESSERA_PROXY_INTERCEPT_FAILED: { status: 502, description: 'The leaf certificate for an intercepted host could not be minted; the message says why. The CONNECT is answered with this error and nothing is tunnelled.' },

  // --- Proxy (SSRF and hygiene): src/proxy/ssrf.ts, src/proxy/hygiene.ts; docs/proxy-ssrf.md ---
  TESSERA_PROXY_TARGET_FORBIDDEN: { status: 403, description: 'The proxy refused the upstream: its host is, or resolves to, an address that is not public — loopback, private (RFC 1918, carrier-grade NAT), link-local, cloud metadata, unique-local, unspecified, multicast, or reserved (documentation, benchmarking, IETF ranges, IPv6 outside 2000::/3), also when embedded in IPv6 (IPv4-mapped, NAT64, 6to4, Teredo). Any one such address refuses the whole name. The message names the address and its class; if the route really must reach it, add it to the route\'s `allow_private` (a CIDR such as `10.0.0.5/32`, or `host:port`); cloud metadata needs its exact /32 or /128 (docs/proxy-ssrf.md).' },
  TESSERA_PROXY_TARGET_UNRESOLVABLE: { status: 502, description: 'The proxy could not resolve the upstream\'s host name (no such name, no address, or the resolver failed). Check the name; Tessera resolves names itself and connects only to the address it checked.' },
  TESSERA_PROXY_TARGET_INVALID: { status: 400, description: 'The upstream host or port is not valid: port 0 or above 65535, an empty or over-long name, an empty label, more than one trailing dot, characters no host name has, a numeric last label that is no IPv4 address, or an IPv6 zone. The message names the part.' },
  TESSERA_PROXY_REQUEST_MALFORMED: { status: 400, description: 'The proxy refused a request whose framing or target is ambiguous (request smuggling hygiene): a Content-Length that is repeated or not digits, Transfer-Encoding with Content-Length, a Transfer-Encoding other than `chunked` (or any in HTTP/1.0), control characters (CR, LF, NUL…) in a header, no or several Host headers, a repeated single-value header (Authorization, Content-Type…), an absolute-form target whose authority differs from Host or carries user:password, a target with a fragment, backslash, non-ASCII character or dot-segment, or an unparsable request (refused by the HTTP parser). The connection is closed after the answer. Send one well-formed HTTP/1.1 request.' },
  TESSERA_PROXY_URI_TOO_LONG: { status: 414, description: 'The request target is longer than 8192 bytes (RFC 9110 §15.5.15). Send long data in the body.' },
  TESSERA_PROXY_HEADERS_TOO_LARGE: { status: 431, description: 'The request line and headers together are larger than the proxy\'s 16 KiB header limit (RFC 6585 §5); the connection is closed.' },

  // --- config / storage ------------------------------------------------------------
  TESSERA_CONFIG_INVALID: { status: 500, description: 'tessera.yaml failed validation; the message names the key and what is expected.' },
  TESSERA_CONFIG_NOT_FOUND: { status: 500, description: 'The configuration file does not exist or cannot be read.' },
  TESSERA_DATA_DIR_NOT_WRITABLE: { status: 500, description: 'The data directory cannot be used: the path names a file, or the directory cannot be created or is not writable; the message says which.' },
  TESSERA_STORE_UNAVAILABLE: { status: 503, description: 'The store could not be opened or a query failed.' },
  TESSERA_STORE_CONFLICT: { status: 409, description: 'The write conflicts with existing data (a unique key already exists).' },
  TESSERA_STORE_INVALID_ARGUMENT: { status: 500, description: 'A store call got an argument it cannot use (a bad channel or lock name, an oversized notification payload); the message names it. A bug in the caller.' },
  TESSERA_STORE_VALUE_OUT_OF_RANGE: { status: 500, description: 'A stored integer is beyond JavaScript\'s safe integer range (2^53-1) and cannot be returned as a number without losing precision.' },
  TESSERA_NOT_INITIALIZED: { status: 500, description: 'The data directory has not been initialised; run `tessera init` first.' },
  TESSERA_ALREADY_INITIALIZED: { status: 409, description: 'The data directory is already initialised.' },

  // --- Proxy (providers and limits): presets, usage, limits, OAuth client credentials (src/proxy; docs/proxy-providers.md) ---
  TESSERA_PROXY_RATE_LIMITED: { status: 429, description: 'A proxy route\'s `limits` are used up for this window: `requests` or `tokens` per agent, per task or per user (`details.which`, `details.per`). Retry after the `Retry-After` seconds; see the counts with GET /v1/admin/proxy/usage.' },
  TESSERA_PROXY_LIMITS_FULL: { status: 503, description: 'The proxy\'s limit counters are all in use (at most 100,000 agent, task and user keys per process, each held until its windows have rolled off), so a new key cannot be counted; it is refused rather than let through uncounted. Retry after the `Retry-After` seconds; many distinct short-lived tasks per window cause this.' },
  TESSERA_PROXY_OAUTH_FAILED: { status: 502, description: 'The authorization server of a route\'s `credential.oauth` refused the client-credentials request (RFC 6749 §5.2; `details.error` is its error code, e.g. `invalid_client` for a wrong client id or secret, `invalid_scope`) or answered with something that is not a token response. Fix the client registration or the route\'s `oauth` settings; the secret is never shown.' },
  TESSERA_PROXY_OAUTH_UNREACHABLE: { status: 502, description: 'The token endpoint of a route\'s `credential.oauth` could not be reached (connection refused, TLS failure, timeout, or refused by the SSRF guard). Check `token_url` and that Tessera can reach it (`allow_private` for an internal authorization server).' },

  // --- console read API (src/console; docs/console-api.md, ADR 0239–0241) -------------------
  TESSERA_AGENT_NOT_FOUND: { status: 404, description: 'GET /v1/admin/agents/detail: no agent with this SPIFFE ID has ever logged in here (the agents inventory); find it with GET /v1/admin/agents?q=<part of the ID>. A revocation of it can still be recorded.' },
  TESSERA_CONSOLE_STREAMS_BUSY: { status: 503, description: 'GET /v1/admin/events: this replica already serves `console.max_streams` live event streams (or this operator already holds `console.max_streams_per_operator`); retry after the `Retry-After` seconds (a browser tab holds one stream: close unused console tabs), or raise `console.max_streams`.' },
  TESSERA_CONSOLE_STREAM_ENDED: { status: 401, description: 'Sent as the last event (`event: end`) of a live event stream (GET /v1/admin/events) whose operator token or console session is no longer valid (signed out, expired, idle, revoked, or its role changed); the stream is then closed. Sign in again and reopen it. Never an HTTP status of its own.' },
  // --- Console (static files): the operator console at /ui (src/console/static.ts; docs/console.md) ---
  TESSERA_CONSOLE_NOT_BUILT: { status: 503, description: 'The operator console has not been built in this installation (no dist/console/index.html). Run `npm run build` (or `npm install`, which builds it) in the Tessera checkout and restart; the API and the CLI work without it.' },

  // --- Console sessions: sign-in, sessions, CSRF (src/console; docs/console.md) ---------------
  TESSERA_CONSOLE_SESSION_MISSING: { status: 401, description: 'A console session route was called without the session cookie; sign in with `POST /v1/console/session` (an operator token) or the OpenID Provider (`/v1/console/oidc/login`).' },
  TESSERA_CONSOLE_SESSION_EXPIRED: { status: 401, description: 'The console session has ended: it expired (`console.session_ttl`), was idle longer than `console.idle_timeout`, was signed out, or its operator token was revoked (or the cookie names no session Tessera knows). Sign in again.' },
  TESSERA_CONSOLE_COOKIE_INVALID: { status: 401, description: 'The session cookie appears more than once in the request (a second one planted for a narrower path or a parent domain: cookie tossing), or its value is not one Tessera issues. Clear the site\'s cookies and sign in again.' },
  TESSERA_CONSOLE_CSRF: { status: 403, description: 'A request authenticated by the console session cookie was refused as possibly cross-site: a method other than GET/HEAD without the session\'s `X-CSRF-Token` (the `csrf_token` of `GET /v1/console/session`), or a `Sec-Fetch-Site` other than `same-origin` / `none`.' },
  TESSERA_CONSOLE_SECRET_HIDDEN: { status: 403, description: 'A console session asked for a route that answers with a secret value (`GET /v1/admin/secrets/<path>`): the console shows metadata only, even to an admin. Read values with an operator token (`tessera kv get`).' },
  TESSERA_CONSOLE_NO_ROLE: { status: 403, description: 'The OpenID Provider signed the person in, but no `console.oidc.roles` rule gives the identity a role (`admin` or `auditor`); an operator must add a rule for its claims.' },
  TESSERA_CONSOLE_OIDC_FAILED: { status: 400, description: 'The console sign-in with the OpenID Provider failed: the callback\'s `state` is unknown, expired or already used (a callback works once), it reached another browser than the one that started the sign-in, the provider answered with an error, or the code exchange or ID token (issuer, audience, nonce, signature, PKCE) failed. `details.cause` says which; start again.' },
  TESSERA_CONSOLE_OIDC_UNAVAILABLE: { status: 503, description: 'The console\'s OpenID Provider (`console.oidc.issuer`) could not be reached or its discovery document is invalid; retry after `Retry-After`, or sign in with an operator token.' },

  // --- CLI ----------------------------------------------------------------------
  TESSERA_CLI_USAGE: { status: 400, description: 'The command line was invalid; see `tessera <command> --help`.' },
  TESSERA_UNKNOWN: { status: 502, description: 'Client side (SDK/CLI): a response carried no Tessera error code, e.g. from a proxy in front of Tessera; check the status and the proxy.' },
  TESSERA_CLI_CONNECT_FAILED: { status: 503, description: 'The CLI could not reach the Tessera server at TESSERA_ADDR.' },
  TESSERA_CLI_FAILED: { status: 500, description: 'A local step of a CLI command failed; the message says which (exit code 1).' },
  TESSERA_CLI_FILE_WRITE_FAILED: { status: 500, description: 'The CLI could not create the `--out` file (it already exists, or the directory is not writable); tokens are never written over an existing file.' },
  TESSERA_CLI_LOGIN_FAILED: { status: 401, description: '`tessera login --oidc` did not complete: the authorization server\'s metadata could not be read or names another issuer (use that address as `--addr`), no answer within 5 minutes, the login was interrupted, the answer named another issuer or carried no `iss` although the server always sends one (RFC 9207 §2.4, a possible mix-up), repeated a parameter, carried neither a code nor an error (or a malformed code), carried an error whose `tessera_code` is not one of Tessera\'s, or the server issued no refresh token. The message says which; the login can be run again.' },
  TESSERA_CLI_UNSUPPORTED: { status: 501, description: 'This build of the CLI lacks the offline feature the command needs; run it against a server instead.' },

  // --- SDK (client-side; never sent by the server) -----------------------------------
  TESSERA_SDK_CONNECT_FAILED: { status: 503, description: 'The SDK could not reach Tessera (refused, DNS, TLS or timeout); check the address and that the server runs.' },
  TESSERA_SDK_RESPONSE_INVALID: { status: 502, description: 'The server answered with a body that is not Tessera JSON; check that the address points at Tessera and not at a proxy or another service.' },
  TESSERA_SDK_NOT_LOGGED_IN: { status: 401, description: 'An SDK call needs an agent token; call loginWithTokenFile (or loginWithJoinToken) first.' },
  TESSERA_SDK_REFRESH_IMPOSSIBLE: { status: 401, description: 'The agent token expired and cannot be renewed because it came from a single-use join token; long-running agents must log in with a token file (Kubernetes projected token) or another attestor; for `tessera mcp`, restart it with --token-file (docs/gateway.md, "A refreshable identity on a laptop").' },
  TESSERA_SDK_TOKEN_FILE_UNREADABLE: { status: 401, description: 'The workload token file could not be read or is empty; in Kubernetes mount a projected service-account token at that path.' },
  TESSERA_SDK_LOGIN_FILE_INVALID: { status: 401, description: 'The login file of `tessera mcp --login-file <path>` cannot be read or was not written by `tessera login --oidc`; log in again.' },
  TESSERA_SDK_LOGIN_FAILED: { status: 401, description: 'A person\'s login session could not get an access token: the token endpoint refused the refresh without a Tessera code, or returned no new refresh token. Log in again with `tessera login --oidc`.' },
  TESSERA_SDK_CLOSED: { status: 400, description: 'The TesseraClient was closed; create a new one.' },
  TESSERA_SDK_TASK_EXPIRED: { status: 401, description: 'The SDK task\'s token expired and was not re-derived: a root task is never re-opened (open a new one with client.openTask), and a child is re-derived from its parent only while its own token is still accepted — an expired token cannot show that it was not revoked. Delegate a new child, or use shorter work per task (docs/sdk.md "Tasks").' },
  TESSERA_SDK_TASK_ENDED: { status: 401, description: 'The SDK task was revoked — by task.revoke(), or the server refused its token as revoked (the task, an ancestor, or its agent) — so it is never used or re-derived again. Open or delegate a new task if the work should go on (docs/sdk.md "Tasks").' },
  TESSERA_SDK_TASK_NOT_RENEWABLE: { status: 400, description: 'task.refresh() was called on a root task: a root task is never re-opened by the SDK, because a new root would be a new tree that a revocation of the old one does not reach. Open a new task with client.openTask (docs/sdk.md "Tasks").' },

  // --- Kubernetes: manifests, image (issue 12) -----------------------------------------
  // (k8s-deploy)
  TESSERA_K8S_MANIFEST_OPTION_INVALID: { status: 400, description: 'An option of `tessera k8s manifests` has a value Kubernetes or Tessera would not accept (a namespace name, an image reference, a CPU or memory quantity, a replica count, a URL); the message names the option and what is expected. Nothing was printed.' },
  TESSERA_K8S_MANIFEST_OPTION_CONFLICT: { status: 400, description: 'Options of `tessera k8s manifests` that do not go together: --init with --agent-namespace, --storage-size/--storage-class with --store postgres, --injector-ca-file without --injector, --sa-issuer without --sa-jwks-url (or the reverse), an agent namespace that is Tessera\'s own. Nothing was printed.' },
  TESSERA_K8S_MANIFEST_SQLITE_REPLICAS: { status: 400, description: 'More than one replica was asked for with `--store sqlite`: the embedded database lives on one volume that one process writes. Run one replica (the default), or use `--store postgres` for several (docs/kubernetes.md "Several replicas").' },
  TESSERA_K8S_MANIFEST_CA_INVALID: { status: 400, description: 'The `--injector-ca-file` of `tessera k8s manifests` cannot be read, holds no PEM certificate, holds a block that is not a valid X.509 certificate, or holds a private key. Give the PEM CA certificate that signed the injector\'s serving certificate.' },
  TESSERA_K8S_MANIFEST_OBJECT_INVALID: { status: 500, description: 'A generated Kubernetes object failed validation against the Kubernetes API schemas (or the generated tessera.yaml failed Tessera\'s configuration schema), so nothing was printed. This is a bug in Tessera; please report it with the command line.' },

  // --- Kubernetes: injector webhook (issue 12) ----------------------------------------
  // (k8s-injector)
  TESSERA_INJECTOR_REVIEW_MALFORMED: { status: 400, description: 'The webhook\'s request body is not a JSON object (malformed JSON, or not `Content-Type: application/json`). The Kubernetes API server always sends JSON; this is another client, or a proxy between them (docs/k8s-injector.md).' },
  TESSERA_INJECTOR_REVIEW_INVALID: { status: 400, description: 'The body is JSON but not an AdmissionReview `admission.k8s.io/v1` with a `request.uid`, or the Pod in it lacks what every Pod has (`spec.containers`, a namespace); the message names the field. When the uid is known the answer is an AdmissionReview with `allowed: false` (docs/k8s-injector.md).' },
  TESSERA_INJECTOR_BODY_TOO_LARGE: { status: 413, description: 'The AdmissionReview is larger than 4 MiB (twice the largest object etcd stores, with room for the envelope); it was not read.' },
  TESSERA_INJECTOR_ANNOTATION_UNKNOWN: { status: 400, description: 'The pod carries a `tessera.io/` annotation the injector does not know (a typo such as `tessera.io/agnet` must not silently disable the sidecar); the message lists the known ones (docs/k8s-injector.md "Annotations").' },
  TESSERA_INJECTOR_ANNOTATION_INVALID: { status: 400, description: 'A `tessera.io/` annotation has a value the injector refuses: a flag other than `"true"`/`"false"`, a task scope, purpose or TTL the server would refuse, a role name of the wrong shape, a control character, a value over its length cap, or an annotation that needs another one (`tessera.io/proxy`, the role and the task defaults need `tessera.io/agent: "true"`; every one needs `tessera.io/inject: "true"`). The message names the annotation.' },
  TESSERA_INJECTOR_STATIC_CREDENTIAL: { status: 403, description: 'A container already sets an environment variable the injector would set (`TESSERA_ADDR`, `TESSERA_TOKEN_FILE`, `HTTPS_PROXY`, …) or a static `TESSERA_TOKEN`, by value or `valueFrom`: the pod would keep a static credential or route around the injected one. Remove the variable from the pod spec; the message names the container and the variable.' },
  TESSERA_INJECTOR_NAME_CONFLICT: { status: 400, description: 'The pod already has a volume (`tessera-token`, `tessera-run`, `tessera-ca`), a container (`tessera-agent`) or a mount path (`/var/run/secrets/tessera.io/…`, `/var/run/tessera`) the injector would add; rename yours. The message names it.' },
  TESSERA_INJECTOR_HOST_NETWORK: { status: 403, description: 'The pod has `hostNetwork: true` and asks for the sidecar (`tessera.io/agent`): the sidecar listens on 127.0.0.1, which in the host network is the node\'s, so every process on the node could use the pod\'s identity. Run the agent without hostNetwork, or without the sidecar.' },
  TESSERA_INJECTOR_TLS_INVALID: { status: 400, description: '`tessera injector` could not start: `kubernetes.injector.tls_cert_file` or `tls_key_file` cannot be read, is not PEM, or the key does not match the certificate. At a reload (cert-manager rotating them) the previous certificate stays in use and the problem is logged.' },

  // --- Kubernetes: agent sidecar (issue 12) -------------------------------------------
  // (k8s-agent)
  TESSERA_AGENT_OPTIONS_INVALID: { status: 400, description: '`tessera agent` (the sidecar) was started with a missing or invalid option: no `--addr` / `TESSERA_ADDR`, no `--token-file` / `TESSERA_TOKEN_FILE`, no `--proxy-url` with `--listen-proxy`, a malformed address or duration, `--task-purpose` or `--task-ttl` without `--task-scope`. The message names the option (exit code 2).' },
  TESSERA_AGENT_LISTEN_NOT_LOOPBACK: { status: 400, description: '`tessera agent --listen-proxy` / `--listen-mcp` named an address that is not loopback (127.0.0.0/8, ::1, localhost). The sidecar adds the pod\'s identity to whatever reaches it, so it only ever listens where only the pod can reach it (exit code 2).' },
  TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY: { status: 400, description: '`tessera agent --token-out <path>`: the file\'s directory is not on a memory-backed filesystem (tmpfs or ramfs, per /proc/self/mounts), or it cannot be checked. The token is never written to a disk; mount an `emptyDir` with `medium: Memory` there (the injector mounts one at /var/run/tessera) (exit code 2).' },
  TESSERA_AGENT_TOKEN_OUT_FAILED: { status: 500, description: '`tessera agent --token-out`: the current token could not be written (directory gone or not writable, filesystem full). The sidecar keeps serving its proxy and MCP endpoint and tries again at the next refresh.' },
  TESSERA_AGENT_NOT_READY: { status: 503, description: 'The sidecar holds no valid token yet (first login not done) or no longer (Tessera unreachable past the token\'s expiry, the token file unreadable or refused). Answered by its local proxy and MCP endpoint and by `GET /healthz`; it retries with backoff by itself: retry after `Retry-After`.' },
  TESSERA_AGENT_TASK_ENDED: { status: 403, description: 'The sidecar\'s task (`--task-scope`) was revoked: the sidecar does not open a new one (that would undo the revocation) and refuses every request until it is restarted. Revoke the agent, or delete the pod, to stop it for good.' },
  TESSERA_AGENT_UPSTREAM_UNREACHABLE: { status: 502, description: 'The sidecar could not reach the Tessera proxy (`--proxy-url`) or the gateway (`<addr>/mcp`): connection refused, reset, DNS or TLS failure. A Tessera restart causes it for a moment; retry.' },
  TESSERA_AGENT_REQUEST_INVALID: { status: 400, description: 'The sidecar\'s local endpoint got a request it does not serve: an upgrade (WebSocket) through the local proxy, a path other than `/mcp` and `/healthz` on the MCP port, or a CONNECT target that is not `host:port`.' },
  TESSERA_AGENT_PROBE_FAILED: { status: 503, description: '`tessera agent probe`: the sidecar on 127.0.0.1:<port> did not answer `GET /healthz` with 200 (not started, not logged in yet, or no longer holding a valid token). Exit code 1; used as the sidecar\'s exec startup probe.' },

  // --- Kubernetes: pod lifecycle, TokenReview (issue 12) ------------------------------
  // (k8s-pods)
  TESSERA_K8S_WATCH_POD_DELETED: { status: 400, oauth: 'invalid_grant', description: 'The service-account token belongs to a Kubernetes pod that was deleted (the pod watch revoked it, or an operator ran `tessera revoke pod`): its agent tokens, leases and task trees are revoked and it cannot log in again. A new pod gets a new uid and logs in normally (docs/k8s-pods.md).' },
  TESSERA_TOKENREVIEW_REJECTED: { status: 400, oauth: 'invalid_grant', description: 'A `mode: tokenreview` attestor asked the Kubernetes API server, which did not authenticate the service-account token (expired, or its pod or service account no longer exists). Log in with the pod\'s current projected token (docs/attestors.md#tokenreview).' },
  TESSERA_TOKENREVIEW_AUDIENCE: { status: 400, oauth: 'invalid_grant', description: 'The Kubernetes API server authenticated the service-account token, but not for the attestor\'s `audience`: give the pod a projected token for that audience (the injector\'s `tessera-token` volume does).' },
  TESSERA_TOKENREVIEW_USER_INVALID: { status: 400, oauth: 'invalid_grant', description: 'The TokenReview answer names a user that is not a service account (`system:serviceaccount:<namespace>:<name>`), or names or pod facts a real API server never produces; the token is refused.' },
  TESSERA_ROLE_INVALID: { status: 400, oauth: 'invalid_scope', description: 'The login\'s `scope` is not exactly one `role:<name>` (a role name is lowercase letters, digits, `_` and `-`, at most 63): at login, scope only selects a role; task scopes go with the task exchange (docs/policies.md#roles).' },
  TESSERA_ROLE_NOT_PERMITTED: { status: 400, oauth: 'invalid_scope', description: 'No Cedar policy permits this agent `Tessera::Action::"role.assume"` on `Tessera::Role::"<name>"`, so the login asking for that role (`scope=role:<name>`) is refused; log in without the role, or add a policy (docs/policies.md#roles).' },
  TESSERA_TOKENREVIEW_UNAVAILABLE: { status: 503, oauth: 'temporarily_unavailable', description: 'The TokenReview API could not be asked (unreachable, TLS failure, timeout after 5 s, an HTTP error such as 403 when Tessera\'s service account lacks `system:auth-delegator`) or answered something that is not a TokenReview: the login is refused (fail closed). Check `kubernetes.api` and the RBAC (docs/k8s-pods.md).' },

  // --- Kubernetes: static-secret scan (issue 12) --------------------------------------
  // (k8s-scan)
  TESSERA_K8S_SCAN_FINDINGS: { status: 422, description: 'Client side (`tessera k8s scan`): the scan found at least one finding at or above `--fail-on` (default `high`); the report on stdout lists them, each with a suggested Tessera replacement (docs/k8s-scan.md). Exit code 1, for CI.' },
  TESSERA_K8S_SCAN_INPUT_EMPTY: { status: 400, description: 'Client side (`tessera k8s scan -f`): a file or standard input holds no document at all (often a `kubectl get … > file` that failed); the scan refuses rather than report a clean cluster. Check the command that wrote the file. Exit code 2.' },
  TESSERA_K8S_SCAN_INPUT_MALFORMED: { status: 400, description: 'Client side (`tessera k8s scan -f`): a file is neither JSON nor YAML, or its YAML uses more aliases than allowed (a "billion laughs" bomb), custom tags or duplicate keys; the message gives the file and the line, never the text. Exit code 2.' },
  TESSERA_K8S_SCAN_INPUT_TOO_LARGE: { status: 413, description: 'Client side (`tessera k8s scan`): a file or standard input is larger than 128 MiB, or the input holds more than 200,000 objects; scan namespace by namespace (`kubectl get … -n NS`). Exit code 2.' },
  TESSERA_K8S_SCAN_INPUT_TOO_DEEP: { status: 400, description: 'Client side (`tessera k8s scan -f`): a document is nested deeper than 64 levels, which no Kubernetes object is; the file is not `kubectl get -o json` output. Exit code 2.' },
  TESSERA_K8S_SCAN_INPUT_INVALID: { status: 400, description: 'Client side (`tessera k8s scan`): a document parsed but is not a Kubernetes object of the expected shape (no `kind`/`apiVersion`, or a Pod, Secret, NetworkPolicy or List whose fields have the wrong types), or the API server answered a list with something that is not JSON; the message names the file (or list), the item and the field, never a value. Exit code 2.' },
  TESSERA_K8S_SCAN_KUBECONFIG_INVALID: { status: 400, description: 'Client side (`tessera k8s scan` without `-f`): no usable Kubernetes configuration — the `--kubeconfig` file (or KUBECONFIG, ~/.kube/config) cannot be read or names no current context, and the scan does not run in a pod (in-cluster). Exit code 2.' },
  TESSERA_K8S_SCAN_API_REFUSED: { status: 502, description: 'Client side (`tessera k8s scan` without `-f`): the Kubernetes API server answered a list request with an error (401/403: the credentials lack `list` on pods, secrets or networkpolicies in that scope — the message names the resource and status). Exit code 2.' },
  TESSERA_K8S_SCAN_API_UNREACHABLE: { status: 503, description: 'Client side (`tessera k8s scan` without `-f`): the Kubernetes API server could not be reached (connection refused, DNS, TLS, timeout); check the kubeconfig\'s server and context. Exit code 3.' },

  // --- Rotation (issue 13) ------------------------------------------------------------
  // (rotation)
  TESSERA_ROTATION_ROTATOR_UNKNOWN: { status: 400, description: 'The secret\'s `rotator.kind` is not one of `postgres-static`, `engine-root`, `http`, `manual`, or an `http` rotator names an endpoint that is not configured under `rotation.http_rotators` (docs/rotation.md).' },
  TESSERA_ROTATION_OPTIONS_INVALID: { status: 400, description: 'The rotator\'s options are invalid (a missing `engine` or `role`, an unknown option, a bad `grace_period`); the message names the field. See docs/rotation.md for each rotator\'s options.' },
  TESSERA_ROTATION_NOT_CONFIGURED: { status: 409, description: 'The secret has no rotator in its metadata, so it cannot be rotated; set one with `tessera kv put … --rotator <kind>` (docs/rotation.md).' },
  TESSERA_ROTATION_MANUAL: { status: 409, description: 'The secret\'s rotator is `manual`: Tessera only alerts when it is due. Rotate the credential where it lives and store the new value with `tessera kv put`.' },
  TESSERA_ROTATION_CONFLICT: { status: 409, description: 'The secret changed since the version the rotation was asked for (`expected_version`): someone wrote it meanwhile. Read its metadata and retry if the rotation is still wanted.' },
  TESSERA_ROTATION_IN_PROGRESS: { status: 409, description: 'A rotation of this secret is under way (or an interrupted one is being recovered): writes to it wait until the new version is committed. Retry in a few seconds; `tessera kv rotation status` shows it.' },
  TESSERA_ROTATION_ENGINE_MISSING: { status: 409, description: 'The rotator names a postgres engine configuration that does not exist; configure it (`PUT /v1/admin/engines/postgres/<name>`) or fix the rotator\'s `engine`.' },
  TESSERA_ROTATION_ROLE_INVALID: { status: 409, description: 'A `postgres-static` rotator names a database role that does not exist, is the engine\'s own management role (use `engine-root`), or carries the engine\'s username prefix (a lease user); the message says which.' },
  TESSERA_ROTATION_VERIFY_FAILED: { status: 502, description: '`engine-root`: the database did not accept the new management password on a fresh login, so it was not committed; the intent is kept and the rotation retried with backoff. The previous password is kept where it still works.' },
  TESSERA_ROTATION_HTTP_FAILED: { status: 502, description: 'An `http` rotator\'s endpoint failed: refused by the SSRF guard, unreachable, timed out, or answered a non-2xx status; the message names which. Retried with backoff; the working version is kept.' },
  TESSERA_ROTATION_HTTP_RESPONSE_INVALID: { status: 502, description: 'An `http` rotator\'s endpoint answered 2xx with a body that is not `{"value": "<new credential>", "id"?: "<its id>"}` (JSON, value a non-empty string within the kv size limit), or whose `id` is the id of the credential in use (retiring it would revoke the new one). Nothing was stored.' },
  TESSERA_ROTATION_HTTP_AUTH_MISSING: { status: 409, description: 'The kv secret named by `rotation.http_rotators.<name>.auth_secret` (the credential Tessera calls the endpoint with) does not exist; store it with `tessera kv put`.' },

  // --- Drift (issue 13) ---------------------------------------------------------------
  // (drift)
  TESSERA_DRIFT_TOOL_CHANGED: { status: 403, description: 'The upstream tool\'s definition (name, title, description, input or output schema, annotations) changed since an operator approved it, so the gateway holds it back (`drift.tools.on_change: block`): it is not listed and calls are refused. An operator reviews the change (`tessera drift`) and accepts it with `tessera gateway tools approve <server>/<tool>` (docs/drift.md).' },
  TESSERA_DRIFT_TOOL_UNAPPROVED: { status: 403, description: 'The upstream tool was never approved and `drift.tools.first_sight` is `require_approval`: it is not listed and calls are refused until an operator runs `tessera gateway tools approve <server>/<tool>` (`tessera gateway tools pending` lists them).' },
  TESSERA_DRIFT_TOOL_UNKNOWN: { status: 404, description: 'No upstream tool of that name has been seen by the gateway (nothing to approve). Names are `<server>/<tool>` as in `tessera gateway tools pending`; a tool is seen once an agent\'s tools/list reached its upstream.' },
  TESSERA_DRIFT_TOOL_NAME_INVALID: { status: 400, description: 'The tool name is not `<server>/<tool>` (a server name, one `/`, then an MCP tool name of 1–128 characters of A–Z a–z 0–9 _ - .).' },
  TESSERA_DRIFT_NOTHING_PENDING: { status: 409, description: 'The tool\'s current definition is already the approved one: there is nothing to approve.' },
  TESSERA_DRIFT_DIGEST_MISMATCH: { status: 409, description: 'The definition pending approval is no longer the one named by `digest` (the upstream changed it again since it was reviewed); review the new one (`tessera gateway tools pending`) and approve that.' },
  TESSERA_DRIFT_REQUEST_INVALID: { status: 400, description: 'The drift request is malformed (unknown field, wrong type, or a `digest` that is not `sha256:` and 64 lower-case hex digits); the message names the field.' },
  TESSERA_DRIFT_ENGINE_CHANGED: { status: 409, description: 'Recorded in `drift.engine_changed` audit events: a PostgreSQL group role of an engine configuration changed in the database (grants, memberships or attributes) since drift first saw it or an operator accepted it. Fix the database or accept it with `tessera drift approve-engine <config>/<group>`.' },
  TESSERA_DRIFT_UNKNOWN_SUBJECT: { status: 404, description: 'Nothing of that name has been checked by drift (an engine group role is known once a drift check read it); run `tessera drift` first and use a name it shows.' },
  TESSERA_DRIFT_FINDINGS: { status: 409, description: '`tessera drift`: the check found drift at or above the threshold (`--fail-on`, else `drift.fail_on`); the findings are printed. Exit code 1.' },
  TESSERA_DRIFT_CHECK_FAILED: { status: 502, description: 'Part of the drift check could not run (an engine\'s database unreachable, the store failing); the report carries the other findings and names what was not checked. `tessera drift` exits 2.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TesseraError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.details = details;
  }

  get oauthError(): string | undefined {
    const spec: ErrorSpec = ERROR_CATALOGUE[this.code];
    return spec.oauth;
  }
}

export function isTesseraError(e: unknown): e is TesseraError {
  return e instanceof TesseraError;
}

/** Shorthand used across services: `throw fail(code, 'what to do')`. */
export function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): TesseraError {
  return new TesseraError(code, message, details);
}
