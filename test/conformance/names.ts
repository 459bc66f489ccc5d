/**
 * The one translation the conformance front makes besides adding the agent token (ADR 0181):
 * the suite was written for a single MCP server and calls the fixture's own names
 * (`test_simple_text`, `test_simple_prompt`), while the gateway federates several upstreams and
 * names them `<server>__<name>` (docs/gateway.md "Tool names"). The front adds that prefix to
 * the names a client sends and removes it from the names the gateway lists, and does nothing
 * else: every other byte, URI and field passes unchanged.
 */
type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface NameMapping {
  /** A JSON-RPC message the client sends to the gateway. */
  toGateway(message: unknown): unknown;
  /** A message the gateway sends back; `method` is that of the client request the HTTP exchange carried. */
  toClient(message: unknown, answered?: { id: unknown; method: string }): unknown;
}

export function prefixMapping(server: string): NameMapping {
  const prefix = `${server}__`;
  const add = (name: unknown): unknown => (typeof name === 'string' ? prefix + name : name);
  const strip = (name: unknown): unknown => (typeof name === 'string' && name.startsWith(prefix) ? name.slice(prefix.length) : name);
  const stripAll = (list: unknown): unknown => (Array.isArray(list) ? list.map((x) => (isObject(x) ? { ...x, name: strip(x.name) } : x)) : list);

  return {
    toGateway(message) {
      if (!isObject(message) || !isObject(message.params)) return message;
      const p = message.params;
      if (message.method === 'tools/call' || message.method === 'prompts/get') return { ...message, params: { ...p, name: add(p.name) } };
      if (message.method === 'completion/complete' && isObject(p.ref) && p.ref.type === 'ref/prompt') return { ...message, params: { ...p, ref: { ...p.ref, name: add(p.ref.name) } } };
      return message;
    },
    toClient(message, answered) {
      if (!answered || !isObject(message) || message.id !== answered.id || !isObject(message.result)) return message;
      const r = message.result;
      if (answered.method === 'tools/list') return { ...message, result: { ...r, tools: stripAll(r.tools) } };
      if (answered.method === 'prompts/list') return { ...message, result: { ...r, prompts: stripAll(r.prompts) } };
      return message;
    },
  };
}
