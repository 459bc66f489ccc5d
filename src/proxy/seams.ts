/**
 * The seams where the other parts of the proxy plug in (docs/proxy.md; PROXY-CONTRACT): the
 * route dispatcher (default: the SSRF guard's pinned dispatcher, src/proxy/ssrf.ts) and the
 * streaming scrubber (src/proxy/scrub-stream.ts createScrubSession, the default).
 */
import type { Dispatcher } from 'undici';
import type { Scrubber } from '../gateway/scrub/index.js';
import type { ScrubSession, ScrubStreamOptions } from './scrub-stream.js';

/** Builds the dispatcher of one route: keep-alive pool to its upstream (the SSRF part's guard.dispatcher pins vetted addresses). */
export type DispatcherFactory = (rules: { readonly allow: readonly string[] }, options?: { ca?: string; connections?: number }) => Dispatcher;

/** Builds the session that scrubs a response body while it streams (chunk in, bytes to send out). */
export type ScrubSessionFactory = (scrubber: Scrubber, opts?: ScrubStreamOptions) => ScrubSession;
