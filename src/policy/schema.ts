/**
 * Tessera's Cedar schema (Cedar schema format, https://docs.cedarpolicy.com/schema/human-readable-schema.html).
 * Every policy file is validated against it in strict mode before it is loaded.
 *
 * `context.args` (and `context.tctx`, `context.delegation.tctx`) is declared as an empty record: tool arguments are open-ended (each MCP tool
 * has its own input schema), and Cedar 4's validator does not support open records
 * (`additionalAttributes` needs the experimental `partial-validate` feature). Instead the
 * loader tolerates exactly one validation error class: "attribute `args.<name>` in context …
 * not found" (see loader.ts `isTolerated`). Every other mistake, including a typo such as
 * `context.argz`, is still rejected. At run time a policy that reads an argument the call does
 * not carry errors and is skipped; a `forbid` that errors denies (engine.ts, fail closed).
 */
export const CEDAR_NAMESPACE = 'Tessera';

/**
 * The schema for one kind of principal. Policies are partitioned by their principal scope
 * (loader.ts principalKindOf): a policy whose scope names `Tessera::User` or `Tessera::Group`
 * decides a person's entitlement and is validated with principal `User`; every other policy
 * decides for the acting workload, with principal `Agent` (docs/adr/0130-users-on-behalf-of.md).
 */
/** `context.actor`: set in (and only in) a person's decisions, so required there and absent for agents. */
function actorField(principal: 'Agent' | 'User', comment: string): string {
  return principal === 'User' ? `\n    actor: String,${comment ? `        ${comment}` : ''}` : '';
}

/**
 * The identity attributes of an `Agent`, which a `SubAgent` (acting as the delegating agent) carries
 * too: policy/entities.ts fills both from the same principal.
 */
const IDENTITY_ATTRIBUTES = `spiffe_id: String,
    trust_domain: String,
    path: String,
    namespace: String,
    service_account: String,
    attestor: String,
    attestor_kind: String,`;

/** The fields every request context has (RequestContext, and the start of the others). */
function requestContextFields(principal: 'Agent' | 'User'): string {
  return `task?: String,          // task id (txn) of a task token
    root_task?: String,     // its root task id (rtxn)
    chain: Set<String>,     // SPIFFE IDs of the delegation chain (a set: Cedar has no lists)
    origin?: String,        // first (outermost) member of the chain
    delegator?: String,     // last member of the chain: who delegated to this agent
    depth: Long,            // length of the delegation chain (0 for a plain agent token)
    label?: String,         // the acting sub-agent's label, when it has no identity of its own
    user?: String,          // the user the task acts for${actorField(principal, '  // User policies only: the SPIFFE ID of the agent acting for the person')}
    purpose?: String,       // stated task purpose
    role?: String,          // the role the acting agent assumed at login (scope=role:<name>, role.assume)
    scopes: Set<String>,    // scope strings carried by the token ([] when unrestricted)
    tctx: {},               // task facts (open, like args; {} for an agent token)
    args: {},               // tool-call or prompts/get arguments (open: see the schema comment in schema.ts)
    dpop: Bool,             // the token is DPoP-bound and this request carried a valid proof (RFC 9449)`;
}

function schemaFor(principal: 'Agent' | 'User'): string {
  return `namespace Tessera {
  // A person on whose behalf agents act (a task token whose \`sub\` is a user, docs/users.md).
  // id: the user id (users.issuers[].user_id_prefix + the user-id claim); issuer: the
  // users.issuers name. Claims mapped by users.issuers[].attributes are tags
  // (principal.getTag("department")); the groups claim gives the Group parents.
  entity Group { name: String };
  entity User in [Group] { id: String, issuer: String } tags String;

  // An agent: attributes come only from what its attestor proved (docs/adr/0021); labels are
  // tags, read with principal.hasTag("team") && principal.getTag("team") == "records".
  // attestor is the attestor's configured name; attestor_kind is "join_token", "kubernetes",
  // "jwt" (OIDC/CI templates) or "spiffe". namespace / service_account come only from a
  // "kubernetes" attestor (never from the SPIFFE path); otherwise, and when unknown, "".
  // Pin trust_domain and attestor in every policy that grants something.
  entity Agent {
    ${IDENTITY_ATTRIBUTES}
  } tags String;

  // Secrets live in folders: Secret::"healthcare/prod/db" in Folder::"healthcare/prod"
  // in Folder::"healthcare".
  entity Folder in [Folder] { path: String };
  entity Secret in [Folder] { path: String, name: String };

  // Dynamic credentials: Role::"postgres/readonly" in Engine::"postgres".
  entity Engine { name: String };
  entity Role in [Engine] { engine: String, name: String };

  // MCP tools: Tool::"records/query" in Server::"records".
  entity Server { name: String };
  entity Tool in [Server] { server: String, name: String };

  // MCP resources and prompts of a server (docs/gateway.md): Resource::"docs/file:///srv/a.md"
  // (server, then the upstream URI) in Server::"docs"; Prompt::"docs/summarize" in Server::"docs".
  entity Resource in [Server] { server: String, uri: String };
  entity Prompt in [Server] { server: String, name: String };

  // Egress proxy routes (a configured route name, or a host).
  entity Route { name: String };

  // A sub-agent without an identity of its own, named by the label its parent gave it when it
  // delegated to it (the resource of token.delegate without an actor token; docs/tasks.md). It
  // acts as the delegating agent, so it carries that agent's identity attributes besides its name.
  entity SubAgent {
    name: String,
    ${IDENTITY_ATTRIBUTES}
  };

  // token.delegate only: the task being opened (a root task) or delegated (a child).
  type Delegation = {
    scopes: Set<String>,    // the scope strings requested for the new task (as sent: compare with care)
    covers_all: Set<String>, // the kinds ("secret", "tool", "cred", "http", "resource", "prompt") these scopes cover whole, together
    purpose: String,        // its purpose
    depth: Long,            // its depth (0 for a root task)
    max_depth: Long,        // the bound of its subtree
    bound: Bool,            // sender-constrained (DPoP, cnf.jkt)
    tctx: {},               // its task facts (open, like args)
    added_facts: Set<String>, // the tctx keys this delegation adds (a root task: all): the delegator's word
  };

  type RequestContext = {
    ${requestContextFields(principal)}
  };

  // resource.read: the request's context plus the upstream URI asked for (also Resource.uri).
  type ResourceContext = {
    ${requestContextFields(principal)}
    uri: String,            // the upstream resource URI (a resource template's URI template for completion/complete)
  };

  // http.request (the injection proxy, docs/proxy.md): the request's context plus the HTTP request.
  type HttpRequest = {
    route: String,          // the route name (for a CONNECT tunnel without a route: the host)
    method: String,         // the method, upper case ("GET", "POST")
    host: String,           // the upstream host name the request goes to (lower case)
    port: Long,             // its port
    path: String,           // the path as sent to the upstream (percent-encoding kept), without the query
    query_keys: Set<String>, // the names of the query parameters (never their values)
    body: {},               // the route's body_fields read from a JSON body (open, like args; {} otherwise)
    tunnel: Bool,           // a CONNECT tunnelled untouched (no route; nothing else is known)
  };
  type HttpContext = {
    ${requestContextFields(principal)}
    http: HttpRequest,
  };

  // token.delegate: the delegating agent's context (as above) plus the task being created.
  type DelegateContext = {
    ${requestContextFields(principal)}
    delegation: Delegation,
  };

  action "secret.read" appliesTo { principal: [${principal}], resource: [Secret], context: RequestContext };
  action "secret.inject" appliesTo { principal: [${principal}], resource: [Secret], context: RequestContext };
  action "cred.issue" appliesTo { principal: [${principal}], resource: [Role], context: RequestContext };
  action "tool.call" appliesTo { principal: [${principal}], resource: [Tool], context: RequestContext };
  action "http.request" appliesTo { principal: [${principal}], resource: [Route], context: HttpContext };
  action "resource.read" appliesTo { principal: [${principal}], resource: [Resource], context: ResourceContext };
  action "prompt.get" appliesTo { principal: [${principal}], resource: [Prompt], context: RequestContext };
  // An upstream server asks the agent's client: its model (sampling) or its user (elicitation). ADR 0175.
  action "upstream.sample" appliesTo { principal: [${principal}], resource: [Server], context: RequestContext };
  action "upstream.elicit" appliesTo { principal: [${principal}], resource: [Server], context: RequestContext };
  action "token.delegate" appliesTo { principal: [${principal}], resource: [Agent, SubAgent], context: DelegateContext };
  // At login (scope=role:<name>): may this agent assume Role::"<name>"? docs/policies.md#roles.
  action "role.assume" appliesTo { principal: [${principal}], resource: [Role], context: RequestContext };
}
`;
}

/** Workload policies: principal `Agent` (the acting agent). */
export const SCHEMA_TEXT = schemaFor('Agent');
/** User policies (scope names `Tessera::User` / `Tessera::Group`): principal `User` (the person an agent acts for). */
export const USER_SCHEMA_TEXT = schemaFor('User');
