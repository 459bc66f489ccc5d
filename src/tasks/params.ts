/**
 * The task parameters of an RFC 8693 token exchange (pure): validated at the edge, each bad
 * value refused with a stable code naming the field (docs/tasks.md "Parameters"). Nothing here
 * trims, guesses or silently ignores: a value is valid as sent, or refused.
 */
import { TesseraError, fail } from '../shared/errors.js';
import { credentialLike } from '../shared/credential-like.js';
import { parseScope } from '../policy/scope.js';
import { LABEL_PATTERN, MAX_DEPTH_CEILING, TASK_LIMITS, TCTX_KEY_PATTERN } from './claims.js';

/** The task-specific parameters, as sent (form values are strings). */
export interface RawTaskParams {
  readonly scope?: string | undefined;
  readonly purpose?: string | undefined;
  readonly tctx?: string | undefined;
  readonly requested_ttl?: string | undefined;
  readonly max_depth?: string | undefined;
  readonly label?: string | undefined;
  readonly scope_mode?: string | undefined;
}

export interface TaskParams {
  /** Parsed, de-duplicated scope strings in the order given; undefined when absent. */
  readonly scope?: readonly string[];
  readonly purpose?: string;
  readonly tctx?: Readonly<Record<string, string>>;
  /** Requested lifetime in milliseconds. */
  readonly ttlMs?: number;
  readonly maxDepth?: number;
  readonly label?: string;
  /** `exact` (default): a wider child scope is refused; `trim`: it is narrowed to the parent's. */
  readonly scopeMode: 'exact' | 'trim';
}

/**
 * Parameters that name a claim Tessera sets itself: a client never sends claims (RFC 8693 §2.1
 * defines none of these as parameters), so one of them is a forged chain or a confused client,
 * refused rather than ignored.
 */
export const CLAIM_PARAMETERS = ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'act', 'may_act', 'txn', 'ptxn', 'rtxn', 'anc', 'depth', 'cnf', 'tessera', 'chain'] as const;

/** Throws TESSERA_TASK_CLAIM_PARAMETER when the request carries a parameter named like a claim. */
export function refuseClaimParameters(raw: Readonly<Record<string, unknown>>): void {
  for (const name of CLAIM_PARAMETERS) {
    if (Object.hasOwn(raw, name)) {
      throw fail('TESSERA_TASK_CLAIM_PARAMETER', `parameter "${name}" names a claim that Tessera sets itself (the actor chain, the task tree and the times come from the tokens presented, never from parameters); remove it`, { field: name });
    }
  }
}

const invalid = (field: string, message: string): TesseraError => fail('TESSERA_TASK_PARAMETER_INVALID', `${field}: ${message}`, { field });

/** Control, format, separator characters and lone surrogates: never in text an operator reads (src/shared/terminal.ts). */
const UNSAFE_TEXT = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** Space-separated scope strings (RFC 6749 §3.3), each parsed by the scope algebra; TESSERA_OAUTH_INVALID_SCOPE names the bad one. */
export function parseScopeParam(text: string): string[] {
  if (!/^[\x21-\x7e]+( [\x21-\x7e]+)*$/.test(text)) {
    throw fail('TESSERA_OAUTH_INVALID_SCOPE', 'scope must be scope strings separated by single spaces (RFC 6749 §3.3), printable ASCII only, such as "secret:healthcare/prod/** tool:records/query"');
  }
  const out: string[] = [];
  for (const s of text.split(' ')) {
    if (s.length > TASK_LIMITS.scopeChars) throw fail('TESSERA_OAUTH_INVALID_SCOPE', `a scope string is longer than ${TASK_LIMITS.scopeChars} characters`);
    if (credentialLike(s)) throw fail('TESSERA_REQUEST_CREDENTIAL_LIKE', 'scope contains what looks like a credential; scopes are recorded in clear (the token, the task tree, the audit log)', { field: 'scope' });
    parseScope(s);
    if (!out.includes(s)) out.push(s);
  }
  if (out.length > TASK_LIMITS.scopes) throw fail('TESSERA_OAUTH_INVALID_SCOPE', `at most ${TASK_LIMITS.scopes} scope strings per task`);
  return out;
}

export function parsePurpose(text: string): string {
  if (text.length === 0) throw invalid('purpose', 'must not be empty; say why this task exists (it is audited)');
  if (text.length > TASK_LIMITS.purposeChars) throw invalid('purpose', `is longer than ${TASK_LIMITS.purposeChars} characters`);
  if (UNSAFE_TEXT.test(text)) throw invalid('purpose', 'contains a control, format or line-separator character; use plain text on one line');
  if (text.trim() !== text) throw invalid('purpose', 'starts or ends with white space');
  if (credentialLike(text)) throw fail('TESSERA_REQUEST_CREDENTIAL_LIKE', 'purpose contains what looks like a credential; the purpose is recorded in clear (the token, the task tree, the audit log)', { field: 'purpose' });
  return text;
}

/** `tctx`: a JSON object of at most 16 string values (keys usable as Cedar attribute names). */
export function parseTctx(text: string): Record<string, string> {
  if (Buffer.byteLength(text, 'utf8') > TASK_LIMITS.tctxJsonBytes) throw invalid('tctx', `is larger than ${TASK_LIMITS.tctxJsonBytes} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalid('tctx', 'is not valid JSON; send a JSON object of string values such as {"ticket":"INC-42"}');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid('tctx', 'must be a JSON object of string values such as {"ticket":"INC-42"}');
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > TASK_LIMITS.tctxKeys) throw invalid('tctx', `has more than ${TASK_LIMITS.tctxKeys} keys`);
  const out: Record<string, string> = {};
  for (const [k, x] of entries) {
    if (!TCTX_KEY_PATTERN.test(k)) throw invalid('tctx', `key "${k.slice(0, 64)}" must be a letter or "_" followed by letters, digits or "_" (at most ${TASK_LIMITS.tctxKeyChars}): keys are Cedar attribute names`);
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') throw invalid('tctx', `key "${k}" is reserved`);
    if (typeof x !== 'string') throw invalid('tctx', `value of "${k}" must be a string (it is ${x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x})`);
    if (x.length > TASK_LIMITS.tctxValueChars) throw invalid('tctx', `value of "${k}" is longer than ${TASK_LIMITS.tctxValueChars} characters`);
    if (UNSAFE_TEXT.test(x)) throw invalid('tctx', `value of "${k}" contains a control, format or line-separator character`);
    if (credentialLike(x)) throw fail('TESSERA_REQUEST_CREDENTIAL_LIKE', `tctx value of "${k}" contains what looks like a credential; task facts are recorded in clear`, { field: 'tctx' });
    out[k] = x;
  }
  return out;
}

/** A whole number written in decimal digits only (no sign, exponent, fraction or spaces). */
function integerParam(field: string, text: string, min: number, max: number): number {
  if (!/^[0-9]{1,10}$/.test(text)) throw invalid(field, `must be a whole number from ${min} to ${max}, written in digits`);
  const n = Number(text);
  if (n < min || n > max) throw invalid(field, `must be from ${min} to ${max} (got ${n})`);
  return n;
}

export function parseLabel(text: string): string {
  if (!LABEL_PATTERN.test(text)) {
    throw invalid('label', `must be 1 to ${TASK_LIMITS.labelChars} characters: a letter or digit, then letters, digits, ".", "_" or "-" (no spaces or control characters)`);
  }
  if (credentialLike(text)) throw fail('TESSERA_REQUEST_CREDENTIAL_LIKE', 'label contains what looks like a credential', { field: 'label' });
  return text;
}

/** Largest `requested_ttl` that is well-formed at all; what may be granted is decided by the lifetime rules (narrow.ts). */
const TTL_FORMAT_MAX_S = 366 * 86_400;

/** Parses every task parameter that is present. */
export function parseTaskParams(raw: RawTaskParams): TaskParams {
  let scopeMode: 'exact' | 'trim' = 'exact';
  if (raw.scope_mode !== undefined) {
    if (raw.scope_mode !== 'exact' && raw.scope_mode !== 'trim') throw invalid('scope_mode', 'must be "exact" (default: a wider scope is refused) or "trim" (narrowed to what the parent holds)');
    scopeMode = raw.scope_mode;
  }
  return {
    ...(raw.scope !== undefined ? { scope: parseScopeParam(raw.scope) } : {}),
    ...(raw.purpose !== undefined ? { purpose: parsePurpose(raw.purpose) } : {}),
    ...(raw.tctx !== undefined ? { tctx: parseTctx(raw.tctx) } : {}),
    ...(raw.requested_ttl !== undefined ? { ttlMs: integerParam('requested_ttl', raw.requested_ttl, 1, TTL_FORMAT_MAX_S) * 1000 } : {}),
    ...(raw.max_depth !== undefined ? { maxDepth: integerParam('max_depth', raw.max_depth, 0, MAX_DEPTH_CEILING) } : {}),
    ...(raw.label !== undefined ? { label: parseLabel(raw.label) } : {}),
    scopeMode,
  };
}
