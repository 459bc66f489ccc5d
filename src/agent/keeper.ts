/**
 * The sidecar's credential keeper (docs/k8s-agent.md "Refresh, expiry, restarts"; ADR 0262):
 * holds the one token the sidecar adds to what it relays — the agent token, or with task defaults
 * the root task token opened from it — and renews it before it expires, on its own schedule:
 *
 *   renew = login (the token file is re-read: the kubelet rotates it)
 *           → [task mode] is the previous task still accepted? revoked → stop for good
 *           → open a new root task from the fresh agent token
 *   next renewal at 80 % ± 5 % of the new credential's lifetime (a fleet does not renew in step);
 *   a failed renewal (Tessera restarting, 5xx, connection refused, the file being rotated) is
 *   retried after 0.5, 1, 2, 5, 10, 15, 15, … s (±20 %), for ever: the keeper never gives up
 *   because Tessera is briefly down; the credential stays in use while it is valid.
 *
 * The hot path (`current()`) is a synchronous read: a request never waits for Tessera's token
 * endpoint, it is served with the held token or refused at once (TESSERA_AGENT_NOT_READY).
 * Nothing here logs a token.
 */
import type { SdkClock } from '../sdk/client.js';

/** A token the sidecar injects, with its lifetime on the sidecar's clock (ms). */
export interface HeldCredential {
  readonly token: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** The task id, in task mode. */
  readonly txn?: string;
}

/** A root task as the keeper needs it (an SDK `Task`, adapted in ./identity.ts). */
export interface OpenedTask extends HeldCredential {
  /** The server's word on this task's token: still accepted, expired, or revoked (never re-opened then). */
  check(): Promise<'alive' | 'expired' | 'revoked'>;
}

export interface KeeperDeps {
  /** A fresh agent token (a new login with the token file). Throws on any failure. */
  login(): Promise<HeldCredential>;
  /** In task mode: opens a root task from the current agent token. */
  openTask?: () => Promise<OpenedTask>;
  readonly clock: SdkClock;
  /** [0, 1) for jitter. */
  readonly random: () => number;
  /** One line per event, never a token. */
  log(line: string): void;
  /** Called after each successful renewal (e.g. to write --token-out). */
  onRenewed?: (cred: HeldCredential) => void | Promise<void>;
}

export type KeeperState = 'starting' | 'ready' | 'retrying' | 'ended' | 'stopped';

/**
 * A token is not handed out this close to its expiry (a request must not leave with a dying
 * token): 2 s, or a tenth of its lifetime for very short-lived tokens.
 */
export const EXPIRY_MARGIN_MS = 2_000;
const RETRY_MS = [500, 1_000, 2_000, 5_000, 10_000, 15_000];
const REFRESH_FRACTION = 0.8;
/** Never renew sooner than this after a success (a token that lives for no time must not make a login loop). */
const MIN_RENEWAL_MS = 250;
const LOGIN_HEADROOM_MS = 5_000;

/** The margin before `expiresAt` within which a credential is no longer used (ms). Pure. */
export function marginOf(cred: Pick<HeldCredential, 'issuedAt' | 'expiresAt'>): number {
  return Math.min(EXPIRY_MARGIN_MS, Math.max(0, cred.expiresAt - cred.issuedAt) / 10);
}

/** Delay until the next renewal of a credential valid from `issuedAt` to `expiresAt` (ms). Pure. */
export function renewalDelay(cred: Pick<HeldCredential, 'issuedAt' | 'expiresAt'>, now: number, random: number): number {
  const life = cred.expiresAt - cred.issuedAt;
  const at = cred.issuedAt + life * (REFRESH_FRACTION + (random - 0.5) * 0.1);
  // Renewed with time to spare before it stops being handed out (its margin): up to 5 s, or 40 %
  // of a very short lifetime, for the login to take (a loaded Tessera answers slowly).
  const latest = cred.expiresAt - marginOf(cred) - Math.min(LOGIN_HEADROOM_MS, life * 0.4);
  return Math.max(MIN_RENEWAL_MS, Math.min(at, latest) - now);
}

/** Delay before retry number `failures` (0-based), bounded, ±20 % jitter. Pure. */
export function retryDelay(failures: number, random: number): number {
  const base = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]!;
  return Math.round(base * (0.8 + random * 0.4));
}

export class CredentialKeeper {
  #held: HeldCredential | undefined;
  #task: OpenedTask | undefined;
  #state: KeeperState = 'starting';
  #timer: unknown;
  #failures = 0;
  #running: Promise<void> | undefined;
  #lastError: { code: string; message: string } | undefined;
  #firstReady: Promise<void>;
  #resolveReady!: () => void;

  constructor(private readonly deps: KeeperDeps) {
    this.#firstReady = new Promise((r) => (this.#resolveReady = r));
  }

  get state(): KeeperState {
    return this.#state;
  }

  /** Why the last renewal failed (code and message, no token), until one succeeds. */
  get lastError(): { code: string; message: string } | undefined {
    return this.#lastError;
  }

  /** Resolves once the first credential is held (never rejects; it may never resolve). */
  get ready(): Promise<void> {
    return this.#firstReady;
  }

  /** The token to inject now, or undefined (none yet, expired, task revoked, stopped). */
  current(): HeldCredential | undefined {
    const h = this.#held;
    if (!h || this.#state === 'ended' || this.#state === 'stopped') return undefined;
    return this.deps.clock.now() < h.expiresAt - marginOf(h) ? h : undefined;
  }

  /** Starts renewing (the first login now). */
  start(): void {
    this.#schedule(0);
  }

  /** Stops renewing and forgets the token. Idempotent. */
  stop(): void {
    this.#state = 'stopped';
    this.#cancel();
    this.#held = undefined;
    this.#task = undefined;
  }

  /** Renews now (tests, and a proxy that saw the token refused); coalesced with a renewal in flight. */
  renewNow(): Promise<void> {
    if (this.#state === 'ended' || this.#state === 'stopped') return Promise.resolve();
    this.#cancel();
    return this.#run();
  }

  #schedule(ms: number): void {
    this.#cancel();
    if (this.#state === 'ended' || this.#state === 'stopped') return;
    this.#timer = this.deps.clock.setTimeout(() => void this.#run(), ms);
  }

  #cancel(): void {
    if (this.#timer !== undefined) this.deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #run(): Promise<void> {
    this.#running ??= this.#renew().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #renew(): Promise<void> {
    try {
      const agent = await this.deps.login();
      let next: HeldCredential = agent;
      if (this.deps.openTask) {
        if (!(await this.#previousTaskUsable())) return;
        const task = await this.deps.openTask();
        if (this.#state === 'stopped') return;
        this.#task = task;
        next = task;
      }
      if (this.#state === 'stopped') return;
      const was = this.#state;
      this.#held = next;
      this.#state = 'ready';
      this.#failures = 0;
      this.#lastError = undefined;
      if (was !== 'ready') this.deps.log(`${next.txn ? `task ${next.txn}` : 'agent token'} held; valid ${Math.round((next.expiresAt - next.issuedAt) / 1000)}s`);
      this.#resolveReady();
      await this.deps.onRenewed?.(next);
      this.#schedule(renewalDelay(next, this.deps.clock.now(), this.deps.random()));
    } catch (err) {
      if (this.#state === 'stopped') return;
      const e = err as { code?: unknown; message?: unknown };
      this.#lastError = { code: typeof e?.code === 'string' ? e.code : 'TESSERA_AGENT_UPSTREAM_UNREACHABLE', message: typeof e?.message === 'string' ? e.message : String(err) };
      const delay = retryDelay(this.#failures++, this.deps.random());
      if (!this.current()) this.#state = 'retrying';
      this.deps.log(`renewal failed: ${this.#lastError.message} [${this.#lastError.code}]; retrying in ${(delay / 1000).toFixed(1)}s${this.current() ? ' (the current token stays in use until it expires)' : ''}`);
      this.#schedule(delay);
    }
  }

  /**
   * A new root task is opened only once the server has confirmed that the previous one was not
   * revoked (a revocation must not be undone by the next renewal — ADR 0263). Revoked: the keeper
   * ends (state `ended`, nothing served). Expired (Tessera was unreachable past its expiry): a
   * revocation can no longer be told apart, so it is logged and a new task is opened.
   */
  async #previousTaskUsable(): Promise<boolean> {
    const prev = this.#task;
    if (!prev) return true;
    const verdict = await prev.check();
    if (verdict === 'revoked') {
      this.#state = 'ended';
      this.#held = undefined;
      this.#cancel();
      this.deps.log(`task ${prev.txn} was revoked: no new task is opened and every request is refused (TESSERA_AGENT_TASK_ENDED) until the sidecar restarts`);
      return false;
    }
    if (verdict === 'expired') this.deps.log(`task ${prev.txn} expired before it could be renewed (Tessera unreachable meanwhile); opening a new one`);
    return true;
  }
}
