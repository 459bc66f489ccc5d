/**
 * Common credential shapes, scrubbed even when Tessera never held the value (an upstream that
 * prints some other key it found on its host). Each is a RegExp source without capture groups,
 * matched case-sensitively. Prefixes are the vendors' documented token formats.
 */

import { JWT_SOURCE, TESSERA_TOKEN_SOURCE } from '../../shared/credential-like.js';

export type ShapeName =
  | 'aws-access-key'
  | 'aws-secret-key'
  | 'anthropic-key'
  | 'openai-key'
  | 'stripe-key'
  | 'github-token'
  | 'slack-token'
  | 'slack-webhook'
  | 'gcp-api-key'
  | 'gcp-service-account-key'
  | 'jwt'
  | 'pem-private-key'
  | 'tessera-token';

/** `[aA][wW][sS]`: a case-insensitive word inside a case-sensitive pattern. */
function ci(word: string): string {
  return [...word].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c)).join('');
}

/**
 * Shapes start where no letter or digit precedes them: `TOKEN_ghp_…` and `key=sk-…` are caught
 * (a `\b` would let an underscore prefix hide the shape), `xyzAKIA…` is not.
 */
const START = '(?<![A-Za-z0-9])';

/** Order matters: at one position, the first shape that matches wins (`sk-ant-` before `sk-`). */
export const SHAPES: readonly { readonly name: ShapeName; readonly source: string; readonly tail?: number }[] = [
  // PEM (RFC 7468 §10, §11): the whole armoured block, or from BEGIN to the end of the base64
  // when the END line is missing (a truncated print). Also inside JSON text, where the newlines
  // are the two characters `\n`.
  {
    name: 'pem-private-key',
    source: '-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY-----(?:[\\s\\S]{0,16384}?-----END[ A-Z0-9]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\\s\\\\:,-]*)',
  },
  // JWS compact serialization (RFC 7515 §7.1): base64url JSON header `{"` = `eyJ`, payload, signature.
  { name: 'jwt', source: START + JWT_SOURCE },
  // AWS access key ids (AKIA long-term, ASIA temporary, ...) and a secret access key next to its name.
  { name: 'aws-access-key', source: START + '(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])' },
  // `tail`: only the last N characters are the credential; the name before it stays readable.
  // (A lookbehind would do the same but costs a check at every position of every string.)
  { name: 'aws-secret-key', source: `${ci('aws')}_?${ci('secret')}_?${ci('access')}_?${ci('key')}["']?\\s{0,3}[:=]\\s{0,3}["']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])`, tail: 40 },
  { name: 'anthropic-key', source: START + 'sk-ant-[a-z]{2,10}\\d{2}-[A-Za-z0-9_-]{20,}' },
  { name: 'openai-key', source: START + 'sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}' },
  { name: 'stripe-key', source: START + '[rs]k_(?:live|test)_[0-9A-Za-z]{16,}' },
  { name: 'github-token', source: START + '(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})' },
  { name: 'slack-token', source: START + 'xox[abposre]-[A-Za-z0-9-]{10,}' },
  { name: 'slack-webhook', source: 'https://hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}' },
  { name: 'gcp-api-key', source: START + 'AIza[0-9A-Za-z_-]{35}' },
  // A Google service-account key file: the key itself is PEM (above); its id is 40 hex chars.
  { name: 'gcp-service-account-key', source: '"private_key_id\\\\?"\\s{0,3}:\\s{0,3}\\\\?"[0-9a-f]{40}', tail: 40 },
  // Tessera's own opaque tokens (`tsr_admin_…`, `tsr_join_…`).
  { name: 'tessera-token', source: START + TESSERA_TOKEN_SOURCE },
];

export const SHAPE_NAMES: readonly ShapeName[] = SHAPES.map((s) => s.name);
