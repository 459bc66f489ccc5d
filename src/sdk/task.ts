/**
 * Task tokens for agents (docs/tasks.md, docs/sdk.md "Tasks"): a `Task` is one node of a task
 * tree — opened by `client.openTask(…)`, delegated by `task.delegate(…)` — holding its task token
 * (RFC 8693 §2.1 token exchange at `POST /v1/oauth/token`) and, when bound, its DPoP key
 * (RFC 9449). The token never leaves the object except in the headers of a request it
 * authorizes: no accessor, not in `JSON.stringify`, not in `util.inspect`.
 *
 * Refresh (docs/sdk.md "Refresh"): a child task is re-derived from its parent once 80 % of its
 * lifetime has passed, on the next use (no timers), only after the server confirmed that the
 * current token is not revoked; a root task is never re-opened (a new root would be a new tree,
 * out of reach of a kill of the old one). ADR 0155.
 */
import { inspect } from 'node:util';
import { DpopKey, DpopSession } from './dpop.js';
import { TesseraApiError, TesseraAuthError, TesseraTaskError } from './errors.js';
import { encodePath, type FetchLike, type RequestOptions } from './http.js';
import { authorizingFetch, type AuthorizedFetch } from './fetch.js';
import { decodeJwt } from './jwt.js';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, clientInternals, type ClientInternals, type HasClientInternals } from './internal.js';
import type { Credential, SecretValue, TokenResponse } from './client.js';

/** What a task may do and why: the parameters of a root task (docs/tasks.md "Parameters"). */
export interface OpenTaskOptions {
  /** Scope strings (`secret:<path-glob>`, `cred:<engine>/<role>`, `tool:<server>/<tool>`, `http:<route>`), space-separated or as a list. */
  readonly scope: string | readonly string[];
  /** Why this task exists: 1–512 characters of plain text on one line; audited and shown in the tree. */
  readonly purpose: string;
  /** Task facts (`tctx`): at most 16 string values of at most 256 characters, keys usable as Cedar attribute names. */
  readonly facts?: Readonly<Record<string, string>>;
  /** Requested lifetime in whole seconds; default `tokens.task_ttl` shortened to fit what the task derives from. */
  readonly ttl?: number;
  /** Deepest the tree below may go (0–8); may only be lowered. */
  readonly maxDepth?: number;
  /** RFC 8693 `audience`: a subset of the subject token's audiences (default: all of them). */
  readonly audience?: string | readonly string[];
}

/** A sub-agent with an identity of its own: its agent token, or the `TesseraClient` it logged in with. */
export type ActorSource = string | HasClientInternals;

interface DelegateCommon extends Omit<OpenTaskOptions, 'purpose'> {
  /** Default: the parent's purpose. */
  readonly purpose?: string;
  /** `exact` (default): a scope wider than the parent's is refused; `trim`: narrowed to what the parent covers. */
  readonly scopeMode?: 'exact' | 'trim';
  /**
   * The child's DPoP key (RFC 9449). Default (`true`): the parent's key when the parent is bound
   * (the protocol binds a bound parent's children to its key), else a fresh key generated for
   * this child alone — or, for a `TesseraClient` actor, that client's key. A `DpopKey` to use
   * yours; `false` for an unbound child (refused by the server when the parent is bound).
   */
  readonly dpop?: boolean | DpopKey;
}

/** A child task: for a sub-agent named by `label` (no identity of its own) or one with its own `actorToken`. */
export type DelegateOptions =
  | (DelegateCommon & { readonly label: string; readonly actorToken?: undefined; readonly actorKey?: undefined })
  | (DelegateCommon & {
      readonly actorToken: ActorSource;
      /** The key a string `actorToken` is bound to (its `cnf.jkt`), when it is. */
      readonly actorKey?: DpopKey;
      readonly label?: undefined;
    });

/** A fresh token is used until this fraction of its lifetime; then a child is re-derived. */
const REFRESH_FRACTION = 0.8;
/** A token within this margin of `exp` is never sent (it could expire in flight). */
const EXPIRY_MARGIN_MS = 5_000;

type Origin =
  | { readonly kind: 'root'; readonly client: ClientInternals; readonly request: OpenTaskOptions }
  | { readonly kind: 'child'; readonly parent: Task; readonly request: DelegateOptions; readonly actor: ActorSource | undefined };

interface Issued {
  readonly token: string;
  readonly txn: string;
  readonly scope: readonly string[];
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly claims: Readonly<Record<string, unknown>>;
}

const scopeText = (s: string | readonly string[]): string => (typeof s === 'string' ? s : s.join(' '));
const list = (v: string | readonly string[] | undefined): readonly string[] | undefined => (v === undefined ? undefined : typeof v === 'string' ? [v] : v);
const sdkAuthError = (code: string, message: string, cause?: unknown): TesseraAuthError => new TesseraAuthError({ code, status: 0, message }, cause === undefined ? undefined : { cause });

/** A task refusal by the token endpoint → TesseraTaskError; token problems stay TesseraAuthError. */
function asTaskError(err: unknown): unknown {
  if (!(err instanceof TesseraApiError) || err instanceof TesseraTaskError) return err;
  const taskCode = err.code.startsWith('TESSERA_TASK_') || err.code === 'TESSERA_OAUTH_INVALID_SCOPE' || err.code === 'TESSERA_OAUTH_INVALID_TARGET';
  if (!taskCode) return err;
  return new TesseraTaskError({ code: err.code, status: err.status, message: err.message, ...(err.requestId ? { requestId: err.requestId } : {}), ...(err.oauthError ? { oauthError: err.oauthError } : {}), ...(err.details ? { details: { ...err.details } } : {}) }, { cause: err });
}

/** The subject or actor token was refused because it (or an ancestor task, or the agent) is revoked. */
function isRevocation(err: unknown): boolean {
  if (!(err instanceof TesseraAuthError)) return false;
  return err.code === 'TESSERA_TOKEN_REVOKED' || err.code === 'TESSERA_AGENT_REVOKED' || err.details?.cause === 'TESSERA_TOKEN_REVOKED' || err.details?.cause === 'TESSERA_AGENT_REVOKED';
}

/**
 * One task of a task tree, as its holder sees it. Getters describe the current token (`txn`
 * changes when a child is re-derived; the previous ids are in `previousTxns`).
 */
export class Task {
  /** The parent task, for a child this process delegated; undefined for a root task. */
  readonly parent: Task | undefined;
  /** `label` of a sub-agent without an identity (the `act` claim's label); undefined otherwise. */
  readonly label: string | undefined;
  readonly #origin: Origin;
  readonly #client: ClientInternals;
  /** The DPoP key and nonces this task's token is bound to; undefined when unbound. */
  readonly #dpop: DpopSession | undefined;
  #issued: Issued;
  /** Earlier tokens of this task (before re-derivation), kept until they expire so `revoke()` ends them too. */
  #retired: Issued[] = [];
  #ended: 'revoked' | undefined;
  #refreshing: Promise<void> | undefined;

  private constructor(origin: Origin, client: ClientInternals, dpop: DpopSession | undefined, issued: Issued) {
    this.#origin = origin;
    this.#client = client;
    this.#dpop = dpop;
    this.#issued = issued;
    this.parent = origin.kind === 'child' ? origin.parent : undefined;
    this.label = origin.kind === 'child' ? origin.request.label : undefined;
  }

  /** The task id (`txn` claim, `task_…`). */
  get txn(): string {
    return this.#issued.txn;
  }
  /** The txns this task had before it was re-derived, oldest first (each one a node of the tree). */
  get previousTxns(): readonly string[] {
    return this.#retired.map((r) => r.txn);
  }
  /** The granted scope strings (RFC 6749 §5.1 `scope`). */
  get scope(): readonly string[] {
    return this.#issued.scope;
  }
  get purpose(): string {
    return String(this.#issued.claims.purpose ?? '');
  }
  /** Hops from the root (0 = root). */
  get depth(): number {
    return Number(this.#issued.claims.depth ?? 0);
  }
  get maxDepth(): number {
    return Number(this.#issued.claims.max_depth ?? 0);
  }
  /** Task facts (`tctx`), inherited ones included. */
  get facts(): Readonly<Record<string, string>> {
    const t = this.#issued.claims.tctx;
    return t && typeof t === 'object' ? { ...(t as Record<string, string>) } : {};
  }
  /** When the current token expires (from `expires_in`, RFC 6749 §5.1, on this client's clock). */
  get expiresAt(): Date {
    return new Date(this.#issued.expiresAt);
  }
  /** DPoP-bound (`cnf.jkt`): every request carries a proof by `dpopThumbprint`'s key. */
  get bound(): boolean {
    return this.#dpop !== undefined;
  }
  /** RFC 7638 thumbprint of the key this task is bound to; undefined when unbound. */
  get dpopThumbprint(): string | undefined {
    return this.#dpop?.key.thumbprint;
  }
  /** `active`, `revoked` (by `revoke()` or as the server answered) or `expired` (on this client's clock). */
  get state(): 'active' | 'revoked' | 'expired' {
    if (this.#ended) return 'revoked';
    return this.#client.now() >= this.#issued.expiresAt ? 'expired' : 'active';
  }
  /** The MCP gateway's endpoint on this server (`<addr>/mcp`). */
  get mcpUrl(): URL {
    return new URL('/mcp', this.#client.transport.addr);
  }

  /** @internal use `client.openTask(options)`. */
  static async open(client: ClientInternals, request: OpenTaskOptions): Promise<Task> {
    const agent = await client.current();
    // A bound agent token opens only a bound root, proven with its key (docs/tasks.md binding table).
    const dpop = client.dpop;
    const issued = await exchange(client, { subject_token: agent.token, ...taskForm(request) }, dpop);
    return new Task({ kind: 'root', client, request }, client, issued.bound ? dpop : undefined, issued.issued);
  }

  /**
   * Delegates a child task (RFC 8693 §2.1: this task's token as `subject_token`) for a sub-agent:
   * `{ label }` for one without an identity (it acts as this task's agent, named by the label),
   * or `{ actorToken }` for one with its own agent token (a string, or its `TesseraClient`).
   * Everything may only narrow (docs/tasks.md "Narrowing rules"); a refusal throws
   * `TesseraTaskError` with the server's code, unchanged: `TESSERA_TASK_SCOPE_WIDENED`
   * (`invalid_scope`) for a wider scope, `TESSERA_TASK_LIFETIME_EXCEEDED`, `_DEPTH_EXCEEDED`,
   * `_CONTEXT_CHANGED`, `_BINDING_REQUIRED`, `_KEY_MISMATCH`, `_DELEGATION_DENIED`, …
   * A revoked or expired parent throws `TesseraAuthError` (`TESSERA_SDK_TASK_ENDED`,
   * `TESSERA_SDK_TASK_EXPIRED`, or the server's `TESSERA_OAUTH_INVALID_GRANT`).
   */
  async delegate(options: DelegateOptions): Promise<Task> {
    const actor = options.actorToken;
    const { form, dpop } = await this.#childRequest(options, actor);
    const subject = await this.#fresh();
    try {
      const issued = await exchange(this.#client, { subject_token: subject, ...form }, dpop);
      return new Task({ kind: 'child', parent: this, request: options, actor }, this.#client, issued.bound ? dpop : undefined, issued.issued);
    } catch (err) {
      if (isRevocation(err)) this.#ended = 'revoked';
      throw err;
    }
  }

  /**
   * Re-derives a child task now (it is done by itself on use once 80 % of the token's lifetime has
   * passed): checks with the server that the current token is not revoked (`GET /v1/whoami`),
   * exchanges the parent's token again with the same request and key (re-deriving the parent
   * first when it is due), then checks the old token once more and, if it was revoked meanwhile,
   * revokes the new one. The task gets a new `txn` (the old one moves to `previousTxns`).
   * Throws `TesseraAuthError`: `TESSERA_SDK_TASK_NOT_RENEWABLE` (a root task),
   * `TESSERA_SDK_TASK_ENDED` (this task or an ancestor is revoked — it is never re-derived),
   * `TESSERA_SDK_TASK_EXPIRED` (the token already expired: a revocation can no longer be told
   * from an expiry, so nothing is re-derived from it); or the parent's refusal.
   */
  async refresh(): Promise<void> {
    if (this.#origin.kind === 'root') {
      throw sdkAuthError('TESSERA_SDK_TASK_NOT_RENEWABLE', 'a root task is not renewed: a new root task would be a new tree, out of reach of a revocation of this one; open a new task (client.openTask) for more time');
    }
    this.#refreshing ??= this.#rederive().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * Ends this task and everything delegated below it (RFC 7009 `POST /v1/oauth/revoke` with the
   * task token: the server revokes the task tree, its tokens and leases — docs/tasks.md "Revoking
   * a tree"), with the tokens this task had before a re-derivation. Idempotent; the server always
   * answers 200 (RFC 7009 §2.2). Afterwards every call throws `TESSERA_SDK_TASK_ENDED`.
   */
  async revoke(): Promise<void> {
    const now = this.#client.now();
    const tokens = [this.#issued, ...this.#retired].filter((i) => i.expiresAt > now);
    this.#ended = 'revoked';
    for (const t of tokens) {
      // A bound token is revoked only with a proof of its key (docs/tasks.md "Revoking a tree").
      await this.#client.transport.request('POST', '/v1/oauth/revoke', { form: { token: t.token, token_type_hint: 'access_token' }, ...(this.#dpop ? { dpop: this.#dpop } : {}) });
    }
    this.#retired = [];
  }

  /** `GET /v1/whoami` with this task's token: the acting agent and `task` (txn, chain, scope, depth, bound). */
  async whoami(): Promise<Record<string, unknown>> {
    return this.#authed('GET', '/v1/whoami');
  }

  /** Reads a `read`-mode secret (`GET /v1/secrets/<path>`); the scope must cover `secret:<path>`. */
  async readSecret(path: string): Promise<SecretValue> {
    return this.#authed<SecretValue>('GET', `/v1/secrets/${encodePath(path)}`);
  }

  /**
   * Issues a dynamic credential (`POST /v1/creds/<engine>/<role>`, scope `cred:<engine>/<role>`):
   * a lease recorded under this task, revoked with its tree. `ttl`: seconds or a duration ("15m").
   */
  async issueCredential(engine: string, role: string, options: { ttl?: string | number } = {}): Promise<Credential> {
    return this.#authed<Credential>('POST', `/v1/creds/${encodeURIComponent(engine)}/${encodeURIComponent(role)}`, { json: options.ttl !== undefined ? { ttl: options.ttl } : {} });
  }

  /** Renews a lease of this task or one below it (`POST /v1/leases/<id>/renew`). */
  async renewLease(leaseId: string, options: { increment?: string | number } = {}): Promise<{ lease_id: string; expires_at: string; ttl: number; renewable: boolean }> {
    return this.#authed('POST', `/v1/leases/${encodeURIComponent(leaseId)}/renew`, { json: options.increment !== undefined ? { increment: options.increment } : {} });
  }

  /** Revokes a lease of this task or one below it (`DELETE /v1/leases/<id>`). */
  async revokeLease(leaseId: string): Promise<void> {
    await this.#authed('DELETE', `/v1/leases/${encodeURIComponent(leaseId)}`);
  }

  /**
   * Headers that authorize ONE request to `url` with this task's token: `Authorization: Bearer`,
   * or `Authorization: DPoP` and a fresh `DPoP` proof for this method and URL (RFC 9449 §7.1).
   */
  async authorization(method: string, url: string | URL): Promise<Record<string, string>> {
    const token = await this.#fresh();
    if (!this.#dpop) return { authorization: `Bearer ${token}` };
    return { authorization: `DPoP ${token}`, dpop: this.#dpop.proof(method.toUpperCase(), url, token) };
  }

  /**
   * A fetch that authorizes every request with this task's token (a new proof each time, server
   * nonces retried once): for the official MCP SDK,
   * `new StreamableHTTPClientTransport(task.mcpUrl, { fetch: task.authorizedFetch() })`.
   * The gateway lists and calls only the tools this task's scope and policy allow.
   */
  authorizedFetch(base: FetchLike = (input, init) => fetch(input, init)): AuthorizedFetch {
    return authorizingFetch((method, url) => this.authorization(method, url), () => this.#dpop, base);
  }

  /** Never the token: what the task is. */
  toJSON(): Record<string, unknown> {
    return { txn: this.txn, parent: this.parent?.txn ?? null, depth: this.depth, max_depth: this.maxDepth, scope: this.scope, purpose: this.purpose, label: this.label ?? null, bound: this.bound, expires_at: this.expiresAt.toISOString(), state: this.state };
  }

  [inspect.custom](): string {
    return `Task ${JSON.stringify(this.toJSON())}`;
  }

  // --- internals -----------------------------------------------------------------

  /** The current token, re-derived first when due; throws when the task ended or expired. */
  async #fresh(): Promise<string> {
    if (this.#ended) throw sdkAuthError('TESSERA_SDK_TASK_ENDED', `task ${this.txn} was revoked (with everything below it); it is never renewed. Open or delegate a new task`);
    const now = this.#client.now();
    const { issuedAt, expiresAt, token } = this.#issued;
    const due = now >= issuedAt + (expiresAt - issuedAt) * REFRESH_FRACTION;
    const usable = now < expiresAt - EXPIRY_MARGIN_MS;
    if (due && this.#renewable() && now < expiresAt) {
      try {
        await this.refresh();
        return this.#issued.token;
      } catch (err) {
        // A revocation ends the task; any other failure leaves the current token in use while it lasts.
        if (this.#ended || !usable) throw err;
        return token;
      }
    }
    if (!usable) {
      throw sdkAuthError('TESSERA_SDK_TASK_EXPIRED', this.#origin.kind === 'root'
        ? `task ${this.txn} expired (a root task is not renewed: open a new task with client.openTask)`
        : `task ${this.txn} expired before it could be re-derived from its parent; delegate a new one`);
    }
    return token;
  }

  /** A child whose re-derivation can give it more time: its parent lives longer, or can be re-derived itself. */
  #renewable(): boolean {
    const o = this.#origin;
    return o.kind === 'child' && (o.parent.#origin.kind === 'child' || o.parent.#issued.expiresAt > this.#issued.expiresAt + 1_000);
  }

  async #authed<T>(method: string, path: string, opts: Pick<RequestOptions, 'json'> = {}): Promise<T> {
    const token = await this.#fresh();
    try {
      return await this.#client.transport.request<T>(method, path, { ...opts, ...this.#credential(token) });
    } catch (err) {
      if (isRevocation(err)) this.#ended = 'revoked';
      throw err;
    }
  }

  #credential(token: string): Pick<RequestOptions, 'token' | 'tokenType' | 'dpop'> {
    return this.#dpop ? { token, tokenType: 'DPoP', dpop: this.#dpop } : { token };
  }

  /**
   * The server's word on a token of this task (`GET /v1/whoami`): `alive` or `expired`; throws
   * `TESSERA_SDK_TASK_ENDED` (and ends the task) for any other refusal — a revoked node is never
   * re-derived.
   */
  async #alive(issued: Issued): Promise<'alive' | 'expired'> {
    try {
      await this.#client.transport.request('GET', '/v1/whoami', this.#credential(issued.token));
      return 'alive';
    } catch (err) {
      if (err instanceof TesseraAuthError && err.code === 'TESSERA_TOKEN_EXPIRED') return 'expired';
      if (err instanceof TesseraAuthError) {
        this.#ended = 'revoked';
        throw sdkAuthError('TESSERA_SDK_TASK_ENDED', `task ${issued.txn} is no longer accepted (${err.code}); it is not re-derived`, err);
      }
      throw err;
    }
  }

  async #rederive(): Promise<void> {
    const origin = this.#origin;
    if (origin.kind !== 'child') return;
    const old = this.#issued;
    if ((await this.#alive(old)) === 'expired') {
      throw sdkAuthError('TESSERA_SDK_TASK_EXPIRED', `task ${old.txn} expired before it could be re-derived (an expired token cannot show it was not revoked); delegate a new one`);
    }
    const { form } = await this.#childRequest(origin.request, origin.actor, origin.parent);
    let subject: string;
    try {
      subject = await origin.parent.#fresh();
    } catch (err) {
      if (origin.parent.#ended) this.#ended = 'revoked';
      throw err;
    }
    let issued: { issued: Issued };
    try {
      issued = await exchange(this.#client, { subject_token: subject, ...form }, this.#dpop);
    } catch (err) {
      if (isRevocation(err)) this.#ended = 'revoked';
      throw err;
    }
    try {
      await this.#alive(old); // expired by now is fine: it was alive before the exchange
    } catch (err) {
      // Revoked while the new token was being issued: the new node goes too.
      await this.#client.transport.request('POST', '/v1/oauth/revoke', { form: { token: issued.issued.token, token_type_hint: 'access_token' }, ...(this.#dpop ? { dpop: this.#dpop } : {}) }).catch(() => undefined);
      throw err;
    }
    const now = this.#client.now();
    this.#retired = [...this.#retired.filter((r) => r.expiresAt > now), old];
    this.#issued = issued.issued;
  }

  /** The form and key of a delegation from this task (or, re-deriving, from `parent`). */
  async #childRequest(options: DelegateOptions, actor: ActorSource | undefined, parent: Task = this): Promise<{ form: Record<string, string | readonly string[] | undefined>; dpop: DpopSession | undefined }> {
    let actorForm: Record<string, string> = {};
    let actorKey: DpopKey | undefined;
    let actorBound = false;
    if (actor !== undefined) {
      if (typeof actor === 'string') {
        actorForm = { actor_token: actor, actor_token_type: ACCESS_TOKEN_TYPE };
        actorKey = options.actorKey;
        try {
          actorBound = decodeJwt(actor).claims.cnf !== undefined;
        } catch {
          /* not a JWT: the server refuses it with TESSERA_TASK_ACTOR_TOKEN_INVALID */
        }
      } else {
        const internals = actor[clientInternals]();
        const current = await internals.current();
        actorForm = { actor_token: current.token, actor_token_type: ACCESS_TOKEN_TYPE };
        actorKey = internals.dpop?.key;
        actorBound = current.bound;
      }
    }
    const form = { ...taskForm(options), ...actorForm, ...(options.label !== undefined ? { label: options.label } : {}), ...(options.scopeMode ? { scope_mode: options.scopeMode } : {}) };
    if (parent !== this) {
      // Re-deriving: the same key as before (or none), and a lifetime that fits the parent's.
      const left = Math.floor((parent.#issued.expiresAt - this.#client.now()) / 1000);
      if (options.ttl !== undefined && options.ttl > left) delete (form as Record<string, unknown>).requested_ttl;
      return { form, dpop: this.#dpop };
    }
    return { form, dpop: this.#childKey(options, actorKey, actorBound) };
  }

  #childKey(options: DelegateOptions, actorKey: DpopKey | undefined, actorBound: boolean): DpopSession | undefined {
    if (options.dpop === false) return undefined;
    if (options.dpop instanceof DpopKey) return this.#dpop?.key === options.dpop ? this.#dpop : new DpopSession(options.dpop);
    // A bound parent yields only children bound to its key (RFC 9449 proof of that key).
    if (this.#dpop) return this.#dpop;
    if (actorKey) return new DpopSession(actorKey);
    // A bound actor token without its key: no proof, and the server says TESSERA_TASK_BINDING_REQUIRED.
    if (actorBound) return undefined;
    return new DpopSession(DpopKey.generate());
  }
}

/** The task parameters of an exchange (docs/tasks.md "Parameters"). */
function taskForm(r: Omit<OpenTaskOptions, 'purpose'> & { purpose?: string }): Record<string, string | readonly string[] | undefined> {
  return {
    scope: scopeText(r.scope),
    purpose: r.purpose,
    tctx: r.facts !== undefined ? JSON.stringify(r.facts) : undefined,
    requested_ttl: r.ttl !== undefined ? String(r.ttl) : undefined,
    max_depth: r.maxDepth !== undefined ? String(r.maxDepth) : undefined,
    audience: list(r.audience),
  };
}

/** RFC 8693 §2.1 exchange for a task token; with `dpop`, a proof binds it (RFC 9449 §5). */
async function exchange(client: ClientInternals, form: Record<string, string | readonly string[] | undefined>, dpop: DpopSession | undefined): Promise<{ issued: Issued; bound: boolean }> {
  let res: TokenResponse & { scope?: unknown; txn?: unknown };
  try {
    res = await client.transport.request('POST', '/v1/oauth/token', {
      form: { grant_type: TOKEN_EXCHANGE_GRANT, subject_token_type: ACCESS_TOKEN_TYPE, ...form },
      ...(dpop ? { dpop } : {}),
    });
  } catch (err) {
    throw asTaskError(err);
  }
  if (!res || typeof res.access_token !== 'string' || typeof res.expires_in !== 'number' || res.expires_in <= 0 || typeof res.txn !== 'string') {
    throw new TesseraApiError({ code: 'TESSERA_SDK_RESPONSE_INVALID', status: 200, message: 'the token endpoint answered a task exchange without access_token, expires_in or txn (RFC 6749 §5.1, docs/tasks.md)' });
  }
  const bound = typeof res.token_type === 'string' && res.token_type.toLowerCase() === 'dpop';
  if (bound && !dpop) throw new TesseraApiError({ code: 'TESSERA_SDK_RESPONSE_INVALID', status: 200, message: 'the token endpoint answered token_type DPoP to a request without a DPoP proof' });
  const now = client.now();
  const scope = typeof res.scope === 'string' ? res.scope.split(' ').filter(Boolean) : [];
  let claims: Record<string, unknown> = {};
  try {
    claims = decodeJwt(res.access_token).claims; // display only (depth, purpose, facts): never trusted
  } catch {
    /* an opaque token: the getters fall back */
  }
  return { issued: { token: res.access_token, txn: res.txn, scope, issuedAt: now, expiresAt: now + res.expires_in * 1000, claims }, bound };
}
