/**
 * `fetch` for the SDK's Streamable HTTP client transport (upstream MCP servers), on undici's
 * `request`, with a bound on what an upstream may send back.
 *
 * - Several times cheaper per call than WHATWG fetch, which matters because every gateway call
 *   to an HTTP upstream is one such request. Also, the SDK gives every fetch one long-lived
 *   AbortSignal (the transport's), and Node 20's fetch drops its abort listener only on garbage
 *   collection, so a busy connection piles up thousands of listeners; calls here are bounded by
 *   the gateway's own timeout instead, and a closed client rejects its pending requests.
 * - **Bounded reading** (`maxMessageBytes`, gateway `max_result_bytes`): a JSON answer is read
 *   chunk by chunk and abandoned (connection destroyed) as soon as it passes the limit; the
 *   request fails with TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE. An SSE stream (MCP Streamable
 *   HTTP §"Sending Messages to the Server") is passed through event by event; an event that
 *   passes the limit ends the stream, and the request the POST carried gets a JSON-RPC error
 *   with that code instead of its answer. Memory stays bounded by the limit.
 */
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

/**
 * undici loads with the first request (a server that never calls out does not hold it:
 * docs/adr/0121-memory.md). The module promise is kept: `import()` on every request went
 * through the ESM loader's resolve each time (ADR 0294).
 */
let undiciModule: Promise<typeof import('undici')> | undefined;
const undici = (): Promise<typeof import('undici')> => (undiciModule ??= import('undici'));
import { TesseraError } from '../shared/errors.js';
import { RESULT_TOO_LARGE, RESULT_TOO_LARGE_RPC } from './stdio-transport.js';

type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

function tooLarge(limit: number): TesseraError {
  return new TesseraError(RESULT_TOO_LARGE, `the upstream's answer is larger than ${limit} bytes (gateway max_result_bytes); it was discarded`, { limit });
}

/** Ids of the JSON-RPC requests in a POST body (one message or a batch). */
function requestIds(body: unknown): (string | number)[] {
  if (typeof body !== 'string') return [];
  try {
    const parsed = JSON.parse(body) as unknown;
    const msgs = Array.isArray(parsed) ? parsed : [parsed];
    return msgs.flatMap((m) => {
      const x = m as { id?: unknown; method?: unknown } | null;
      return x && typeof x.method === 'string' && (typeof x.id === 'string' || typeof x.id === 'number') ? [x.id] : [];
    });
  } catch {
    return [];
  }
}

/** Offset just past the last blank line (SSE event boundary, WHATWG HTML §9.2.6) in `buf`, or -1. */
function lastEventEnd(buf: Uint8Array): number {
  for (let i = buf.length - 1; i >= 1; i--) {
    if (buf[i] === 0x0a && buf[i - 1] === 0x0a) return i + 1;
    if (buf[i] === 0x0d && buf[i - 1] === 0x0d) return i + 1;
    if (buf[i] === 0x0a && i >= 3 && buf[i - 1] === 0x0d && buf[i - 2] === 0x0a && buf[i - 3] === 0x0d) return i + 1;
  }
  return -1;
}

/** An SSE stream passed through, each event at most `limit` bytes; then a synthesized error event. */
function boundedSse(source: ReadableStream<Uint8Array>, limit: number, ids: readonly (string | number)[]): ReadableStream<Uint8Array> {
  let since = 0;
  let carry = new Uint8Array(0);
  const enc = new TextEncoder();
  return source.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      // Three bytes of the previous chunk: a boundary may straddle two chunks.
      const joined = new Uint8Array(carry.length + chunk.length);
      joined.set(carry);
      joined.set(chunk, carry.length);
      const end = lastEventEnd(joined);
      since = end >= 0 ? joined.length - end : since + chunk.length;
      carry = joined.subarray(Math.max(0, joined.length - 3));
      if (since > limit) {
        const err = tooLarge(limit);
        // Whatever of the oversized event already went through is cut by a blank line first.
        const events = ids.map((id) => `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, error: { code: RESULT_TOO_LARGE_RPC, message: err.message, data: { code: RESULT_TOO_LARGE, limit } } })}\n\n`).join('');
        controller.enqueue(enc.encode(`\n\n${events}`));
        controller.terminate();
        return;
      }
      controller.enqueue(chunk);
    },
  }));
}

export function boundedUpstreamFetch(maxMessageBytes: number): Fetch {
  return async (url, init) => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const method = (init?.method ?? 'GET') as Dispatcher.HttpMethod;
    const r = await (await undici()).request(url, { method, headers, ...(typeof init?.body === 'string' ? { body: init.body } : {}) });
    const out = new Headers();
    for (const [k, v] of Object.entries(r.headers)) {
      if (Array.isArray(v)) for (const x of v) out.append(k, x);
      else if (v !== undefined) out.set(k, v);
    }
    const status = r.statusCode;
    if (status === 204 || status === 304 || method === 'HEAD') {
      await r.body.dump();
      return new Response(null, { status, headers: out });
    }
    if ((out.get('content-type') ?? '').includes('text/event-stream')) {
      return new Response(boundedSse(Readable.toWeb(r.body) as ReadableStream<Uint8Array>, maxMessageBytes, requestIds(init?.body)), { status, headers: out });
    }
    const declared = Number(out.get('content-length') ?? NaN);
    if (declared > maxMessageBytes) {
      r.body.destroy();
      throw tooLarge(maxMessageBytes);
    }
    const body = r.body;
    const buf = await new Promise<Buffer<ArrayBuffer>>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      body.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxMessageBytes) {
          body.destroy();
          reject(tooLarge(maxMessageBytes));
          return;
        }
        chunks.push(c);
      });
      body.once('end', () => resolve(Buffer.concat(chunks, size)));
      body.once('error', reject);
    });
    return bufferedResponse(buf, status, out);
  };
}

/**
 * A JSON answer already read into memory, as the Response the SDK's client transport reads:
 * `json()` and `text()` decode the buffer directly; anything else (`body`, `clone()`,
 * `arrayBuffer()`, …) goes to a real Response made on first use. A WHATWG Response builds a
 * ReadableStream for its body at once, which was a large share of the gateway's CPU per call to
 * an HTTP upstream (ADR 0294).
 */
function bufferedResponse(buf: Buffer<ArrayBuffer>, status: number, headers: Headers): Response {
  let real: Response | undefined;
  let used = false;
  const realOf = (): Response => (real ??= new Response(buf, { status, headers }));
  // WHATWG "UTF-8 decode": a leading byte order mark is dropped.
  const text = (): string => {
    if (used || real?.bodyUsed) throw new TypeError('Body is unusable: Body has already been read');
    used = true;
    const t = buf.toString('utf8');
    return t.charCodeAt(0) === 0xfeff ? t.slice(1) : t;
  };
  const lazy = {
    status,
    ok: status >= 200 && status < 300,
    statusText: '',
    headers,
    url: '',
    redirected: false,
    type: 'default',
    get body() {
      return used ? null : realOf().body;
    },
    get bodyUsed() {
      return used || (real?.bodyUsed ?? false);
    },
    text: async () => text(),
    json: async () => JSON.parse(text()) as unknown,
    arrayBuffer: () => realOf().arrayBuffer(),
    blob: () => realOf().blob(),
    formData: () => realOf().formData(),
    bytes: async () => new Uint8Array(await realOf().arrayBuffer()),
    clone: () => realOf().clone(),
  };
  return lazy as unknown as Response;
}
