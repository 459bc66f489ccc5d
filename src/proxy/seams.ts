/**
 * The seams where the other parts of the proxy plug in (docs/proxy.md; PROXY-CONTRACT): the
 * route dispatcher (default: the SSRF guard's pinned dispatcher, src/proxy/ssrf.ts) and the
 * streaming scrubber (src/proxy/scrub-stream.ts createScrubStream; until it is merged, the small
 * working default below).
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Scrubber, ScrubHit } from '../gateway/scrub/index.js';

/** Builds the dispatcher of one route: keep-alive pool to its upstream (the SSRF part's guard.dispatcher pins vetted addresses). */
export type DispatcherFactory = (rules: { readonly allow: readonly string[] }, options?: { ca?: string; connections?: number }) => Dispatcher;

/** Builds the Transform that scrubs a response body while it streams. */
/** `holdback`: a hint, the longest encoded form of a registered value in characters (implementations may compute their own). */
export type ScrubStreamFactory = (scrubber: Scrubber, opts?: { onHits?(hits: ScrubHit[]): void; holdback?: number }) => Transform;

/**
 * Default streaming scrubber: bytes are handled as latin1 (one char per byte, so nothing is
 * re-encoded), and the tail that could still start a registered value (`holdback` characters)
 * is kept across chunk boundaries. The PROVIDERS part's createScrubStream replaces it.
 */
export function defaultScrubStream(fallbackHoldback: number): ScrubStreamFactory {
  return (scrubber, opts) => {
    const holdback = opts?.holdback ?? fallbackHoldback;
    let tail = '';
    const emit = (text: string, final: boolean, push: (b: Buffer) => void): void => {
      const found = scrubber.find(text);
      let cut = final ? text.length : Math.max(0, text.length - holdback);
      for (const f of found) if (f.start < cut && f.end > cut) cut = f.start;
      let out = '';
      let at = 0;
      const hits: ScrubHit[] = [];
      for (const f of found) {
        if (f.end > cut) break;
        out += text.slice(at, f.start) + f.marker;
        at = f.end;
        hits.push(f.hit);
      }
      out += text.slice(at, cut);
      tail = text.slice(cut);
      if (hits.length) opts?.onHits?.(hits);
      if (out) push(Buffer.from(out, 'latin1'));
    };
    return new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        emit(tail + chunk.toString('latin1'), false, (b) => this.push(b));
        cb();
      },
      flush(cb: TransformCallback) {
        emit(tail, true, (b) => this.push(b));
        cb();
      },
    });
  };
}
