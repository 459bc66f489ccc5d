/**
 * The shape of every JSON-RPC message POSTed to `/mcp`, checked before the MCP SDK sees it
 * (issue 7 findings F3 and F12b, ADR 0141). Pure: no I/O, no state.
 *
 * The SDK validates params with its own zod schemas inside the request handler and answers a
 * mismatch as `-32603 Internal error` with the zod issues as text, before Tessera's code runs
 * (no Tessera code, no audit). Here every message is checked against JSON-RPC 2.0 and against
 * the SDK's own schema for the method — so whatever the SDK would refuse is refused first —
 * and a refusal names the field:
 *
 * - not a JSON-RPC 2.0 message (JSON-RPC 2.0 §4, §5): `-32600`, TESSERA_GATEWAY_REQUEST_INVALID;
 * - a method the gateway does not serve: `-32601`, TESSERA_GATEWAY_METHOD_NOT_FOUND;
 * - params of the wrong shape: `-32602`, TESSERA_GATEWAY_PARAMS_INVALID, `data.field`.
 */
import type { z } from 'zod';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ReadResourceRequestSchema,
  CancelledNotificationSchema,
  InitializedNotificationSchema,
  InitializeRequestSchema,
  JSONRPCMessageSchema,
  ListToolsRequestSchema,
  PingRequestSchema,
  ProgressNotificationSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  RootsListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { ErrorCode } from '../shared/errors.js';

/** JSON-RPC request id (MCP: a string or an integer, never null). */
export type RpcId = string | number;

export interface InboundMessage {
  readonly kind: 'request' | 'notification' | 'response';
  /** The method (requests and notifications). */
  readonly method?: string;
  /** The id (requests and responses). */
  readonly id?: RpcId;
}

/** A refused message: what to answer (JSON-RPC code, Tessera code, the field) and with which id. */
export class MessageRefusal extends Error {
  constructor(
    readonly rpcCode: number,
    readonly code: ErrorCode,
    message: string,
    readonly id: RpcId | null,
    /** Dotted path of the offending field (`params.name`), when one is at fault. */
    readonly field?: string,
    /** The method, when it is one the gateway knows (audited; an unknown one is not echoed). */
    readonly method?: string,
  ) {
    super(message);
    this.name = 'MessageRefusal';
  }
}

type Schema = Pick<z.ZodType, 'safeParse'>;

/** Requests the gateway answers, and the SDK schema each must satisfy (MCP schema 2025-11-25). */
const REQUESTS: Readonly<Record<string, Schema>> = {
  initialize: InitializeRequestSchema,
  ping: PingRequestSchema,
  'tools/list': ListToolsRequestSchema,
  'tools/call': CallToolRequestSchema,
  'resources/list': ListResourcesRequestSchema,
  'resources/templates/list': ListResourceTemplatesRequestSchema,
  'resources/read': ReadResourceRequestSchema,
  'prompts/list': ListPromptsRequestSchema,
  'prompts/get': GetPromptRequestSchema,
  'completion/complete': CompleteRequestSchema,
  'logging/setLevel': SetLevelRequestSchema,
  'resources/subscribe': SubscribeRequestSchema,
  'resources/unsubscribe': UnsubscribeRequestSchema,
};

/** Notifications the SDK server reads; others are ignored by it, so only their envelope matters. */
const NOTIFICATIONS: Readonly<Record<string, Schema>> = {
  'notifications/initialized': InitializedNotificationSchema,
  'notifications/cancelled': CancelledNotificationSchema,
  'notifications/progress': ProgressNotificationSchema,
  'notifications/roots/list_changed': RootsListChangedNotificationSchema,
};

/** Methods recorded by name in the audit log (anything else is agent-chosen text). */
export function knownMethod(method: unknown): string | undefined {
  return typeof method === 'string' && (method in REQUESTS || method in NOTIFICATIONS) ? method : undefined;
}

const RPC_INVALID_REQUEST = -32600;
const RPC_METHOD_NOT_FOUND = -32601;
const RPC_INVALID_PARAMS = -32602;

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  return `a ${typeof v}`;
}

const EXPECTED: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  object: 'a JSON object',
  record: 'a JSON object',
  array: 'an array',
};

/** The value at `path` inside `root` (only to say what kind of value it was, never echoed). */
function at(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

const isId = (v: unknown): v is RpcId => typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));

/** Shorthand for the id to echo: the message's own when it is a valid id, else null (JSON-RPC 2.0 §5). */
function idOf(m: unknown): RpcId | null {
  const id = m !== null && typeof m === 'object' && !Array.isArray(m) ? (m as { id?: unknown }).id : undefined;
  return isId(id) ? id : null;
}

/** A human sentence for the first zod issue: the field, what it must be, what it was. */
function describeIssue(method: string, root: unknown, issues: readonly z.core.$ZodIssue[]): { field: string; text: string } {
  const issue = issues[0]!;
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const field = path.length ? path.map(String).join('.') : 'params';
  const value = at(root, path);
  let rule: string;
  if (issue.code === 'invalid_type') {
    const expected = EXPECTED[String(issue.expected)] ?? String(issue.expected);
    rule = value === undefined ? `is required (${expected})` : `must be ${expected}, not ${kindOf(value)}`;
  } else if (issue.code === 'unrecognized_keys') rule = 'has fields the method does not take';
  else if (issue.code === 'invalid_union') rule = `has the wrong type (${kindOf(value)})`;
  else if (issue.code === 'too_big' || issue.code === 'too_small') rule = 'is out of range';
  else rule = 'is not valid';
  const hint = method === 'tools/call' && field === 'params.name' ? ' (the tool name, as tools/list shows it)' : method === 'tools/call' && field === 'params.arguments' ? ' (the tool arguments, a JSON object of argument name to value)' : '';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  return { field, text: `${method}: ${field} ${rule}${hint}${more}` };
}

/**
 * Checks one message; returns what it is or throws MessageRefusal. `where` prefixes the
 * message text inside a batch ("message 3 of the batch: …").
 */
export function checkMessage(m: unknown, where = ''): InboundMessage {
  const id = idOf(m);
  const invalid = (text: string, field?: string): MessageRefusal => new MessageRefusal(RPC_INVALID_REQUEST, 'TESSERA_GATEWAY_REQUEST_INVALID', `${where}${text}`, id, field);
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw invalid(`a JSON-RPC message must be a JSON object, not ${kindOf(m)}`);
  const msg = m as Record<string, unknown>;
  if (msg.jsonrpc !== '2.0') throw invalid('jsonrpc must be "2.0"', 'jsonrpc');
  const hasId = 'id' in msg;
  if (hasId && !isId(msg.id)) throw invalid(`id must be a string or an integer, not ${kindOf(msg.id)}`, 'id');
  if ('method' in msg) {
    if (typeof msg.method !== 'string' || msg.method.length === 0) throw invalid('method must be a non-empty string', 'method');
    if ('params' in msg && (msg.params === null || typeof msg.params !== 'object' || Array.isArray(msg.params))) {
      // MCP params are always by name (an object); JSON-RPC's by-position arrays are not used.
      const method = knownMethod(msg.method);
      throw new MessageRefusal(RPC_INVALID_PARAMS, 'TESSERA_GATEWAY_PARAMS_INVALID', `${where}${method ?? 'the method'}: params must be a JSON object, not ${kindOf(msg.params)}`, id, 'params', method);
    }
    const schemas = hasId ? REQUESTS : NOTIFICATIONS;
    const schema = schemas[msg.method];
    if (!schema) {
      // An unknown notification is ignored (JSON-RPC 2.0 §4.1: no answer); an unknown request is -32601.
      if (!hasId) return { kind: 'notification', method: msg.method };
      throw new MessageRefusal(RPC_METHOD_NOT_FOUND, 'TESSERA_GATEWAY_METHOD_NOT_FOUND', `${where}the gateway does not serve this method; it serves ${Object.keys(REQUESTS).join(', ')}`, id, 'method');
    }
    const r = schema.safeParse(msg);
    if (!r.success) {
      const { field, text } = describeIssue(msg.method, msg, r.error.issues);
      throw new MessageRefusal(RPC_INVALID_PARAMS, 'TESSERA_GATEWAY_PARAMS_INVALID', `${where}${text}`, id, field, msg.method);
    }
  }
  // The envelope as the SDK transport checks it (a response's result/error, no extra keys): a
  // message it would refuse with a bare "Parse error" is refused here with a code.
  if (!JSONRPCMessageSchema.safeParse(msg).success) {
    throw invalid(hasId && !('method' in msg) ? 'a response needs an id and exactly one of result and error (an object)' : 'not a JSON-RPC 2.0 request, notification or response (check for misspelled or extra fields)');
  }
  if (!('method' in msg)) return { kind: 'response', id: msg.id as RpcId };
  return hasId ? { kind: 'request', method: msg.method as string, id: msg.id as RpcId } : { kind: 'notification', method: msg.method as string };
}

export interface InboundBody {
  readonly messages: readonly InboundMessage[];
  /** The body was a JSON array (a JSON-RPC batch, JSON-RPC 2.0 §6). */
  readonly batch: boolean;
  /** Requests in it (the messages that get an answer and hold an in-flight place). */
  readonly requests: number;
}

/** Checks a POST body: one message or a batch (refused whole when one of its messages is). */
export function checkBody(body: unknown): InboundBody {
  if (!Array.isArray(body)) {
    const m = checkMessage(body);
    return { messages: [m], batch: false, requests: m.kind === 'request' ? 1 : 0 };
  }
  if (body.length === 0) throw new MessageRefusal(RPC_INVALID_REQUEST, 'TESSERA_GATEWAY_REQUEST_INVALID', 'an empty JSON array is not a JSON-RPC batch', null);
  const messages = body.map((m, i) => {
    try {
      return checkMessage(m, `message ${i + 1} of the batch: `);
    } catch (e) {
      // A batch is answered as a whole here: the refusal carries no single id.
      if (e instanceof MessageRefusal) throw new MessageRefusal(e.rpcCode, e.code, e.message, null, e.field, e.method);
      throw e;
    }
  });
  return { messages, batch: true, requests: messages.filter((m) => m.kind === 'request').length };
}

/** A key for a request id: 1 and "1" are different ids (JSON-RPC 2.0 §4). */
export function idKey(id: RpcId): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`;
}

/** Whether a request id is used twice among these messages, or by a request still in flight (keys: idKey). */
export function duplicateIds(messages: readonly InboundMessage[], inFlight: ReadonlySet<string>): boolean {
  const seen = new Set<string>();
  for (const m of messages) {
    if (m.kind !== 'request' || m.id === undefined) continue;
    const k = idKey(m.id);
    if (seen.has(k) || inFlight.has(k)) return true;
    seen.add(k);
  }
  return false;
}

/**
 * MCP 2025-06-18 removed JSON-RPC batching ("Remove support for JSON-RPC batching", changelog
 * of that revision); 2025-03-26 had it. Versions are ISO dates, so they compare as strings.
 */
export function batchingAllowed(protocolVersion: string): boolean {
  return protocolVersion < '2025-06-18';
}
