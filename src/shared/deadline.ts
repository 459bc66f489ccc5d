/**
 * A signal that aborts when a parent signal does or after a time limit, whichever comes first.
 *
 * Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: in that combination Node keeps only a
 * weak reference to the timeout signal, which the garbage collector can take before it fires, so
 * the call then has no time limit at all (nodejs/node#57736; seen here as an http rotator call
 * that waited 5 s past its 2 s `timeout`). This holds its timer strongly and clears it in `done()`.
 */

/** `signal` aborts with the parent's reason, or with a `TimeoutError` DOMException after `ms` milliseconds. */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Clears the timer and the parent listener; call it when the guarded work has ended. */
  done(): void;
}

/** `ms`: milliseconds (> 0). `parent`: an optional signal whose abort is passed on. */
export function deadline(ms: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  const onParent = (): void => controller.abort(parent!.reason);
  const timer = setTimeout(() => controller.abort(new DOMException(`The operation was aborted due to timeout`, 'TimeoutError')), ms);
  timer.unref();
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onParent, { once: true });
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}
