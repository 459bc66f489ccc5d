/**
 * What the gateway does per MCP request, independent of HTTP: which tools a caller sees, and a
 * tool call from authorization to the scrubbed, audited result.
 *
 * tools/call order: the name (names.ts) → token scope → Cedar `tool.call` with the arguments in
 * `context.args` → the tool exists → arguments match its inputSchema → run (with timeout) →
 * scrub the result or error of every value injected for this call (scrub/result.ts) → audit →
 * answer. Nothing an upstream returns reaches the agent unscrubbed.
 *
 * An upstream is started (and its secrets injected) for a caller only when Cedar could permit
 * that caller some tool of it (`mayUse`); tools/list does not start the others.
 */
import { createHash } from 'node:crypto';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { JsonSchemaType, JsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/types.js';
import type { AuditWriter } from '../audit/port.js';
import { scopeCovers } from '../policy/scope.js';
import type { Decision } from '../policy/types.js';
import { refusalOf, type RequestAuthorizer } from '../pipeline/authorize.js';
import { TesseraError, isTesseraError, ERROR_CATALOGUE, type ErrorCode } from '../shared/errors.js';
import { MAX_JSON_DEPTH, jsonDepth } from '../shared/json-depth.js';
import { credentialLike, redactCredentialLike } from '../shared/credential-like.js';
import type { Logger } from '../shared/logger.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { Counter, Histogram, MetricsRegistry } from '../shared/metrics.js';
import { countHits, scrubToolResult, type ScrubHit, type SecretInput } from './scrub/index.js';
import { federateItem } from './resources/uri.js';
import { createAnswerKit, NO_SECRETS, type AnswerKit } from './answer.js';
import { createServerProbe, scopeNamesServer, visibleFor, type ProbeKind } from './probe.js';
import { MCP_TOOL_NAME, exposedNames, parseCallName, serverPrefix, type ToolNameFormat } from './names.js';
import { describeArgumentErrors } from './schema-errors.js';
import type { GatewayTool, SecretUseRecorder, ToolCallContext, ToolGate, ToolProvider, ToolResult } from './types.js';
import { UpstreamRpcError, type Injector, type Upstream, type UpstreamCaller } from './upstream.js';

/** JSON-RPC error codes the gateway answers with (docs/gateway.md "Errors"). */
export const RPC = {
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL: -32603,
  PARSE: -32700,
  /** Tessera: policy or scope refused. */
  FORBIDDEN: -32003,
  /** Tessera: the upstream failed (start, exit, connection). */
  UPSTREAM_FAILED: -32002,
  /** Tessera: the upstream did not answer in time. */
  TIMEOUT: -32004,
  /** Tessera: shutting down / unavailable. */
  UNAVAILABLE: -32005,
  /** Tessera: a per-agent limit refused (rate, sessions, in flight, processes); retry after `data.retry_after_s`. */
  LIMITED: -32006,
} as const;

/** A JSON-RPC error object; the SDK's Protocol sends `code`, `message` and `data` as is. */
export class RpcError extends Error {
  constructor(readonly code: number, message: string, readonly data?: Record<string, unknown>) {
    super(message);
    this.name = 'RpcError';
  }
}

export function rpcCodeFor(code: ErrorCode): number {
  if (code === 'TESSERA_AUDIT_UNAVAILABLE' || code === 'TESSERA_GATEWAY_CLOSED') return RPC.UNAVAILABLE;
  if (code === 'TESSERA_GATEWAY_METHOD_NOT_FOUND') return RPC.METHOD_NOT_FOUND;
  // The request as a whole (a batch, its ids, its answers together) is refused: JSON-RPC 2.0 §5.1.
  if (code === 'TESSERA_GATEWAY_BATCH_UNSUPPORTED' || code === 'TESSERA_GATEWAY_BATCH_TOO_LARGE' || code === 'TESSERA_GATEWAY_DUPLICATE_ID' || code === 'TESSERA_GATEWAY_RESPONSE_TOO_LARGE') return RPC.INVALID_REQUEST;
  const status = ERROR_CATALOGUE[code].status;
  if (status === 400 || status === 404) return RPC.INVALID_PARAMS;
  if (status === 401 || status === 403) return RPC.FORBIDDEN;
  if (status === 429) return RPC.LIMITED;
  if (status === 504) return RPC.TIMEOUT;
  if (status === 502) return RPC.UPSTREAM_FAILED;
  if (status === 503) return RPC.UNAVAILABLE;
  return RPC.INTERNAL;
}

export interface Caller extends UpstreamCaller {
  readonly requestId?: string;
  /** What the answers of this HTTP request may still take, for a JSON-RPC batch (ADR 0141). */
  readonly budget?: ResponseBudget;
}

/**
 * Bytes the results of one HTTP request may take together (`gateway.max_response_bytes`). Once
 * a result does not fit, it and every later one of the request are refused.
 */
export interface ResponseBudget {
  readonly limit: number;
  /** Takes `bytes` (the JSON of one result); false when they do not fit (nothing is taken then). */
  charge(bytes: number): boolean;
}

export function createResponseBudget(limit: number): ResponseBudget {
  let left = limit;
  let spent = false;
  return {
    limit,
    charge(bytes) {
      if (spent || bytes > left) {
        spent = true;
        return false;
      }
      left -= bytes;
      return true;
    },
  };
}

/** The refusal of a result that does not fit the request's budget. */
export function responseTooLarge(limit: number): TesseraError {
  return new TesseraError('TESSERA_GATEWAY_RESPONSE_TOO_LARGE', `the results of this request together exceed ${limit} bytes (gateway.max_response_bytes); send fewer calls per batch`, { limit });
}

export interface GatewayCoreDeps {
  readonly upstreams: readonly Upstream[];
  readonly providers: readonly ToolProvider[];
  /** The request pipeline's authorizer: token scope ∩ Cedar for the acting agent. */
  readonly authorizer: RequestAuthorizer;
  readonly injector: Injector;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly auditArgumentValues: boolean;
  /** How tools/list names tools (gateway.tool_name_format); default `server__tool`. */
  readonly toolNameFormat?: ToolNameFormat;
  /** Records each kv secret a declarative tool injected, for the call's duration (ADR 0150). */
  readonly secretUses?: SecretUseRecorder;
  /** Shared with the resources/prompts modules (one scrubber cache, one session-HMAC cache). */
  readonly answers?: AnswerKit;
  /** Tool-definition pinning of upstream MCP servers (src/drift, docs/drift.md); none: every listed tool is served. */
  readonly toolGate?: ToolGate;
}

export interface ListedTool {
  readonly name: string;
  readonly description?: string;
  readonly inputSchema: Record<string, unknown>;
  readonly annotations?: Record<string, unknown>;
  readonly _meta?: Record<string, unknown>;
}

export interface GatewayCore {
  listTools(caller: Caller, signal: AbortSignal): Promise<ListedTool[]>;
  callTool(name: string, args: unknown, caller: Caller, signal: AbortSignal): Promise<ToolResult>;
  /** The scope a tools/call needs, when the token's scope does not cover it (for HTTP 403). */
  missingScope(principal: AgentPrincipal, name: string): string | undefined;
  /** Names of the configured server namespaces (for `scopes_supported`). */
  readonly servers: readonly string[];
  /** The upstream servers `principal` may use something of (policy and scope; none is started). */
  usableUpstreams(principal: AgentPrincipal): Upstream[];
}

const MAX_ARGS_JSON = 2048;
/** Tool names remembered per server (any caller's listing) as candidates for `mayUse`. */
const MAX_CATALOGUE = 1000;
const MAX_KNOWN_NAMES = 10_000;

/**
 * RFC 8785-style canonical JSON (sorted keys) for a stable digest of the arguments. Throws
 * TESSERA_REQUEST_TOO_DEEP past MAX_JSON_DEPTH levels instead of exhausting the stack (callers
 * bound their inputs first; this is the backstop).
 */
export function canonicalJson(v: unknown, depth = 0): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (depth >= MAX_JSON_DEPTH) throw new TesseraError('TESSERA_REQUEST_TOO_DEEP', `the value is nested deeper than ${MAX_JSON_DEPTH} levels; flatten the structure`, { limit: MAX_JSON_DEPTH });
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x, depth + 1)).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k], depth + 1)}`).join(',')}}`;
}

export function createGatewayCore(deps: GatewayCoreDeps): GatewayCore {
  const { authorizer, audit, logger } = deps;
  const kit = deps.answers ?? createAnswerKit(audit);
  const { scrubberFor, auditName, actor, sessionHmac, where } = kit;
  const auditHits = (hits: readonly ScrubHit[], server: string, tool: string, caller: Caller, inError: boolean): Promise<void> => kit.auditHits(hits, { action: 'tool.call', server, item: tool }, caller, inError);
  const format: ToolNameFormat = deps.toolNameFormat ?? 'server__tool';
  const upstreams = new Map(deps.upstreams.map((u) => [u.server, u]));
  const providers = new Map(deps.providers.map((p) => [p.server, p]));
  const servers = [...upstreams.keys(), ...providers.keys()];
  const prefixes = new Map<string, string>();
  for (const server of servers) {
    const prefix = serverPrefix(server);
    const other = prefixes.get(prefix);
    if (other !== undefined) throw new TesseraError('TESSERA_CONFIG_INVALID', `gateway: servers "${other}" and "${server}" would expose tools under the same name prefix "${prefix}"; rename one`);
    prefixes.set(prefix, server);
  }
  const catalogue = new Map<string, Set<string>>();
  const known = new Map<string, { server: string; tool: string }>();
  const namesCache = new WeakMap<readonly GatewayTool[], Map<string, string>>();

  /** Exposed names of a server's tools, computed once per tool list. */
  function namesFor(server: string, tools: readonly GatewayTool[]): Map<string, string> {
    let m = namesCache.get(tools);
    if (!m) {
      m = exposedNames(server, tools.map((t) => t.name), format);
      namesCache.set(tools, m);
      let cat = catalogue.get(server);
      if (!cat) catalogue.set(server, (cat = new Set()));
      for (const t of tools) if (cat.size < MAX_CATALOGUE) cat.add(t.name);
    }
    return m;
  }

  const probe = createServerProbe(authorizer);
  const toolKind: ProbeKind = { action: 'tool.call', scope: 'tool', ref: (server, tool) => ({ type: 'Tool', server, tool }), visible: (p, server, tool) => visible(p, server, tool) };
  /** The token's scope (if any) names some tool of `server`. */
  const inScope = (p: AgentPrincipal, server: string): boolean => scopeNamesServer(p, 'tool', server);
  /** Whether Cedar could permit `p` some tool of `server`, without starting it (probe.ts). */
  const mayUse = (p: AgentPrincipal, server: string): boolean => probe.mayUse(p, server, toolKind, catalogue.get(server) ?? []);
  const ajv = new AjvJsonSchemaValidator();
  const validators = new Map<string, JsonSchemaValidator<unknown>>();
  const calls: Counter | undefined = deps.metrics?.counter('tessera_gateway_tool_calls_total', 'Gateway tools/call, by result');
  const scrubs: Counter | undefined = deps.metrics?.counter('tessera_gateway_scrub_hits_total', 'Secrets or credential shapes scrubbed from tool results');
  const latency: Histogram | undefined = deps.metrics?.histogram('tessera_gateway_tool_call_seconds', 'Gateway tools/call latency');

  const byObject = new WeakMap<object, JsonSchemaValidator<unknown>>();

  /** Compiled once per schema: by object identity (cached tool lists), else by content. */
  function validatorFor(key: string, inputSchema: Readonly<Record<string, unknown>>): JsonSchemaValidator<unknown> {
    const known = byObject.get(inputSchema);
    if (known) return known;
    // An upstream's schema is third-party input too: bounded before it is serialized or compiled.
    if (jsonDepth(inputSchema, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      throw new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `the upstream's inputSchema for this tool is nested deeper than ${MAX_JSON_DEPTH} levels, so its arguments cannot be checked; the tool cannot be called`);
    }
    const schema = { ...inputSchema, type: 'object' };
    const text = `${key}\n${JSON.stringify(schema)}`;
    let v = validators.get(text);
    if (!v) {
      try {
        v = ajv.getValidator(schema as JsonSchemaType);
      } catch {
        // An upstream schema Ajv cannot compile: only "is an object" is checked.
        v = (input: unknown) => ({ valid: true, data: input, errorMessage: undefined });
      }
      if (validators.size > 5000) validators.clear();
      validators.set(text, v);
    }
    byObject.set(inputSchema, v);
    return v;
  }

  /**
   * Visible in tools/list: Cedar permits an argument-less call, or a `permit` policy errors on
   * the arguments the listing does not have (it may hold with the right ones) while no `forbid`
   * is satisfied. Computed from permits only (ADR 0140): a `forbid` erroring on `context.args`
   * makes nothing visible, and so starts no upstream (`mayUse`) for a caller no permit covers.
   */
  function visible(principal: AgentPrincipal, server: string, tool: string): boolean {
    return visibleFor(authorizer, principal, 'tool.call', { type: 'Tool', server, tool });
  }

  /**
   * Why a tool name is never served (ADR 0148): it breaks the MCP tool-name rules, or it holds a
   * credential shape (the audit log's, or the scrubber's) or a value injected into its upstream.
   * Names are identifiers: they are dropped, never rewritten (a redaction marker inside a name
   * made strict clients refuse the whole tools/list).
   */
  function nameFault(name: string, secrets: readonly SecretInput[]): 'invalid' | 'credential-like' | undefined {
    if (!MCP_TOOL_NAME.test(name)) return 'invalid';
    if (credentialLike(name) !== undefined || scrubberFor(secrets, NO_SECRETS).scrubText(name).hits.length > 0) return 'credential-like';
    return undefined;
  }

  const acceptedCache = new WeakMap<readonly GatewayTool[], readonly GatewayTool[]>();
  /** Names refused so far, per server: each is audited and logged once, not at every listing. */
  const refusedSeen = new Map<string, Set<string>>();

  /** The tools whose names may be served; the others are audited (`gateway.tool_name_refused`) and logged once. */
  async function accepted(server: string, tools: readonly GatewayTool[], secrets: readonly SecretInput[], caller: Caller): Promise<readonly GatewayTool[]> {
    const known = acceptedCache.get(tools);
    if (known) return known;
    const ok: GatewayTool[] = [];
    const refused: { name: string; why: string }[] = [];
    for (const t of tools) {
      const why = nameFault(t.name, secrets);
      if (why) refused.push({ name: t.name, why });
      else ok.push(t);
    }
    const out = refused.length === 0 ? tools : ok;
    acceptedCache.set(tools, out);
    let seen = refusedSeen.get(server);
    if (!seen) refusedSeen.set(server, (seen = new Set()));
    for (const r of refused) {
      if (seen.has(r.name)) continue;
      if (seen.size < MAX_CATALOGUE) seen.add(r.name);
      // A name holding an injected value has no shape auditName knows: credential-like ones are always HMACs.
      const shown = r.why === 'credential-like' ? `hmac:${audit.hmac(r.name)}` : auditName(r.name);
      logger.warn({ server, tool: shown, why: r.why }, 'gateway: an upstream tool is not served: its name is not a valid MCP tool name or looks like a credential');
      await audit.append({
        kind: 'gateway.tool_name_refused', actor: actor(caller.principal), action: 'tool.list', resource: r.why === 'credential-like' ? `hmac:${audit.hmac(`${server}/${r.name}`)}` : auditName(`${server}/${r.name}`), result: 'deny',
        reason: { code: 'TESSERA_GATEWAY_TOOL_NAME_REFUSED', message: r.why === 'invalid' ? 'the upstream named a tool outside the MCP tool-name rules; it is not listed' : 'the upstream named a tool with something that looks like a credential; it is not listed' },
        ...(caller.principal.task ? { txn: caller.principal.task } : {}),
        where: where(caller),
        details: { server: auditName(server), tool: shown, why: r.why },
      }).catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'audit of a refused tool name failed'));
    }
    return out;
  }

  async function toolsOf(server: string, caller: Caller, signal: AbortSignal): Promise<{ tools: readonly GatewayTool[]; secrets: readonly SecretInput[]; held?: ReadonlyMap<string, Error> }> {
    const u = upstreams.get(server);
    if (u) {
      const r = await u.listTools(caller, signal);
      const tools = await accepted(server, r.tools, r.secrets, caller);
      if (!deps.toolGate) return { tools, secrets: r.secrets };
      // Pinned definitions (src/drift): a changed or unapproved tool is held back (or marked).
      const gated = await deps.toolGate.check(server, tools);
      return { tools: gated.tools, secrets: r.secrets, held: gated.held };
    }
    const p = providers.get(server);
    if (p) return { tools: await accepted(server, await p.listTools(signal), NO_SECRETS, caller), secrets: NO_SECRETS };
    return { tools: [], secrets: NO_SECRETS };
  }

  return {
    servers,

    usableUpstreams(principal) {
      return [...upstreams.values()].filter((u) => mayUse(principal, u.server));
    },

    missingScope(principal, name) {
      if (principal.scope === undefined) return undefined;
      const parsed = parseCallName(name, prefixes);
      const tool = parsed?.tool ?? known.get(name)?.tool;
      if (!parsed || tool === undefined) return undefined;
      const needed = `tool:${parsed.server}/${tool}`;
      return scopeCovers(principal.scope, needed) ? undefined : needed;
    },

    async listTools(caller, signal) {
      const out: ListedTool[] = [];
      // An upstream of which the caller may call nothing (policy, or a scoped token that names
      // none of its tools) is not started, and nothing is injected for it.
      const wanted = servers.filter((server) => (upstreams.has(server) ? mayUse(caller.principal, server) : inScope(caller.principal, server)));
      // Servers are asked in parallel; one failing upstream hides only its own tools.
      const results = await Promise.all(wanted.map(async (server) => {
        try {
          return { server, ...(await toolsOf(server, caller, signal)) };
        } catch (e) {
          logger.warn({ server, code: isTesseraError(e) ? e.code : undefined, err: (e as Error).message.slice(0, 300) }, 'gateway: tools/list of an upstream failed; its tools are not listed');
          return { server, tools: [] as GatewayTool[], secrets: [] as SecretInput[] };
        }
      }));
      for (const r of results) {
        const scrubber = r.secrets.length ? scrubberFor(r.secrets, NO_SECRETS) : undefined;
        const names = namesFor(r.server, r.tools);
        for (const t of r.tools) {
          const name = names.get(t.name);
          if (name === undefined || !visible(caller.principal, r.server, t.name)) continue;
          if (known.size >= MAX_KNOWN_NAMES) known.clear();
          known.set(name, { server: r.server, tool: t.name });
          let listed: ListedTool = {
            name,
            ...(t.description !== undefined ? { description: t.description } : {}),
            inputSchema: { ...t.inputSchema, type: 'object' },
            ...(t.annotations ? { annotations: { ...t.annotations } } : {}),
            ...(t._meta ? { _meta: { ...t._meta } } : {}),
          };
          if (scrubber) {
            // The name is an identifier, checked above (accepted): never rewritten. The rest is text.
            const { name: exposed, ...rest } = listed;
            const s = scrubber.scrubValue(rest);
            if (s.hits.length) await auditHits(s.hits, r.server, t.name, caller, false);
            listed = { name: exposed, ...s.value };
          }
          out.push(listed);
        }
      }
      return out;
    },

    async callTool(name, rawArgs, caller, signal) {
      const started = performance.now();
      const p = caller.principal;
      const parsed = parseCallName(name, prefixes);
      const args: Record<string, unknown> = rawArgs === undefined || rawArgs === null ? {} : (rawArgs as Record<string, unknown>);
      const server = parsed?.server ?? '';
      let tool = parsed?.tool;
      // Bounded before anything walks them (ADR 0041); refused below, audited like any refusal.
      const tooDeep = rawArgs !== null && typeof rawArgs === 'object' && jsonDepth(rawArgs, MAX_JSON_DEPTH) > MAX_JSON_DEPTH;
      const argsJson = tooDeep ? '' : canonicalJson(args);
      const digest = createHash('sha256').update(argsJson).digest('hex');
      let decision: Decision | undefined;
      let upstreamStatus = 'not_called';
      let hitsCount = 0;
      const allHits: ScrubHit[] = [];
      let replaced = 0;
      const callSecrets: SecretInput[] = [];
      const uses: { path: string; at: number }[] = [];
      let baseSecrets: readonly SecretInput[] = NO_SECRETS;
      let secretName = false;

      const finish = async (result: 'allow' | 'deny' | 'error', code: string | undefined): Promise<void> => {
        const ms = performance.now() - started;
        calls?.inc({ result: code ? `${result}:${code}` : result });
        latency?.observe(ms / 1000);
        let argsValues: string | undefined;
        if (deps.auditArgumentValues) {
          // Scrubbed, then any credential shape the audit log refuses redacted (ADR 0041), so the
          // values never make the call's own event invalid.
          const scrubbed = redactCredentialLike(scrubberFor(baseSecrets, callSecrets).scrubText(argsJson).text);
          argsValues = scrubbed.length > MAX_ARGS_JSON ? `${scrubbed.slice(0, MAX_ARGS_JSON)}…` : scrubbed;
        }
        // What the agent actually got: the result as the tool gave it, the result with
        // redactions (and maybe items replaced by notices), or a refusal / an error.
        const outcome = result === 'deny' ? 'refused' : code === 'TESSERA_GATEWAY_REQUEST_CANCELLED' ? 'cancelled' : result === 'error' ? 'failed' : hitsCount > 0 ? 'redacted' : 'delivered';
        // The name is the agent's own text (the tool may not exist): audited as its HMAC when it
        // holds a credential shape, bounded otherwise (auditName).
        const label = tool ?? name;
        // A name refused because it holds an injected value has no shape auditName knows.
        const nameOf = (n: string): string => (secretName ? `hmac:${audit.hmac(n)}` : auditName(n));
        await audit.append({
          kind: 'gateway.tool_call', actor: actor(p), action: 'tool.call', resource: nameOf(tool !== undefined ? `${server}/${label}` : label), result,
          reason: { ...(decision?.policies.length ? { policies: decision.policies } : {}), ...(code ? { code } : {}) },
          ...(p.task ? { txn: p.task } : {}),
          ...(p.purpose ? { purpose: p.purpose } : {}),
          where: where(caller),
          details: {
            server: auditName(server), tool: nameOf(label), args_sha256: digest, ...(argsValues !== undefined ? { args_json: argsValues } : {}),
            decision: decision ? (decision.allowed ? 'allow' : decision.scopeDenied ? 'deny:scope' : 'deny') : 'none',
            upstream_status: upstreamStatus, outcome, latency_ms: Math.round(ms * 1000) / 1000, scrub_hits: hitsCount,
            ...(hitsCount > 0 ? { redactions: countHits(allHits) } : {}),
            ...(replaced > 0 ? { items_replaced: replaced } : {}),
            session_hmac: sessionHmac(caller.sessionId),
          },
        });
      };

      const noteHits = async (hits: readonly ScrubHit[], inError: boolean): Promise<void> => {
        if (!hits.length) return;
        hitsCount += hits.length;
        allHits.push(...hits);
        scrubs?.inc({ server }, hits.length);
        await auditHits(hits, server, tool ?? '(unresolved name)', caller, inError);
      };

      const scrub = async <T>(value: T, inError: boolean): Promise<T> => {
        const s = scrubberFor(baseSecrets, callSecrets).scrubValue(value);
        await noteHits(s.hits, inError);
        return s.value;
      };

      const refuse = async (err: TesseraError, result: 'deny' | 'error'): Promise<never> => {
        await finish(result, err.code);
        throw new RpcError(rpcCodeFor(err.code), err.message, { code: err.code, ...(caller.requestId ? { request_id: caller.requestId } : {}), ...(err.details ? { details: err.details } : {}) });
      };
      const notFound = (result: 'deny' | 'error'): Promise<never> =>
        refuse(new TesseraError('TESSERA_GATEWAY_TOOL_NOT_FOUND', `no tool "${name.slice(0, 200)}" is served to you; use a name as tools/list shows it (<server>__<tool>), or <server>/<tool>`), result);

      let listing: { tools: readonly GatewayTool[]; secrets: readonly SecretInput[]; held?: ReadonlyMap<string, Error> } | undefined;
      const list = async (): Promise<{ tools: readonly GatewayTool[]; secrets: readonly SecretInput[]; held?: ReadonlyMap<string, Error> }> => {
        try {
          listing ??= await toolsOf(server, caller, signal);
          return listing;
        } catch (e) {
          upstreamStatus = 'unavailable';
          const err = isTesseraError(e) ? e : new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${server}: the upstream failed`);
          return refuse(new TesseraError(err.code, await scrub(err.message, true), err.details), 'error');
        }
      };

      if (typeof rawArgs !== 'undefined' && rawArgs !== null && (typeof rawArgs !== 'object' || Array.isArray(rawArgs))) {
        return refuse(new TesseraError('TESSERA_TOOL_ARGS_INVALID', 'arguments: must be a JSON object'), 'error');
      }
      if (tooDeep) return refuse(new TesseraError('TESSERA_REQUEST_TOO_DEEP', `arguments: nested deeper than ${MAX_JSON_DEPTH} levels; flatten the structure`, { limit: MAX_JSON_DEPTH }), 'error');
      if (!parsed || (!upstreams.has(server) && !providers.has(server))) return notFound('error');

      if (tool === undefined) {
        // A shortened or hashed name: only the server's tool list says which tool it is. That list
        // is asked only for a caller who may use something on the server (no start otherwise).
        if (upstreams.has(server) && !mayUse(p, server)) return notFound('deny');
        const resolved = [...namesFor(server, (await list()).tools)].find(([, exposed]) => exposed === name);
        if (!resolved) return notFound('error');
        tool = resolved[0];
      }

      // A name no listing serves (outside the MCP rules, or credential-like) is refused as such,
      // before policy and before any upstream is started (ADR 0148).
      // One an upstream listed is named as refused; any other such name is simply unknown.
      if (nameFault(tool, NO_SECRETS) !== undefined) {
        if (!refusedSeen.get(server)?.has(tool)) return notFound('deny');
        return refuse(new TesseraError('TESSERA_GATEWAY_TOOL_NAME_REFUSED', `no tool "${server}/…" with that name is served: a tool name must be 1–128 characters of A–Z a–z 0–9 _ - . and must not look like a credential`), 'deny');
      }

      const request = { principal: p, action: 'tool.call', resource: { type: 'Tool', server, tool }, context: { args } } as const;
      try {
        decision = authorizer.authorize(request);
      } catch (e) {
        return refuse(isTesseraError(e) ? e : new TesseraError('TESSERA_INTERNAL', 'the policy request could not be built'), 'error');
      }
      if (!decision.allowed) {
        // A tool the caller cannot call with any argument is as invisible as an unknown one.
        if (!decision.scopeDenied && !visible(p, server, tool)) return notFound('deny');
        return refuse(refusalOf(decision, request, { denied: 'TESSERA_GATEWAY_TOOL_DENIED', tried: `to call ${server}/${tool} with these arguments` }), 'deny');
      }

      const { tools: defs, secrets, held } = await list();
      baseSecrets = secrets;
      const def = defs.find((t) => t.name === tool);
      // Held back by drift (changed since approved, or never approved): refused with drift's code.
      const heldBack = def ? undefined : held?.get(tool);
      if (heldBack) return refuse(isTesseraError(heldBack) ? heldBack : new TesseraError('TESSERA_GATEWAY_TOOL_NOT_FOUND', heldBack.message), 'deny');
      if (!def) {
        // Left out of the listing for its name (it holds a value injected into its upstream).
        if (refusedSeen.get(server)?.has(tool)) {
          secretName = true;
          return refuse(new TesseraError('TESSERA_GATEWAY_TOOL_NAME_REFUSED', `no tool "${server}/…" with that name is served: its name looks like a credential`), 'deny');
        }
        return notFound('error');
      }
      // A provider with its own validator (declarative tools) checks its arguments itself; an
      // upstream MCP tool's schema is checked here. Either way the message names the argument.
      const provider = providers.get(server);
      if (provider?.validateArgs) {
        try {
          provider.validateArgs(tool, args);
        } catch (e) {
          return refuse(isTesseraError(e) ? e : new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${server}/${tool}: its arguments cannot be checked`), 'error');
        }
      } else {
        let check: ReturnType<JsonSchemaValidator<unknown>>;
        try {
          check = validatorFor(`${server}/${tool}`, def.inputSchema)(args);
        } catch (e) {
          return refuse(isTesseraError(e) ? e : new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${server}/${tool}: the upstream's inputSchema cannot be used`), 'error');
        }
        if (!check.valid) return refuse(new TesseraError('TESSERA_TOOL_ARGS_INVALID', describeArgumentErrors(check.errorMessage, args, def.inputSchema)), 'error');
      }

      let result: ToolResult;
      try {
        const u = upstreams.get(server);
        if (u) {
          const called = await u.callTool(tool, args, caller, signal);
          // Embedded resources and resource links get their gateway URIs (ADR 0170), like prompts'.
          result = Array.isArray(called.result.content) ? { ...called.result, content: called.result.content.map((c) => federateItem(server, c)) } : called.result;
          // What the connection holds now: a value injected during the call (a refreshed task
          // token) is scrubbed too.
          baseSecrets = called.secrets;
        } else {
          const ctx: ToolCallContext = {
            principal: p,
            where: where(caller),
            signal,
            resolveSecret: async (path) => {
              const v = await deps.injector.resolveSecret(p, path, where(caller));
              callSecrets.push({ value: v, label: `kv/${path}` });
              if (deps.secretUses) uses.push({ path, at: deps.secretUses.now() });
              return v;
            },
            issueCredential: async (engine, role, ttlMs) => {
              const c = await deps.injector.issueCredential(p, engine, role, ttlMs, where(caller));
              for (const [k, x] of Object.entries(c.data)) if (typeof x === 'string') callSecrets.push({ value: x, label: `cred/${engine}/${role}/${k}` });
              return c;
            },
            revokeCredential: async (leaseId) => deps.injector.revokeLease(leaseId, p),
            addSensitive: (value) => {
              callSecrets.push({ value, label: 'sensitive' });
            },
            downstreamToken: (audience, ttlMs) => deps.injector.downstreamToken(p, audience, ttlMs, where(caller)),
          };
          try {
            result = await providers.get(server)!.callTool(tool, args, ctx);
          } finally {
            // Each injected secret was exposed to the upstream for the rest of the call.
            const su = deps.secretUses;
            if (su && uses.length) {
              const end = su.now();
              for (const u of uses) su.recordUse({ agent: p.spiffeId, task: p.task ?? null, root: p.rootTask ?? p.task ?? null, user: p.user ?? null, resource: `kv/${u.path} -> ${server}__${tool}`, startedAt: u.at, endedAt: end });
            }
          }
        }
        upstreamStatus = result.isError ? 'tool_error' : 'ok';
      } catch (e) {
        if (e instanceof UpstreamRpcError) {
          upstreamStatus = `rpc_error:${e.rpcCode}`;
          const message = await scrub(e.message, true);
          const data = e.data === undefined ? undefined : await scrub(e.data, true);
          await finish('error', 'TESSERA_GATEWAY_UPSTREAM_ERROR');
          throw new RpcError(e.rpcCode, message, { code: 'TESSERA_GATEWAY_UPSTREAM_ERROR', ...(caller.requestId ? { request_id: caller.requestId } : {}), ...(data !== undefined ? { upstream: data } : {}) });
        }
        const err = isTesseraError(e) ? e : new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${server}/${tool} failed`);
        if (!isTesseraError(e)) logger.warn({ server, tool, err: (e as Error).message?.slice(0, 300) }, 'gateway: tool failed');
        upstreamStatus = err.code === 'TESSERA_GATEWAY_UPSTREAM_TIMEOUT' || err.code === 'TESSERA_TOOL_TIMEOUT' ? 'timeout'
          : err.code === 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE' ? 'too_large'
            : err.code === 'TESSERA_TOKEN_REVOKED' || err.code === 'TESSERA_GATEWAY_REQUEST_CANCELLED' ? 'cancelled' : 'failed';
        const message = await scrub(err.message, true);
        return refuse(new TesseraError(err.code, message, err.details ? await scrub(err.details, true) : undefined), 'error');
      }
      const clean = scrubToolResult(scrubberFor(baseSecrets, callSecrets), result);
      replaced = clean.replaced;
      await noteHits(clean.hits, false);
      // A batch's results together are bounded (ADR 0141): one that does not fit is refused, audited as such.
      if (caller.budget && !caller.budget.charge(Buffer.byteLength(JSON.stringify(clean.value)))) return refuse(responseTooLarge(caller.budget.limit), 'error');
      await finish('allow', undefined);
      return clean.value;
    },
  };
}
