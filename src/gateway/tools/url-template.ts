/**
 * URL templates for `http` tools: RFC 6570 level 1 (simple string expansion, §3.2.2) with one
 * deliberate restriction — expressions may appear only in the PATH and in QUERY VALUES, never in
 * the scheme, host, port, user info, query names or fragment. The origin is therefore fixed by
 * the configuration: an argument cannot redirect the request (and its credential) to another
 * host, which is why SSRF is not reachable from arguments.
 *
 * Every expanded value is percent-encoded as ONE segment/value: every byte outside the RFC 3986
 * §2.3 unreserved set (ALPHA / DIGIT / "-" / "." / "_" / "~") is encoded, so `/`, `?`, `#`, `&`,
 * `=` and `%` from an argument can never add a segment, start a query or a fragment, or smuggle
 * a pre-encoded `%2F`. The remaining trick, a whole segment equal to `.` or `..` (which WHATWG
 * URL and most servers normalise away, RFC 3986 §5.2.4), is refused; as a last guard the
 * rendered URL must parse back to exactly the path that was built.
 */
import { fail } from '../../shared/errors.js';

type Token = { readonly lit: string } | { readonly v: string };

export interface UrlTemplate {
  /** `scheme://host[:port]`, fixed by config. */
  readonly origin: string;
  readonly path: readonly Token[];
  readonly query: readonly { readonly name: string; readonly value: readonly Token[] }[];
  /** Every variable, with where it appears. */
  readonly variables: ReadonlyMap<string, 'path' | 'query-alone' | 'query-mixed'>;
}

const VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

function tokenize(part: string, where: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  for (let guard = 0; i < part.length && guard <= part.length; guard++) {
    const open = part.indexOf('{', i);
    const close = part.indexOf('}', i);
    if (close !== -1 && (open === -1 || close < open)) throw new Error(`unbalanced "}" in the ${where}`);
    if (open === -1) {
      out.push({ lit: part.slice(i) });
      break;
    }
    if (open > i) out.push({ lit: part.slice(i, open) });
    const end = part.indexOf('}', open);
    if (end === -1) throw new Error(`unclosed "{" in the ${where}`);
    const name = part.slice(open + 1, end);
    if (!VAR.test(name)) throw new Error(`"{${name}}" in the ${where}: only simple {name} expressions are supported (RFC 6570 level 1); names are letters, digits and "_"`);
    out.push({ v: name });
    i = end + 1;
  }
  return out;
}

/** Parses and checks a template at config load; throws Error with a message naming the problem. */
export function parseUrlTemplate(template: string): UrlTemplate {
  const schemeEnd = template.indexOf('://');
  if (schemeEnd === -1) throw new Error('the url must be absolute (http:// or https://)');
  const afterScheme = template.slice(schemeEnd + 3);
  const slash = afterScheme.search(/[/?#]/);
  const authority = slash === -1 ? afterScheme : afterScheme.slice(0, slash);
  if (/[{}]/.test(template.slice(0, schemeEnd + 3 + authority.length))) throw new Error('variables are not allowed in the scheme, host or port: the destination must be fixed by configuration');
  if (authority.includes('@')) throw new Error('user info in the url is not allowed: put credentials in `credential`');
  if (template.includes('#')) throw new Error('a fragment (#) is not allowed in the url');
  let base: URL;
  try {
    base = new URL(template.slice(0, schemeEnd + 3 + authority.length));
  } catch {
    throw new Error('the scheme/host/port part is not a valid URL');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('only http and https urls are supported');
  const rest = slash === -1 ? '' : afterScheme.slice(slash);
  const q = rest.indexOf('?');
  const pathPart = q === -1 ? rest : rest.slice(0, q);
  const queryPart = q === -1 ? '' : rest.slice(q + 1);
  const path = tokenize(pathPart || '/', 'path');
  if (!('lit' in path[0]!) || !path[0].lit.startsWith('/')) throw new Error('the path must start with a literal "/"');
  const variables = new Map<string, 'path' | 'query-alone' | 'query-mixed'>();
  for (const t of path) if ('v' in t) {
    if (variables.has(t.v)) throw new Error(`variable {${t.v}} is used twice`);
    variables.set(t.v, 'path');
  }
  const query: { name: string; value: Token[] }[] = [];
  if (queryPart) {
    for (const pair of queryPart.split('&')) {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      if (!name || /[{}]/.test(name)) throw new Error(`query parameter "${pair}": the name must be a non-empty literal`);
      const value = tokenize(eq === -1 ? '' : pair.slice(eq + 1), `query parameter "${name}"`);
      const vars = value.filter((t): t is { v: string } => 'v' in t);
      for (const t of vars) {
        if (variables.has(t.v)) throw new Error(`variable {${t.v}} is used twice`);
        variables.set(t.v, value.length === 1 ? 'query-alone' : 'query-mixed');
      }
      query.push({ name, value });
    }
  }
  // Literal parts must already be in normal form, so that the render-time round trip check
  // (rendered path === parsed path) only ever trips on argument values.
  const probe = path.map((t) => ('lit' in t ? t.lit : 'x')).join('');
  if (new URL(probe, base).pathname !== probe) throw new Error('the literal path is not in normal form (dot segments, spaces or unencoded characters)');
  return { origin: base.origin, path, query, variables };
}

/** RFC 3986 §2.3: encode every byte that is not unreserved. */
export function encodeStrict(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function scalar(name: string, v: unknown): string {
  if (typeof v === 'string') {
    // A lone UTF-16 surrogate has no UTF-8 encoding (encodeURIComponent would throw URIError).
    if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(v)) {
      throw fail('TESSERA_TOOL_ARGS_INVALID', `argument "${name}": contains an unpaired UTF-16 surrogate and cannot be placed in the URL`, { argument: name });
    }
    return v;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  throw fail('TESSERA_TOOL_ARGS_INVALID', `argument "${name}": must be a string, number or boolean to be placed in the URL`, { argument: name });
}

/**
 * Expands the template. `extraQuery` (e.g. a credential placed in the query) is appended after
 * the configured parameters. Returns the absolute URL.
 */
export function renderUrl(t: UrlTemplate, args: Readonly<Record<string, unknown>>, extraQuery: readonly [string, string][] = []): string {
  let path = '';
  for (const tok of t.path) {
    if ('lit' in tok) {
      path += tok.lit;
      continue;
    }
    const raw = args[tok.v];
    if (raw === undefined || raw === null) throw fail('TESSERA_TOOL_ARGS_INVALID', `argument "${tok.v}": is required (it is part of the URL path)`, { argument: tok.v });
    const s = scalar(tok.v, raw);
    if (s === '' || s === '.' || s === '..') throw fail('TESSERA_TOOL_ARGS_INVALID', `argument "${tok.v}": must not be empty, "." or ".." (it is part of the URL path)`, { argument: tok.v });
    path += encodeStrict(s);
  }
  const pairs: string[] = [];
  for (const { name, value } of t.query) {
    let out = '';
    let skip = false;
    for (const tok of value) {
      if ('lit' in tok) {
        out += tok.lit;
        continue;
      }
      const raw = args[tok.v];
      if (raw === undefined || raw === null) {
        // An absent optional argument drops its whole `name={var}` pair (config load only allows
        // optional variables when they are the entire value).
        if (value.length === 1) skip = true;
        else throw fail('TESSERA_TOOL_ARGS_INVALID', `argument "${tok.v}": is required (it is part of the URL query)`, { argument: tok.v });
        break;
      }
      out += encodeStrict(scalar(tok.v, raw));
    }
    if (!skip) pairs.push(value.length === 0 ? name : `${name}=${out}`);
  }
  for (const [name, value] of extraQuery) pairs.push(`${encodeStrict(name)}=${encodeStrict(value)}`);
  const url = `${t.origin}${path}${pairs.length ? `?${pairs.join('&')}` : ''}`;
  const parsed = new URL(url);
  // Last guard: the URL must parse back to the same origin and exactly the path built above.
  if (parsed.origin !== t.origin || parsed.pathname !== path) {
    throw fail('TESSERA_TOOL_ARGS_INVALID', 'arguments would change the URL path after normalisation; refused', {});
  }
  return url;
}
