/**
 * A secret's rotator (metadata `rotator`, docs/rotation.md): which integration rotates the
 * secret and its options. Stored as JSON in `secrets.rotator`; validated at every edge
 * (PUT /v1/admin/secrets, `tessera kv put --rotator`) and again when read back.
 *
 * Shapes (snake_case, as on the wire):
 *  { kind: "manual" }
 *  { kind: "postgres-static", engine, role, end_sessions?: boolean, grace_period?: duration }
 *  { kind: "engine-root", engine }
 *  { kind: "http", endpoint, grace_period?: duration }
 * Errors: TESSERA_ROTATION_ROTATOR_UNKNOWN (kind, or an http endpoint not configured),
 * TESSERA_ROTATION_OPTIONS_INVALID (anything else, naming the field).
 */
import { z } from 'zod';
import { durationBetween } from '../config/fields.js';
import { fail } from '../shared/errors.js';

export const ROTATOR_KINDS = ['postgres-static', 'engine-root', 'http', 'manual'] as const;
export type RotatorKind = (typeof ROTATOR_KINDS)[number];

const name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected a lower-case name (letters, digits, _ and -)');
/** A PostgreSQL role name: 1–63 bytes; quoted as an identifier wherever it is used. */
const roleName = z.string().min(1).max(63).refine((s) => !s.includes('\0') && Buffer.byteLength(s) <= 63, 'expected a PostgreSQL role name (1–63 bytes, no NUL)');
/** At least 2 s: the proxy reuses a kv value up to 1 s (src/proxy/credential.ts SECRET_VALUE_TTL_MS). */
const grace = durationBetween(2000, 90 * 86_400_000);

const manual = z.object({ kind: z.literal('manual') }).strict();
const postgresStatic = z.object({
  kind: z.literal('postgres-static'),
  engine: name,
  role: roleName,
  /** After the grace period, end the role's sessions opened before the rotation (default true). */
  end_sessions: z.boolean().default(true),
  grace_period: grace.optional(),
}).strict();
const engineRoot = z.object({ kind: z.literal('engine-root'), engine: name }).strict();
const http = z.object({ kind: z.literal('http'), endpoint: name, grace_period: grace.optional() }).strict();

export const rotatorSchema = z.discriminatedUnion('kind', [manual, postgresStatic, engineRoot, http]);
export type RotatorSpec = z.output<typeof rotatorSchema>;

/**
 * Parses a rotator from the edge or from storage. `httpEndpoints`: the configured
 * `rotation.http_rotators` names (an unknown one is an unknown rotator).
 */
export function parseRotator(input: unknown, httpEndpoints?: ReadonlySet<string>): RotatorSpec {
  const kind = typeof input === 'object' && input !== null ? (input as { kind?: unknown }).kind : undefined;
  if (typeof kind !== 'string' || !(ROTATOR_KINDS as readonly string[]).includes(kind)) {
    throw fail('TESSERA_ROTATION_ROTATOR_UNKNOWN', `unknown rotator ${JSON.stringify(kind ?? null).slice(0, 80)}; expected one of ${ROTATOR_KINDS.join(', ')}`, { field: 'rotator.kind' });
  }
  const r = rotatorSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = ['rotator', ...(issue?.path ?? [])].join('.');
    throw fail('TESSERA_ROTATION_OPTIONS_INVALID', `invalid ${kind} rotator: ${field}: ${issue?.message ?? 'malformed'}`, { field });
  }
  if (r.data.kind === 'http' && httpEndpoints && !httpEndpoints.has(r.data.endpoint)) {
    const known = [...httpEndpoints];
    throw fail('TESSERA_ROTATION_ROTATOR_UNKNOWN', `no http rotator "${r.data.endpoint}" under rotation.http_rotators${known.length ? ` (configured: ${known.join(', ')})` : ' (none configured)'}`, { field: 'rotator.endpoint' });
  }
  return r.data;
}

/** The JSON kept in `secrets.rotator`: the grace period written as "<seconds>s" (whole milliseconds: at most three decimals), so reading it back parses to the same value. */
export function rotatorToJson(spec: RotatorSpec): string {
  const g = 'grace_period' in spec ? spec.grace_period : undefined;
  return JSON.stringify(g === undefined ? spec : { ...spec, grace_period: `${g / 1000}s` });
}

/** Reads `secrets.rotator` back; null when absent. Throws the parse codes when the row no longer fits (e.g. an endpoint removed from the configuration). */
export function rotatorFromJson(text: string | null, httpEndpoints?: ReadonlySet<string>): RotatorSpec | null {
  if (text === null || text === '') return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw fail('TESSERA_ROTATION_OPTIONS_INVALID', 'the stored rotator is not JSON; set it again');
  }
  return parseRotator(raw, httpEndpoints);
}

/**
 * The CLI's `--rotator <kind>` with repeated `--rotator-opt key=value`: booleans and the
 * grace period are typed as the schema wants; everything else stays a string.
 */
export function rotatorFromFlags(kind: string, opts: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { kind };
  for (const o of opts) {
    const i = o.indexOf('=');
    if (i <= 0) throw fail('TESSERA_ROTATION_OPTIONS_INVALID', `--rotator-opt expects key=value, got ${JSON.stringify(o).slice(0, 80)}`, { field: 'rotator' });
    const k = o.slice(0, i);
    const v = o.slice(i + 1);
    out[k] = k === 'end_sessions' ? (v === 'true' ? true : v === 'false' ? false : v) : v;
  }
  return out;
}
