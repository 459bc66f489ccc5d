import type { CedarValueJson, Context, EntityJson, EntityUidJson } from '@cedar-policy/cedar-wasm/nodejs';
import { fail } from '../shared/errors.js';
import { jsonTextWellFormed } from '../shared/json-depth.js';
import { KUBERNETES_ATTRIBUTES, provenAttributes, type AgentPrincipal } from '../shared/principal.js';
import { POLICY_ACTIONS, type PolicyAction, type PolicyRequest, type ResourceRef } from './types.js';
import { kindsCoveredWhole } from './scope.js';

/** What one Cedar authorization call needs, built purely from a PolicyRequest. */
export interface CedarRequest {
  readonly principal: EntityUidJson & { type: string; id: string };
  readonly action: { type: string; id: string };
  readonly resource: EntityUidJson & { type: string; id: string };
  readonly context: Context;
  readonly entities: EntityJson[];
}

const NS = 'Tessera';
const uid = (type: string, id: string): { type: string; id: string } => ({ type: `${NS}::${type}`, id });

const LABEL_PREFIXES = ['label.', 'labels.', 'label:'];

/**
 * Names only Tessera's attestation sets: a label alias (`label.<k>` readable as `<k>`) never takes
 * one of them, so a CI claim or an operator label cannot pose as, say, the `namespace` tag.
 */
const RESERVED_TAGS = new Set<string>([...KUBERNETES_ATTRIBUTES, 'attestor', 'attestor_kind', 'issuer', 'trust_domain', 'spiffe_id', 'path']);

/**
 * The Agent entity (ADR 0021, docs/policies.md#agent-attributes). Every attribute comes from
 * what an attestor proved, never from the shape of the SPIFFE ID:
 * - `spiffe_id`, `trust_domain`, `path`: the verified SPIFFE ID;
 * - `attestor`, `attestor_kind`: who proved it ("" when unknown);
 * - `namespace`, `service_account`: from a `kubernetes` attestor's verified `kubernetes.io`
 *   claim, else "" — a path such as `/ci/x/ns/healthcare/sa/reader` implies nothing.
 * Attestation attributes are also tags; labels additionally as their plain name.
 */
export function agentEntity(p: Pick<AgentPrincipal, 'spiffeId' | 'trustDomain' | 'path' | 'attributes' | 'attestor' | 'attestorKind'>): EntityJson {
  const attrs = provenAttributes(p.attestorKind, p.attributes ?? {});
  const tags: Record<string, CedarValueJson> = {};
  for (const [k, v] of Object.entries(attrs)) tags[k] = String(v);
  for (const [k, v] of Object.entries(attrs)) {
    const prefix = LABEL_PREFIXES.find((x) => k.startsWith(x));
    const plain = prefix ? k.slice(prefix.length) : '';
    if (plain && !(plain in attrs) && !RESERVED_TAGS.has(plain)) tags[plain] = String(v);
  }
  const k8s = p.attestorKind === 'kubernetes';
  return {
    uid: uid('Agent', p.spiffeId),
    attrs: {
      spiffe_id: p.spiffeId,
      trust_domain: p.trustDomain,
      path: p.path,
      namespace: k8s ? (attrs['namespace'] ?? '') : '',
      service_account: k8s ? (attrs['service_account'] ?? '') : '',
      attestor: p.attestor ?? '',
      attestor_kind: p.attestorKind ?? '',
    },
    parents: [],
    tags,
  };
}

/**
 * The User entity of a person an agent acts for (docs/users.md, docs/policies.md#users): `id`,
 * `issuer` (the users.issuers name), the mapped claims as tags, the groups as `Group` parents
 * (flat: a group has no parents). Everything comes from the task token's `usr` claim, which
 * Tessera signed from a verified provider token.
 */
export function userEntities(p: Pick<AgentPrincipal, 'user' | 'userClaims'>): { uid: { type: string; id: string }; entities: EntityJson[] } {
  if (p.user === undefined || p.userClaims === undefined) throw fail('TESSERA_POLICY_REQUEST_INVALID', 'a user decision needs a principal acting for a user (a task token whose sub is a person)');
  const u = uid('User', p.user);
  const tags: Record<string, CedarValueJson> = {};
  for (const [k, v] of Object.entries(p.userClaims.attrs)) if (typeof v === 'string') tags[k] = v;
  const groups = p.userClaims.groups.map((g) => uid('Group', g));
  return {
    uid: u,
    entities: [
      { uid: u, attrs: { id: p.user, issuer: p.userClaims.issuer }, parents: groups, tags },
      ...p.userClaims.groups.map((g) => ({ uid: uid('Group', g), attrs: { name: g }, parents: [] })),
    ],
  };
}

/** `a/b/c` → Folder entities `a/b` (in `a`) and `a`; returns the direct parent uid list and all folder entities. */
function folders(path: string): { parents: EntityUidJson[]; entities: EntityJson[] } {
  const segs = path.split('/').filter(Boolean);
  const entities: EntityJson[] = [];
  for (let i = segs.length - 1; i >= 1; i--) {
    const p = segs.slice(0, i).join('/');
    const parent = i > 1 ? [uid('Folder', segs.slice(0, i - 1).join('/'))] : [];
    entities.push({ uid: uid('Folder', p), attrs: { path: p }, parents: parent });
  }
  return { parents: segs.length > 1 ? [uid('Folder', segs.slice(0, -1).join('/'))] : [], entities };
}

/** An item of an MCP server (Tool, Resource, Prompt): `<server>/<name>`, parent `Server::"<server>"`. */
function inServer(type: string, server: string, name: string, attrs: Record<string, CedarValueJson>): { uid: { type: string; id: string }; entities: EntityJson[] } {
  const u = uid(type, `${server}/${name}`);
  const s = uid('Server', server);
  return { uid: u, entities: [{ uid: u, attrs, parents: [s] }, { uid: s, attrs: { name: server }, parents: [] }] };
}

export function resourceEntities(r: ResourceRef): { uid: { type: string; id: string }; entities: EntityJson[] } {
  switch (r.type) {
    case 'Secret': {
      const path = r.path.replace(/^\/+|\/+$/g, '');
      const f = folders(path);
      const name = path.split('/').pop() ?? path;
      const u = uid('Secret', path);
      return { uid: u, entities: [{ uid: u, attrs: { path, name }, parents: f.parents }, ...f.entities] };
    }
    case 'Role': {
      const u = uid('Role', `${r.engine}/${r.role}`);
      const e = uid('Engine', r.engine);
      return { uid: u, entities: [{ uid: u, attrs: { engine: r.engine, name: r.role }, parents: [e] }, { uid: e, attrs: { name: r.engine }, parents: [] }] };
    }
    case 'AgentRole': {
      const u = uid('Role', r.name);
      return { uid: u, entities: [{ uid: u, attrs: { engine: '', name: r.name }, parents: [] }] };
    }
    case 'Tool':
      return inServer('Tool', r.server, r.tool, { server: r.server, name: r.tool });
    case 'Resource':
      return inServer('Resource', r.server, r.uri, { server: r.server, uri: r.uri });
    case 'Prompt':
      return inServer('Prompt', r.server, r.prompt, { server: r.server, name: r.prompt });
    case 'Server': {
      const u = uid('Server', r.server);
      return { uid: u, entities: [{ uid: u, attrs: { name: r.server }, parents: [] }] };
    }
    case 'Route': {
      const u = uid('Route', r.route);
      return { uid: u, entities: [{ uid: u, attrs: { name: r.route }, parents: [] }] };
    }
    case 'Agent': {
      // The delegatee of token.delegate: with its verified identity when its agent token was
      // presented (attributes as proven by its attestor), else only its SPIFFE ID (what-if).
      if (r.principal) {
        const e = agentEntity(r.principal);
        return { uid: e.uid as { type: string; id: string }, entities: [e] };
      }
      const m = /^spiffe:\/\/([^/]+)(\/.*)?$/.exec(r.spiffeId);
      const e = agentEntity({ spiffeId: r.spiffeId, trustDomain: m?.[1] ?? '', path: m?.[2] ?? '', attributes: {} });
      return { uid: e.uid as { type: string; id: string }, entities: [e] };
    }
    case 'SubAgent': {
      // Acts as the delegating agent: its identity attributes, and its own name.
      const u = uid('SubAgent', r.label);
      const attrs = r.actingAs ? agentEntity(r.actingAs).attrs : { spiffe_id: '', trust_domain: '', path: '', namespace: '', service_account: '', attestor: '', attestor_kind: '' };
      return { uid: u, entities: [{ uid: u, attrs: { ...attrs, name: r.label }, parents: [] }] };
    }
  }
}

/**
 * Tool arguments as a Cedar value. Cedar has no null, no floats and no lists: null is dropped,
 * non-integer or unsafe numbers become strings, arrays become sets, objects become records.
 */
export function toCedarValue(v: unknown, depth = 0): CedarValueJson | undefined {
  if (depth > 16) throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.args is nested more than 16 levels deep');
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : String(v);
  if (Array.isArray(v)) return v.map((x) => toCedarValue(x, depth + 1)).filter((x): x is CedarValueJson => x !== undefined);
  if (typeof v === 'object') {
    const out: Record<string, CedarValueJson> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      // `__entity` / `__extn` would be read by Cedar as an entity or extension value: refuse.
      if (k === '__entity' || k === '__extn') throw fail('TESSERA_POLICY_REQUEST_INVALID', `context.args may not contain the reserved key "${k}"`);
      const c = toCedarValue(x, depth + 1);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  throw fail('TESSERA_POLICY_REQUEST_INVALID', `context.args holds a value of type ${typeof v}, which Cedar cannot represent`);
}

/** Task facts as a Cedar record (string values only; the keys were validated at the edge). */
function tctxRecord(tctx: Readonly<Record<string, string>> | undefined): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = {};
  for (const [k, v] of Object.entries(tctx ?? {})) if (typeof v === 'string') out[k] = v;
  return out;
}

/** `context.delegation` of token.delegate: built by the token exchange, never by an agent. */
export interface DelegationContext {
  readonly scopes: readonly string[];
  readonly purpose: string;
  readonly depth: number;
  readonly max_depth: number;
  readonly bound: boolean;
  readonly tctx: Readonly<Record<string, string>>;
  /** The `tctx` keys this task adds to its parent's (a root task: all of its own); the delegator's word, not its parent's. */
  readonly added_facts?: readonly string[];
}

function delegationRecord(v: unknown): CedarValueJson {
  const d = v as Partial<DelegationContext> | null;
  if (!d || typeof d !== 'object' || !Array.isArray(d.scopes) || typeof d.purpose !== 'string' || !Number.isSafeInteger(d.depth) || !Number.isSafeInteger(d.max_depth) || typeof d.bound !== 'boolean') {
    throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.delegation needs scopes (strings), purpose, depth, max_depth, bound and tctx');
  }
  if (!d.scopes.every((x) => typeof x === 'string')) throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.delegation.scopes must be strings');
  const added = d.added_facts ?? Object.keys(d.tctx ?? {});
  if (!Array.isArray(added) || !added.every((x) => typeof x === 'string')) throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.delegation.added_facts must be strings');
  // covers_all: the kinds the scopes cover whole TOGETHER (glob containment, not string equality),
  // so a forbid on "a task on every secret" cannot be passed by `secret:**/**` or `secret:* secret:*/**`.
  return { scopes: [...d.scopes], covers_all: kindsCoveredWhole(d.scopes), purpose: d.purpose, depth: d.depth!, max_depth: d.max_depth!, bound: d.bound, tctx: tctxRecord(d.tctx), added_facts: [...added] };
}

/** `context.http` of http.request: built by the injection proxy (src/proxy/request.ts) or a what-if. */
export interface HttpRequestContext {
  readonly route: string;
  readonly method: string;
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly query_keys: readonly string[];
  /** The route's body_fields read from a JSON body (scalars). */
  readonly body: Readonly<Record<string, string | number | boolean>>;
  readonly tunnel: boolean;
}

/** The `http` record of a request that carries none (a what-if without one): empty values, so policies that read it do not error. */
export function emptyHttpContext(route: string): HttpRequestContext {
  return { route, method: '', host: '', port: 0, path: '', query_keys: [], body: {}, tunnel: false };
}

function httpRecord(v: unknown): CedarValueJson {
  const h = v as Partial<HttpRequestContext> | null;
  if (!h || typeof h !== 'object' || typeof h.route !== 'string' || typeof h.method !== 'string' || typeof h.host !== 'string' || !Number.isSafeInteger(h.port) || typeof h.path !== 'string' || !Array.isArray(h.query_keys) || typeof h.tunnel !== 'boolean') {
    throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.http needs route, method, host, port, path, query_keys (strings), body and tunnel');
  }
  if (!h.query_keys.every((x) => typeof x === 'string')) throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.http.query_keys must be strings');
  const body = toCedarValue(h.body ?? {});
  if (body === undefined || typeof body !== 'object' || Array.isArray(body)) throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.http.body must be an object');
  return { route: h.route, method: h.method, host: h.host, port: h.port!, path: h.path, query_keys: [...h.query_keys], body, tunnel: h.tunnel };
}

/**
 * Everything of a principal that Cedar can see (agentEntity, userEntities, buildContext), as one
 * string: the key of a cache of decisions that depend on the principal alone (the gateway's
 * "may this caller use that server" probe). Kept here, beside what it mirrors, so a new
 * principal field Cedar reads cannot be forgotten in the key.
 */
export function principalDecisionKey(p: AgentPrincipal): string {
  return JSON.stringify([
    p.spiffeId, p.trustDomain, p.path, p.attestor ?? null, p.attestorKind ?? null, sortedEntries(p.attributes),
    p.cnf !== undefined, p.task ?? null, p.rootTask ?? null, p.chain ?? [], p.scope ?? [], p.purpose ?? null, p.label ?? null,
    sortedEntries(p.tctx), p.user ?? null, p.role ?? null, p.userClaims ? [p.userClaims.issuer, sortedEntries(p.userClaims.attrs), [...p.userClaims.groups].sort()] : null,
  ]);
}

const sortedEntries = (o: Readonly<Record<string, unknown>> | undefined): [string, unknown][] => Object.entries(o ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

export function buildContext(principal: AgentPrincipal, extra: Readonly<Record<string, unknown>> | undefined): Context {
  const chain = principal.chain ?? [];
  const ctx: Context = {
    chain: [...chain],
    depth: chain.length,
    scopes: [...(principal.scope ?? [])],
    tctx: tctxRecord(principal.tctx),
    args: {},
    // Bound tokens are accepted only with a valid proof for the request (src/dpop/guard.ts).
    dpop: principal.cnf !== undefined,
  };
  if (principal.task !== undefined) ctx['task'] = principal.task;
  if (principal.rootTask !== undefined) ctx['root_task'] = principal.rootTask;
  if (chain.length > 0) {
    ctx['origin'] = chain[0]!;
    ctx['delegator'] = chain[chain.length - 1]!;
  }
  if (principal.label !== undefined) ctx['label'] = principal.label;
  if (principal.user !== undefined) ctx['user'] = principal.user;
  if (principal.purpose !== undefined) ctx['purpose'] = principal.purpose;
  if (principal.role !== undefined) ctx['role'] = principal.role;
  if (extra) {
    for (const [k, v] of Object.entries(extra)) {
      if (k === 'delegation') {
        if (v !== undefined) ctx['delegation'] = delegationRecord(v);
        continue;
      }
      if (k === 'http') {
        if (v !== undefined) ctx['http'] = httpRecord(v);
        continue;
      }
      if (k !== 'args') throw fail('TESSERA_POLICY_REQUEST_INVALID', `context key "${k}" is not settable by callers; only "args" is (task, chain, depth, label, tctx, user and scopes come from the token; "delegation" from the token exchange; "http" from the proxy)`);
      const a = toCedarValue(v);
      if (a === undefined) continue;
      if (typeof a !== 'object' || Array.isArray(a)) throw fail('TESSERA_POLICY_REQUEST_INVALID', 'context.args must be an object');
      ctx['args'] = a;
    }
  }
  return ctx;
}

export function toCedarRequest(req: PolicyRequest): CedarRequest {
  const request = buildCedarRequest(req);
  if (!jsonTextWellFormed(request)) throw notText();
  return request;
}

/**
 * The Cedar request and its decision cache key, the request's JSON text (docs/adr/0190-task-token-hot-path.md),
 * with toCedarRequest's unpaired-surrogate refusal read off that text instead of a second walk
 * of the request: JSON.stringify writes an unpaired surrogate (in a key or a value) as a `\udXXX`
 * escape and nothing else as one, so a text without `\ud` has none; a text with it (a surrogate,
 * or a string that spells a backslash-u) gets the full walk.
 */
export function toCedarRequestWithKey(req: PolicyRequest): { readonly request: CedarRequest; readonly key: string } {
  const request = buildCedarRequest(req);
  const key = JSON.stringify(request);
  if ((key.includes('\\ud') || key.includes('\\uD')) && !jsonTextWellFormed(request)) throw notText();
  return { request, key };
}

const notText = (): ReturnType<typeof fail> => fail('TESSERA_POLICY_REQUEST_INVALID', 'the policy request contains a string with an unpaired UTF-16 surrogate, which is not text');

function buildCedarRequest(req: PolicyRequest): CedarRequest {
  if (!(POLICY_ACTIONS as readonly string[]).includes(req.action)) {
    throw fail('TESSERA_POLICY_REQUEST_INVALID', `unknown action "${String(req.action)}"; expected one of ${POLICY_ACTIONS.join(', ')}`);
  }
  const forUser = req.principalKind === 'user';
  let principal: { uid: { type: string; id: string }; entities: EntityJson[] };
  if (forUser) principal = userEntities(req.principal);
  else {
    const agent = agentEntity(req.principal);
    principal = { uid: agent.uid as { type: string; id: string }, entities: [agent] };
  }
  const res = resourceEntities(req.resource);
  const entities = [...principal.entities];
  // token.delegate to oneself: do not list the same entity twice.
  for (const e of res.entities) if (forUser || !(req.resource.type === 'Agent' && req.resource.spiffeId === req.principal.spiffeId)) entities.push(e);
  const context = buildContext(req.principal, req.context);
  // resource.read: the upstream URI the agent asked for (the Resource's own, never agent-set).
  if (req.resource.type === 'Resource') context['uri'] = req.resource.uri;
  // http.request always carries `http` (the schema requires it): empty values when the caller gave none.
  if (req.action === 'http.request' && context['http'] === undefined) context['http'] = httpRecord(emptyHttpContext(req.resource.type === 'Route' ? req.resource.route : ''));
  // A person's decision: which agent acts for them.
  if (forUser) context['actor'] = req.principal.spiffeId;
  const request = {
    principal: principal.uid,
    action: uid('Action', req.action),
    resource: res.uid,
    context,
    entities,
  };
  // Cedar (and UTF-8) cannot carry an unpaired surrogate: the callers refuse it (toCedarRequest,
  // toCedarRequestWithKey), whatever brought it in (tool arguments, a what-if request, an
  // attestor's claims), instead of failing in the engine.
  return request;
}

const RESOURCE_TYPES = ['Secret', 'Role', 'Tool', 'Server', 'Route', 'Agent', 'SubAgent', 'Resource', 'Prompt'] as const;

/**
 * Parses the short form `Secret::healthcare/prod/x`, `Role::postgres/readonly`,
 * `Tool::records/query`, `Route::github`, `Agent::spiffe://…`, `SubAgent::summarizer`,
 * `Resource::docs/file:///srv/a.md` (server, then the upstream URI), `Prompt::docs/summarize` (an optional `Tessera::` prefix
 * and quotes around the id are accepted, so `Tessera::Secret::"a/b"` works too).
 */
export function parseResourceRef(text: string): ResourceRef {
  const m = /^(?:Tessera::)?(\w+)::(.+)$/.exec(text.trim());
  if (!m) throw fail('TESSERA_POLICY_REQUEST_INVALID', `resource "${text}" is not of the form Type::id, e.g. Secret::healthcare/prod/db`);
  const type = m[1]!;
  let id = m[2]!;
  if (id.length >= 2 && id.startsWith('"') && id.endsWith('"')) id = id.slice(1, -1);
  if (!id) throw fail('TESSERA_POLICY_REQUEST_INVALID', `resource "${text}" has an empty id`);
  const two = (what: string): [string, string] => {
    const i = id.indexOf('/');
    if (i <= 0 || i === id.length - 1) throw fail('TESSERA_POLICY_REQUEST_INVALID', `resource "${text}": a ${type} id is "<${what}>/<name>"`);
    return [id.slice(0, i), id.slice(i + 1)];
  };
  switch (type as (typeof RESOURCE_TYPES)[number]) {
    case 'Secret':
      return { type: 'Secret', path: id };
    case 'Role': {
      const [engine, role] = two('engine');
      return { type: 'Role', engine, role };
    }
    case 'Tool': {
      const [server, tool] = two('server');
      return { type: 'Tool', server, tool };
    }
    case 'Server':
      return { type: 'Server', server: id };
    case 'Route':
      return { type: 'Route', route: id };
    case 'Resource': {
      const [server, uri] = two('server');
      return { type: 'Resource', server, uri };
    }
    case 'Prompt': {
      const [server, prompt] = two('server');
      return { type: 'Prompt', server, prompt };
    }
    case 'Agent':
      return { type: 'Agent', spiffeId: id };
    case 'SubAgent':
      return { type: 'SubAgent', label: id };
    default:
      throw fail('TESSERA_POLICY_REQUEST_INVALID', `unknown resource type "${type}"; expected one of ${RESOURCE_TYPES.join(', ')}`);
  }
}

export function isPolicyAction(a: string): a is PolicyAction {
  return (POLICY_ACTIONS as readonly string[]).includes(a);
}
