/**
 * Live updates (issue 11 item 7): ONE EventSource per tab on `GET /v1/admin/events` (server-sent
 * audit events), shared by every page. Pages subscribe with a predicate and get a debounced
 * callback, so a burst of 1,000 events causes one refetch, not 1,000 (no polling storms).
 */
import { useEffect, useRef } from 'preact/hooks';

/** An audit event as `GET /v1/admin/audit` and the event stream return it. */
export interface AuditEvent {
  seq: number;
  ts?: string | number;
  kind: string;
  result?: string;
  actor?: { id?: string; [k: string]: unknown };
  action?: string;
  resource?: string;
  txn?: string;
  [k: string]: unknown;
}

/**
 * The stream's `data` is the event as `GET /v1/admin/audit` returns it: a stored entry
 * `{ seq, ts, prev_hash, hash, event: { kind, actor, … } }`. Listeners get it flat
 * (`{ …event, seq, ts }`); an already flat event passes through; anything without a numeric
 * `seq` and a string `kind` is dropped (a page must never crash on one odd event).
 */
function toFlatEvent(raw: unknown): AuditEvent | undefined {
  if (typeof raw !== 'object' || raw === null || typeof (raw as { seq?: unknown }).seq !== 'number') return undefined;
  const r = raw as Record<string, unknown>;
  const inner = typeof r.event === 'object' && r.event !== null ? (r.event as Record<string, unknown>) : undefined;
  const flat = inner ? { ...inner, seq: r.seq, ts: r.ts, ...(r.problem ? { problem: r.problem } : {}) } : r;
  return typeof flat.kind === 'string' ? (flat as AuditEvent) : undefined;
}

type Listener = (e: AuditEvent) => void;
const listeners = new Set<Listener>();
let source: EventSource | undefined;
let state: 'closed' | 'connecting' | 'open' = 'closed';
const stateListeners = new Set<(s: typeof state) => void>();

function setState(s: typeof state): void {
  state = s;
  for (const l of stateListeners) l(s);
}

function ensureSource(): void {
  if (source || typeof EventSource === 'undefined') return;
  setState('connecting');
  source = new EventSource('/v1/admin/events', { withCredentials: false });
  source.onopen = () => setState('open');
  source.onerror = () => setState(source?.readyState === EventSource.CLOSED ? 'closed' : 'connecting');
  source.addEventListener('audit', (msg) => {
    let event: AuditEvent | undefined;
    try {
      event = toFlatEvent(JSON.parse((msg as MessageEvent<string>).data));
    } catch {
      return;
    }
    if (!event) return;
    for (const l of listeners) l(event);
  });
}

/** Closes the stream (sign-out). */
export function closeLive(): void {
  source?.close();
  source = undefined;
  setState('closed');
}

/** Every event (unfiltered): the audit page's live view. Returns the unsubscribe function. */
export function subscribe(listener: Listener): () => void {
  ensureSource();
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function liveState(): typeof state {
  return state;
}

export function onLiveState(fn: (s: typeof state) => void): () => void {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}

/**
 * Calls `refresh` at most once per `debounceMs` after events matching `match` (by kind prefix
 * or predicate) arrive. Use it to refetch the section of a page the events change.
 */
export function useLive(match: string[] | ((e: AuditEvent) => boolean), refresh: () => void, debounceMs = 1000): void {
  const ref = useRef(refresh);
  ref.current = refresh;
  useEffect(() => {
    const test = typeof match === 'function' ? match : (e: AuditEvent) => match.some((p) => e.kind.startsWith(p));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = subscribe((e) => {
      if (!test(e) || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        ref.current();
      }, debounceMs);
    });
    return () => {
      off();
      if (timer) clearTimeout(timer);
    };
  }, []);
}
