import { z } from 'zod';
import { TesseraError } from '../shared/errors.js';
import type { AuditEvent } from './events.js';
import { JWT_LIKE, TESSERA_TOKEN_LIKE as TESSERA_TOKEN } from '../shared/credential-like.js';

/**
 * Runtime guard on every event before it is appended. The event union is typed, but the audit
 * log is the last line of defence against a secret or token reaching durable storage, so the
 * shape is checked again and every string is scanned for token-looking values.
 */
const str = z.string().max(4096);
const eventSchema = z.object({
  kind: z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/, 'expected a dotted lower-case kind such as "token.issued"'),
  actor: z.object({ id: z.string().min(1).max(2048), chain: z.array(str).max(64).optional(), user: str.optional(), verified: z.literal(false).optional() }).strict(),
  action: z.string().min(1).max(256),
  resource: str.optional(),
  result: z.enum(['success', 'failure', 'allow', 'deny', 'error']),
  reason: z.object({ policies: z.array(str).max(256).optional(), code: z.string().max(128).optional(), message: str.optional() }).strict().optional(),
  txn: z.string().max(256).optional(),
  purpose: str.optional(),
  where: z.object({ source: z.string().max(256).optional(), replica: z.string().max(128).optional(), requestId: z.string().max(128).optional() }).strict().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
}).strict();

// The shapes (JWT_LIKE, TESSERA_TOKEN) are shared with the edge, which refuses them in names,
// and with the gateway's scrubber (src/shared/credential-like.ts).
/** Keys that must never carry a value in an audit event. */
const FORBIDDEN_KEY = /^(token|access_token|refresh_token|id_token|subject_token|actor_token|password|secret|secret_value|client_secret|private_key|authorization)$/i;

const MAX_EVENT_BYTES = 64 * 1024;
const MAX_DEPTH = 8;

function invalid(message: string): TesseraError {
  return new TesseraError('TESSERA_AUDIT_EVENT_INVALID', message);
}

function scan(value: unknown, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw invalid(`audit event is nested deeper than ${MAX_DEPTH} levels at ${path}`);
  if (typeof value === 'string') {
    if (JWT_LIKE.test(value)) throw invalid(`audit event field ${path} looks like a JWT; audit identifiers with audit.hmac() instead of recording tokens`);
    if (TESSERA_TOKEN.test(value)) throw invalid(`audit event field ${path} looks like a Tessera token (tsr_…); audit its HMAC instead`);
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalid(`audit event field ${path} is not a finite number`);
    return;
  }
  if (value === null || typeof value === 'boolean' || value === undefined) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => scan(v, `${path}[${i}]`, depth + 1));
    return;
  }
  if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (FORBIDDEN_KEY.test(k) && v !== undefined && v !== null) throw invalid(`audit event field ${path}.${k} would record a secret or token; audit an HMAC (e.g. "${k}_hmac") instead`);
      scan(v, `${path}.${k}`, depth + 1);
    }
    return;
  }
  throw invalid(`audit event field ${path} has unsupported type ${typeof value}`);
}

function checkShape(event: unknown): void {
  const r = eventSchema.safeParse(event);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalid(`invalid audit event: ${i.path.map(String).join('.') || 'event'}: ${i.message}`);
  }
}

/** Throws TESSERA_AUDIT_EVENT_INVALID when the event is malformed or carries a token-like value. */
export function validateEvent(event: unknown): AuditEvent {
  checkShape(event);
  scan(event, 'event', 0);
  return event as AuditEvent;
}

/**
 * validateEvent and the event's canonical form (canonical.ts `canonicalize`) in one walk: the
 * audit log's per-event preparation. Checks the shape with the schema (throwing exactly as
 * validateEvent), then walks the event once, doing scan()'s checks while writing the canonical
 * text. The walk only ever accepts: at anything scan() would refuse (or that it cannot be sure
 * of) it returns undefined and the caller runs validateEvent and canonicalize, so every refusal
 * and its message stay theirs. test/audit/prepare-fast.test.ts checks the text equals
 * canonicalize's and the verdicts equal validateEvent's.
 */
export function validateAndCanonicalize(event: unknown): string | undefined {
  checkShape(event);
  return canonicalScanned(event, 0);
}

function canonicalScanned(value: unknown, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JWT_LIKE.test(value) || TESSERA_TOKEN.test(value) ? undefined : JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : undefined;
    case 'object': {
      // scan() checks the depth of every member, `undefined` ones included.
      if (Array.isArray(value)) {
        if (depth >= MAX_DEPTH && value.length > 0) return undefined;
        let s = '[';
        for (let i = 0; i < value.length; i++) {
          const x = value[i];
          const t = x === undefined ? 'null' : canonicalScanned(x, depth + 1);
          if (t === undefined) return undefined;
          s += (i > 0 ? ',' : '') + t;
        }
        return `${s}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (depth >= MAX_DEPTH && keys.length > 0) return undefined;
      if (keys.length > 1) keys.sort();
      let s = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        if (v !== null && FORBIDDEN_KEY.test(k)) return undefined;
        const t = canonicalScanned(v, depth + 1);
        if (t === undefined) return undefined;
        s += `${first ? '' : ','}${JSON.stringify(k)}:${t}`;
        first = false;
      }
      return `${s}}`;
    }
    default:
      return undefined;
  }
}

export function checkEventSize(body: string): void {
  if (Buffer.byteLength(body, 'utf8') > MAX_EVENT_BYTES) throw invalid(`audit event is larger than ${MAX_EVENT_BYTES} bytes; record identifiers, not payloads`);
}
