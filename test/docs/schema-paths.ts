/**
 * The key paths of a zod (v4) schema, as the docs write them: `server.listen`,
 * `attestors[].kind` (an element of a list), `gateway.servers[].env.*.secret` (`*`: a key the
 * user chooses). Union members contribute all their keys (`attestors[].issuer` is a `jwt`
 * attestor's). A record of free-form values (`input_schema`) is a leaf.
 */
import type { z } from 'zod';

type Def = { type: string; [k: string]: unknown };
const def = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Through optional/default/prefault/nullable/readonly/catch wrappers and transform pipes. */
export function unwrap(s: z.ZodType): z.ZodType {
  for (;;) {
    const d = def(s);
    if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional', 'success'].includes(d.type)) s = d.innerType as z.ZodType;
    else if (d.type === 'pipe') s = (def(d.in as z.ZodType).type === 'transform' ? d.out : d.in) as z.ZodType;
    else if (d.type === 'lazy') s = (d.getter as () => z.ZodType)();
    else return s;
  }
}

export type Shape =
  | { kind: 'object'; fields: Map<string, z.ZodType> }
  | { kind: 'array'; element: z.ZodType }
  | { kind: 'record'; value: z.ZodType }
  | { kind: 'leaf' };

/** What a value at this schema may be; object members of a union are offered one by one. */
export function shapes(s: z.ZodType): Shape[] {
  const u = unwrap(s);
  const d = def(u);
  switch (d.type) {
    case 'object':
      return [{ kind: 'object', fields: new Map(Object.entries(d.shape as Record<string, z.ZodType>)) }];
    case 'union':
      return (d.options as z.ZodType[]).flatMap(shapes);
    case 'intersection':
      return [...shapes(d.left as z.ZodType), ...shapes(d.right as z.ZodType)];
    case 'array':
      return [{ kind: 'array', element: d.element as z.ZodType }];
    case 'record': {
      const value = unwrap(d.valueType as z.ZodType);
      return ['unknown', 'any'].includes(def(value).type) ? [{ kind: 'leaf' }] : [{ kind: 'record', value }];
    }
    default:
      return [{ kind: 'leaf' }];
  }
}

/** For a discriminated union, the member whose discriminator literal the value carries. */
export function discriminate(s: z.ZodType, value: Record<string, unknown>): z.ZodType | undefined {
  const d = def(unwrap(s));
  if (d.type !== 'union' || typeof d.discriminator !== 'string') return undefined;
  const key = d.discriminator;
  return (d.options as z.ZodType[]).find((o) => {
    const f = shapes(o)[0];
    if (!f || f.kind !== 'object') return false;
    const lit = f.fields.get(key);
    const ld = lit ? def(unwrap(lit)) : undefined;
    return ld?.type === 'literal' && (ld.values as unknown[]).includes(value[key]);
  });
}

/** Every key path of the schema. */
export function schemaPaths(schema: z.ZodType): Set<string> {
  const out = new Set<string>();
  const walk = (s: z.ZodType, prefix: string, depth: number): void => {
    if (depth > 20) return;
    for (const sh of shapes(s)) {
      if (sh.kind === 'object') {
        for (const [k, v] of sh.fields) {
          const p = prefix ? `${prefix}.${k}` : k;
          out.add(p);
          walk(v, p, depth + 1);
        }
      } else if (sh.kind === 'array') walk(sh.element, `${prefix}[]`, depth + 1);
      else if (sh.kind === 'record') walk(sh.value, `${prefix}.*`, depth + 1);
    }
  };
  walk(schema, '', 0);
  return out;
}

/**
 * A path as docs write it, in the schema's notation: `gateway.tools.<index>.<key>` and
 * `gateway.tools.0.url` → `gateway.tools[].*` / `gateway.tools[].url`; `<name>`, `NAME` and
 * `*` segments are wildcards.
 */
export function normalizePath(p: string): string {
  return p
    .replace(/\[[^\]]*\]/g, '[]')
    .split('.')
    .map((seg) => (/^(\d+|<index>|<i>|<n>)$/.test(seg) ? '[]' : /^(<[^>]+>|\*|[A-Z][A-Z0-9_]*)$/.test(seg) ? '*' : seg))
    .join('.')
    .replace(/\.\[\]/g, '[]');
}

/** Whether a normalized doc path names a schema path (`*` in the doc matches any one key). */
export function pathExists(paths: Set<string>, docPath: string): boolean {
  if (paths.has(docPath)) return true;
  if (!docPath.includes('*')) return false;
  const re = new RegExp(`^${docPath.split('*').map((x) => x.replace(/[.[\]]/g, '\\$&')).join('[^.]+')}$`);
  return [...paths].some((p) => re.test(p));
}
