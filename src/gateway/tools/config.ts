/**
 * Configuration of Tessera's declarative tools (`gateway.tools` in tessera.yaml), validated at
 * load so that a tool that could misbehave never starts: URL templates only reference declared
 * scalar arguments, SQL has exactly one statement whose `$n` match `params`, credentials are
 * placed somewhere valid, and argument schemas only use keywords the validator enforces.
 *
 * The schemas' outputs are plain data (durations in milliseconds); `createDeclarativeProviders`
 * compiles them. This module must not import src/config/schema.ts (that one embeds these).
 */
import { z } from 'zod';
import { durationBetween, secretPathField } from '../../config/fields.js';
import { parseInput } from '../../server/validate.js';
import { compileArgSchema, propertyTypes, requiredProperties, type JsonSchema } from './json-schema.js';
import { parseUrlTemplate } from './url-template.js';
import { scanStatement } from './sql.js';
import { count } from '../../shared/plural.js';

/** `<server>` namespace: the first half of `<server>/<tool>` and of the Cedar `Tool` entity id. */
export const toolServerName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected a server namespace: lowercase letters, digits, "_" and "-", at most 63 characters');
/** `<tool>`: MCP tool-name characters (SEP-986) minus "/", which separates the namespace. */
export const toolName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected a tool name: letters, digits, "_", "-" and ".", at most 64 characters');

/** RFC 9110 §5.6.2 token. */
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected an HTTP header name (RFC 9110 token)');
/** RFC 9110 §5.5: no CR, LF or NUL in a field value. */
const headerValue = z.string().max(8192).regex(/^[^\r\n\0]*$/, 'header values must not contain CR, LF or NUL');

/** Headers Tessera computes itself, or that would change framing/routing: never configurable. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'expect', 'proxy-authorization', 'proxy-connection']);

const inputSchema = z.record(z.string(), z.unknown()).default({ type: 'object', properties: {} });

/**
 * `task_token` of an HTTP upstream (MCP server or declarative http tool): Tessera sends it a
 * short-lived JWT for `audience` carrying the caller's task (`txn`, `rtxn`, `ptxn`), its original
 * principal (`sub`) and actor chain (`act`, RFC 8693 §4.1), typ `tessera-downstream+jwt`, signed
 * with Tessera's keys (verify with /.well-known/jwks.json). `header`: where it goes (default
 * `Authorization: Bearer <token>`; any other header carries the bare token). HTTP only: a stdio
 * process outlives the calls and callers it serves, so no per-call token can reach it.
 */
export const taskTokenConfig = z.object({
  audience: z.string().min(1).max(512).regex(/^[\x21-\x7e]+$/, 'expected the upstream\'s audience: printable ASCII without spaces, e.g. https://records.internal'),
  header: headerName.default('authorization'),
  ttl: durationBetween(1000, 300_000).prefault('60s'),
}).strict();
export type TaskTokenConfig = z.output<typeof taskTokenConfig>;

const annotations = z.object({
  title: z.string().optional(),
  readOnlyHint: z.boolean().optional(),
  destructiveHint: z.boolean().optional(),
  idempotentHint: z.boolean().optional(),
  openWorldHint: z.boolean().optional(),
}).strict().optional();

const common = {
  server: toolServerName,
  name: toolName,
  description: z.string().max(4096).optional(),
  input_schema: inputSchema,
  annotations,
};

export const httpCredentialConfig = z.discriminatedUnion('in', [
  z.object({
    in: z.literal('header'),
    secret: secretPathField,
    name: headerName.default('Authorization'),
    /** Put before the secret, e.g. "Bearer " (RFC 6750 §2.1). */
    prefix: headerValue.default(''),
  }).strict(),
  z.object({ in: z.literal('query'), secret: secretPathField, name: z.string().min(1).max(128) }).strict(),
  z.object({
    in: z.literal('basic'),
    /** A secret holding `user:password` (RFC 7617 §2 user-pass). */
    secret: secretPathField.optional(),
    username: z.string().regex(/^[^:\r\n\0]*$/, 'a basic-auth user name must not contain ":" (RFC 7617 §2)').optional(),
    username_secret: secretPathField.optional(),
    password_secret: secretPathField.optional(),
  }).strict().refine(
    (c) => (c.secret !== undefined) !== (c.password_secret !== undefined) && !(c.secret !== undefined && (c.username !== undefined || c.username_secret !== undefined)) && !(c.password_secret !== undefined && (c.username === undefined) === (c.username_secret === undefined)),
    { message: 'basic auth: set either `secret` (holding "user:password"), or `password_secret` with exactly one of `username` / `username_secret`' },
  ),
]);

export const httpToolConfig = z.object({
  ...common,
  kind: z.literal('http'),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
  url: z.string().min(1).max(4096),
  credential: httpCredentialConfig.optional(),
  headers: z.record(headerName, z.union([headerValue, z.object({ secret: secretPathField }).strict()])).default({}),
  /** `json`: arguments not used in the URL form a JSON object body. Default: json for POST/PUT/PATCH. */
  body: z.enum(['json', 'none']).optional(),
  /** Send the caller's task context as a short-lived token (see taskTokenConfig). */
  task_token: taskTokenConfig.optional(),
  timeout: durationBetween(1, 300_000).prefault('10s'),
  max_response_bytes: z.number().int().min(1).max(64 * 1024 * 1024).default(1024 * 1024),
}).strict().superRefine((t, ctx) => {
  let validatorSchema: JsonSchema | undefined;
  try {
    validatorSchema = compileArgSchema(t.input_schema).schema;
  } catch (e) {
    ctx.addIssue({ code: 'custom', path: ['input_schema'], message: (e as Error).message });
  }
  let template: ReturnType<typeof parseUrlTemplate> | undefined;
  try {
    template = parseUrlTemplate(t.url);
  } catch (e) {
    ctx.addIssue({ code: 'custom', path: ['url'], message: (e as Error).message });
  }
  if (template && validatorSchema) {
    const required = requiredProperties(validatorSchema);
    for (const [v, where] of template.variables) {
      const types = propertyTypes(validatorSchema, v);
      if (types === undefined) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: `{${v}} is not a property of input_schema` });
        continue;
      }
      if (types.length === 0 || !types.every((x) => ['string', 'number', 'integer', 'boolean'].includes(x))) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: `{${v}} must be declared with a scalar type (string, number, integer or boolean) to be placed in the URL` });
      }
      if (where !== 'query-alone' && !required.includes(v)) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: `{${v}} is in the ${where === 'path' ? 'path' : 'middle of a query value'}, so it must be listed in input_schema.required` });
      }
    }
    const body = t.body ?? (['POST', 'PUT', 'PATCH'].includes(t.method) ? 'json' : 'none');
    if (body === 'none') {
      const props = Object.keys((validatorSchema.properties as Record<string, unknown> | undefined) ?? {});
      for (const p of props) if (!template.variables.has(p)) ctx.addIssue({ code: 'custom', path: ['input_schema', 'properties', p], message: `argument "${p}" is not used in the url and the tool has no body; use it in the url or set body: json` });
    }
  }
  const credHeader = t.credential?.in === 'header' ? t.credential.name.toLowerCase() : t.credential?.in === 'basic' ? 'authorization' : undefined;
  const taskHeader = t.task_token?.header.toLowerCase();
  if (taskHeader !== undefined) {
    if (taskHeader === credHeader) ctx.addIssue({ code: 'custom', path: ['task_token', 'header'], message: `header "${taskHeader}" already carries the credential; send the task token in another header, e.g. "txn-token"` });
    if (RESERVED_HEADERS.has(taskHeader) || taskHeader === 'content-type') ctx.addIssue({ code: 'custom', path: ['task_token', 'header'], message: `header "${taskHeader}" is set by Tessera and cannot carry the task token` });
    if (Object.keys(t.headers).some((h) => h.toLowerCase() === taskHeader)) ctx.addIssue({ code: 'custom', path: ['task_token', 'header'], message: `header "${taskHeader}" is also set in headers; the task token needs a header of its own` });
  }
  for (const h of Object.keys(t.headers)) {
    const lower = h.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) ctx.addIssue({ code: 'custom', path: ['headers', h], message: `header "${h}" is set by Tessera and cannot be configured` });
    if (lower === credHeader) ctx.addIssue({ code: 'custom', path: ['headers', h], message: `header "${h}" is where the credential goes; do not set it in headers too` });
    if (lower === 'content-type' && (t.body ?? (['POST', 'PUT', 'PATCH'].includes(t.method) ? 'json' : 'none')) === 'json') ctx.addIssue({ code: 'custom', path: ['headers', h], message: 'Content-Type is application/json for body: json; do not set it' });
  }
  if (t.credential?.in === 'query' && template?.query.some((q) => q.name === (t.credential as { name: string }).name)) {
    ctx.addIssue({ code: 'custom', path: ['credential', 'name'], message: `query parameter "${t.credential.name}" is already in the url template` });
  }
  if (t.credential?.in === 'header' && RESERVED_HEADERS.has(t.credential.name.toLowerCase())) {
    ctx.addIssue({ code: 'custom', path: ['credential', 'name'], message: `header "${t.credential.name}" cannot carry a credential` });
  }
});

export const postgresToolConfig = z.object({
  ...common,
  kind: z.literal('postgres'),
  credential: z.object({
    engine: z.string().min(1).default('postgres'),
    role: z.string().min(1),
    /** Lease TTL requested for each call's credential; default: the role's default TTL. */
    ttl: durationBetween(1000, 86_400_000).optional(),
  }).strict(),
  statement: z.string().min(1).max(64 * 1024),
  /** Argument names bound, in order, as $1..$n. */
  params: z.array(z.string().min(1)).max(100).default([]),
  max_rows: z.number().int().min(1).max(10_000).default(100),
  /** PostgreSQL statement_timeout (and the client-side limit). */
  timeout: durationBetween(1, 300_000).prefault('5s'),
  connect_timeout: durationBetween(1, 60_000).prefault('5s'),
}).strict().superRefine((t, ctx) => {
  let validatorSchema: JsonSchema | undefined;
  try {
    validatorSchema = compileArgSchema(t.input_schema).schema;
  } catch (e) {
    ctx.addIssue({ code: 'custom', path: ['input_schema'], message: (e as Error).message });
  }
  try {
    const info = scanStatement(t.statement);
    if (info.maxParam !== t.params.length) {
      ctx.addIssue({ code: 'custom', path: ['params'], message: `the statement uses ${info.maxParam === 0 ? 'no parameters' : `$1..$${info.maxParam}`} but params lists ${count(t.params.length, 'argument')}` });
    } else {
      for (let i = 1; i <= info.maxParam; i++) if (!info.params.has(i)) ctx.addIssue({ code: 'custom', path: ['statement'], message: `$${i} is never used in the statement (PostgreSQL cannot infer its type)` });
    }
  } catch (e) {
    ctx.addIssue({ code: 'custom', path: ['statement'], message: (e as Error).message });
  }
  const seen = new Set<string>();
  for (const [i, p] of t.params.entries()) {
    if (seen.has(p)) ctx.addIssue({ code: 'custom', path: ['params', i], message: `"${p}" is listed twice; reuse $${t.params.indexOf(p) + 1} in the statement instead` });
    seen.add(p);
    if (validatorSchema && propertyTypes(validatorSchema, p) === undefined) ctx.addIssue({ code: 'custom', path: ['params', i], message: `"${p}" is not a property of input_schema` });
  }
  if (validatorSchema) {
    for (const p of Object.keys((validatorSchema.properties as Record<string, unknown> | undefined) ?? {})) {
      if (!seen.has(p)) ctx.addIssue({ code: 'custom', path: ['input_schema', 'properties', p], message: `argument "${p}" is not bound by params; remove it or bind it` });
    }
  }
});

export const declarativeToolConfig = z.discriminatedUnion('kind', [httpToolConfig, postgresToolConfig]);

/** The `tools:` list: every `<server>/<name>` must be unique. */
export const declarativeToolsConfig = z.array(declarativeToolConfig).max(1000).superRefine((tools, ctx) => {
  const seen = new Map<string, number>();
  tools.forEach((t, i) => {
    const id = `${t.server}/${t.name}`;
    if (seen.has(id)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `tool ${id} is declared twice (also at index ${seen.get(id)})` });
    else seen.set(id, i);
  });
});

export type HttpToolConfig = z.output<typeof httpToolConfig>;
export type PostgresToolConfig = z.output<typeof postgresToolConfig>;
export type DeclarativeToolConfig = z.output<typeof declarativeToolConfig>;

/** Parses a raw `tools:` list (e.g. from YAML); throws TESSERA_CONFIG_INVALID naming the key. */
export function parseDeclarativeTools(raw: unknown): DeclarativeToolConfig[] {
  return parseInput(declarativeToolsConfig, raw, 'gateway.tools', 'TESSERA_CONFIG_INVALID');
}
