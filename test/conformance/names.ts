/**
 * The one translation the conformance front makes besides adding the agent token (ADR 0181):
 * the suite was written for a single MCP server and sends the fixture's own names and URIs
 * (`test_simple_text`, `test_simple_prompt`, `test://static-text`), while the gateway federates
 * several upstreams: tools and prompts as `<server>__<name>` (docs/gateway.md "Tool names"),
 * resources as `tessera://<server>/<upstream URI>` (docs/gateway.md "Resources"). The front adds
 * the server part to what a client sends and removes it from the gateway's listings, reads and
 * update notifications; content (embedded resources, messages) and everything else pass unchanged.
 */
type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface NameMapping {
  /** A JSON-RPC message the client sends to the gateway. */
  toGateway(message: unknown): unknown;
  /** A message the gateway sends back; `answered` is the client request the HTTP exchange carried. */
  toClient(message: unknown, answered?: { id: unknown; method: string }): unknown;
}

/** Adds and removes a fixed prefix on strings (other values pass unchanged). */
function affix(prefix: string): { add(v: unknown): unknown; strip(v: unknown): unknown } {
  return {
    add: (v) => (typeof v === 'string' ? prefix + v : v),
    strip: (v) => (typeof v === 'string' && v.startsWith(prefix) ? v.slice(prefix.length) : v),
  };
}

/** `list` with `field` of each object item mapped. */
function mapField(list: unknown, field: string, f: (v: unknown) => unknown): unknown {
  return Array.isArray(list) ? list.map((x) => (isObject(x) && field in x ? { ...x, [field]: f(x[field]) } : x)) : list;
}

/** The mapping for one upstream `server` behind the gateway. */
export function serverMapping(server: string): NameMapping {
  const name = affix(`${server}__`);
  const uri = affix(`tessera://${server}/`);
  const params = (m: Json, p: Json): Json => ({ ...m, params: p });
  const result = (m: Json, r: Json): Json => ({ ...m, result: r });

  return {
    toGateway(message) {
      if (!isObject(message) || !isObject(message.params)) return message;
      const p = message.params;
      switch (message.method) {
        case 'tools/call':
        case 'prompts/get':
          return params(message, { ...p, name: name.add(p.name) });
        case 'resources/read':
        case 'resources/subscribe':
        case 'resources/unsubscribe':
          return params(message, { ...p, uri: uri.add(p.uri) });
        case 'completion/complete': {
          if (!isObject(p.ref)) return message;
          const ref = p.ref.type === 'ref/prompt' ? { ...p.ref, name: name.add(p.ref.name) } : { ...p.ref, uri: uri.add(p.ref.uri) };
          return params(message, { ...p, ref });
        }
        default:
          return message;
      }
    },
    toClient(message, answered) {
      if (!isObject(message)) return message;
      if (message.method === 'notifications/resources/updated' && isObject(message.params)) return params(message, { ...message.params, uri: uri.strip(message.params.uri) });
      if (!answered || message.id !== answered.id || !isObject(message.result)) return message;
      const r = message.result;
      switch (answered.method) {
        case 'tools/list': return result(message, { ...r, tools: mapField(r.tools, 'name', name.strip) });
        case 'prompts/list': return result(message, { ...r, prompts: mapField(r.prompts, 'name', name.strip) });
        case 'resources/list': return result(message, { ...r, resources: mapField(r.resources, 'uri', uri.strip) });
        case 'resources/templates/list': return result(message, { ...r, resourceTemplates: mapField(r.resourceTemplates, 'uriTemplate', uri.strip) });
        case 'resources/read': return result(message, { ...r, contents: mapField(r.contents, 'uri', uri.strip) });
        default: return message;
      }
    },
  };
}
