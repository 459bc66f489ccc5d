/**
 * A small, strict JSON Schema subset for declarative tool arguments.
 *
 * Why not `z.fromJSONSchema` (present in the installed zod 4)? It silently accepts keywords it
 * does not enforce, and an operator reading `inputSchema` must be able to trust that every
 * constraint written there is checked before Tessera acts. So this validator:
 *  - refuses, at config load, any keyword it does not enforce (e.g. `oneOf`, `$ref`), except the
 *    pure annotations listed in ANNOTATIONS (JSON Schema 2020-12 core §7.7 / validation §9);
 *  - closes objects: when `additionalProperties` is absent it is set to `false`, and the
 *    normalised schema is the one advertised in `tools/list`, so what clients see is what runs;
 *  - names the argument in every error (`argument "days": must be <= 14`).
 *
 * Semantics follow JSON Schema 2020-12 validation (draft-bhutton-json-schema-validation-01)
 * §6.1 (type, enum, const), §6.2 (numbers), §6.3 (strings; lengths count code points), §6.4
 * (arrays), §6.5 (objects), and core §10.3 (properties, additionalProperties, items).
 */
import { fail } from '../../shared/errors.js';
import { count } from '../../shared/plural.js';

export type JsonSchema = Readonly<Record<string, unknown>>;

const TYPES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'] as const;
type JsonType = (typeof TYPES)[number];

const ENFORCED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern',
  'minItems', 'maxItems', 'uniqueItems',
]);
/** Annotations: allowed, never enforced (`format` is an annotation by default in 2020-12 §7.2.1). */
const ANNOTATIONS = new Set(['$schema', 'title', 'description', 'default', 'examples', 'format', 'deprecated', 'readOnly', 'writeOnly', '$comment']);

/** A compiled schema: `validate` throws TESSERA_TOOL_ARGS_INVALID naming the argument. */
export interface ArgValidator {
  /** The normalised schema (objects closed), to advertise as MCP `inputSchema`. */
  readonly schema: JsonSchema;
  validate(value: unknown): void;
}

interface Node {
  readonly types?: readonly JsonType[];
  readonly properties?: ReadonlyMap<string, Node>;
  readonly required?: readonly string[];
  readonly additional?: Node | false;
  readonly items?: Node;
  readonly enumValues?: readonly unknown[];
  readonly constValue?: { readonly value: unknown };
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: RegExp;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly uniqueItems?: boolean;
}

class SchemaError extends Error {}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function compileNode(raw: unknown, at: string, depth: number): { node: Node; normalised: Record<string, unknown> } {
  if (depth > 16) throw new SchemaError(`${at}: schema nested deeper than 16 levels`);
  if (!isObj(raw)) throw new SchemaError(`${at}: a schema must be an object`);
  const out: Record<string, unknown> = {};
  const node: { -readonly [K in keyof Node]: Node[K] } = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!ENFORCED.has(k) && !ANNOTATIONS.has(k)) {
      throw new SchemaError(`${at}: keyword "${k}" is not supported (supported: ${[...ENFORCED].join(', ')}; annotations: ${[...ANNOTATIONS].join(', ')})`);
    }
    if (ANNOTATIONS.has(k)) out[k] = v;
  }
  if (raw.type !== undefined) {
    const types = Array.isArray(raw.type) ? raw.type : [raw.type];
    if (types.length === 0 || !types.every((t): t is JsonType => typeof t === 'string' && (TYPES as readonly string[]).includes(t))) {
      throw new SchemaError(`${at}.type: expected one of ${TYPES.join(', ')} (or an array of them)`);
    }
    node.types = types;
    out.type = raw.type;
  }
  const num = (k: 'minimum' | 'maximum' | 'exclusiveMinimum' | 'exclusiveMaximum'): void => {
    const v = raw[k];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchemaError(`${at}.${k}: expected a number`);
    node[k] = v;
    out[k] = v;
  };
  num('minimum');
  num('maximum');
  num('exclusiveMinimum');
  num('exclusiveMaximum');
  const count = (k: 'minLength' | 'maxLength' | 'minItems' | 'maxItems'): void => {
    const v = raw[k];
    if (v === undefined) return;
    if (!nonNegInt(v)) throw new SchemaError(`${at}.${k}: expected a non-negative integer`);
    node[k] = v;
    out[k] = v;
  };
  count('minLength');
  count('maxLength');
  count('minItems');
  count('maxItems');
  if (raw.pattern !== undefined) {
    if (typeof raw.pattern !== 'string') throw new SchemaError(`${at}.pattern: expected a string`);
    try {
      // ECMA-262 regular expressions, as JSON Schema validation §4.3 prescribes; unanchored.
      node.pattern = new RegExp(raw.pattern, 'u');
    } catch (e) {
      throw new SchemaError(`${at}.pattern: invalid regular expression: ${(e as Error).message}`);
    }
    out.pattern = raw.pattern;
  }
  if (raw.uniqueItems !== undefined) {
    if (typeof raw.uniqueItems !== 'boolean') throw new SchemaError(`${at}.uniqueItems: expected a boolean`);
    node.uniqueItems = raw.uniqueItems;
    out.uniqueItems = raw.uniqueItems;
  }
  if (raw.enum !== undefined) {
    if (!Array.isArray(raw.enum) || raw.enum.length === 0) throw new SchemaError(`${at}.enum: expected a non-empty array`);
    node.enumValues = raw.enum;
    out.enum = raw.enum;
  }
  if ('const' in raw) {
    node.constValue = { value: raw.const };
    out.const = raw.const;
  }
  const isObjectSchema = node.types?.includes('object') || raw.properties !== undefined;
  if (raw.properties !== undefined) {
    if (!isObj(raw.properties)) throw new SchemaError(`${at}.properties: expected an object`);
    const props = new Map<string, Node>();
    const normProps: Record<string, unknown> = {};
    for (const [name, sub] of Object.entries(raw.properties)) {
      const c = compileNode(sub, `${at}.properties.${name}`, depth + 1);
      props.set(name, c.node);
      normProps[name] = c.normalised;
    }
    node.properties = props;
    out.properties = normProps;
  }
  if (raw.required !== undefined) {
    if (!Array.isArray(raw.required) || !raw.required.every((r) => typeof r === 'string')) throw new SchemaError(`${at}.required: expected an array of property names`);
    const declared = node.properties ?? new Map();
    for (const r of raw.required as string[]) if (!declared.has(r)) throw new SchemaError(`${at}.required: "${r}" is not declared in properties`);
    node.required = raw.required as string[];
    out.required = raw.required;
  }
  if (raw.additionalProperties !== undefined) {
    if (typeof raw.additionalProperties === 'boolean') {
      node.additional = raw.additionalProperties ? {} : false;
      out.additionalProperties = raw.additionalProperties;
    } else {
      const c = compileNode(raw.additionalProperties, `${at}.additionalProperties`, depth + 1);
      node.additional = c.node;
      out.additionalProperties = c.normalised;
    }
  } else if (isObjectSchema) {
    // Closed by default: an undeclared argument could otherwise ride into a JSON body unreviewed.
    node.additional = false;
    out.additionalProperties = false;
  }
  if (raw.items !== undefined) {
    const c = compileNode(raw.items, `${at}.items`, depth + 1);
    node.items = c.node;
    out.items = c.normalised;
  }
  return { node, normalised: out };
}

function typeOf(v: unknown): JsonType | 'unknown' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  switch (typeof v) {
    case 'string': return 'string';
    case 'boolean': return 'boolean';
    case 'number': return Number.isInteger(v) ? 'integer' : 'number';
    case 'object': return 'object';
    default: return 'unknown';
  }
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => jsonEqual(x, (b as unknown[])[i]));
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b as object, k) && jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const label = (path: string): string => (path === '' ? 'arguments' : `argument "${path}"`);
const bad = (path: string, problem: string): never => {
  throw fail('TESSERA_TOOL_ARGS_INVALID', `${label(path)}: ${problem}`, { argument: path || null });
};

function check(node: Node, v: unknown, path: string, depth: number): void {
  if (depth > 32) bad(path, 'nested too deeply');
  const t = typeOf(v);
  if (t === 'unknown') bad(path, 'is not a JSON value');
  if (node.types && !node.types.some((want) => want === t || (want === 'number' && t === 'integer'))) {
    bad(path, `must be of type ${node.types.join(' or ')}, got ${t}`);
  }
  if (node.enumValues && !node.enumValues.some((e) => jsonEqual(e, v))) bad(path, `must be one of ${node.enumValues.map((e) => JSON.stringify(e)).join(', ')}`);
  if (node.constValue && !jsonEqual(node.constValue.value, v)) bad(path, `must equal ${JSON.stringify(node.constValue.value)}`);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) bad(path, 'must be a finite number');
    if (node.minimum !== undefined && v < node.minimum) bad(path, `must be >= ${node.minimum}`);
    if (node.maximum !== undefined && v > node.maximum) bad(path, `must be <= ${node.maximum}`);
    if (node.exclusiveMinimum !== undefined && v <= node.exclusiveMinimum) bad(path, `must be > ${node.exclusiveMinimum}`);
    if (node.exclusiveMaximum !== undefined && v >= node.exclusiveMaximum) bad(path, `must be < ${node.exclusiveMaximum}`);
  }
  if (typeof v === 'string') {
    const len = [...v].length; // code points (validation §6.3.1)
    if (node.minLength !== undefined && len < node.minLength) bad(path, `must be at least ${count(node.minLength, 'character')}`);
    if (node.maxLength !== undefined && len > node.maxLength) bad(path, `must be at most ${count(node.maxLength, 'character')}`);
    if (node.pattern && !node.pattern.test(v)) bad(path, `must match the pattern ${node.pattern.source}`);
  }
  if (Array.isArray(v)) {
    if (node.minItems !== undefined && v.length < node.minItems) bad(path, `must have at least ${count(node.minItems, 'item')}`);
    if (node.maxItems !== undefined && v.length > node.maxItems) bad(path, `must have at most ${count(node.maxItems, 'item')}`);
    if (node.uniqueItems) {
      for (let i = 0; i < v.length; i++) for (let j = i + 1; j < v.length; j++) if (jsonEqual(v[i], v[j])) bad(path, `items ${i} and ${j} are equal but must be unique`);
    }
    if (node.items) v.forEach((item, i) => check(node.items!, item, `${path}[${i}]`, depth + 1));
  }
  if (isObj(v)) {
    for (const r of node.required ?? []) if (!Object.hasOwn(v, r)) bad(path ? `${path}.${r}` : r, 'is required');
    for (const [k, sub] of Object.entries(v)) {
      const childPath = path ? `${path}.${k}` : k;
      const declared = node.properties?.get(k);
      if (declared) check(declared, sub, childPath, depth + 1);
      else if (node.additional === false) bad(childPath, 'is not allowed: the tool declares no such argument');
      else if (node.additional) check(node.additional, sub, childPath, depth + 1);
    }
  }
}

/**
 * Compiles a tool's argument schema. The root must be `type: object`. Throws a plain Error with
 * the keyword path on a schema the validator cannot enforce (config load turns it into a zod issue).
 */
export function compileArgSchema(schema: unknown): ArgValidator {
  let compiled: { node: Node; normalised: Record<string, unknown> };
  try {
    compiled = compileNode(schema, 'input_schema', 0);
  } catch (e) {
    if (e instanceof SchemaError) throw new Error(e.message, { cause: e });
    throw e;
  }
  if (!compiled.node.types || compiled.node.types.length !== 1 || compiled.node.types[0] !== 'object') {
    throw new Error('input_schema: the root must be `type: object` (MCP tools/list inputSchema)');
  }
  const { node, normalised } = compiled;
  return {
    schema: normalised,
    validate: (value) => check(node, value, '', 0),
  };
}

/** The declared type(s) of a top-level property, for config cross-checks (URL variables, params). */
export function propertyTypes(schema: JsonSchema, name: string): readonly string[] | undefined {
  const props = schema.properties;
  if (!isObj(props)) return undefined;
  const p = props[name];
  if (!isObj(p)) return undefined;
  if (p.type === undefined) return [];
  return Array.isArray(p.type) ? (p.type as string[]) : [p.type as string];
}

export function requiredProperties(schema: JsonSchema): readonly string[] {
  return Array.isArray(schema.required) ? (schema.required as string[]) : [];
}
