/**
 * Response bodies scrubbed while they stream (SSE, chunked), never buffered whole
 * (docs/proxy-providers.md "Streamed scrubbing", ADR 0211). The Scrubber of the gateway
 * (src/gateway/scrub) finds every registered secret in its encodings and the credential shapes;
 * this Transform applies it across chunk boundaries.
 *
 * **What is held back.** After each chunk, everything is sent except the shortest tail that could
 * still be the beginning of something to redact:
 *  - the tail from which a secret's form could begin and go on in the next chunk
 *    (`Scrubber.partialFrom`: at most the longest form − 1 characters, or twice the longest
 *    base64/hex form when line breaks wrap it);
 *  - an incomplete UTF-8 sequence at the end of the chunk (at most 3 bytes);
 *  - for the credential shapes (unbounded patterns such as `sk-…` or JWTs): the trailing run of
 *    token characters (letters, digits, `+/=_-.~:`) up to 4 KiB, with a quote before it; the
 *    last 128 characters from an `aws_secret_access_key` or `private_key_id` name (its value may
 *    follow); a `-----BEGIN … PRIVATE KEY-----` block whose END has not arrived, up to 16 KiB;
 *  - a match that straddles the cut, or ends at the end of what arrived, is held whole.
 * When nothing could straddle — an SSE event ends with a blank line, so almost always — the chunk
 * is sent at once, whole. The held text never exceeds 64 KiB (`MAX_HOLD`); beyond it the oldest
 * part is sent (a shape longer than that — an unterminated PEM block — is redacted in the part
 * seen with its start). Memory per stream: the hold plus the chunk being scrubbed.
 *
 * **Binary bodies.** The body is read as UTF-8 while it is valid UTF-8. From the first byte
 * sequence that is not, the rest (and what is held) is read as Latin-1: one byte, one character,
 * so the bytes pass unchanged except where a match is replaced, and every ASCII form of a secret
 * (plain ASCII, hex, base64, URL, JSON escapes) and every shape is still found. A non-ASCII
 * secret's plain UTF-8 bytes inside a non-UTF-8 body are not (ADR 0211). A redaction changes the
 * body's length: the caller must not forward the upstream's Content-Length, and must receive the
 * body decoded (ask the upstream for `Accept-Encoding: identity`, or decode): compressed bytes
 * cannot be scrubbed.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { isUtf8 } from 'node:buffer';
import type { Scrubber, ScrubHit } from '../gateway/scrub/index.js';

/** The most text ever held back, UTF-16 code units. */
export const MAX_HOLD = 64 * 1024;
/** A credential-shaped word is held until it ends, up to this many characters. */
export const SHAPE_RUN_HOLD = 4096;
/** A private-key PEM block is held until its END line, up to this many characters. */
export const PEM_HOLD = 16 * 1024 + 256;

export interface ScrubStreamOptions {
  /** The hits of each piece sent (forms and shapes, never values), for the audit. */
  onHits?(hits: ScrubHit[]): void;
  /**
   * Whether the scrubber looks for credential shapes (default true). False — the scrubber was built
   * with `shapes: false`, as the proxy's is — skips the shape hold rules: only what could begin a
   * registered value is held back.
   */
  shapes?: boolean;
}

export interface ScrubStreamStats {
  /** Largest text held back between chunks so far (UTF-16 code units), plus pending UTF-8 bytes. */
  readonly maxHeld: number;
  /** The body was not valid UTF-8: scrubbed as Latin-1 from that point. */
  readonly binary: boolean;
  /** Redactions made. */
  readonly redactions: number;
}

export type ScrubStream = Transform & { readonly stats: ScrubStreamStats };

/**
 * The streamed scrubber without stream machinery, for a caller that moves the bytes itself (the
 * proxy's answer: src/proxy/request.ts). `write` returns what can be sent now; `end` scrubs what
 * is held — and `last`, the body's final chunk, when the caller knows it is the last (the
 * upstream's Content-Length reached): nothing is then held back, so the tail search is skipped.
 * Empty buffers mean nothing to send. After `end`, the session takes nothing more.
 */
export interface ScrubSession {
  write(chunk: Buffer): Buffer;
  end(last?: Buffer): Buffer;
  readonly stats: ScrubStreamStats;
}

const EMPTY = Buffer.alloc(0);

/** A trailing run of token characters, with a quote before it (the gcp shape starts with one). */
const TOKEN_RUN = /(?:\\?")?[A-Za-z0-9+/=_\-.~:]*$/;
/**
 * The names before the two shapes that match a name and its value (shapes.ts `aws-secret-key`,
 * `gcp-service-account-key`): while one is among the last `NAMED_HOLD` characters, the text from it
 * is held (the value may still be coming). A name cut at the end is in the token run.
 */
const NAMED = /aws_?secret_?access_?key|private_key_id/gi;
const NAMED_HOLD = 128;
const PEM_BEGIN = '-----BEGIN';
const PEM_END = /-----END[ A-Z0-9]{0,40}PRIVATE KEY-----/;

/** Length of an incomplete UTF-8 sequence at the end of `buf` (0–3). */
function incompleteTail(buf: Buffer): number {
  const n = buf.length;
  for (let i = n - 1; i >= 0 && i >= n - 3; i--) {
    const b = buf[i]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    if (b < 0xc0) return 0; // ASCII: complete
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    return n - i < need ? n - i : 0;
  }
  return 0;
}

/** Where the shape rules need the text held from (text.length: nowhere). */
function shapeHoldFrom(text: string): number {
  const n = text.length;
  let from = n;
  const run = TOKEN_RUN.exec(text.length > SHAPE_RUN_HOLD ? text.slice(-SHAPE_RUN_HOLD) : text);
  if (run && run[0].length > 0) from = Math.min(from, n - run[0].length);
  const tailStart = Math.max(0, n - NAMED_HOLD);
  NAMED.lastIndex = 0;
  const named = NAMED.exec(text.slice(tailStart));
  // From the character before the name: the gcp shape starts with the name's opening quote.
  if (named) from = Math.min(from, Math.max(0, tailStart + named.index - 1));
  const pemAt = text.lastIndexOf(PEM_BEGIN, n - 1);
  if (pemAt >= 0 && n - pemAt <= PEM_HOLD && !PEM_END.test(text.slice(pemAt))) from = Math.min(from, pemAt);
  // A "-----BEGIN" being written: its dashes are in the token run already.
  return from;
}

/**
 * A scrub session over `scrubber`'s secrets (and shapes, unless `opts.shapes` is false), holding
 * back only what could straddle the next chunk (see the module doc).
 */
export function createScrubSession(scrubber: Scrubber, opts: ScrubStreamOptions = {}): ScrubSession {
  let mode: 'utf8' | 'latin1' = 'utf8';
  let held = '';
  let pending: Buffer = EMPTY;
  let ended = false;
  const shapes = opts.shapes !== false;
  const stats = { maxHeld: 0, binary: false, redactions: 0 };

  /** The scrubbed text of `text[0..cut)`, with the matches of `matches` that end by `cut`. */
  function emit(text: string, cut: number, matches: ReturnType<Scrubber['find']>): string {
    if (matches.length === 0) return cut === text.length ? text : text.slice(0, cut);
    let out = '';
    let pos = 0;
    const hits: ScrubHit[] = [];
    for (const m of matches) {
      if (m.end > cut) break;
      out += text.slice(pos, m.start) + m.marker;
      pos = m.end;
      hits.push(m.hit);
    }
    if (hits.length > 0) {
      stats.redactions += hits.length;
      opts.onHits?.(hits);
    }
    return out + text.slice(pos, cut);
  }

  /** Scrubs `text`; returns what to send now and keeps the rest in `held`. */
  function step(text: string, final: boolean): string {
    const matches = text.length > 0 ? scrubber.find(text) : [];
    if (final) {
      held = '';
      return emit(text, text.length, matches);
    }
    const n = text.length;
    let cut = scrubber.partialFrom(text);
    if (shapes) cut = Math.min(cut, shapeHoldFrom(text));
    if (cut < n - MAX_HOLD) cut = n - MAX_HOLD;
    // A match across the cut, or touching the end (a shape may go on), is held whole, unless
    // that would exceed the bound: then it is sent whole, redacted.
    for (const m of matches) {
      if (m.start < cut && (m.end > cut || m.end === n)) cut = n - m.start <= MAX_HOLD ? m.start : Math.max(cut, m.end);
      if (m.start >= cut) break;
    }
    // Never split a surrogate pair (its halves would be sent as U+FFFD).
    if (cut > 0 && cut < n) {
      const c = text.charCodeAt(cut - 1);
      if (c >= 0xd800 && c <= 0xdbff) cut--;
    }
    held = text.slice(cut);
    const out = emit(text, cut, matches);
    stats.maxHeld = Math.max(stats.maxHeld, held.length + pending.length);
    return out;
  }

  function decode(chunk: Buffer): string {
    if (mode === 'latin1') return chunk.toString('latin1');
    const buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    const keep = incompleteTail(buf);
    const body = keep > 0 ? buf.subarray(0, buf.length - keep) : buf;
    if (isUtf8(body)) {
      pending = keep > 0 ? Buffer.from(buf.subarray(buf.length - keep)) : EMPTY;
      return body.toString('utf8');
    }
    // Not UTF-8: Latin-1 from here on; what is held was valid UTF-8, re-read as its bytes.
    mode = 'latin1';
    stats.binary = true;
    held = Buffer.from(held, 'utf8').toString('latin1');
    pending = EMPTY;
    return buf.toString('latin1');
  }

  const encode = (s: string): Buffer => (s.length === 0 ? EMPTY : Buffer.from(s, mode === 'latin1' ? 'latin1' : 'utf8'));

  /**
   * Scrubs `chunk` after what is held. When nothing was held or pending and the chunk comes out
   * as it went in (no match, nothing held back), the chunk itself is returned: no re-encoding.
   */
  function run(chunk: Buffer | undefined, final: boolean): Buffer {
    const clean = held.length === 0 && pending.length === 0;
    const decoded = chunk && chunk.length > 0 ? decode(chunk) : ''; // may re-read `held` as Latin-1
    const text = held + decoded;
    // Bytes of an unfinished UTF-8 sequence at the very end are not text: sent as they are.
    const tailBytes = final ? pending : EMPTY;
    if (final) pending = EMPTY;
    const out = step(text, final);
    if (clean && out === text && pending.length === 0 && tailBytes.length === 0 && chunk) return chunk;
    const bytes = encode(out);
    return tailBytes.length === 0 ? bytes : bytes.length === 0 ? tailBytes : Buffer.concat([bytes, tailBytes]);
  }

  return {
    stats,
    write(chunk) {
      if (ended) throw new Error('scrub session: write after end');
      return run(chunk, false);
    },
    end(last) {
      if (ended) throw new Error('scrub session: end after end');
      ended = true;
      return run(last, true);
    },
  };
}

/**
 * A Transform that scrubs `scrubber`'s secrets and shapes from a byte stream, holding back only
 * what could straddle the next chunk (see the module doc). `stats` reports the largest hold.
 */
export function createScrubStream(scrubber: Scrubber, opts: ScrubStreamOptions = {}): ScrubStream {
  const session = createScrubSession(scrubber, opts);
  const stream = new Transform({
    transform(chunk: Buffer | string, _enc: BufferEncoding, done: TransformCallback) {
      try {
        const out = session.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
        if (out.length > 0) this.push(out);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        const out = session.end();
        if (out.length > 0) this.push(out);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
  Object.defineProperty(stream, 'stats', { value: session.stats, enumerable: true });
  return stream as ScrubStream;
}
