/**
 * Federated resource URIs (docs/gateway.md "Resources", ADR 0170). Pure: no I/O.
 *
 * The gateway serves the resource `<uri>` of upstream server `<server>` as
 *
 *     tessera://<server>/<uri>
 *
 * (`demo://resource/1` of server `everything` is `tessera://everything/demo://resource/1`), and
 * back: the authority names the server, everything after the first `/` that follows it is the
 * upstream's URI, byte for byte. Two servers can never give the same gateway URI (server names
 * are unique and cannot hold `/`), and the mapping is a bijection on the URIs it accepts.
 * Resource templates (RFC 6570) are mapped the same way, so a client that expands one gets a
 * gateway URI that maps back to the upstream's expansion.
 *
 * A URI is refused (TESSERA_GATEWAY_RESOURCE_URI_INVALID, `reason` says which rule) when it:
 *  - is longer than MAX_RESOURCE_URI characters;
 *  - is not a `tessera://<server>/…` URI (another scheme), or has no upstream URI after it;
 *  - embeds a gateway URI (`tessera://a/tessera://b/…`): another server's prefix;
 *  - has no scheme of its own (RFC 3986 §3.1) in the upstream part;
 *  - has a `.` or `..` path segment (also `..;x`) or a percent-encoded `.`, `/`, `\` or `%`
 *    (`%2e`, `%2f`, `%5c`, `%25`): traversal or encoded separators an upstream may decode;
 *  - holds a control character, a space, or a backslash;
 *  - is not in the one spelling policy sees (RFC 3986 §6.2.2, syntax-based normalization): a
 *    scheme not in lower case, a percent-encoded unreserved character (`%65` for `e`), a
 *    character outside ASCII (an upstream percent-encodes it), an empty path segment (`a//b`),
 *    `file://localhost/` (RFC 8089 §2: the same as `file:///`), any other file URI not of the form
 *    `file:///…` (`file:/p` is the same file; `file://host/p` is read as `/p` by many servers and
 *    its host would be taken for a path segment by a `resource:` scope), an http(s)/ws(s)/ftp URI
 *    without `//<host>` (`https:h/x`, `https:///h/x`: WHATWG URL reads both as `https://h/x`), a host not in lower case
 *    (`https://EXAMPLE.com/`), a percent escape with lower-case hex (`%3a` for `%3A`), an empty
 *    port, a port with leading zeros, or the scheme's default port (`https://h:443/`; RFC 3986
 *    §6.2.3, for http, https, ws, wss, ftp). Each is the same resource as
 *    another spelling to the upstream but a different string to Cedar, so a `forbid` (or an
 *    `unless`) on `context.uri` would be bypassed by it.
 * An unknown server is TESSERA_GATEWAY_RESOURCE_NOT_FOUND. An upstream that lists a URI these
 * rules refuse has it left out of the listing (it could not be read back).
 */
import { TesseraError } from '../../shared/errors.js';

export const GATEWAY_URI_SCHEME = 'tessera';
const PREFIX = `${GATEWAY_URI_SCHEME}://`;
/** Characters of a gateway URI (and so of an upstream URI plus its prefix). */
export const MAX_RESOURCE_URI = 2048;

/** RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) followed by ":". */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
// eslint-disable-next-line no-control-regex
const FORBIDDEN_CHAR = /[\u0000-\u0020\u007f\\]/;
const ENCODED_SEPARATOR = /%(?:2e|2f|5c|25)/i;
/** RFC 3986 §2.3 unreserved characters, percent-encoded (ALPHA, DIGIT, "-", ".", "_", "~"). */
const ENCODED_UNRESERVED = /%(?:3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e)/i;
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\u0000-\u007f]/;

/** A percent escape with a lower-case hex digit (`%3a`): RFC 3986 §6.2.2.1 normalizes to upper case. */
const LOWER_HEX_ESCAPE = /%(?:[a-f][0-9a-fA-F]|[0-9A-F][a-f])/;
/** RFC 3986 §6.2.3 (scheme-based normalization): a port equal to the scheme's default is omitted. */
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443', ftp: '21' };

/** Why the authority (`userinfo@host:port`) of a URI of `scheme` is not in its normalized spelling, or undefined. */
function hostFault(scheme: string, authority: string): string | undefined {
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const ipv6 = hostPort.startsWith('[');
  const end = ipv6 ? hostPort.indexOf(']') + 1 : hostPort.lastIndexOf(':') === -1 ? hostPort.length : hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, end);
  const port = end < hostPort.length && hostPort[end] === ':' ? hostPort.slice(end + 1) : undefined;
  if (host !== host.toLowerCase()) return 'its host is not in lower case (RFC 3986 §6.2.2.1: hosts are case-insensitive); use the URI as listed';
  if (port === '') return 'it has an empty port (":" with no digits; RFC 3986 §6.2.3); use the URI as listed';
  if (port !== undefined && (port === DEFAULT_PORTS[scheme] || /^0\d/.test(port))) return `it spells out the scheme's default port or a port with leading zeros (RFC 3986 §6.2.3); use the URI as listed`;
  return undefined;
}

/** Whether WHATWG URL (what an http upstream resolves) serializes `uri` as itself (an empty path as `/`). */
function whatwgSame(uri: string): boolean {
  try {
    const href = new URL(uri).href;
    return href === uri || href === `${uri}/`;
  } catch {
    return false;
  }
}

/** Why `uri` (scheme already checked) is not in its normalized spelling (RFC 3986 §6.2.2), or undefined. */
function spellingFault(uri: string): string | undefined {
  const scheme = uri.slice(0, uri.indexOf(':'));
  if (scheme !== scheme.toLowerCase()) return 'its scheme is not in lower case (RFC 3986 §6.2.2.1); use the URI as listed';
  if (ENCODED_UNRESERVED.test(uri)) return 'it percent-encodes a letter, digit, "-", "_" or "~" (RFC 3986 §6.2.2.2); use the URI as listed';
  if (NON_ASCII.test(uri)) return 'it holds a character outside ASCII (RFC 3986 §2: percent-encode it); use the URI as listed';
  if (LOWER_HEX_ESCAPE.test(uri)) return 'a percent escape uses lower-case hex digits (`%3a`; RFC 3986 §6.2.2.1: `%3A`); use the URI as listed';
  const rest = uri.slice(scheme.length + 1);
  // WHATWG URL "special" schemes: `https:h/x`, `https:/h/x` and `https:///h/x` all parse as
  // `https://h/x` (slashes ignored before the host), so each would be a second spelling.
  if (DEFAULT_PORTS[scheme] !== undefined && !/^\/\/[^/?#]/.test(rest)) return `a ${scheme} URI must be ${scheme}://<host>/… (WHATWG URL: ${scheme}:h, ${scheme}:/h and ${scheme}:///h are the same as ${scheme}://h); use the URI as listed`;
  if (DEFAULT_PORTS[scheme] !== undefined && !whatwgSame(uri)) return `it is not in the spelling WHATWG URL gives it (a numeric host such as 2130706433 or 0x7f.1 for 127.0.0.1, or characters it percent-encodes); use the URI as listed`;
  const hier = rest.split(/[?#]/)[0]!;
  const authority = hier.startsWith('//') ? hier.slice(2).replace(/\/.*$/, '') : undefined;
  const authorityFault = authority === undefined ? undefined : hostFault(scheme, authority);
  if (authorityFault) return authorityFault;
  const path = hier.startsWith('//') ? hier.slice(2).replace(/^[^/]*/, '') : hier;
  if (path.includes('//')) return 'it has an empty path segment ("//"); use the URI as listed';
  if (scheme === 'file' && /^\/\/localhost(?:[/:]|$)/i.test(rest)) return 'a file URI with host "localhost" is file:/// (RFC 8089 §2); use the URI as listed';
  // RFC 8089 §2: `file:/p` (no authority) is `file:///p`; and a file URI with a host is read by
  // many servers as the local path (the host ignored), while a `resource:` scope drops the empty
  // segment and would see `file://srv/etc/x` as `file:/srv/etc/x`. Only `file:///…` is served.
  if (scheme === 'file' && !rest.startsWith('///')) return 'a file URI is served only as file:///<absolute path> (RFC 8089 §2: file:/p is the same file; a host is not served); use the URI as listed';
  return undefined;
}

/** The gateway URI of upstream URI `uri` of `server`. */
export function gatewayUri(server: string, uri: string): string {
  return `${PREFIX}${server}/${uri}`;
}

/** Why an upstream URI (or URI template) cannot be served under `server`, or undefined when it can. */
export function upstreamUriFault(server: string, uri: string): string | undefined {
  if (gatewayUri(server, uri).length > MAX_RESOURCE_URI) return `longer than ${MAX_RESOURCE_URI} characters with its gateway prefix`;
  if (!SCHEME.test(uri)) return 'the upstream URI has no scheme (RFC 3986 §3.1)';
  if (uri.toLowerCase().startsWith(`${GATEWAY_URI_SCHEME}:`)) return "it embeds a gateway URI (another server's prefix)";
  if (FORBIDDEN_CHAR.test(uri)) return 'it holds a control character, a space or a backslash';
  if (ENCODED_SEPARATOR.test(uri)) return 'it holds a percent-encoded ".", "/", "\\" or "%" (an encoded separator or traversal)';
  for (const seg of uri.split(/[/?#]/)) {
    const bare = seg.split(';')[0];
    if (bare === '.' || bare === '..') return 'it has a "." or ".." segment (path traversal)';
  }
  return spellingFault(uri);
}

function invalid(reason: string): TesseraError {
  return new TesseraError('TESSERA_GATEWAY_RESOURCE_URI_INVALID', `the resource URI is refused: ${reason}; use a URI exactly as resources/list or resources/templates/list gives it (tessera://<server>/<upstream URI>)`, { reason });
}

/**
 * The server and upstream URI of a gateway URI an agent sent. Throws
 * TESSERA_GATEWAY_RESOURCE_URI_INVALID (see the module comment) or, for a server the gateway does
 * not have, TESSERA_GATEWAY_RESOURCE_NOT_FOUND. The URI itself is never echoed.
 */
export function parseGatewayUri(uri: string, servers: ReadonlySet<string>): { server: string; uri: string } {
  if (uri.length > MAX_RESOURCE_URI) throw invalid(`longer than ${MAX_RESOURCE_URI} characters`);
  if (!uri.startsWith(PREFIX)) throw invalid(`not a ${PREFIX}<server>/<uri> URI (unknown scheme)`);
  const rest = uri.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) throw invalid(`no upstream URI after ${PREFIX}<server>/`);
  const server = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  if (!servers.has(server)) {
    if (FORBIDDEN_CHAR.test(server) || ENCODED_SEPARATOR.test(server)) throw invalid('the server part holds a forbidden or encoded character');
    throw new TesseraError('TESSERA_GATEWAY_RESOURCE_NOT_FOUND', 'no resource with that URI is served to you: the gateway has no such server; use a URI as resources/list gives it');
  }
  const fault = upstreamUriFault(server, inner);
  if (fault) throw invalid(fault);
  return { server, uri: inner };
}

/** The text that stands in for an embedded resource or resource link whose URI the gateway cannot serve. */
const UNSERVABLE = (kind: string): { type: 'text'; text: string } => ({ type: 'text', text: `[REDACTED:${kind}] Tessera removed the ${kind} item that was here: its URI is not one the gateway serves.` });

/**
 * Content items (tool results, prompt messages) with the URIs of embedded resources
 * (`resource.uri`) and resource links (`uri`) federated under `server` (ADR 0170). An item whose
 * URI the rules above refuse — another server's gateway URI, traversal, a second spelling — is
 * replaced by a text notice: left as it was, an upstream could present its content as another
 * server's resource, or hand the client a URI that bypasses the checks. Other items unchanged.
 */
export function federateItem<T>(server: string, item: T): T {
  const c = item as Record<string, unknown> | null;
  if (c === null || typeof c !== 'object') return item;
  if (c.type === 'resource' && c.resource && typeof c.resource === 'object') {
    const uri = (c.resource as { uri?: unknown }).uri;
    if (typeof uri !== 'string' || upstreamUriFault(server, uri) !== undefined) return UNSERVABLE('resource') as T;
    return { ...c, resource: { ...(c.resource as object), uri: gatewayUri(server, uri) } } as T;
  }
  if (c.type === 'resource_link') {
    if (typeof c.uri !== 'string' || upstreamUriFault(server, c.uri) !== undefined) return UNSERVABLE('resource_link') as T;
    return { ...c, uri: gatewayUri(server, c.uri) } as T;
  }
  return item;
}

/**
 * Upstream URIs that a `resource:` scope name (its part after `<server>/`) covers, for the
 * capability/listing probe (probe.ts): wildcards filled with one segment, and the empty segments
 * the scope name dropped after the scheme restored in each usual spelling. `demo:/resource/**`
 * gives `demo://resource/x`, `demo:///resource/x` and `demo:/resource/x` (src/policy/scope.ts
 * `scopeNameOf`: a URI split at `/`, empty segments dropped). A candidate only: the probe still
 * asks Cedar and the scope about each.
 */
export function urisOfScopeName(name: string): string[] {
  const [first = '', ...rest] = name.split('/').map((s) => (s === '*' || s === '**' ? 'x' : s));
  if (!SCHEME.test(first) || !first.endsWith(':') || rest.length === 0) return [];
  const path = rest.join('/');
  return [`${first}//${path}`, `${first}///${path}`, `${first}/${path}`];
}
