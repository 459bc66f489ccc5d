/**
 * Live audit events for the console: `GET /v1/admin/events` (text/event-stream, WHATWG HTML
 * §9.2 "Server-sent events"; docs/console-api.md, ADR 0240).
 *
 * One shared tail per replica reads the audit rows committed after the last one it saw, by seq,
 * at most once per `pollMs` (1 s) and only while at least one stream is open; it stops when the
 * last one closes. Reading the store (not an in-process hook) is what makes an event committed on
 * another replica reach this one's streams (PostgreSQL HA). Each row is turned into the public
 * view once (toAuditEntry, the mapping of GET /v1/admin/audit) and fanned out to every stream
 * whose filter matches: never one query per client in the steady state. A reconnecting client's
 * `Last-Event-ID` gets one catch-up read (bounded; beyond it an `event: gap` says to reload).
 *
 * Bounded: at most `maxStreams` streams (503 TESSERA_CONSOLE_STREAMS_BUSY beyond), and a stream
 * whose client does not read (its socket full, then more than `maxBufferedBytes` queued) is
 * dropped, never buffered without bound; between pages the tail lets full sockets drain (at most
 * `drainWaitMs`), so a burst does not drop a client that reads. Every stream gets a comment heartbeat each `heartbeatMs` (15 s)
 * so idle proxies keep it open; all end cleanly when the server shuts down.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { SqlExecutor } from '../store/port.js';
import type { Logger } from '../shared/logger.js';
import type { MetricsRegistry } from '../shared/metrics.js';
import { TesseraError } from '../shared/errors.js';
import { AUDIT_EVENT_COLUMNS, type AuditEventRow } from '../audit/rows.js';
import { prunedBoundary, toAuditEntry } from '../audit/query.js';

/** What a stream receives: every filter given must match (the row's kind, actor, txn and result columns). */
export interface AuditStreamFilter {
  readonly actor?: string;
  /** The task or any task below it (task_ancestors). */
  readonly task?: string;
  /** A prefix of the event kind: `lease.` for every lease event, `auth` for `auth.*`. */
  readonly kind?: string;
  readonly result?: string;
}

export interface AuditStreamsOptions {
  readonly store: SqlExecutor;
  readonly logger: Logger;
  readonly maxStreams: number;
  readonly metrics?: MetricsRegistry;
  /** Least time between two reads of the tail (default 1000 ms). */
  readonly pollMs?: number;
  /** Between two heartbeat comments (default 15 s). */
  readonly heartbeatMs?: number;
  /** Bytes queued for a client whose socket is full before its stream is dropped (default 2 MiB). */
  readonly maxBufferedBytes?: number;
  /** Rows per tail read (default 100; a tick reads at most 50 pages). */
  readonly pageSize?: number;
  /** Between two pages, how long the tail waits for full sockets to drain (default 1 s). */
  readonly drainWaitMs?: number;
  /** Most events replayed for a `Last-Event-ID` (default 1000). */
  readonly maxCatchUp?: number;
  /** Most streams one operator may hold on this replica (default: all of `maxStreams`). */
  readonly maxStreamsPerOperator?: number;
}

export interface AuditStreams {
  /**
   * Answers `req` with a stream (hijacking the reply). Throws TESSERA_CONSOLE_STREAMS_BUSY when
   * `maxStreams` are open or the server is shutting down.
   */
  open(req: FastifyRequest, reply: FastifyReply, filter: AuditStreamFilter, lastEventId?: number, holder?: StreamHolder): Promise<void>;
  /** Open streams. */
  size(): number;
  /** Whether the shared tail is reading (only while a stream is open). */
  tailing(): boolean;
  /** Ends every stream and stops the tail; later opens are refused. */
  close(): Promise<void>;
}

/**
 * Who holds a stream (A11-2, A11-3): the operator (at most `maxStreamsPerOperator` streams each)
 * and whether the credential that opened it is still valid. `stillValid` is asked before every
 * delivery and at every heartbeat: a stream whose token was revoked or expired, or whose session
 * ended, gets `event: end` and is closed — nothing more is sent on it.
 */
export interface StreamHolder {
  readonly operator: string;
  readonly stillValid: () => Promise<boolean>;
}

interface Stream {
  readonly res: ServerResponse;
  readonly holder?: StreamHolder;
  readonly filter: AuditStreamFilter;
  /** While the Last-Event-ID catch-up runs: live events wait here (bounded like the queue). */
  pending?: { entry: Entry; bytes: number }[];
  pendingBytes: number;
  /** The socket refused more (write() returned false): chunks wait here until it drains. */
  queue: string[];
  queuedBytes: number;
  congested: boolean;
  /** Resolves at the socket's next 'drain' (while congested). */
  drained?: Promise<void>;
}

/** One tail row, mapped once for every stream. */
interface Entry {
  readonly row: AuditEventRow;
  readonly seq: number;
  chunk?: string;
}

const chunkOf = (e: Entry, boundary: number): string => (e.chunk ??= `event: audit\nid: ${e.seq}\ndata: ${JSON.stringify(toAuditEntry(e.row, boundary))}\n\n`);

export function createAuditStreams(o: AuditStreamsOptions): AuditStreams {
  const pollMs = o.pollMs ?? 1000;
  const heartbeatMs = o.heartbeatMs ?? 15_000;
  const maxBuffered = o.maxBufferedBytes ?? 2 * 1024 * 1024;
  const pageSize = o.pageSize ?? 100;
  const drainWaitMs = o.drainWaitMs ?? 1000;
  const maxCatchUp = o.maxCatchUp ?? 1000;
  const perOperator = o.maxStreamsPerOperator ?? o.maxStreams;
  /** Streams (open or opening) per operator. */
  const held = new Map<string, number>();
  const streams = new Set<Stream>();
  let opening = 0;
  let closed = false;
  /** The last seq the tail has fanned out; undefined while the tail is stopped. */
  let lastSeq: number | undefined;
  let starting: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let ticking = false;
  const dropped = o.metrics?.counter('tessera_console_streams_dropped_total', 'Console event streams dropped because the client did not read them (more than the bound waiting).');
  o.metrics?.gauge('tessera_console_streams', 'Open console event streams (GET /v1/admin/events) on this replica.').collect(() => streams.size);

  function release(holder: StreamHolder | undefined): void {
    if (!holder) return;
    const n = (held.get(holder.operator) ?? 1) - 1;
    if (n <= 0) held.delete(holder.operator);
    else held.set(holder.operator, n);
  }

  function drop(s: Stream, why: 'slow' | 'closed' | 'ended'): void {
    if (!streams.delete(s)) return;
    release(s.holder);
    if (why === 'ended') {
      // The credential that opened it is no longer valid: say so (EventSource then reconnects and gets 401) and close.
      s.res.end('event: end\ndata: {"code":"TESSERA_CONSOLE_STREAM_ENDED","message":"the operator token or console session that opened this stream is no longer valid; sign in again"}\n\n');
    }
    if (why === 'slow') {
      dropped?.inc();
      o.logger.warn({ queued: s.queuedBytes }, 'console event stream dropped: the client does not read it');
      s.res.destroy();
    }
    s.queue = [];
    s.queuedBytes = 0;
    if (streams.size === 0) stopTail();
  }

  /**
   * Writes to one stream. Once its socket is full (write() returned false) chunks wait in its
   * queue until 'drain'; a client that lets more than `maxBuffered` bytes wait is dropped —
   * memory per stream stays bounded whatever the client does.
   */
  function write(s: Stream, chunk: string): void {
    if (!streams.has(s)) return;
    if (s.congested) {
      s.queue.push(chunk);
      s.queuedBytes += chunk.length;
      if (s.queuedBytes > maxBuffered) drop(s, 'slow');
      return;
    }
    if (!s.res.write(chunk)) {
      s.congested = true;
      s.drained = new Promise<void>((resolve) => s.res.once('drain', () => {
        flush(s);
        resolve();
      }));
    }
  }

  /** Writes what waited, until the socket is full again (then waits for the next drain). */
  function flush(s: Stream): void {
    s.congested = false;
    s.drained = undefined;
    const queued = s.queue;
    s.queue = [];
    s.queuedBytes = 0;
    for (let i = 0; i < queued.length; i++) {
      if (s.congested) {
        s.queue.push(queued[i]!);
        s.queuedBytes += queued[i]!.length;
      } else write(s, queued[i]!);
    }
  }

  /** Between two pages: lets full sockets drain (at most `drainWaitMs`), so a burst does not drop a client that reads. */
  async function letDrain(): Promise<void> {
    const waiting = [...streams].filter((s) => s.congested && s.drained).map((s) => s.drained!);
    if (waiting.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(waiting), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainWaitMs)))]);
    clearTimeout(timer);
  }

  function deliver(s: Stream, e: Entry, boundary: number, direct: boolean): void {
    const chunk = chunkOf(e, boundary);
    if (s.pending && !direct) {
      s.pending.push({ entry: e, bytes: chunk.length });
      s.pendingBytes += chunk.length;
      if (s.pendingBytes > maxBuffered) drop(s, 'slow');
      return;
    }
    write(s, chunk);
  }

  /** txn → itself and its ancestors, for the rows' tasks (one query; only when a stream filters by task). */
  async function ancestorsOf(rows: readonly AuditEventRow[]): Promise<Map<string, Set<string>>> {
    const txns = [...new Set(rows.map((r) => r.txn).filter((t): t is string => t !== null))];
    const out = new Map<string, Set<string>>(txns.map((t) => [t, new Set([t])]));
    for (let i = 0; i < txns.length; i += 500) {
      const part = txns.slice(i, i + 500);
      const links = await o.store.all<{ txn: string; ancestor: string }>(`SELECT txn, ancestor FROM task_ancestors WHERE txn IN (${part.map(() => '?').join(', ')})`, part);
      for (const l of links) out.get(l.txn)?.add(l.ancestor);
    }
    return out;
  }

  function matches(f: AuditStreamFilter, r: AuditEventRow, anc: Map<string, Set<string>> | undefined): boolean {
    if (f.actor !== undefined && r.actor !== f.actor) return false;
    if (f.result !== undefined && r.result !== f.result) return false;
    if (f.kind !== undefined && !r.kind.startsWith(f.kind)) return false;
    if (f.task !== undefined && !(r.txn !== null && anc?.get(r.txn)?.has(f.task))) return false;
    return true;
  }

  /** `direct`: write even to a stream that is catching up (its replay). */
  async function fanOut(rows: readonly AuditEventRow[], targets: Iterable<Stream>, direct = false): Promise<void> {
    const list = [...targets];
    if (rows.length === 0 || list.length === 0) return;
    const boundary = await prunedBoundary(o.store);
    const anc = list.some((s) => s.filter.task !== undefined) ? await ancestorsOf(rows) : undefined;
    for (const row of rows) {
      const e: Entry = { row, seq: Number(row.seq) };
      for (const s of list) if (streams.has(s) && matches(s.filter, row, anc)) deliver(s, e, boundary, direct);
    }
  }

  /** Ends every stream whose credential is no longer valid (asked of all at once; a failure counts as invalid). */
  async function recheck(): Promise<void> {
    const list = [...streams].filter((s) => s.holder);
    const ok = await Promise.all(list.map((s) => s.holder!.stillValid().catch(() => false)));
    list.forEach((s, i) => {
      if (!ok[i]) drop(s, 'ended');
    });
  }

  async function tick(): Promise<void> {
    timer = undefined;
    if (ticking || lastSeq === undefined) return;
    ticking = true;
    try {
      for (let page = 0; page < 50 && lastSeq !== undefined && streams.size > 0; page++) {
        if (page > 0) await letDrain();
        const from: number = lastSeq;
        const rows: AuditEventRow[] = await o.store.all<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`, [from, pageSize]);
        if (rows.length === 0) break;
        // Nothing is delivered to a stream whose token or session ended (A11-2).
        await recheck();
        await fanOut(rows, streams);
        if (lastSeq !== undefined) lastSeq = Number(rows[rows.length - 1]!.seq);
        if (rows.length < pageSize) break;
      }
    } catch (e) {
      // The store is briefly unavailable: the next tick reads from the same position.
      o.logger.warn({ err: (e as Error).message }, 'console event tail: reading new audit events failed; retrying');
    } finally {
      ticking = false;
      if (lastSeq !== undefined && streams.size > 0 && !closed) {
        timer = setTimeout(() => void tick(), pollMs);
        timer.unref();
      }
    }
  }

  /** Starts the tail at the current head (the first stream), once. */
  function startTail(): Promise<void> {
    if (lastSeq !== undefined) return Promise.resolve();
    starting ??= (async () => {
      try {
        const head = await o.store.get<{ m: number | null }>('SELECT MAX(seq) AS m FROM audit_events');
        lastSeq = Number(head?.m ?? 0);
        timer = setTimeout(() => void tick(), pollMs);
        timer.unref();
        heartbeat = setInterval(() => {
          void recheck().then(() => {
            for (const s of [...streams]) if (!s.pending && !s.congested) write(s, ': heartbeat\n\n');
          });
        }, heartbeatMs);
        heartbeat.unref();
      } finally {
        starting = undefined;
      }
    })();
    return starting;
  }

  function stopTail(): void {
    if (timer) clearTimeout(timer);
    if (heartbeat) clearInterval(heartbeat);
    timer = undefined;
    heartbeat = undefined;
    lastSeq = undefined;
  }

  const busy = (why: string): TesseraError =>
    new TesseraError('TESSERA_CONSOLE_STREAMS_BUSY', why, { retry_after_s: 5, max_streams: o.maxStreams });

  /** Replays (after, upTo] to one stream, then what arrived meanwhile. */
  async function catchUp(s: Stream, after: number, upTo: number): Promise<void> {
    try {
      const rows = await o.store.all<AuditEventRow>(`SELECT ${AUDIT_EVENT_COLUMNS} FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`, [after, upTo, maxCatchUp + 1]);
      const replay = rows.slice(0, maxCatchUp);
      if (rows.length > maxCatchUp) {
        // Too far behind: say so (the client reloads its page) and go on live from the tail.
        write(s, `event: gap\ndata: ${JSON.stringify({ after_seq: after, resumed_at_seq: upTo })}\n\n`);
      } else {
        await fanOut(replay, [s], true);
      }
    } catch (e) {
      o.logger.warn({ err: (e as Error).message }, 'console event stream: replay after Last-Event-ID failed');
      write(s, `event: gap\ndata: ${JSON.stringify({ after_seq: after, resumed_at_seq: upTo })}\n\n`);
    }
    const waiting = s.pending ?? [];
    s.pending = undefined;
    s.pendingBytes = 0;
    for (const p of waiting) if (streams.has(s)) write(s, p.entry.chunk!);
  }

  return {
    async open(req, reply, filter, lastEventId, holder) {
      if (closed) throw busy('the server is shutting down; reconnect to another replica');
      if (streams.size + opening >= o.maxStreams) throw busy(`this replica already serves ${o.maxStreams} console event streams (console.max_streams); close unused console tabs or retry later`);
      // One operator (a leaked auditor token, a script) cannot take every stream from the others (A11-3).
      if (holder && (held.get(holder.operator) ?? 0) >= perOperator) throw busy(`this operator already holds ${perOperator} console event streams on this replica (console.max_streams_per_operator); close unused console tabs`);
      if (holder) held.set(holder.operator, (held.get(holder.operator) ?? 0) + 1);
      opening++;
      let admitted = false;
      try {
        await startTail();
        if (closed) throw busy('the server is shutting down; reconnect to another replica');
        admitted = true;
      } finally {
        opening--;
        if (!admitted) release(holder);
      }
      const upTo = lastSeq ?? 0;
      const res = reply.raw;
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-request-id': req.id,
        // Reverse proxies (nginx) would otherwise buffer the stream.
        'x-accel-buffering': 'no',
      });
      const s: Stream = { res, filter, ...(holder ? { holder } : {}), pendingBytes: 0, queue: [], queuedBytes: 0, congested: false, ...(lastEventId !== undefined && lastEventId < upTo ? { pending: [] } : {}) };
      streams.add(s);
      res.on('close', () => drop(s, 'closed'));
      // `retry`: how long EventSource waits before reconnecting (it then sends Last-Event-ID).
      res.write(`retry: 3000\n: connected; head_seq=${upTo}\n\n`);
      if (s.pending) await catchUp(s, lastEventId!, upTo);
    },
    size: () => streams.size,
    tailing: () => lastSeq !== undefined,
    async close() {
      closed = true;
      await starting?.catch(() => undefined);
      for (const s of [...streams]) {
        streams.delete(s);
        release(s.holder);
        s.res.end();
      }
      stopTail();
    },
  };
}
