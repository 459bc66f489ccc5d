/**
 * Token usage read from a model provider's response while it streams to the agent
 * (docs/proxy-providers.md "Usage", ADR 0211). Fed every body chunk the proxy forwards; never
 * changes, delays or buffers what the agent gets. Pure: no I/O, no clock. Never throws: a body it
 * cannot read yields `undefined` (usage unknown), and the request is then counted with no tokens.
 *
 * What is read:
 *  - OpenAI, JSON: the top-level `usage` of chat completions / completions / embeddings
 *    (`prompt_tokens`, `completion_tokens` (absent for embeddings: 0), `total_tokens`) and of the
 *    Responses API (`input_tokens`, `output_tokens`, `total_tokens`)
 *    (platform.openai.com/docs/api-reference/chat/object, /responses/object).
 *  - OpenAI, SSE: the last chunk whose `usage` is an object — with `stream_options.include_usage`
 *    "an additional chunk will be streamed before the `data: [DONE]` message. The `usage` field on
 *    this chunk shows the token usage statistics for the entire request" (chat/create,
 *    `stream_options`); `withStreamUsage` asks for it — and the Responses API's
 *    `response.completed` (`response.incomplete`, `response.failed`) event's `response.usage`.
 *  - Anthropic, JSON: `usage.input_tokens`, `output_tokens`, plus `cache_creation_input_tokens`
 *    and `cache_read_input_tokens`, which Anthropic counts apart from `input_tokens`
 *    (docs.anthropic.com/en/api/messages). Input here is all prompt tokens processed, cached or
 *    not, as OpenAI's `prompt_tokens` is.
 *  - Anthropic, SSE: `message_start`'s `message.usage`, then each `message_delta`'s `usage`, whose
 *    counts are cumulative (docs.anthropic.com/en/docs/build-with-claude/streaming): the latest
 *    value of each field wins, never a sum.
 *
 * Bounds: a JSON body over `maxJsonBytes` (default 4 MiB) is not kept (usage unknown); an SSE line
 * over `maxLineBytes` (default 1 MiB) is dropped as it streams (its bytes are skipped, not
 * buffered) and so is the event it belongs to; an event's data is at most `maxLineBytes` in all.
 * Memory per reader is therefore at most about one bound.
 */
import type { UsageKind } from './providers.js';

export interface Usage {
  /** Prompt tokens (input), including cached ones. */
  readonly input: number;
  /** Completion tokens (output), reasoning tokens included. */
  readonly output: number;
  /** As the provider reported it, else input + output. */
  readonly total: number;
}

export interface UsageReader {
  /** One body chunk, in order. Kept by reference until `end` (JSON): the caller must not reuse it. */
  push(chunk: Buffer): void;
  /** The body ended: the usage it reported, or undefined when it reported none readable. */
  end(): Usage | undefined;
}

export interface UsageReaderOptions {
  readonly maxJsonBytes?: number;
  readonly maxLineBytes?: number;
}

export const DEFAULT_MAX_JSON_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

/** The media type of a Content-Type header, lowercase, without parameters. */
function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

function isJsonType(t: string): boolean {
  return t === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(t);
}

/** A token count: a non-negative safe integer, else undefined. */
function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function make(input: number, output: number, total?: number): Usage {
  return { input, output, total: total ?? input + output };
}

/** An OpenAI `usage` object (chat completions or Responses API naming), else undefined. */
export function openaiUsage(u: unknown): Usage | undefined {
  const o = obj(u);
  if (!o) return undefined;
  const prompt = count(o.prompt_tokens);
  if (prompt !== undefined) {
    if (o.completion_tokens !== undefined && count(o.completion_tokens) === undefined) return undefined;
    const completion = count(o.completion_tokens) ?? 0;
    return make(prompt, completion, count(o.total_tokens));
  }
  const input = count(o.input_tokens);
  const output = count(o.output_tokens);
  if (input === undefined || output === undefined) return undefined;
  return make(input, output, count(o.total_tokens));
}

/** Anthropic's usage fields, any of which may be absent from one event. */
interface AnthropicCounts {
  input?: number;
  cacheCreation?: number;
  cacheRead?: number;
  output?: number;
}

function anthropicCounts(u: unknown): AnthropicCounts | undefined {
  const o = obj(u);
  if (!o) return undefined;
  const c: AnthropicCounts = {};
  const fields = [['input', 'input_tokens'], ['cacheCreation', 'cache_creation_input_tokens'], ['cacheRead', 'cache_read_input_tokens'], ['output', 'output_tokens']] as const;
  for (const [k, name] of fields) {
    if (o[name] === undefined || o[name] === null) continue;
    const n = count(o[name]);
    if (n === undefined) return undefined;
    c[k] = n;
  }
  return c;
}

function anthropicUsage(c: AnthropicCounts): Usage | undefined {
  if (c.input === undefined || c.output === undefined) return undefined;
  return make(c.input + (c.cacheCreation ?? 0) + (c.cacheRead ?? 0), c.output);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Usage of a complete JSON response body. */
function fromJsonBody(kind: UsageKind, body: unknown): Usage | undefined {
  const o = obj(body);
  if (!o) return undefined;
  if (kind === 'openai') return openaiUsage(o.usage);
  const c = anthropicCounts(o.usage);
  return c ? anthropicUsage(c) : undefined;
}

/** Collects one SSE event's `usage` into the running state of a stream. */
interface StreamState {
  onEvent(data: string): void;
  result(): Usage | undefined;
}

function openaiStream(): StreamState {
  let last: Usage | undefined;
  return {
    onEvent(data) {
      if (data === '[DONE]') return;
      const o = obj(parseJson(data));
      if (!o) return;
      const direct = o.usage !== undefined && o.usage !== null ? openaiUsage(o.usage) : undefined;
      const response = obj(o.response);
      const nested = response && response.usage !== undefined && response.usage !== null ? openaiUsage(response.usage) : undefined;
      last = direct ?? nested ?? last;
    },
    result: () => last,
  };
}

function anthropicStream(): StreamState {
  const state: AnthropicCounts = {};
  let seen = false;
  const merge = (c: AnthropicCounts | undefined): void => {
    if (!c) return;
    seen = true;
    // Cumulative counts: the latest value of each field replaces the earlier one.
    Object.assign(state, c);
  };
  return {
    onEvent(data) {
      const o = obj(parseJson(data));
      if (!o) return;
      if (o.type === 'message_start') merge(anthropicCounts(obj(o.message)?.usage));
      else if (o.type === 'message_delta') merge(anthropicCounts(o.usage));
    },
    result: () => (seen ? anthropicUsage(state) : undefined),
  };
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * An incremental text/event-stream parser (WHATWG HTML §9.2.6 "Parsing an event stream"): lines
 * end with CRLF, LF or CR (also when a CRLF is split between two chunks); a line starting with
 * `:` is a comment; `data` lines of one event are joined with LF; a blank line dispatches the
 * event; a leading U+FEFF is skipped; an unterminated last event is discarded at the end.
 * Only `data` matters here (usage is read from the JSON in it; the event name is in it too).
 */
export function createSseParser(onEvent: (data: string) => void, maxLineBytes = DEFAULT_MAX_LINE_BYTES): { push(chunk: Buffer): void; end(): void } {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let skipping = false; // inside an over-long line: drop bytes until its end
  let afterCr = false; // the previous chunk ended with CR: a leading LF belongs to it
  let first = true; // the first line may start with a BOM (U+FEFF)
  let data: string[] = [];
  let dataBytes = 0;
  let eventDropped = false;

  const line = (raw: Buffer): void => {
    const buf = first && raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf ? raw.subarray(3) : raw;
    first = false;
    if (buf.length === 0) {
      if (data.length > 0 && !eventDropped) onEvent(data.join('\n'));
      data = [];
      dataBytes = 0;
      eventDropped = false;
      return;
    }
    if (buf[0] === 0x3a) return; // comment
    const colon = buf.indexOf(0x3a);
    const name = (colon < 0 ? buf : buf.subarray(0, colon)).toString('utf8');
    if (name !== 'data') return;
    let value = colon < 0 ? Buffer.alloc(0) : buf.subarray(colon + 1);
    if (value[0] === 0x20) value = value.subarray(1);
    dataBytes += value.length + 1;
    if (dataBytes > maxLineBytes) {
      eventDropped = true;
      data = [];
      return;
    }
    if (!eventDropped) data.push(value.toString('utf8'));
  };

  /** A line ended with `piece` as its last part: dispatch it, or drop it if it was too long. */
  const endLine = (piece: Buffer): void => {
    if (!skipping && partBytes + piece.length > maxLineBytes) skipping = true;
    if (skipping) {
      skipping = false;
      eventDropped = true; // a part of this event is lost: do not read the rest as if whole
    } else {
      line(parts.length === 0 ? piece : Buffer.concat([...parts, piece]));
    }
    parts = [];
    partBytes = 0;
  };

  /** The unterminated rest of a chunk: kept (copied) until its line ends, unless too long. */
  const keep = (piece: Buffer): void => {
    if (skipping || piece.length === 0) return;
    if (partBytes + piece.length > maxLineBytes) {
      parts = [];
      partBytes = 0;
      skipping = true;
      return;
    }
    parts.push(Buffer.from(piece));
    partBytes += piece.length;
  };

  return {
    push(chunk) {
      let i = 0;
      if (afterCr && chunk.length > 0) {
        afterCr = false;
        if (chunk[i] === LF) i++;
      }
      let start = i;
      for (; i < chunk.length; i++) {
        const c = chunk[i];
        if (c !== LF && c !== CR) continue;
        endLine(chunk.subarray(start, i));
        if (c === CR) {
          if (i + 1 === chunk.length) afterCr = true;
          else if (chunk[i + 1] === LF) i++;
        }
        start = i + 1;
      }
      keep(chunk.subarray(start));
    },
    end() {
      parts = [];
      data = [];
    },
  };
}

/**
 * A reader for one response of a route whose usage kind is `kind`, chosen by the response's
 * Content-Type: `text/event-stream` → SSE, `application/json` (or `+json`) → JSON, anything else
 * → no usage (push is a no-op). Responses with an error status carry no usage; the caller need
 * not feed them.
 */
export function createUsageReader(kind: UsageKind, contentType: string | undefined, options: UsageReaderOptions = {}): UsageReader {
  const type = mediaType(contentType);
  if (type === 'text/event-stream') {
    const state = kind === 'openai' ? openaiStream() : anthropicStream();
    const parser = createSseParser((d) => state.onEvent(d), options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    let ended = false;
    return {
      push(chunk) {
        if (!ended) parser.push(chunk);
      },
      end() {
        ended = true;
        parser.end();
        return state.result();
      },
    };
  }
  if (isJsonType(type)) {
    const max = options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
    let parts: Buffer[] = [];
    let size = 0;
    let over = false;
    return {
      push(chunk) {
        if (over) return;
        size += chunk.length;
        if (size > max) {
          over = true;
          parts = [];
          return;
        }
        parts.push(chunk); // not copied: a body chunk is not reused by its producer (node http, undici)
      },
      end() {
        if (over) return undefined;
        const text = Buffer.concat(parts).toString('utf8');
        parts = [];
        return fromJsonBody(kind, parseJson(text));
      },
    };
  }
  return { push() {}, end: () => undefined };
}

/**
 * The request body of an OpenAI streamed chat completion or completion (`"stream": true`, with
 * `messages` or `prompt`) that does not ask for usage, rewritten to ask for it
 * (`stream_options.include_usage: true`, other `stream_options` kept); undefined when the body
 * is anything else (not JSON, not streamed, already asking, a Responses API body — its stream
 * reports usage by itself and it has no such option — or a `stream_options` that is not an
 * object). The proxy applies it on routes with a `tokens` limit: without it a streamed request's
 * tokens could not be counted and streaming would slip past the limit. What the agent sees
 * changes by one extra last chunk with `"choices": []` and the usage, and `"usage": null` on the
 * others (what the option documents); the official SDKs read it. `contentType`: the request's.
 */
export function withStreamUsage(body: Buffer, contentType: string | undefined): Buffer | undefined {
  if (!isJsonType(mediaType(contentType)) || body.length === 0 || body.length > DEFAULT_MAX_JSON_BYTES) return undefined;
  const o = obj(parseJson(body.toString('utf8')));
  if (!o || o.stream !== true) return undefined;
  if (!Array.isArray(o.messages) && o.prompt === undefined) return undefined;
  const so = o.stream_options;
  if (so !== undefined && so !== null && !obj(so)) return undefined;
  if (obj(so)?.include_usage === true) return undefined;
  return Buffer.from(JSON.stringify({ ...o, stream_options: { ...(obj(so) ?? {}), include_usage: true } }), 'utf8');
}
