/**
 * The seams where the other parts of the proxy plug in (docs/proxy.md; PROXY-CONTRACT): the
 * route dispatcher (default: the SSRF guard's pinned dispatcher, src/proxy/ssrf.ts) and the
 * streaming scrubber (src/proxy/scrub-stream.ts createScrubStream, the default).
 */
import type { Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Scrubber, ScrubHit } from '../gateway/scrub/index.js';

/** Builds the dispatcher of one route: keep-alive pool to its upstream (the SSRF part's guard.dispatcher pins vetted addresses). */
export type DispatcherFactory = (rules: { readonly allow: readonly string[] }, options?: { ca?: string; connections?: number }) => Dispatcher;

/** Builds the Transform that scrubs a response body while it streams. */
export type ScrubStreamFactory = (scrubber: Scrubber, opts?: { onHits?(hits: ScrubHit[]): void }) => Transform;
