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
 *  - holds a control character, a space, or a backslash.
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
  return undefined;
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
