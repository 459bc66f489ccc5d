/**
 * Model-provider presets for proxy routes (`proxy.routes[].preset`, docs/proxy-providers.md,
 * ADR 0210). A preset fills the keys a route leaves out — upstream, hosts, where the credential
 * goes, the body fields given to Cedar — and names how the route's responses report token usage
 * (src/proxy/usage.ts). Keys the route sets itself always win. Pure: no I/O.
 *
 * Sources for the values:
 *  - OpenAI: "All API requests should include your API key in an Authorization HTTP header:
 *    `Authorization: Bearer OPENAI_API_KEY`" (platform.openai.com/docs/api-reference/authentication);
 *    base URL `https://api.openai.com/v1`; `usage` of chat completions (`prompt_tokens`,
 *    `completion_tokens`, `total_tokens`) and of the Responses API (`input_tokens`, `output_tokens`,
 *    `total_tokens`).
 *  - Anthropic: requests carry the key in `x-api-key` and "you must send an `anthropic-version`
 *    request header. For example, `anthropic-version: 2023-06-01`"
 *    (docs.anthropic.com/en/api/overview, docs.anthropic.com/en/api/versioning); base URL
 *    `https://api.anthropic.com` (paths are `/v1/messages`); `usage.input_tokens`/`output_tokens`.
 */

/** How a route's responses report token usage (src/proxy/usage.ts). */
export type UsageKind = 'openai' | 'anthropic';
export type PresetName = 'openai' | 'anthropic';
export const PRESET_NAMES: readonly PresetName[] = ['openai', 'anthropic'];

export interface RoutePreset {
  /** Origin and base path of the provider's API (no trailing slash). */
  readonly upstream: string;
  /** Forward-proxy hosts the route serves. */
  readonly hosts: readonly string[];
  /** Where the credential goes: header name and format with `{value}` (or `{access_token}`). */
  readonly credential: { readonly header: string; readonly format: string };
  /**
   * Headers the provider requires, added to the upstream request only when the agent sent none of
   * that name (the agent may pin another API version). Lowercase names.
   */
  readonly defaultHeaders: Readonly<Record<string, string>>;
  /** Top-level JSON body fields given to Cedar as `context.http.body` (model allowlists). */
  readonly bodyFields: readonly string[];
  /** How responses report usage. */
  readonly usage: UsageKind;
}

export const PRESETS: Readonly<Record<PresetName, RoutePreset>> = Object.freeze({
  openai: Object.freeze({
    upstream: 'https://api.openai.com/v1',
    hosts: Object.freeze(['api.openai.com']),
    credential: Object.freeze({ header: 'Authorization', format: 'Bearer {value}' }),
    defaultHeaders: Object.freeze({}),
    bodyFields: Object.freeze(['model']),
    usage: 'openai',
  }),
  anthropic: Object.freeze({
    upstream: 'https://api.anthropic.com',
    hosts: Object.freeze(['api.anthropic.com']),
    credential: Object.freeze({ header: 'x-api-key', format: '{value}' }),
    defaultHeaders: Object.freeze({ 'anthropic-version': '2023-06-01' }),
    bodyFields: Object.freeze(['model']),
    usage: 'anthropic',
  }),
});

function isPresetName(v: unknown): v is PresetName {
  return v === 'openai' || v === 'anthropic';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A raw route (before validation) with its preset's defaults filled in; for the route schema as
 * `z.preprocess(applyPreset, routeSchema)`. Keys the route sets win, also when set to a value the
 * schema will refuse (the error then names the route's own key). Filled in when absent:
 * `upstream`, `hosts` (only together with the preset's `upstream`: a route that points the preset
 * at another upstream, e.g. an OpenAI-compatible server, keeps the default of its upstream's host),
 * `body_fields`, and — when `credential` is an object without `header` and without `query` —
 * `credential.header`, and `credential.format` when the header is the preset's (a `Bearer`
 * template on `x-api-key` would be wrong). Anything that is not an object, or has no known
 * `preset`, is returned unchanged (the schema reports it).
 */
export function applyPreset(raw: unknown): unknown {
  if (!isObject(raw) || !isPresetName(raw.preset)) return raw;
  const p = PRESETS[raw.preset];
  const out: Record<string, unknown> = { ...raw };
  if (out.upstream === undefined) {
    out.upstream = p.upstream;
    if (out.hosts === undefined) out.hosts = [...p.hosts];
  }
  if (out.body_fields === undefined) out.body_fields = [...p.bodyFields];
  if (isObject(out.credential) && out.credential.header === undefined && out.credential.query === undefined) {
    const cred: Record<string, unknown> = { ...out.credential, header: p.credential.header };
    if (cred.format === undefined) cred.format = credentialFormat(p, cred);
    out.credential = cred;
  } else if (isObject(out.credential) && typeof out.credential.header === 'string' && out.credential.format === undefined
    && out.credential.header.toLowerCase() === p.credential.header.toLowerCase()) {
    out.credential = { ...out.credential, format: credentialFormat(p, out.credential) };
  }
  return out;
}

/** The preset's format for the credential's source: `{access_token}` for an OAuth credential. */
function credentialFormat(p: RoutePreset, cred: Record<string, unknown>): string {
  return cred.oauth !== undefined ? p.credential.format.replace('{value}', '{access_token}') : p.credential.format;
}

/**
 * The preset's required headers the agent did not send (names compared case-insensitively), to add
 * to the upstream request. `sent`: the agent's request headers (node's lowercase names).
 */
export function missingDefaultHeaders(preset: PresetName, sent: Readonly<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(PRESETS[preset].defaultHeaders)) {
    const has = Object.keys(sent).some((k) => k.toLowerCase() === name && sent[k] !== undefined);
    if (!has) out[name] = value;
  }
  return out;
}
