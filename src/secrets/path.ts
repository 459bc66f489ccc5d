import { TesseraError } from '../shared/errors.js';
import { refuseCredentialLike } from '../shared/credential-like.js';

/**
 * Secret paths: `healthcare/prod/agents/patient-reader/openai-api-key`.
 *
 * Rules (documented in docs/secrets.md, enforced here and nowhere else):
 *  - segments separated by a single `/`; no leading or trailing `/`; no empty segment;
 *  - each segment uses only `A-Z a-z 0-9 . _ -` and is 1–128 characters long;
 *  - no `.` or `..` segment (no traversal, no aliasing of one path by another);
 *  - at most 32 segments and 512 characters in total;
 *  - nothing that looks like a credential (a JWT, a `tsr_…` token): paths are recorded in clear
 *    in listings and the audit log, so such a path is refused with TESSERA_REQUEST_CREDENTIAL_LIKE
 *    (ADR 0041) — for writes and reads alike, so no request can make the audit write fail.
 *
 * The character set never needs percent-encoding in a URL (RFC 3986 §2.3 unreserved
 * characters, minus `~`), so a request path that contains `%` cannot name a valid secret and
 * the HTTP layer refuses it before decoding: `%2e%2e` and `%2F` never reach the store.
 */
export type SecretPath = string & { readonly __brand: 'SecretPath' };

export const SECRET_PATH_LIMITS = Object.freeze({ maxSegmentLength: 128, maxLength: 512, maxDepth: 32 });

const SEGMENT = /^[A-Za-z0-9._-]+$/;

function invalid(input: string, problem: string): TesseraError {
  // The input is shown (bounded) because a path is a name, not a secret.
  const shown = input.length > 80 ? `${input.slice(0, 80)}…` : input;
  return new TesseraError('TESSERA_SECRET_PATH_INVALID', `invalid secret path ${JSON.stringify(shown)}: ${problem}`, { problem });
}

/** Validates and brands a secret path; throws TESSERA_SECRET_PATH_INVALID naming the problem, or TESSERA_REQUEST_CREDENTIAL_LIKE. */
export function parseSecretPath(input: unknown): SecretPath {
  if (typeof input !== 'string') throw new TesseraError('TESSERA_SECRET_PATH_INVALID', 'the secret path must be a string', { problem: 'not a string' });
  if (input.length === 0) throw invalid(input, 'the path is empty');
  // First, so no other error message echoes a credential back.
  refuseCredentialLike(input, 'the secret path');
  if (input.length > SECRET_PATH_LIMITS.maxLength) throw invalid(input, `the path is longer than ${SECRET_PATH_LIMITS.maxLength} characters`);
  if (input.startsWith('/')) throw invalid(input, 'the path must not start with "/"');
  if (input.endsWith('/')) throw invalid(input, 'the path must not end with "/"');
  const segments = input.split('/');
  if (segments.length > SECRET_PATH_LIMITS.maxDepth) throw invalid(input, `the path has more than ${SECRET_PATH_LIMITS.maxDepth} segments`);
  for (const [i, seg] of segments.entries()) {
    if (seg.length === 0) throw invalid(input, `segment ${i + 1} is empty ("//")`);
    if (seg === '.' || seg === '..') throw invalid(input, `segment ${i + 1} is "${seg}"; relative segments are not allowed`);
    if (seg.length > SECRET_PATH_LIMITS.maxSegmentLength) throw invalid(input, `segment ${i + 1} is longer than ${SECRET_PATH_LIMITS.maxSegmentLength} characters`);
    if (!SEGMENT.test(seg)) {
      const bad = [...seg].find((c) => !/[A-Za-z0-9._-]/.test(c)) ?? '?';
      throw invalid(input, `segment ${i + 1} contains ${JSON.stringify(bad)}; allowed characters are A-Z a-z 0-9 . _ -`);
    }
  }
  return input as SecretPath;
}

/** A prefix for listing: the empty string (everything) or a valid path. */
export function parseSecretPrefix(input: unknown): SecretPath | '' {
  if (input === undefined || input === '') return '';
  return parseSecretPath(input);
}

/**
 * The folders that contain a path, outermost first, without the path itself:
 * `a/b/c` → [`a`, `a/b`]. The policy module makes them the Cedar parents of the Secret
 * entity, so `resource in Folder::"a/b"` matches everything under `a/b`.
 */
export function folderAncestors(path: SecretPath | string): string[] {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) out.push(segments.slice(0, i).join('/'));
  return out;
}

/** True when `path` is `prefix` itself or lies under it (segment-wise: `a/b` is not under `a/bc`). */
export function isUnderPrefix(path: string, prefix: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * Segment-wise glob match, as used by `secret:<path-glob>` token scopes: `*` matches exactly one
 * segment (or the rest of one: `openai-*`), `**` matches zero or more whole segments.
 */
export function matchesPathGlob(glob: string, path: string): boolean {
  const g = glob.split('/');
  const p = path.split('/');
  // Iterative DP over (glob index, path index); bounded by |g|·|p|.
  let states = new Set<number>([0]);
  for (let gi = 0; gi < g.length; gi++) {
    const pat = g[gi]!;
    const next = new Set<number>();
    for (const pi of states) {
      if (pat === '**') {
        for (let k = pi; k <= p.length; k++) next.add(k);
      } else if (pi < p.length && segmentMatches(pat, p[pi]!)) {
        next.add(pi + 1);
      }
    }
    states = next;
    if (states.size === 0) return false;
  }
  return states.has(p.length);
}

function segmentMatches(pattern: string, segment: string): boolean {
  if (!pattern.includes('*')) return pattern === segment;
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('[^/]*')}$`);
  return re.test(segment);
}
