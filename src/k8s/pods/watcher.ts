/**
 * The pod watch (docs/k8s-pods.md, ADR 0266): list + watch of pods with resourceVersion, the
 * Kubernetes API concepts "Efficient detection of changes" protocol
 * (kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
 *
 *   1. list (paged, `limit` + `continue`) → the collection's resourceVersion;
 *   2. watch from it: a stream of `{type, object}` lines, ADDED / MODIFIED / DELETED / BOOKMARK /
 *      ERROR; each object's resourceVersion is where to resume;
 *   3. when the stream ends normally (the server's timeout), watch again from the last version;
 *      when it fails, again after a backoff (0.5 s doubling to 30 s, with jitter);
 *   4. `410 Gone` (an ERROR event with code 410, or HTTP 410: the version is too old) → relist.
 *
 * A DELETED pod is revoked (PodRegistry.revoke) at once. A relist compares the pods Tessera
 * issued tokens to and has not revoked (read BEFORE the list, so each of them existed before the
 * list began) with the listed uids: a pod absent from the list was deleted while the watch was
 * down, and is revoked too. Memory is bounded by those open pods, never by the cluster's pods:
 * the list is paged and only uids are kept. (@kubernetes/client-node's informer caches whole
 * objects keyed by name — a StatefulSet pod re-created under the same name would hide the
 * deletion of the old one — so only its `Watch` and list call are used, through PodSource.)
 *
 * Pure core: the API is the PodSource port (src/k8s/pods/api.ts), time the Clock, sleeps the
 * `sleep` dependency.
 */
import { z } from 'zod';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { MetricsRegistry } from '../../shared/metrics.js';
import type { PodRef, PodRegistry, PodRevokeCause } from './registry.js';

/** One page of a pod list. */
export interface PodPage {
  readonly items: readonly unknown[];
  readonly resourceVersion: string;
  readonly continue?: string | undefined;
}

/** The Kubernetes API as the watch uses it (adapted from @kubernetes/client-node in api.ts). */
export interface PodSource {
  list(opts: { limit: number; continue?: string }): Promise<PodPage>;
  /**
   * Starts a watch from `resourceVersion`; `onEvent` gets each decoded line, `onDone` once when the
   * stream ends (null) or fails (the error; `statusCode` 410 for Gone). Resolves with an abort handle.
   */
  watch(resourceVersion: string, onEvent: (type: string, object: unknown) => void, onDone: (err: unknown) => void): Promise<{ abort(): void }>;
}

export type WatchState = 'starting' | 'listing' | 'watching' | 'backoff' | 'stopped';

export interface PodWatchStatus {
  readonly state: WatchState;
  /** Epoch ms of the last completed list, of the last event; null before. */
  readonly lastListAt: number | null;
  readonly lastEventAt: number | null;
  readonly resourceVersion: string;
  /** Consecutive failures (0 while healthy). */
  readonly failures: number;
  readonly lastError: string | null;
}

export interface PodWatcher {
  start(): void;
  stop(): Promise<void>;
  status(): PodWatchStatus;
  /** Resolves when every revocation started so far has finished (tests, shutdown). */
  idle(): Promise<void>;
}

export interface PodWatcherDeps {
  readonly source: PodSource;
  readonly registry: Pick<PodRegistry, 'revoke' | 'open'>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  /** Only pods of this namespace (the registry's open pods are filtered the same way). */
  readonly namespace?: string;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly pageSize?: number;
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
  /** Called after each revocation attempt (tests and the bench time it). */
  readonly onRevoked?: (pod: PodRef, cause: PodRevokeCause, revoked: boolean) => void;
}

const metaSchema = z.object({
  metadata: z.object({
    uid: z.string().min(1).max(128).optional(),
    name: z.string().max(253).optional(),
    namespace: z.string().max(63).optional(),
    resourceVersion: z.string().max(128).optional(),
  }).optional(),
  code: z.number().optional(),
}).loose();

const EVENT_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

const isGone = (e: unknown): boolean => {
  const x = e as { statusCode?: unknown; code?: unknown } | null;
  return x !== null && typeof x === 'object' && (x.statusCode === 410 || x.code === 410);
};

export function createPodWatcher(deps: PodWatcherDeps): PodWatcher {
  const { source, registry, clock, logger } = deps;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  const pageSize = deps.pageSize ?? 500;
  const minMs = deps.backoff?.minMs ?? 500;
  const maxMs = deps.backoff?.maxMs ?? 30_000;
  const events = deps.metrics?.counter('tessera_k8s_watch_events_total', 'Pod watch events, by type (malformed: a line that is not a watch event)');
  const revocations = deps.metrics?.counter('tessera_k8s_pod_revocations_total', 'Pods revoked, by cause (deleted, missing_on_relist) and result');
  const relists = deps.metrics?.counter('tessera_k8s_watch_relists_total', 'Pod lists (start, 410 Gone, reconnection after a failure)');
  const up = deps.metrics?.gauge('tessera_k8s_watch_up', '1 while the pod watch is connected, else 0');

  let state: WatchState = 'starting';
  let rv = '';
  let failures = 0;
  let lastError: string | null = null;
  let lastListAt: number | null = null;
  let lastEventAt: number | null = null;
  let stopped = false;
  /** Resolves when stop() is called: ends a backoff sleep at once. */
  let wake: () => void = () => undefined;
  const stoppedSignal = new Promise<void>((r) => {
    wake = r;
  });
  let current: { abort(): void } | undefined;
  let loop: Promise<void> | undefined;
  const inFlight = new Set<Promise<void>>();
  /** Set when a revocation failed: the next reconnection relists, which retries it. */
  let relistNeeded = true;

  function setState(s: WatchState): void {
    state = s;
    up?.set(s === 'watching' ? 1 : 0);
  }

  function revoke(pod: PodRef, cause: PodRevokeCause): void {
    const p = registry.revoke(pod, cause).then(
      (r) => {
        revocations?.inc({ cause, result: r.revoked ? 'revoked' : 'unknown_or_done' });
        if (r.revoked) logger.info({ pod: `${pod.namespace}/${pod.name}`, pod_uid: pod.uid, cause, revocation_id: r.revocationId, tasks: r.tasks }, 'pod revoked');
        deps.onRevoked?.(pod, cause, r.revoked);
      },
      (e: unknown) => {
        revocations?.inc({ cause, result: 'failed' });
        relistNeeded = true;
        logger.error({ pod_uid: pod.uid, cause, err: (e as Error).message }, 'revoking a deleted pod failed; retried at the next relist');
        current?.abort();
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }

  function podOf(object: unknown): PodRef | undefined {
    const m = metaSchema.safeParse(object);
    const md = m.success ? m.data.metadata : undefined;
    if (!md?.uid || md.name === undefined) return undefined;
    return { uid: md.uid, name: md.name, namespace: md.namespace ?? '' };
  }

  /** Lists every page; revokes open pods that are not listed. Returns the collection's resourceVersion. */
  async function relist(): Promise<void> {
    setState('listing');
    relists?.inc();
    // Read BEFORE the list: each of these pods existed before the list began.
    const open = await registry.open(deps.namespace);
    const missing = new Map(open.map((p) => [p.uid, p]));
    let cont: string | undefined;
    let version = '';
    for (let page = 0; page < 100_000; page++) {
      const res = await source.list({ limit: pageSize, ...(cont ? { continue: cont } : {}) });
      for (const item of res.items) {
        const pod = podOf(item);
        if (pod) missing.delete(pod.uid);
      }
      version = res.resourceVersion;
      cont = res.continue || undefined;
      if (!cont) break;
    }
    for (const pod of missing.values()) revoke(pod, 'missing_on_relist');
    rv = version;
    relistNeeded = false;
    lastListAt = clock.now();
  }

  function onEvent(type: string, object: unknown): void {
    lastEventAt = clock.now();
    if (!EVENT_TYPES.has(type)) {
      events?.inc({ type: 'malformed' });
      logger.warn({ type: String(type).slice(0, 32) }, 'pod watch: an event of unknown type was skipped');
      return;
    }
    events?.inc({ type: type.toLowerCase() });
    const parsed = metaSchema.safeParse(object);
    if (type === 'ERROR') {
      // A Status object; 410: the resourceVersion is too old (compacted) → relist.
      if (parsed.success && parsed.data.code === 410) rv = '';
      else logger.warn({ code: parsed.success ? parsed.data.code : undefined }, 'pod watch: the API server sent an error event');
      return;
    }
    const version = parsed.success ? parsed.data.metadata?.resourceVersion : undefined;
    if (type === 'DELETED') {
      const pod = podOf(object);
      if (pod) revoke(pod, 'deleted');
      else logger.warn({}, 'pod watch: a DELETED event without a pod uid and name was skipped');
    }
    if (version) rv = version;
  }

  /** One watch connection; resolves with its end (null: a normal close). */
  async function watchOnce(): Promise<unknown> {
    setState('watching');
    return new Promise<unknown>((resolveDone) => {
      let settled = false;
      const done = (err: unknown): void => {
        if (settled) return;
        settled = true;
        current = undefined;
        resolveDone(err);
      };
      source.watch(rv, onEvent, done).then((h) => {
        if (settled) return;
        current = h;
        if (stopped) h.abort();
      }, done);
    });
  }

  async function run(): Promise<void> {
    while (!stopped) {
      try {
        if (!rv || relistNeeded) await relist();
        const end = await watchOnce();
        if (stopped) break;
        if (end === null || end === undefined) {
          failures = 0;
          continue;
        }
        if (isGone(end)) {
          rv = '';
          continue;
        }
        throw end;
      } catch (e) {
        if (stopped) break;
        if (isGone(e)) {
          rv = '';
          continue;
        }
        failures++;
        lastError = String((e as { message?: unknown })?.message ?? e).slice(0, 200);
        // Whatever happened while disconnected is found by the relist after the backoff.
        relistNeeded = true;
        setState('backoff');
        const delay = Math.min(maxMs, minMs * 2 ** Math.min(failures - 1, 16));
        logger.warn({ err: lastError, failures, retry_ms: delay }, 'pod watch: the API server could not be reached; retrying');
        await Promise.race([sleep(delay / 2 + Math.random() * (delay / 2)), stoppedSignal]);
      }
    }
    setState('stopped');
  }

  return {
    start() {
      if (loop) return;
      stopped = false;
      loop = run();
    },
    async stop() {
      stopped = true;
      wake();
      current?.abort();
      await loop;
      await Promise.allSettled([...inFlight]);
    },
    status() {
      return { state, lastListAt, lastEventAt, resourceVersion: rv, failures, lastError };
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
