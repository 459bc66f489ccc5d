/**
 * Does a variable name, a Secret key or a literal value look like a credential? The rules are
 * documented in docs/k8s-scan.md ("Rules"); ADR 0271 explains the trade-offs against false
 * positives. Pure: no I/O, no clock.
 *
 * Values are only ever classified here; nothing returned carries a value or part of one.
 */
import { createHmac } from 'node:crypto';
import { JWT_SOURCE, TESSERA_TOKEN_SOURCE } from '../../shared/credential-like.js';

/** A recognised credential format: `label` names it in reports; `vendor` picks the suggested proxy route. */
export interface KeyShape {
  readonly id: string;
  readonly label: string;
  readonly vendor?: string;
}

/**
 * Credential formats, found anywhere in a value (not only as the whole value): a token inside a
 * header line (`Authorization: Bearer ghp_…`), a flag (`--token=sk-…`), a JSON blob or a
 * connection string is as readable as a bare one. Each `source` is matched between boundaries
 * (no token character right before or after it). Order matters: the first match wins.
 * `check` (optional) vets the match (e.g. a Basic credential must decode to `user:password`).
 */
const SHAPE_SOURCES: readonly (KeyShape & { source: string; flags?: string; check?: (m: RegExpExecArray) => boolean })[] = [
  { id: 'anthropic', label: 'Anthropic API key (sk-ant-…)', vendor: 'anthropic', source: 'sk-ant-[a-z]+\\d{2}-[A-Za-z0-9_-]{20,}' },
  {
    id: 'openai', label: 'OpenAI API key (sk-…)', vendor: 'openai', source: 'sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}',
    // Keys are random (upper, lower, digits); `sk-learn-gradient-boosting-v2` in a path or name is not one.
    check: (m) => /[a-z]/.test(m[0]) && /[A-Z]/.test(m[0]) && /[0-9]/.test(m[0]),
  },
  { id: 'stripe', label: 'Stripe secret key (sk_/rk_live|test_…)', vendor: 'stripe', source: '[rs]k_(?:live|test)_[A-Za-z0-9]{16,}' },
  { id: 'stripe-webhook', label: 'Stripe webhook signing secret (whsec_…)', vendor: 'stripe', source: 'whsec_[A-Za-z0-9+/=]{20,}' },
  { id: 'github', label: 'GitHub token (ghp_/gho_/ghu_/ghs_/ghr_…)', vendor: 'github', source: 'gh[pousr]_[A-Za-z0-9]{30,}' },
  { id: 'github-pat', label: 'GitHub fine-grained token (github_pat_…)', vendor: 'github', source: 'github_pat_[A-Za-z0-9_]{22,}' },
  { id: 'gitlab', label: 'GitLab token (glpat-…)', vendor: 'gitlab', source: 'glpat-[A-Za-z0-9_-]{20,}' },
  { id: 'slack', label: 'Slack token (xoxb-/xoxp-…)', vendor: 'slack', source: 'xox[abposre]-[A-Za-z0-9-]{10,}' },
  { id: 'slack-app', label: 'Slack app-level token (xapp-…)', vendor: 'slack', source: 'xapp-\\d-[A-Za-z0-9-]{10,}' },
  { id: 'slack-webhook', label: 'Slack webhook URL (hooks.slack.com/…)', vendor: 'slack', source: 'https://hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}' },
  { id: 'discord-webhook', label: 'Discord webhook URL', source: 'https://(?:ptb\\.|canary\\.)?discord(?:app)?\\.com/api/webhooks/\\d+/[A-Za-z0-9_-]{20,}' },
  { id: 'aws-access-key-id', label: 'AWS access key id (AKIA…/ASIA…)', vendor: 'aws', source: '(?:AKIA|ASIA)[A-Z0-9]{16}' },
  { id: 'google-api-key', label: 'Google API key (AIza…)', vendor: 'google', source: 'AIza[A-Za-z0-9_-]{35}' },
  { id: 'huggingface', label: 'Hugging Face token (hf_…)', vendor: 'huggingface', source: 'hf_[A-Za-z0-9]{30,}' },
  { id: 'sendgrid', label: 'SendGrid API key (SG.….…)', source: 'SG\\.[A-Za-z0-9_-]{16,}\\.[A-Za-z0-9_-]{16,}' },
  { id: 'npm', label: 'npm token (npm_…)', source: 'npm_[A-Za-z0-9]{36,}' },
  { id: 'pypi', label: 'PyPI token (pypi-…)', source: 'pypi-AgE[A-Za-z0-9_-]{20,}' },
  { id: 'tessera-token', label: 'Tessera token (tsr_…)', source: TESSERA_TOKEN_SOURCE },
  { id: 'jwt', label: 'JWT', source: JWT_SOURCE },
  {
    id: 'basic-auth', label: 'HTTP Basic credential (Basic base64(user:password))', source: 'Basic\\s+([A-Za-z0-9+/]{6,}={0,2})', flags: 'i',
    check: (m) => /^[\x20-\x7e]+:[\x20-\x7e]+$/.test(Buffer.from(m[1]!, 'base64').toString('latin1')),
  },
];

/** Characters a token is made of: a shape must not be preceded or followed by one. */
const BOUND = 'A-Za-z0-9_';
const SHAPES = SHAPE_SOURCES.map((s) => ({ ...s, re: new RegExp(`(?<![${BOUND}-])(?:${s.source})(?![${BOUND}-])`, s.flags ?? '') }));
const PEM = { id: 'pem-private-key', label: 'PEM private key', re: /-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----/ };

/** `scheme://user:password@host` anywhere in the value, the password not a `$(VAR)` reference Kubernetes expands. */
const URL_PASSWORD = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*):\/\/[^\s/:@]*:([^\s/@]+)@/gi;
/** A URL carrying a credential in its query (`?api_key=…`, `&access_token=…`, Azure SAS `sig=…`). */
const URL_QUERY = /(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:\/\/[^\s?#]*\?(?:[^\s#]*&)?(?:api[_-]?key|apikey|key|access[_-]?token|auth[_-]?token|token|secret|client[_-]?secret|password|passwd|pwd|sig|signature)=([^&#\s]+)/i;
/** An ADO.NET/JDBC-style connection string with a password (`Server=…;Password=…;`). */
const CONN_PASSWORD = /(?:^|;)\s*(?:password|pwd)\s*=\s*([^;]+)/i;

const literal = (v: string): boolean => v.trim() !== '' && !/^\$\([A-Za-z_][A-Za-z0-9_]*\)$/.test(v.trim()) && !/^\$\{[^}]*\}$/.test(v.trim());

/** The recognised format of a literal value (whole or embedded), or undefined. */
export function keyShapeOf(value: string): KeyShape | undefined {
  const v = value.trim();
  const out = (s: KeyShape): KeyShape => ({ id: s.id, label: s.label, ...(s.vendor ? { vendor: s.vendor } : {}) });
  if (PEM.re.test(v)) return out(PEM);
  for (const s of SHAPES) {
    const m = s.re.exec(v);
    if (m && (!s.check || s.check(m))) return out(s);
  }
  for (const m of v.matchAll(URL_PASSWORD)) {
    if (!/\$\(/.test(m[2]!)) return { id: 'url-password', label: 'URL with a password (scheme://user:password@host)', ...(dbScheme(m[1]!) ? { vendor: 'database' } : {}) };
  }
  const q = URL_QUERY.exec(v);
  if (q && literal(q[1]!) && q[1]!.length >= 8) return { id: 'url-query-credential', label: 'URL with a credential in its query (?api_key=…, ?token=…)' };
  const c = CONN_PASSWORD.exec(v);
  if (c && literal(c[1]!) && /[;=]/.test(v.replace(c[0], ''))) return { id: 'connection-string-password', label: 'connection string with a password (…;Password=…)', vendor: 'database' };
  return undefined;
}

const dbScheme = (scheme: string): boolean => /^(postgres(ql)?|mysql|mariadb|mongodb(\+srv)?|redis|rediss|amqps?|jdbc)$/i.test(scheme);

/** Name words that make a name a credential on their own. */
const STRONG = new Set(['PASSWORD', 'PASSWD', 'PASSPHRASE', 'PASS', 'PWD', 'SECRET', 'SECRETS', 'TOKEN', 'CREDENTIAL', 'CREDENTIALS', 'CREDS', 'APIKEY', 'PRIVATEKEY', 'ACCESSKEY', 'SECRETKEY', 'AUTHTOKEN', 'BEARER']);
/** `<word> KEY`: a key of this kind is a credential (`API_KEY`, `SIGNING_KEY`, `access-key`). */
const KEY_KINDS = new Set(['API', 'ACCESS', 'SECRET', 'PRIVATE', 'SIGNING', 'ENCRYPTION', 'ENCRYPT', 'MASTER', 'AUTH', 'CLIENT', 'LICENSE', 'SERVICE', 'ACCOUNT', 'APP', 'HMAC', 'WEBHOOK', 'SESSION', 'SSH', 'GPG', 'PGP', 'CRYPTO', 'JWT', 'TLS', 'SIGN']);
/** A last word that makes the name about a credential, not the credential (`TOKEN_FILE`, `PASSWORD_MIN_LENGTH`). */
const NOT_A_VALUE = new Set([
  'FILE', 'PATH', 'DIR', 'URL', 'URI', 'ENDPOINT', 'HOST', 'PORT', 'NAME', 'REF', 'ID', 'HEADER', 'USER', 'USERNAME', 'LENGTH', 'LEN', 'TTL', 'EXPIRY',
  'EXPIRES', 'EXPIRATION', 'TIMEOUT', 'LIMIT', 'MAX', 'MIN', 'COUNT', 'SIZE', 'TYPE', 'KIND', 'ENABLED', 'DISABLED', 'ENABLE', 'DISABLE', 'MODE', 'FORMAT', 'PREFIX',
  'SUFFIX', 'FIELD', 'PARAM', 'VERSION', 'ALGORITHM', 'ALG', 'POLICY', 'ROTATION', 'REGION', 'ISSUER', 'AUDIENCE', 'SCOPE', 'SCOPES', 'LOCATION', 'MOUNT', 'REQUIRED', 'HASH',
]);
/** Whole names that only look like credentials: the shell's working directory. */
const NOT_CREDENTIAL_NAMES = new Set(['PWD', 'OLDPWD']);

/** Upper-case words of a name: `openaiApiKey`, `OPENAI_API_KEY`, `api-key`, `tls.key` → words. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .split(/[^A-Z0-9]+/)
    .filter((w) => w !== '');
}

/**
 * How strongly a variable name or Secret key says "credential": `strong` (a credential word:
 * PASSWORD, TOKEN, SECRET, API_KEY…), `weak` (ends in KEY otherwise: `OPENAI_KEY`, but also
 * `SORT_KEY`, so the value must look random too), or `none`.
 */
export function nameStrength(name: string): 'strong' | 'weak' | 'none' {
  const words = nameWords(name);
  if (words.length === 0 || NOT_CREDENTIAL_NAMES.has(words.join('_'))) return 'none';
  if (NOT_A_VALUE.has(words[words.length - 1]!)) return 'none';
  // A word that is or ends in a strong word: PGPASSWORD, DBPASSWORD, APPSECRET, GHTOKEN (not TOKENIZER).
  if (words.some((w) => STRONG.has(w) || /(PASSWORD|PASSWD|SECRET|TOKEN|APIKEY)$/.test(w))) return 'strong';
  for (let i = 1; i < words.length; i++) if (words[i] === 'KEY' && KEY_KINDS.has(words[i - 1]!)) return 'strong';
  if (words[words.length - 1] === 'KEY' || words[words.length - 1] === 'KEYS') return 'weak';
  return 'none';
}

/** Literal values that cannot be a credential whatever their name (ADR 0271). */
export function isInertValue(value: string): boolean {
  const v = value.trim();
  if (v === '') return true;
  if (/^\$\([A-Za-z_][A-Za-z0-9_]*\)$/.test(v)) return true; // a reference to another variable
  if (/^(true|false|yes|no|on|off|none|null|nil|enabled|disabled|required|optional)$/i.test(v)) return true;
  if (/^\d{1,5}$/.test(v)) return true; // a port, a count, a flag
  if (/^(\/|\.\/|~\/)[^\s]*$/.test(v)) return true; // a file path
  if (/^[a-z][a-z0-9+.-]*:\/\/[^\s@]*$/i.test(v)) return true; // a URL without userinfo
  return false;
}

/** Shannon entropy of `s` in bits per character. */
export function entropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/**
 * A random-looking string (ADR 0271): 20–512 characters without whitespace, lower and upper
 * case letters and digits all present, at least 3.5 bits of entropy per character, and not one
 * of the common high-entropy non-secrets: a UUID, a hex digest, a URL or path, an image
 * reference, a base64 certificate.
 */
export function looksRandom(value: string, minLength = 20): boolean {
  const v = value.trim();
  if (v.length < minLength || v.length > 512 || /\s/.test(v)) return false;
  if (!/[a-z]/.test(v) || !/[A-Z]/.test(v) || !/[0-9]/.test(v)) return false;
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) return false;
  if (/^(sha\d+:)?[0-9a-f]+$/i.test(v)) return false;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v) || v.startsWith('/')) return false;
  if (/^[a-z0-9.-]+(:\d+)?\/[a-z0-9._/-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/.test(v)) return false; // registry/image:tag
  if (v.startsWith('LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t') || v.startsWith('MII')) return false; // base64 PEM/DER certificate
  return entropy(v) >= 3.5;
}

/**
 * Fingerprint of a value, for telling findings about the same value apart: `hmac:<12 hex>` with
 * a key chosen per scan (so it says nothing about the value across scans, and a weak password
 * cannot be guessed from it), plus the length. Never a part of the value itself.
 */
export function fingerprint(value: string, key: Uint8Array): { length: number; fingerprint: string } {
  return { length: [...value].length, fingerprint: `hmac:${createHmac('sha256', key).update(value, 'utf8').digest('hex').slice(0, 12)}` };
}

/** Words in a name or shape that point at a database (suggest a dynamic lease). */
export function isDatabaseName(name: string): boolean {
  return nameWords(name).some((w) => ['DB', 'DATABASE', 'POSTGRES', 'POSTGRESQL', 'PG', 'PGPASSWORD', 'MYSQL', 'MARIADB', 'MONGO', 'MONGODB', 'REDIS', 'SQL', 'DSN'].includes(w));
}

/** The vendor a name points at (`OPENAI_API_KEY` → openai), for the suggested proxy route. */
export function vendorOfName(name: string): string | undefined {
  const words = nameWords(name);
  for (const v of ['OPENAI', 'ANTHROPIC', 'GITHUB', 'GITLAB', 'SLACK', 'STRIPE', 'HUGGINGFACE', 'HF', 'AWS', 'GOOGLE', 'GEMINI', 'MISTRAL', 'COHERE', 'GROQ']) {
    if (words.includes(v)) return v === 'HF' ? 'huggingface' : v === 'GEMINI' ? 'google' : v.toLowerCase();
  }
  return undefined;
}
