/**
 * Request hygiene of the injection proxy (issue 10 item 4, ADR 0205): one reading of every request
 * for Tessera and the upstream (no request smuggling), hop-by-hop headers never forwarded, and
 * redirects mapped back to the route without ever being followed.
 *
 * Layers (docs/proxy-ssrf.md "Request smuggling"): node's HTTP parser (llhttp, strict with
 * `PROXY_SERVER_OPTIONS`) refuses most malformed framing before a handler runs — duplicate or
 * non-numeric Content-Length, Content-Length with Transfer-Encoding, chunked not last, obs-fold,
 * CR/LF/NUL and other controls in headers, non-ASCII in the target, bad chunk sizes; those reach
 * `onClientError`. `checkFraming` refuses what the parser lets through: a Transfer-Encoding other
 * than exactly `chunked` (`gzip, chunked`, any in HTTP/1.0), repeated single-value headers, no or
 * several Host headers, absolute-form targets whose authority differs from Host or carries
 * userinfo, other target forms, fragments, backslashes, dot-segments, over-long targets.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { fail, TesseraError, type ErrorCode } from '../shared/errors.js';
import { normalizeHost } from './ssrf.js';
import type { Scrubber, ScrubHit } from '../gateway/scrub/index.js';

/**
 * `http.createServer` options the proxy listener must use (with `onClientError` as its
 * `clientError` listener and `checkFraming` first in its request handler): the strict parser
 * (never the lenient one, which accepts smuggling vectors); a 16 KiB bound on the request line
 * plus headers (larger → 431); duplicates of single-value headers joined rather than silently
 * dropped (`Authorization: a, b` fails to parse instead of the first one winning; `checkFraming`
 * refuses them anyway). `requireHostHeader` is off on purpose: node would answer a Host-less
 * HTTP/1.1 request with a bare 400 and no code, while `checkFraming` refuses it — and a Host-less
 * HTTP/1.0 one, which node lets through — with TESSERA_PROXY_REQUEST_MALFORMED.
 */
export const PROXY_SERVER_OPTIONS = Object.freeze({
  insecureHTTPParser: false,
  requireHostHeader: false,
  maxHeaderSize: 16 * 1024,
  joinDuplicateHeaders: true,
} satisfies ServerOptions);

/**
 * Connections on which a request was refused: node may already have parsed requests pipelined
 * behind it (they would reach the handler although the connection is closing), so every later
 * request on such a connection is refused too.
 */
const refusedSockets = new WeakSet<object>();

/** Longest request target accepted, in bytes (RFC 9112 §3 asks for at least 8000). */
export const MAX_TARGET_BYTES = 8192;

/** Fields with one value (RFC 9110 §5.3): node keeps only the first of these, so a second is refused. */
const SINGLETONS = new Set(['host', 'content-length', 'content-type', 'authorization', 'proxy-authorization', 'age', 'etag', 'expires', 'from', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'referer', 'retry-after', 'server', 'user-agent']);

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

function malformed(message: string, reason: string): TesseraError {
  return fail('TESSERA_PROXY_REQUEST_MALFORMED', `the proxy refused the request: ${message}`, { reason });
}

/** `host[:port]` of a Host header or an authority, WHATWG-normalised; the default port of `scheme` dropped. */
function parseAuthority(authority: string, scheme: 'http:' | 'https:'): string | undefined {
  const m = /^(\[[^\]]*\]|[^:]*)(?::([0-9]{0,5}))?$/.exec(authority);
  if (!m) return undefined;
  const host = normalizeHost(m[1]!);
  if (!host.ok) return undefined;
  const port = m[2] === undefined || m[2] === '' ? '' : String(Number(m[2]));
  if (port !== '' && (Number(port) < 1 || Number(port) > 65535)) return undefined;
  const dflt = scheme === 'https:' ? '443' : '80';
  const h = host.host.includes(':') ? `[${host.host}]` : host.host;
  return port === '' || port === dflt ? h : `${h}:${port}`;
}

/** Host headers seen (they repeat on every request of a client): their keys, bounded; emptied when full. */
const authorityKeys = new Map<string, string | null>();
const AUTHORITY_CACHE = 512;

/** `parseAuthority`, remembered for the authorities seen (a pure function of its arguments). */
function authorityKey(authority: string, scheme: 'http:' | 'https:'): string | undefined {
  // The scheme in front, whole: `s:${authority}` for https let the http authority "s:80" answer
  // for the https authority "80" (an authority may itself contain "s:").
  const k = `${scheme}${authority}`;
  const hit = authorityKeys.get(k);
  if (hit !== undefined) return hit ?? undefined;
  const v = parseAuthority(authority, scheme);
  if (authorityKeys.size >= AUTHORITY_CACHE) authorityKeys.clear();
  authorityKeys.set(k, v ?? null);
  return v;
}

/** A "." or ".." segment, possibly followed by ";" parameters (as the loop of checkPath reads it without percent-encoding). */
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:[;/]|$)/;

/** A percent-encoded unreserved character (RFC 3986 §2.3: ALPHA, DIGIT, "-", ".", "_", "~"). */
const ENCODED_UNRESERVED = /%(?:4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/i;

/**
 * Refuses what would let the path Cedar sees (`context.http.path`) name another resource than the
 * one the upstream serves (ADR 0220): dot-segments, also percent-encoded, hidden behind an encoded
 * slash or backslash, or carrying path parameters (`..;x`, read as `..` by Tomcat/Jetty); empty
 * segments (`/a//b`, merged by nginx and many routers); percent-encoded unreserved characters
 * (`%61dmin`, which every upstream decodes to `admin`, RFC 3986 §6.2.2.2). The agent sends the
 * normalised spelling instead.
 */
function checkPath(path: string): void {
  // Without "%", "//" or a "." / ".." segment (";…" parameters included) nothing below can refuse it.
  if (!path.includes('%') && !path.includes('//') && !DOT_SEGMENT.test(path)) return;
  const segments = path.split('/');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === '' && i > 0 && i < segments.length - 1) throw malformed('the target has an empty path segment ("//"); send the path with single slashes', 'empty_segment');
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw malformed('the target has a "%" that starts no percent-encoded UTF-8 byte', 'percent_encoding');
    }
    if (decoded.split(/[/\\]/).some((p) => { const name = p.split(';', 1)[0]; return name === '.' || name === '..'; })) throw malformed('the target has a dot-segment ("." or "..", also percent-encoded or followed by ";" parameters)', 'dot_segment');
    if (ENCODED_UNRESERVED.test(segment)) throw malformed('the target percent-encodes a letter, digit or one of "-._~"; send those characters unencoded (RFC 3986 §6.2.2.2)', 'encoded_unreserved');
  }
}

function checkTarget(req: IncomingMessage, hostHeader: string): void {
  const target = req.url ?? '';
  if (Buffer.byteLength(target) > MAX_TARGET_BYTES) throw fail('TESSERA_PROXY_URI_TOO_LONG', `the request target is ${Buffer.byteLength(target)} bytes; the proxy accepts at most ${MAX_TARGET_BYTES}`);
  if (!/^[\x21-\x7e]+$/.test(target)) throw malformed('the target has spaces, control or non-ASCII characters', 'target_characters');
  if (target.includes('#')) throw malformed('the target has a fragment ("#"): it is never sent in HTTP (RFC 9112 §3.2)', 'fragment');
  if (target.includes('\\')) throw malformed('the target has a backslash', 'backslash');
  if (target.startsWith('/')) {
    if (target.startsWith('//')) throw malformed('the target starts with "//" (an authority where a path belongs)', 'target_form');
    return checkPath(target.split('?')[0]!);
  }
  const m = /^(https?):\/\/([^/?]*)(.*)$/i.exec(target);
  if (!m) throw malformed(`the target must be a path (/…) or an absolute http(s) URL; ${req.method === 'CONNECT' ? 'CONNECT is served by the tunnel handler' : 'authority-form, "*" and other schemes are not proxied'}`, 'target_form');
  const scheme = `${m[1]!.toLowerCase()}:` as 'http:' | 'https:';
  const authority = m[2]!;
  if (authority.includes('@')) throw malformed('the absolute-form target carries user:password ("@" in the authority); send the token in Proxy-Authorization', 'userinfo');
  const fromTarget = authorityKey(authority, scheme);
  if (fromTarget === undefined) throw malformed('the absolute-form target has no valid host', 'target_host');
  if (authorityKey(hostHeader, scheme) !== fromTarget) throw malformed('the Host header names another authority than the absolute-form target (RFC 9112 §3.2.2)', 'host_mismatch');
  checkPath((m[3] ?? '').split('?')[0]!);
}

/**
 * Refuses a request whose framing or target could be read two ways; 400
 * TESSERA_PROXY_REQUEST_MALFORMED (`details.reason` says which rule) or 414
 * TESSERA_PROXY_URI_TOO_LONG. Call before anything else reads the request; answer the refusal
 * with `Connection: close` (`sendRefusal`) — the rest of the connection cannot be trusted.
 * Rules: RFC 9112 §6 (framing), §3.2 (target forms), §3.2.2 (Host vs absolute-form), RFC 9110 §5.5 (field values).
 */
export function checkFraming(req: IncomingMessage): void {
  if (refusedSockets.has(req.socket)) throw malformed('an earlier request on this connection was refused; the requests pipelined behind it are not served', 'after_refusal');
  if (req.httpVersion !== '1.1' && req.httpVersion !== '1.0') throw malformed(`HTTP/${req.httpVersion} is not spoken here; use HTTP/1.1`, 'version');
  const counts = new Map<string, number>();
  const raw = req.rawHeaders;
  let host: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (CONTROL.test(value) || CONTROL.test(name)) throw malformed(`the header ${JSON.stringify(name.slice(0, 64))} has a control character (CR, LF, NUL…)`, 'control_character');
    counts.set(name, (counts.get(name) ?? 0) + 1);
    if (name === 'host') host = value;
  }
  for (const [name, n] of counts) if (n > 1 && SINGLETONS.has(name)) throw malformed(`the ${name} header appears ${n} times; it takes one value`, name === 'host' ? 'host_repeated' : 'header_repeated');
  if (host === undefined) throw malformed('the request has no Host header', 'host_missing');
  if (!/^[\x21-\x7e]+$/.test(host) || authorityKey(host, 'http:') === undefined) throw malformed('the Host header is not a valid host[:port]', 'host_invalid');
  const te = counts.has('transfer-encoding') ? String(req.headers['transfer-encoding'] ?? '') : undefined;
  if (te !== undefined) {
    if (counts.has('content-length')) throw malformed('the request has both Transfer-Encoding and Content-Length (RFC 9112 §6.3)', 'te_and_cl');
    if (req.httpVersion === '1.0') throw malformed('an HTTP/1.0 request with Transfer-Encoding has faulty framing (RFC 9112 §6.1)', 'te_http10');
    if (te.trim().toLowerCase() !== 'chunked') throw malformed(`the Transfer-Encoding ${JSON.stringify(te.slice(0, 64))} is not accepted; only "chunked"`, 'transfer_encoding');
  }
  if (counts.has('content-length') && !/^[0-9]{1,15}$/.test(String(req.headers['content-length']))) throw malformed('the Content-Length is not one decimal number', 'content_length');
  checkTarget(req, host);
}

/** Hop-by-hop fields (RFC 9110 §7.6.1, RFC 9112 §7.4 `TE`/`Trailer`), `Proxy-Connection` (RFC 9112 appendix C.2.2) and every `Proxy-*` field. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'expect']);

/** HOP_BY_HOP + a `strip` list (lower case), per list: routes and the response rule pass the same array every time. */
const dropSets = new WeakMap<readonly string[], ReadonlySet<string>>();
function dropSetOf(strip: readonly string[]): ReadonlySet<string> {
  let d = dropSets.get(strip);
  if (!d) {
    d = new Set([...HOP_BY_HOP, ...strip.map((x) => x.toLowerCase())]);
    dropSets.set(strip, d);
  }
  return d;
}

/**
 * The request headers to send upstream: without hop-by-hop fields, those the Connection header
 * lists, `Proxy-*` (Proxy-Authorization, Proxy-Authenticate…), `Host` (the dispatcher sets it from
 * the upstream URL), `HTTP2-Settings` (h2c upgrade), `Expect` (node's server already answered
 * `100-continue` on this hop; undici refuses the field), and the names in `strip` (compared
 * case-insensitively; the credential's own header and the agent's Authorization/Cookie).
 * RFC 9110 §7.6.1. The same rules apply to an upstream response's headers on their way back
 * (undici's `headers` object fits): its hop-by-hop fields and any `Proxy-Authenticate` stop here.
 */
export function forwardHeaders(incoming: IncomingHttpHeaders, strip: readonly string[]): Record<string, string | string[]> {
  let drop = dropSetOf(strip);
  const connection = incoming.connection;
  if (connection) {
    let more: Set<string> | undefined;
    for (const v of Array.isArray(connection) ? connection : [connection]) {
      for (const token of v.split(',')) {
        const t = token.trim().toLowerCase();
        if (t && !drop.has(t)) (more ??= new Set(drop)).add(t);
      }
    }
    if (more) drop = more;
  }
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming)) {
    const n = name.toLowerCase();
    if (value === undefined || drop.has(n) || n.startsWith('proxy-')) continue;
    out[n] = value;
  }
  return out;
}

/**
 * Maps an upstream's `Location` (RFC 9110 §10.2.2) back to the route: a target at the upstream's
 * origin under its base path becomes `routeBase` + the rest (`https://api.x/v1/files/1` with
 * upstream `https://api.x/v1` and routeBase `/openai` → `/openai/files/1`). Everything else is
 * returned unchanged: a path-relative reference resolves on the client the same way (paths under
 * the route mirror paths under the base), another origin or a path outside the base is left to
 * the client — who comes back through the proxy, where the request is authorized and vetted again.
 * Tessera never follows redirects itself. Undefined when the value is no URI reference (drop it).
 */
export function rewriteLocation(location: string, upstream: URL, routeBase: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (location.length === 0 || location.length > MAX_TARGET_BYTES || /[\x00-\x20\x7f]/.test(location)) return undefined;
  if (!location.startsWith('/') && !/^[a-z][a-z0-9+.-]*:/i.test(location)) return location; // path-relative
  let target: URL;
  try {
    target = new URL(location, upstream);
  } catch {
    return undefined;
  }
  if (target.origin !== upstream.origin || target.username || target.password) return location.startsWith('/') ? target.href : location;
  const base = upstream.pathname.replace(/\/+$/, '');
  if (target.pathname !== base && !target.pathname.startsWith(`${base}/`)) return target.href;
  const rest = target.pathname.slice(base.length) || '/';
  return `${routeBase.replace(/\/+$/, '')}${rest}${target.search}${target.hash}`;
}

/**
 * Scrubs the credential injected for a request from the upstream's response header fields before
 * they reach the agent (T220, ADR 0221): an upstream that echoes the key in `WWW-Authenticate`,
 * `Set-Cookie`, a `Location` (a query-mode credential in a redirect), or any `X-…` field. Every
 * value goes through `scrubber.scrubText` (plain and encoded forms, as for the body); a field
 * whose name holds a secret is dropped (a name cannot carry the marker). Pure; the input is not
 * changed. Apply after `rewriteLocation`, before `writeHead`.
 * @returns the headers to send and the hits (for the audit's redaction count).
 */
export function scrubResponseHeaders(headers: Readonly<Record<string, string | string[]>>, scrubber: Pick<Scrubber, 'scrubText'>): { headers: Record<string, string | string[]>; hits: ScrubHit[] } {
  const out: Record<string, string | string[]> = {};
  const hits: ScrubHit[] = [];
  const scrub = (v: string): string => {
    const r = scrubber.scrubText(v);
    hits.push(...r.hits);
    return r.text;
  };
  for (const [name, value] of Object.entries(headers)) {
    const n = scrubber.scrubText(name);
    if (n.hits.length > 0) {
      hits.push(...n.hits);
      continue;
    }
    out[name] = Array.isArray(value) ? value.map(scrub) : scrub(value);
  }
  return { headers: out, hits };
}

/**
 * The names of a JSON object's top-level members, in order, duplicates kept (RFC 8259 §4: names
 * SHOULD be unique; parsers disagree on which duplicate wins). `text` must already have passed
 * `JSON.parse` as an object. Iterative: any nesting depth.
 */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        keys.push(JSON.parse(text.slice(i, j + 1)) as string);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1 && c === '{') expectKey = true;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return keys;
}

/**
 * The route's `body_fields` of a JSON request body, read so that Cedar and the upstream cannot
 * see two different values (ADR 0221): the body must parse as a JSON object; a listed field that
 * appears more than once (JavaScript keeps the last, other parsers the first) or whose value is
 * not a string, finite number or boolean (an array, object or null the policy would not see) is
 * refused. Fields absent from the body are absent from the record.
 * @throws 400 TESSERA_PROXY_BODY_INVALID naming the route and the field.
 */
export function readBodyFields(text: string, fields: readonly string[], route: string): Record<string, string | number | boolean> {
  const invalid = (why: string): TesseraError => fail('TESSERA_PROXY_BODY_INVALID', `route "${route}" reads body fields (${fields.join(', ')}) for policy: ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid('the JSON body does not parse');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid('the JSON body must be an object');
  const wanted = new Set(fields);
  const seen = new Set<string>();
  for (const k of topLevelKeys(text)) {
    if (!wanted.has(k)) continue;
    if (seen.has(k)) throw invalid(`the field ${JSON.stringify(k)} appears more than once; send it once`);
    seen.add(k);
  }
  const out: Record<string, string | number | boolean> = {};
  for (const f of fields) {
    if (!Object.prototype.hasOwnProperty.call(parsed, f)) continue;
    const v = (parsed as Record<string, unknown>)[f];
    if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[f] = v;
    else throw invalid(`the field ${JSON.stringify(f)} must be a string, number or boolean (got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v})`);
  }
  return out;
}

/** The JSON error body the proxy answers with (`{ error: { code, message } }`). */
function errorBody(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/** Ends the socket once what was written is flushed (and destroys it then). */
function closeAfterFlush(socket: Duplex): void {
  if (socket.writableFinished || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end();
}

/**
 * Answers a refusal thrown by `checkFraming` (or any TesseraError before the upstream is reached)
 * with its status, the JSON error body and `Connection: close`; the connection is then closed,
 * and requests node already parsed behind it on that connection are refused by `checkFraming`.
 */
export function sendRefusal(res: ServerResponse, err: TesseraError): void {
  refusedSockets.add(res.req.socket);
  const body = errorBody(err.code, err.message);
  res.shouldKeepAlive = false;
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

/**
 * The proxy server's `clientError` listener: node's parser refused the bytes (smuggling vectors
 * among them), so no handler ran. Answers 400 TESSERA_PROXY_REQUEST_MALFORMED (431
 * TESSERA_PROXY_HEADERS_TOO_LARGE for an oversized head, node's bare 408 for a request timeout)
 * and closes the connection; when a response was already started for that connection, only closes.
 */
export function onClientError(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (err.code === 'ECONNRESET' || started || !socket.writable) {
    closeAfterFlush(socket);
    return;
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.write('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    closeAfterFlush(socket);
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const code: ErrorCode = tooLarge ? 'TESSERA_PROXY_HEADERS_TOO_LARGE' : 'TESSERA_PROXY_REQUEST_MALFORMED';
  const message = tooLarge
    ? 'the request line and headers are larger than 16 KiB'
    : `the proxy refused the request: the HTTP parser found ${err.code ?? 'an error'}${err.reason ? ` (${err.reason.slice(0, 120)})` : ''}`;
  const body = errorBody(code, message);
  socket.write(`HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  closeAfterFlush(socket);
}

/**
 * Refuses a request that would carry the agent's own Tessera token upstream in a header Tessera
 * does not strip or in the query string (raw or percent-encoded): an SDK told to use the token
 * as its "API key" for an unusual header, or a `?key=` parameter (A10-7). The token is the
 * agent's credential for Tessera only; forwarding it would hand it to every upstream.
 * Throws 400 TESSERA_PROXY_TOKEN_FORWARDED naming where (never the value).
 */
export function refuseForwardedToken(token: string, headers: Readonly<Record<string, string | string[]>>, search: string): void {
  for (const [name, value] of Object.entries(headers)) {
    const values = Array.isArray(value) ? value : [value];
    if (values.some((v) => v.includes(token))) throw tokenForwarded(`the ${name} header`, { where: 'header', name });
  }
  if (search.length > 1) {
    if (search.includes(token)) throw tokenForwarded('the query string', { where: 'query' });
    for (const part of search.slice(1).split('&')) {
      let decoded: string;
      try {
        decoded = decodeURIComponent(part.replace(/\+/g, ' '));
      } catch {
        continue; // not decodable: the raw check above already looked at it
      }
      if (decoded.includes(token)) throw tokenForwarded('the query string', { where: 'query' });
    }
  }
}

function tokenForwarded(where: string, details: Record<string, string>): TesseraError {
  return new TesseraError(
    'TESSERA_PROXY_TOKEN_FORWARDED',
    `the request carries your Tessera token in ${where}, which would be sent to the upstream; send the token only in Proxy-Authorization (or Authorization on a reverse route) — Tessera adds the upstream's credential itself`,
    details,
  );
}
