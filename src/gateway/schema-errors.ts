/**
 * Ajv's summary of failed JSON Schema checks (`errorsText`: "data/days must be <= 14, data must
 * NOT have additional properties"), rewritten the way Tessera names arguments everywhere
 * (src/gateway/tools/json-schema.ts, docs/gateway-tools.md): `argument "days": must be <= 14`,
 * `argument "extra": is not allowed: the tool declares no such argument`,
 * `argument "city": is required`. Used for upstream MCP tools, whose schemas Ajv checks; Ajv's
 * "additional properties" line names no property, so the extra names are found by reading the
 * arguments against the schema at that place. Pure.
 */

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON Pointer (RFC 6901) segments → `a.b[0].c`. */
function pathOf(segments: readonly string[]): string {
  let out = '';
  for (const s of segments) out += /^\d+$/.test(s) ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

const label = (path: string): string => (path === '' ? 'arguments' : `argument "${path}"`);

/** The value and the schema at a pointer (following `properties` and `items`). */
function at(args: unknown, schema: unknown, segments: readonly string[]): { value: unknown; schema: unknown } {
  let value = args;
  let node = schema;
  for (const s of segments) {
    value = Array.isArray(value) ? value[Number(s)] : isObj(value) ? value[s] : undefined;
    if (!isObj(node)) node = undefined;
    else if (/^\d+$/.test(s) && node.items !== undefined) node = node.items;
    else node = isObj(node.properties) ? node.properties[s] : undefined;
  }
  return { value, schema: node };
}

/** One line per failed check, joined with "; ", at most `max` characters. */
export function describeArgumentErrors(errorsText: string, args: unknown, schema: unknown, max = 500): string {
  const lines: string[] = [];
  for (const part of errorsText.split(/, (?=data(?:\/|\s))/)) {
    const m = /^data((?:\/\S*)?) ([\s\S]*)$/.exec(part);
    if (!m) {
      lines.push(`arguments: ${part}`);
      continue;
    }
    const segments = m[1] ? m[1].slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')) : [];
    const path = pathOf(segments);
    const problem = m[2]!;
    const required = /^must have required property '(.*)'$/.exec(problem);
    if (required) {
      lines.push(`${label(pathOf([...segments, required[1]!]))}: is required`);
    } else if (problem === 'must NOT have additional properties') {
      const here = at(args, schema, segments);
      const declared = isObj(here.schema) && isObj(here.schema.properties) ? here.schema.properties : {};
      const extra = isObj(here.value) ? Object.keys(here.value).filter((k) => !Object.hasOwn(declared, k)) : [];
      if (extra.length === 0) lines.push(`${label(path)}: has an argument that is not allowed`);
      for (const k of extra) lines.push(`${label(pathOf([...segments, k]))}: is not allowed: the tool declares no such argument`);
    } else {
      lines.push(`${label(path)}: ${problem}`);
    }
  }
  const text = [...new Set(lines)].join('; ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
