import { TesseraError } from '../shared/errors.js';
import { credentialLike } from '../shared/credential-like.js';

/**
 * SPIFFE ID parsing and validation, exactly per the SPIFFE ID specification
 * (spiffe/spiffe standards/SPIFFE-ID.md §2). Pure: no I/O.
 *
 *   spiffe-id    = "spiffe://" trust-domain [ path ]
 *   trust-domain = 1*255 ( %x61-7A / DIGIT / "." / "-" / "_" )        ; §2.1: [a-z0-9._-]
 *   path         = 1*( "/" segment )                                   ; §2.2
 *   segment      = 1*( ALPHA / DIGIT / "." / "-" / "_" ), not "." or ".."
 *
 * The scheme is the literal lowercase `spiffe` (§2). There is no userinfo, port, query or
 * fragment (§2, §2.1), no percent-encoding (§2.2: segments use only the characters above),
 * no trailing "/" (§2.2), and the whole ID is at most 2048 bytes (§2.3).
 */
export const SPIFFE_ID_MAX_BYTES = 2048;
export const TRUST_DOMAIN_MAX_BYTES = 255;

export interface SpiffeId {
  readonly trustDomain: string;
  /** "" for the trust-domain ID itself, else "/seg/seg". */
  readonly path: string;
  readonly segments: readonly string[];
  /** The canonical string, identical to the input (SPIFFE IDs are compared byte for byte). */
  readonly id: string;
}

export type SpiffeIdProblem =
  | 'empty'
  | 'too_long'
  | 'scheme'
  | 'trust_domain_empty'
  | 'trust_domain_chars'
  | 'trust_domain_too_long'
  | 'userinfo'
  | 'port'
  | 'query'
  | 'fragment'
  | 'path_empty_segment'
  | 'path_dot_segment'
  | 'path_chars'
  | 'path_trailing_slash'
  /** Tessera's own rule, not the spec's: SPIFFE IDs are audited in clear (ADR 0041). */
  | 'credential_like';

const TD_CHARS = /^[a-z0-9._-]*$/;
const SEG_CHARS = /^[a-zA-Z0-9._-]*$/;

const REASONS: Record<SpiffeIdProblem, string> = {
  empty: 'it is empty',
  too_long: `it is longer than ${SPIFFE_ID_MAX_BYTES} bytes (SPIFFE-ID §2.3)`,
  scheme: 'it must start with the lowercase scheme "spiffe://" (SPIFFE-ID §2)',
  trust_domain_empty: 'the trust domain is empty (SPIFFE-ID §2)',
  trust_domain_chars: 'the trust domain may contain only lowercase letters, digits, ".", "-" and "_" (SPIFFE-ID §2.1)',
  trust_domain_too_long: `the trust domain is longer than ${TRUST_DOMAIN_MAX_BYTES} bytes (SPIFFE-ID §2.3)`,
  userinfo: 'a SPIFFE ID must not contain userinfo ("user@") (SPIFFE-ID §2.1)',
  port: 'a SPIFFE ID must not contain a port or ":" (SPIFFE-ID §2.1)',
  query: 'a SPIFFE ID must not contain a query ("?") (SPIFFE-ID §2)',
  fragment: 'a SPIFFE ID must not contain a fragment ("#") (SPIFFE-ID §2)',
  path_empty_segment: 'the path has an empty segment ("//") (SPIFFE-ID §2.2)',
  path_dot_segment: 'the path has a "." or ".." segment (SPIFFE-ID §2.2)',
  path_chars: 'path segments may contain only letters, digits, ".", "-" and "_" (no percent-encoding) (SPIFFE-ID §2.2)',
  path_trailing_slash: 'the path must not end with "/" (SPIFFE-ID §2.2)',
  credential_like: 'it contains what looks like a JWT or a Tessera token; SPIFFE IDs are recorded in clear in the audit log, so they must not carry credentials',
};

/** Returns the problem with a candidate SPIFFE ID, or null when it is valid. */
export function spiffeIdProblem(input: string): SpiffeIdProblem | null {
  if (input.length === 0) return 'empty';
  // Length in bytes (§2.3); non-ASCII is rejected below anyway.
  if (Buffer.byteLength(input, 'utf8') > SPIFFE_ID_MAX_BYTES) return 'too_long';
  if (!input.startsWith('spiffe://')) return 'scheme';
  const rest = input.slice('spiffe://'.length);
  // Query and fragment are checked first so "spiffe://td?x" names the real problem.
  if (rest.includes('#')) return 'fragment';
  if (rest.includes('?')) return 'query';
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (authority.includes('@')) return 'userinfo';
  if (authority.includes(':')) return 'port';
  if (authority.length === 0) return 'trust_domain_empty';
  if (authority.length > TRUST_DOMAIN_MAX_BYTES) return 'trust_domain_too_long';
  if (!TD_CHARS.test(authority)) return 'trust_domain_chars';
  if (path === '') return credentialLike(input) ? 'credential_like' : null;
  if (path === '/' || path.endsWith('/')) return 'path_trailing_slash';
  const segments = path.slice(1).split('/');
  for (const seg of segments) {
    if (seg.length === 0) return 'path_empty_segment';
    if (seg === '.' || seg === '..') return 'path_dot_segment';
    if (!SEG_CHARS.test(seg)) return 'path_chars';
  }
  return credentialLike(input) ? 'credential_like' : null;
}

/** Describes a problem for a person. */
export function describeSpiffeIdProblem(problem: SpiffeIdProblem): string {
  return REASONS[problem];
}

/** Parses a SPIFFE ID; throws TESSERA_SPIFFE_ID_INVALID naming the specific rule broken. */
export function parseSpiffeId(input: unknown, what = 'SPIFFE ID'): SpiffeId {
  if (typeof input !== 'string') {
    throw new TesseraError('TESSERA_SPIFFE_ID_INVALID', `${what} must be a string such as "spiffe://example.org/ns/prod/sa/agent"`, { reason: 'empty' });
  }
  const problem = spiffeIdProblem(input);
  if (problem === 'credential_like') {
    throw new TesseraError('TESSERA_REQUEST_CREDENTIAL_LIKE', `${what} ${REASONS[problem]}`, { reason: problem });
  }
  if (problem) {
    // The value is echoed only when short and printable: it is an identifier, not a secret.
    const shown = input.length <= 200 && /^[\x20-\x7e]*$/.test(input) ? ` ${JSON.stringify(input)}` : '';
    throw new TesseraError('TESSERA_SPIFFE_ID_INVALID', `${what}${shown} is not a valid SPIFFE ID: ${REASONS[problem]}`, { reason: problem });
  }
  const rest = input.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  return { trustDomain, path, segments: path === '' ? [] : path.slice(1).split('/'), id: input };
}

export function isSpiffeId(input: unknown): input is string {
  return typeof input === 'string' && spiffeIdProblem(input) === null;
}

/** True when `name` is a valid trust domain name (SPIFFE-ID §2.1). */
export function isTrustDomain(name: string): boolean {
  return name.length > 0 && name.length <= TRUST_DOMAIN_MAX_BYTES && /^[a-z0-9._-]+$/.test(name);
}

/** True when `seg` is a valid path segment (SPIFFE-ID §2.2). */
export function isPathSegment(seg: string): boolean {
  return seg.length > 0 && seg !== '.' && seg !== '..' && /^[a-zA-Z0-9._-]+$/.test(seg);
}
