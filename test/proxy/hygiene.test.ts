/**
 * Request hygiene of the injection proxy (issue 10 item 4, ADR 0205). A real node:http server
 * built as the proxy's must be (PROXY_SERVER_OPTIONS, onClientError, checkFraming first) receives
 * RAW bytes over TCP: every smuggling and framing trick is refused — by node's parser before any
 * handler runs, or by checkFraming in the handler — with the exact code, and the connection is
 * closed. The table records which layer refuses each one, as node 20 really does it. Then the
 * header forwarding and Location rewriting rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { checkFraming, forwardHeaders, onClientError, PROXY_SERVER_OPTIONS, rewriteLocation, sendRefusal, MAX_TARGET_BYTES } from '../../src/proxy/hygiene.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { request } from 'undici';

interface Harness { port: number; handled: string[]; passed: string[]; parserErrors: string[] }

async function proxyLikeServer(t: { after(fn: () => unknown): void }): Promise<Harness> {
  const h: Harness = { port: 0, handled: [], passed: [], parserErrors: [] };
  const server = createServer({ ...PROXY_SERVER_OPTIONS }, (req: IncomingMessage, res) => {
    h.handled.push(req.url ?? '');
    req.on('error', () => undefined); // a body the parser refuses later: onClientError answers
    try {
      checkFraming(req);
    } catch (e) {
      if (!isTesseraError(e)) throw e;
      sendRefusal(res, e);
      return;
    }
    h.passed.push(req.url ?? '');
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.end(JSON.stringify({ reached: true, url: req.url, bytes: n })));
  });
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    h.parserErrors.push(err.code ?? '?');
    onClientError(err, socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  h.port = (server.address() as { port: number }).port;
  return h;
}

interface Answer { responses: { status: number; headers: string; body: string }[]; raw: string }

/** Writes raw bytes and reads until the server closes the connection. */
function raw(port: number, bytes: string): Promise<Answer> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const responses: Answer['responses'] = [];
      let rest = text;
      while (rest.startsWith('HTTP/1.1 ')) {
        const end = rest.indexOf('\r\n\r\n');
        if (end < 0) break;
        const headers = rest.slice(0, end);
        const cl = /content-length: (\d+)/i.exec(headers)?.[1];
        const status = Number(headers.slice(9, 12));
        const len = status < 200 ? 0 : cl === undefined ? rest.length - end - 4 : Number(cl); // no length: the body runs to the close
        responses.push({ status, headers, body: rest.slice(end + 4, end + 4 + len) });
        rest = rest.slice(end + 4 + len);
      }
      resolve({ responses, raw: text });
    });
    s.write(Buffer.from(bytes, 'latin1'));
  });
}

type Layer = 'parser' | 'handler' | 'body';
interface Row { name: string; req: string; status: number; code: string; layer: Layer; parser?: string; message?: RegExp }

const H = 'Host: api.example\r\n';
const ROWS: Row[] = [
  // --- refused by node's parser (llhttp, strict): no handler runs -----------------------------
  { name: 'duplicate Content-Length, different values', req: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_UNEXPECTED_CONTENT_LENGTH' },
  { name: 'duplicate Content-Length, same value', req: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_UNEXPECTED_CONTENT_LENGTH' },
  { name: 'Content-Length as a list', req: `POST / HTTP/1.1\r\n${H}Content-Length: 3, 3\r\n\r\nabc`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_CONTENT_LENGTH' },
  { name: 'Content-Length with a sign', req: `POST / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_CONTENT_LENGTH' },
  { name: 'empty Content-Length', req: `POST / HTTP/1.1\r\n${H}Content-Length: \r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_CONTENT_LENGTH' },
  { name: 'CL.TE: Content-Length then Transfer-Encoding, smuggled request behind', req: `POST / HTTP/1.1\r\n${H}Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: internal\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_TRANSFER_ENCODING' },
  { name: 'TE.CL: Transfer-Encoding then Content-Length', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_CONTENT_LENGTH' },
  { name: 'Transfer-Encoding: chunked, gzip (chunked not last)', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_TRANSFER_ENCODING' },
  { name: 'Transfer-Encoding twice', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_TRANSFER_ENCODING' },
  { name: 'space before the colon (Transfer-Encoding : chunked)', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'vertical tab before chunked', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'obs-fold (a continuation line)', req: `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'obs-fold of Transfer-Encoding', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser' },
  { name: 'bare CR in a header value', req: `GET / HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_LF_EXPECTED' },
  { name: 'CRLF injected into a value (a header line with no colon)', req: `GET / HTTP/1.1\r\n${H}X-A: b\r\nInjected\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'bare LF line endings', req: `GET / HTTP/1.1\n${H.replace('\r', '')}X-A: b\n\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser' },
  { name: 'NUL in a header value', req: `GET / HTTP/1.1\r\n${H}X-A: b\x00c\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'control character (SOH) in a header value', req: `GET / HTTP/1.1\r\n${H}X-A: b\x01c\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'DEL in a header value', req: `GET / HTTP/1.1\r\n${H}X-A: b\x7fc\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'space in a header name', req: `GET / HTTP/1.1\r\n${H}X A: b\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_HEADER_TOKEN' },
  { name: 'non-ASCII in the target', req: `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_URL' },
  { name: 'authority-form target on GET', req: `GET api.example:80 HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_URL' },
  { name: 'lower-case method', req: `get / HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'parser', parser: 'HPE_INVALID_METHOD' },
  { name: 'request line and headers over 16 KiB', req: `GET /${'a'.repeat(17_000)} HTTP/1.1\r\n${H}\r\n`, status: 431, code: 'TESSERA_PROXY_HEADERS_TOO_LARGE', layer: 'parser', parser: 'HPE_HEADER_OVERFLOW' },
  { name: 'one header over 16 KiB', req: `GET / HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(17_000)}\r\n\r\n`, status: 431, code: 'TESSERA_PROXY_HEADERS_TOO_LARGE', layer: 'parser', parser: 'HPE_HEADER_OVERFLOW' },
  // --- the head parses, the chunked body does not: the handler ran but never answered -------------
  { name: 'chunk size that is not hex', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'body', parser: 'HPE_INVALID_CHUNK_SIZE' },
  { name: 'control character in a chunk extension', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nabc\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'body', parser: 'HPE_STRICT' },
  { name: 'chunk lines ending in bare LF', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'body', parser: 'HPE_CR_EXPECTED' },
  // --- refused by checkFraming in the handler ---------------------------------------------------
  { name: 'Transfer-Encoding: gzip (no chunked)', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /Transfer-Encoding "gzip" is not accepted/ },
  { name: 'Transfer-Encoding: xchunked', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /"xchunked" is not accepted/ },
  { name: 'Transfer-Encoding: gzip, chunked (node accepts it)', req: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /"gzip, chunked" is not accepted/ },
  { name: 'Transfer-Encoding in HTTP/1.0', req: `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /HTTP\/1\.0 request with Transfer-Encoding/ },
  { name: 'no Host (HTTP/1.1)', req: 'GET / HTTP/1.1\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /no Host header/ },
  { name: 'no Host (HTTP/1.0)', req: 'GET / HTTP/1.0\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /no Host header/ },
  { name: 'two Host headers', req: `GET / HTTP/1.1\r\n${H}Host: internal\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /host header appears 2 times/ },
  { name: 'non-ASCII Host', req: `GET / HTTP/1.1\r\nHost: caf\xe9.example\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /Host header is not a valid/ },
  { name: 'Host with a bad port', req: 'GET / HTTP/1.1\r\nHost: api.example:99999\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /Host header is not a valid/ },
  { name: 'Host with userinfo', req: 'GET / HTTP/1.1\r\nHost: user@api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /Host header is not a valid/ },
  { name: 'two Authorization headers', req: `GET / HTTP/1.1\r\n${H}Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /authorization header appears 2 times/ },
  { name: 'two Proxy-Authorization headers', req: `GET / HTTP/1.1\r\n${H}Proxy-Authorization: Bearer a\r\nproxy-authorization: Bearer b\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /proxy-authorization header appears 2 times/ },
  { name: 'two Content-Type headers', req: `POST / HTTP/1.1\r\n${H}Content-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /content-type header appears 2 times/ },
  { name: 'absolute-form whose authority differs from Host', req: 'GET http://internal.example/x HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /Host header names another authority/ },
  { name: 'absolute-form with another port than Host', req: 'GET http://api.example:8080/x HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /Host header names another authority/ },
  { name: 'absolute-form with userinfo', req: 'GET http://user:pass@api.example/x HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /user:password/ },
  { name: 'absolute-form with userinfo and another Host', req: 'GET http://u@internal.example/x HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /user:password/ },
  { name: 'absolute-form with an empty authority', req: 'GET http:///x HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /no valid host/ },
  { name: 'absolute-form with a legacy IPv4 spelling vs its dotted Host', req: 'GET http://2130706433/x HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /another authority/ },
  { name: 'absolute-form ftp://', req: 'GET ftp://api.example/x HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /must be a path/ },
  { name: 'asterisk-form', req: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /must be a path/ },
  { name: 'network-path target (//host)', req: `GET //internal.example/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /starts with "\/\/"/ },
  { name: 'fragment in the target', req: `GET /a#b HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /fragment/ },
  { name: 'backslash in the target', req: `GET /openai\\..\\admin HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /backslash/ },
  { name: 'dot-segment', req: `GET /openai/../admin HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /dot-segment/ },
  { name: 'percent-encoded dot-segment', req: `GET /openai/%2e%2E/admin HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /dot-segment/ },
  { name: 'dot-segment behind an encoded slash', req: `GET /openai/..%2fadmin HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /dot-segment/ },
  { name: 'dot-segment behind an encoded backslash', req: `GET /openai/x%5c..%5cadmin HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /dot-segment/ },
  { name: 'single dot segment', req: `GET /openai/./x HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /dot-segment/ },
  { name: 'dot-segment in an absolute-form target', req: 'GET http://api.example/v1/../admin HTTP/1.1\r\nHost: api.example\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /dot-segment/ },
  { name: 'bad percent-encoding', req: `GET /a%zz HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /percent-encoded/ },
  { name: `target over ${MAX_TARGET_BYTES} bytes`, req: `GET /${'a'.repeat(MAX_TARGET_BYTES)} HTTP/1.1\r\n${H}\r\n`, status: 414, code: 'TESSERA_PROXY_URI_TOO_LONG', layer: 'handler', message: /at most 8192/ },
  { name: 'HTTP/2.0 in an HTTP/1 request line', req: `GET / HTTP/2.0\r\n${H}\r\n`, status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /HTTP\/2\.0 is not spoken here/ },
  { name: 'HTTP/0.9-style request line', req: 'GET /\r\n\r\n', status: 400, code: 'TESSERA_PROXY_REQUEST_MALFORMED', layer: 'handler', message: /is not spoken here/ },
];

test('request smuggling and framing: every hostile request is refused with its code, by the layer that really refuses it, and the connection is closed', async (t) => {
  const h = await proxyLikeServer(t);
  const wrong: string[] = [];
  for (const row of ROWS) {
    const before = { handled: h.handled.length, passed: h.passed.length, parser: h.parserErrors.length };
    const a = await raw(h.port, row.req);
    const first = a.responses[0];
    const problems: string[] = [];
    if (a.responses.length !== 1) problems.push(`${a.responses.length} responses: ${JSON.stringify(a.raw.slice(0, 200))}`);
    if (first) {
      if (first.status !== row.status) problems.push(`status ${first.status}`);
      let code = '';
      try {
        code = (JSON.parse(first.body) as { error: { code: string; message: string } }).error.code;
        const message = (JSON.parse(first.body) as { error: { message: string } }).error.message;
        if (row.message && !row.message.test(message)) problems.push(`message ${JSON.stringify(message)}`);
      } catch {
        problems.push(`body ${JSON.stringify(first.body.slice(0, 120))}`);
      }
      if (code !== row.code) problems.push(`code ${code}`);
      if (!/\r\nconnection: close/i.test(first.headers)) problems.push('no Connection: close');
    }
    const handled = h.handled.length - before.handled;
    const parserErrors = h.parserErrors.slice(before.parser);
    if (row.layer !== 'body' && h.passed.length !== before.passed) problems.push('checkFraming let it through');
    if (row.layer === 'body' && h.passed.length !== before.passed + 1) problems.push('checkFraming refused a well-formed head');
    if (row.layer === 'parser' && handled !== 0) problems.push('a handler ran');
    if (row.layer !== 'parser' && handled !== 1) problems.push(`the handler ran ${handled} times`);
    if (row.layer !== 'handler' && parserErrors.length === 0) problems.push('node\'s parser did not refuse it');
    if (row.parser && !parserErrors.includes(row.parser)) problems.push(`parser errors ${JSON.stringify(parserErrors)}`);
    if (problems.length) wrong.push(`${row.name}: ${problems.join('; ')}`);
  }
  assert.deepEqual(wrong, []);
});

test('well-formed requests pass checkFraming: origin-form, absolute-form matching Host (default ports, case), chunked and sized bodies, HTTP/1.0, obs-text values', async (t) => {
  const h = await proxyLikeServer(t);
  const good: [string, string, number][] = [
    ['origin-form', `GET /openai/v1/models?x=1 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 0],
    ['sized body', `POST /openai/chat HTTP/1.1\r\n${H}Content-Length: 5\r\nConnection: close\r\n\r\nhello`, 5],
    ['chunked body', `POST /openai/chat HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 5],
    ['chunked in capitals', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n0\r\n\r\n`, 0],
    ['HTTP/1.0 with Host', `GET / HTTP/1.0\r\n${H}\r\n`, 0],
    ['absolute-form, same authority', 'GET http://api.example/v1/x HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n', 0],
    ['absolute-form, explicit default port', 'GET http://API.example:80/v1/x HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n', 0],
    ['absolute-form, Host with default port', 'GET http://api.example/v1/x HTTP/1.1\r\nHost: API.EXAMPLE:80\r\nConnection: close\r\n\r\n', 0],
    ['absolute-form https', 'GET https://api.example:443/v1 HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n', 0],
    ['absolute-form IPv6', 'GET http://[::1]:8080/x HTTP/1.1\r\nHost: [0::1]:8080\r\nConnection: close\r\n\r\n', 0],
    ['dots inside segments', `GET /v1/file.tar.gz/..x/x.. HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 0],
    ['obs-text in a value', `GET / HTTP/1.1\r\n${H}X-Name: caf\xe9\r\nConnection: close\r\n\r\n`, 0],
    ['h2c upgrade offer (forwardHeaders drops it)', `GET / HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`, 0],
  ];
  for (const [name, req, bytes] of good) {
    const a = await raw(h.port, req);
    assert.equal(a.responses.length, 1, `${name}: ${a.raw.slice(0, 200)}`);
    assert.equal(a.responses[0]!.status, 200, `${name}: ${a.responses[0]!.body}`);
    assert.equal((JSON.parse(a.responses[0]!.body) as { bytes: number }).bytes, bytes, name);
  }
  assert.equal(h.parserErrors.length, 0);
});

test('after a refusal nothing else on the connection is served (pipelined requests die with it)', async (t) => {
  const h = await proxyLikeServer(t);
  const a = await raw(h.port, `GET /first HTTP/1.1\r\n${H}Host: internal\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`);
  assert.equal(a.responses.length, 1);
  assert.equal(a.responses[0]!.status, 400);
  assert.deepEqual(h.passed, []);
  const b = await raw(h.port, `POST /first HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`);
  assert.equal(b.responses.length, 1);
  assert.deepEqual(h.passed, []);
});

test('forwardHeaders drops hop-by-hop fields, what Connection lists, Proxy-*, Host and the strip list (any case)', () => {
  const incoming = {
    host: 'api.example', connection: 'keep-alive, X-Hop, x-other-hop', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', te: 'trailers', trailer: 'x-t',
    'transfer-encoding': 'chunked', upgrade: 'h2c', 'http2-settings': 'AAMA', 'proxy-authorization': 'Bearer agent-token', 'proxy-authenticate': 'Basic', 'proxy-status': 'x',
    'x-hop': '1', 'x-other-hop': '2', expect: '100-continue', authorization: 'Bearer sk-agent', cookie: 'a=b', 'x-api-key': 'agent-key', 'content-type': 'application/json', 'content-length': '12',
    accept: 'text/event-stream', 'set-cookie': ['a', 'b'], 'x-keep': 'yes', 'x-undefined': undefined,
  };
  assert.deepEqual(forwardHeaders(incoming, ['Authorization', 'COOKIE', 'X-Api-Key']), {
    'content-type': 'application/json', 'content-length': '12', accept: 'text/event-stream', 'set-cookie': ['a', 'b'], 'x-keep': 'yes',
  });
  assert.deepEqual(forwardHeaders({ connection: 'close, X-A', 'x-a': '1', 'x-b': '2' }, []), { 'x-b': '2' });
  assert.deepEqual(forwardHeaders({ connection: ['close', 'X-A'], 'x-a': '1', 'x-b': '2' } as unknown as IncomingHttpHeaders, []), { 'x-b': '2' }, 'Connection repeated (not joined)');
  assert.deepEqual(forwardHeaders({ 'x-a': '1' }, []), { 'x-a': '1' });
});

test('a real hop: what forwardHeaders keeps is accepted by undici and reaches the upstream without hop-by-hop fields', async (t) => {
  const got: { headers: Record<string, unknown>; body: string }[] = [];
  const upstream = createServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      got.push({ headers: { ...req.headers }, body });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { upstream.closeAllConnections(); upstream.close(() => r()); }));
  const upPort = (upstream.address() as { port: number }).port;
  const proxy = createServer({ ...PROXY_SERVER_OPTIONS }, (req, res) => {
    try {
      checkFraming(req);
    } catch (e) {
      if (isTesseraError(e)) return sendRefusal(res, e);
      throw e;
    }
    const headers = forwardHeaders(req.headers, ['authorization', 'x-api-key']);
    request(`http://127.0.0.1:${upPort}${req.url}`, { method: req.method as 'POST', headers, body: req }).then(
      async (r) => {
        const text = await r.body.text();
        res.writeHead(r.statusCode, { connection: 'close', 'content-length': Buffer.byteLength(text) }).end(text);
      },
      (e: Error) => res.writeHead(599, { connection: 'close' }).end(e.message),
    );
  });
  proxy.on('clientError', onClientError);
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { proxy.closeAllConnections(); proxy.close(() => r()); }));
  const port = (proxy.address() as { port: number }).port;
  const body = 'hello';
  const req = [
    'POST /v1/x HTTP/1.1', 'Host: api.example', 'Connection: keep-alive, X-Hop', 'Keep-Alive: timeout=5', 'Proxy-Connection: keep-alive', 'TE: trailers', 'Trailer: X-T',
    'Transfer-Encoding: chunked', 'Upgrade: h2c', 'HTTP2-Settings: AAMA', 'Proxy-Authorization: Bearer agent-token', 'Expect: 100-continue', 'X-Hop: 1',
    'Authorization: Bearer sk-agent', 'X-Api-Key: agent-key', 'X-Name: caf\xe9', 'X-Keep: yes', '', `${body.length.toString(16)}\r\n${body}\r\n0\r\n`, '',
  ].join('\r\n');
  const a = await raw(port, req);
  const final = a.responses.find((r) => r.status !== 100);
  assert.equal(final?.status, 200, a.raw.slice(0, 300));
  assert.equal(final?.body, 'ok');
  assert.equal(got.length, 1);
  assert.equal(got[0]!.body, 'hello');
  const names = Object.keys(got[0]!.headers).sort();
  for (const hop of ['keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'http2-settings', 'proxy-authorization', 'expect', 'x-hop', 'authorization', 'x-api-key']) assert.ok(!names.includes(hop), `${hop} reached the upstream`);
  assert.equal(got[0]!.headers['x-keep'], 'yes');
  assert.equal(got[0]!.headers['x-name'], 'caf\xe9');
  assert.equal(got[0]!.headers.host, `127.0.0.1:${upPort}`);
});

test('rewriteLocation maps same-origin redirects under the base to the route, leaves the rest for the client to bring back through the proxy', () => {
  const up = new URL('https://api.example/v1');
  const rows: [string, string | undefined][] = [
    ['https://api.example/v1/files/1?x=1#f', '/openai/files/1?x=1#f'],
    ['https://API.EXAMPLE:443/v1/files/1', '/openai/files/1'],
    ['/v1/files/2', '/openai/files/2'],
    ['//api.example/v1/files/3', '/openai/files/3'],
    ['https://api.example/v1', '/openai/'],
    ['https://api.example/v1/', '/openai/'],
    ['https://api.example/v10/x', 'https://api.example/v10/x'], // not under /v1: the upstream URL, made absolute
    ['/other', 'https://api.example/other'],
    ['files/4', 'files/4'], // path-relative: resolves on the client the same way
    ['../x', '../x'],
    ['https://elsewhere.example/x', 'https://elsewhere.example/x'],
    ['http://api.example/v1/x', 'http://api.example/v1/x'], // another origin (scheme)
    ['//elsewhere.example/x', 'https://elsewhere.example/x'],
    ['https://user:pw@api.example/v1/x', 'https://user:pw@api.example/v1/x'],
    ['https://api.example:8443/v1/x', 'https://api.example:8443/v1/x'],
    ['', undefined], ['https://api.example/v1/a\r\nSet-Cookie: x', undefined], ['https://api.example/v1/a b', undefined], ['http://[::1', undefined],
  ];
  for (const [loc, want] of rows) assert.equal(rewriteLocation(loc, up, '/openai'), want, loc);
  assert.equal(rewriteLocation('https://api.example/v1/files/1', up, 'http://127.0.0.1:8201/openai/'), 'http://127.0.0.1:8201/openai/files/1');
  assert.equal(rewriteLocation('https://api.example/x', new URL('https://api.example'), '/r'), '/r/x');
  assert.equal(rewriteLocation('https://api.example/x', new URL('https://api.example/'), 'https://api.example'), 'https://api.example/x');
});

test('PROXY_SERVER_OPTIONS is the strict parser with the bounds the proxy needs', () => {
  assert.deepEqual({ ...PROXY_SERVER_OPTIONS }, { insecureHTTPParser: false, requireHostHeader: false, maxHeaderSize: 16384, joinDuplicateHeaders: true });
  assert.ok(Object.isFrozen(PROXY_SERVER_OPTIONS));
});
