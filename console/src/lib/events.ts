/**
 * Audit events reach the console in two shapes: flat (`{ seq, ts, kind, … }`, the task tree's
 * nodes) and as stored rows (`{ seq, ts, prev_hash, hash, event: { kind, … } }`,
 * `GET /v1/admin/audit` and the event stream); `ts` is RFC 3339 or epoch milliseconds.
 * These helpers read both. Pure: unit-tested under Node.
 */

export interface FlatEvent {
  seq: number;
  /** RFC 3339. */
  ts?: string;
  kind: string;
  action?: string;
  resource?: string;
  result?: string;
  txn?: string;
  actor?: { id?: string; chain?: readonly string[] };
  reason?: { code?: string; message?: string; policies?: string[] };
  [k: string]: unknown;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One event in the flat shape (`kind` '' when the row has none). */
export function flatEvent(raw: unknown): FlatEvent {
  const r: Obj = isObj(raw) ? raw : {};
  const inner: Obj = isObj(r.event) ? r.event : r;
  const ts = r.ts ?? inner.ts;
  const iso = typeof ts === 'number' ? new Date(ts).toISOString() : typeof ts === 'string' ? ts : undefined;
  return {
    ...inner,
    seq: typeof r.seq === 'number' ? r.seq : Number(r.seq ?? inner.seq ?? 0),
    ...(iso ? { ts: iso } : {}),
    kind: typeof inner.kind === 'string' ? inner.kind : '',
  } as FlatEvent;
}

/** A useLive predicate: the event's kind starts with one of the prefixes (either shape). */
export function kindIn(prefixes: readonly string[]): (e: unknown) => boolean {
  return (e) => {
    const k = flatEvent(e).kind;
    return k !== '' && prefixes.some((p) => k.startsWith(p));
  };
}
