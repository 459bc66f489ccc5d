import { watch as fsWatch, statSync, type FSWatcher } from 'node:fs';
import './wasm-tuning.js'; // before Cedar's wasm module is compiled
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuditWriter } from '../audit/port.js';
import type { Clock } from '../shared/clock.js';
import { fail } from '../shared/errors.js';
import { redactCredentialLike } from '../shared/credential-like.js';
import type { Logger } from '../shared/logger.js';
import type { MetricsRegistry, Counter, Gauge } from '../shared/metrics.js';
import type { ReadinessCheck } from '../server/system-routes.js';
import { AuthCache } from '../shared/auth-cache.js';
import { createAuthEpoch, type AuthEpoch } from '../shared/auth-epoch.js';
import { toCedarRequest, toCedarRequestWithKey, type CedarRequest } from './entities.js';
import { formatPolicyError, listPolicyFiles, loadPolicyDir, policySetDigest, scanPolicyDir, type LoadedPolicySet, type PolicyFileError } from './loader.js';

/** Directories of a policy tree watched for changes (more are noticed by the periodic re-check). */
const MAX_WATCHED_DIRS = 64;
import { POLICY_ACTIONS, type Authorizer, type Decision, type PolicyAction, type PolicyRequest } from './types.js';
import { describeUnserved, unservedTrustDomains } from './trust-domains.js';

export interface PolicyEngineOptions {
  readonly dir: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly audit: Pick<AuditWriter, 'append'>;
  readonly metrics?: MetricsRegistry;
  /** Decision cache entries; 0 disables the cache. Default 10 000. */
  readonly cacheSize?: number;
  /** Decision cache entries one principal may hold (its least recently used go first). Default 1000. */
  readonly cacheSizePerPrincipal?: number;
  /**
   * The auth epoch (docs/adr/0061): bumped (`policy`) after each successful reload; cached
   * decisions are served only under the epoch they were made in. Default: a private epoch.
   */
  readonly epoch?: AuthEpoch;
  /** Watch the directory (fs.watch + periodic re-check) after start(). Default true. */
  readonly watch?: boolean;
  /** Quiet time after the last file event before reloading (editors write in several steps). Default 100 ms. */
  readonly debounceMs?: number;
  /** Fallback re-check interval, for filesystems where fs.watch misses events (NFS, some bind mounts). Default 5 s. */
  readonly pollIntervalMs?: number;
  /**
   * The trust domains this Tessera serves (trust_domain and the spiffe attestors'): each loaded
   * policy that pins another one is logged as a warning at every load — it can never match.
   */
  readonly servedTrustDomains?: readonly string[];
}

export interface PolicyStatus {
  /** A valid policy set is loaded and decisions are being served. */
  readonly ready: boolean;
  readonly lastGoodAt?: number;
  /** The first problem of the last failed reload; cleared by the next good one. */
  readonly lastError?: PolicyFileError;
  readonly errors: readonly PolicyFileError[];
  readonly policies: number;
  readonly files: readonly string[];
  /** The directory the set is loaded from (as configured; absolute when the caller resolves it). */
  readonly dir: string;
  /** The `@id`s of the active policies, sorted. */
  readonly ids: readonly string[];
  /** Dev mode: these are the shipped demo policies, used until `configuredDir` exists. */
  readonly demo?: boolean;
  readonly configuredDir?: string;
  /** The active set's digest (loader.ts policySetDigest; docs/drift.md); absent before the first good load. */
  readonly digest?: string;
}

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly errors: readonly PolicyFileError[];
  readonly policies: number;
}

export interface Explanation {
  readonly decision: 'allow' | 'deny';
  /** The determining policies, with where they live. */
  readonly policies: readonly { id: string; effect: 'permit' | 'forbid'; file: string; line: number }[];
  readonly errors: readonly string[];
}

export interface PolicyEngine extends Authorizer {
  /** Loads the directory now; a bad set keeps the previous good one. */
  load(): Promise<ReloadOutcome>;
  start(): Promise<void>;
  stop(): void;
  status(): PolicyStatus;
  explain(request: PolicyRequest): Explanation;
  /** Drops every cached decision (called on reload, and by the revocation service). */
  invalidate(): void;
  /** See Authorizer.literals: the strings of the active permit policies that can apply to `action`. */
  literals(action: PolicyAction): readonly string[];
  readinessCheck(): ReadinessCheck;
  /** Count of decisions answered from the cache (tests, metrics). */
  readonly cacheHits: number;
}

let engineSeq = 0;

/** The pre-parsed set of one kind of principal and one action. */
const psetKey = (kind: 'agent' | 'user', action: string): string => `${kind}:${action}`;

interface Active {
  readonly set: LoadedPolicySet;
  readonly digest: string;
  /** Pre-parsed policy set id per action: only the policies whose scope can match it. */
  readonly psetIds: ReadonlyMap<string, string>;
  /** Strings of the permit policies per action (Authorizer.literals). */
  readonly literals: ReadonlyMap<string, readonly string[]>;
}

export function createPolicyEngine(opts: PolicyEngineOptions): PolicyEngine {
  const engineId = `tessera-policy-${++engineSeq}`;
  /** Which of the two pre-parsed generations the active set uses (the other is free to overwrite). */
  let activeGeneration = 1;
  const epoch = opts.epoch ?? createAuthEpoch();
  const cache = new AuthCache<Decision>({ capacity: opts.cacheSize ?? 10_000, perOwner: opts.cacheSizePerPrincipal ?? 1000, epoch, clock: opts.clock });
  let active: Active | undefined;
  let lastGoodAt: number | undefined;
  let lastErrors: readonly PolicyFileError[] = [];
  let lastFingerprint = '';
  let cacheHits = 0;
  const watchers: FSWatcher[] = [];
  let debounce: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  let chain: Promise<unknown> = Promise.resolve();

  const m = opts.metrics;
  const decisions: Counter | undefined = m?.counter('tessera_policy_decisions_total', 'Policy decisions by result (allow, deny)');
  const reloadErrors: Counter | undefined = m?.counter('tessera_policy_reload_errors_total', 'Policy reloads that failed; the last good set stays active');
  const lastReload: Gauge | undefined = m?.gauge('tessera_policy_last_reload_success', '1 when the last policy reload succeeded, 0 when it failed');
  const cacheHitCounter: Counter | undefined = m?.counter('tessera_policy_cache_hits_total', 'Policy decisions answered from the decision cache');
  const loadedGauge: Gauge | undefined = m?.gauge('tessera_policy_policies', 'Policies in the active set');

  function fingerprint(): string {
    try {
      return listPolicyFiles(opts.dir)
        .map((p) => {
          const st = statSync(p);
          return `${p}:${st.size}:${st.mtimeMs}`;
        })
        .join('|');
    } catch (e) {
      return `error:${(e as Error).message}`;
    }
  }

  async function doLoad(): Promise<ReloadOutcome> {
    lastFingerprint = fingerprint();
    const r = loadPolicyDir(opts.dir);
    if (!r.ok) {
      lastErrors = r.errors;
      reloadErrors?.inc();
      lastReload?.set(0);
      opts.logger.error({ dir: opts.dir, errors: r.errors.map(formatPolicyError) }, active ? 'policy reload failed; keeping the last good policy set' : 'policy load failed; no policy set is active (every request is refused)');
      await auditReload(r.files.length, active?.set.policies.size ?? 0, formatPolicyError(r.errors[0]!));
      return { ok: false, errors: r.errors, policies: active?.set.policies.size ?? 0 };
    }
    // A fresh id per generation: the pre-parsed sets are swapped atomically, and the previous
    // ones are overwritten next time round (ids alternate), so wasm memory stays bounded. Always
    // the generation the active set does NOT use, even after a reload that was not applied.
    // One set per action (see loader.ts actionsOf): fewer policies evaluated per decision.
    const gen = activeGeneration === 0 ? 1 : 0;
    const psetIds = new Map<string, string>();
    let pre: cedar.CheckParseAnswer = { type: 'success' };
    // …and per kind of principal: a person's decisions see only the user policies (loader.ts principalKindOf).
    for (const kind of ['agent', 'user'] as const) {
      for (const action of POLICY_ACTIONS) {
        const psetId = `${engineId}-${gen}-${kind}-${action}`;
        const subset = Object.fromEntries([...r.set.policies.values()].filter((p) => p.principals === kind && (p.actions === 'all' || p.actions.includes(action))).map((p) => [p.id, p.text]));
        pre = cedar.preparsePolicySet(psetId, { staticPolicies: subset });
        if (pre.type === 'failure') break;
        psetIds.set(psetKey(kind, action), psetId);
      }
      if (pre.type === 'failure') break;
    }
    if (pre.type === 'failure') {
      const err: PolicyFileError = { file: '(policy set)', line: 0, column: 0, message: pre.errors.map((e) => e.message).join('; ') };
      lastErrors = [err];
      reloadErrors?.inc();
      lastReload?.set(0);
      opts.logger.error({ dir: opts.dir, error: err.message }, 'policy pre-parse failed; keeping the last good policy set');
      await auditReload(r.set.files.length, active?.set.policies.size ?? 0, err.message);
      return { ok: false, errors: [err], policies: active?.set.policies.size ?? 0 };
    }
    const literals = new Map<string, readonly string[]>();
    for (const action of POLICY_ACTIONS) {
      const all = new Set<string>();
      for (const p of r.set.policies.values()) if (p.principals === 'agent' && p.effect === 'permit' && (p.actions === 'all' || p.actions.includes(action))) for (const l of p.literals) all.add(l);
      literals.set(action, [...all]);
    }
    // ADR 0041: the new set takes effect only once its `policy.reloaded` event is recorded; if it
    // cannot be, the last good set stays active and the next poll retries the reload.
    try {
      await recordReload(r.set.files.length, r.set.policies.size);
    } catch (e) {
      lastFingerprint = '';
      const err: PolicyFileError = { file: '(audit)', line: 0, column: 0, message: `the new policy set was not applied because its policy.reloaded event could not be recorded (${(e as Error).message}); the last good set stays active and the reload is retried` };
      lastErrors = [err];
      reloadErrors?.inc();
      lastReload?.set(0);
      opts.logger.error({ dir: opts.dir, err: (e as Error).message }, 'policy reload not applied: it could not be audited; keeping the last good policy set');
      return { ok: false, errors: [err], policies: active?.set.policies.size ?? 0 };
    }
    active = { set: r.set, digest: policySetDigest(r.set), psetIds, literals };
    activeGeneration = gen;
    cache.clear();
    // After the swap: every cache of a decision or verification made under the old set ends.
    epoch.bump('policy');
    lastErrors = [];
    lastGoodAt = opts.clock.now();
    lastReload?.set(1);
    loadedGauge?.set(r.set.policies.size);
    opts.logger.info({ dir: opts.dir, files: r.set.files.length, policies: r.set.policies.size }, 'policy set loaded');
    if (opts.servedTrustDomains) {
      for (const u of unservedTrustDomains(r.set.policies.values(), opts.servedTrustDomains)) {
        opts.logger.warn({ dir: opts.dir, policy: u.policy, trust_domain: u.trustDomain, served: opts.servedTrustDomains }, describeUnserved(u, opts.servedTrustDomains));
      }
    }
    return { ok: true, errors: [], policies: r.set.policies.size };
  }

  /** Records a reload; rejects when it cannot (audit down, or an event the log refuses). */
  function recordReload(files: number, policies: number, error?: string): Promise<void> {
    // Policy files are operator text: an error quoting one must not carry a credential shape
    // into the event (the audit log would refuse it).
    const text = error === undefined ? undefined : redactCredentialLike(error).slice(0, 2000);
    return opts.audit.append({
      kind: 'policy.reloaded',
      actor: { id: 'system' },
      action: 'policy.reload',
      resource: 'policy-set',
      result: text !== undefined ? 'failure' : 'success',
      ...(text !== undefined ? { reason: { code: 'TESSERA_POLICY_INVALID', message: text } } : {}),
      details: text !== undefined ? { files, policies, error: text } : { files, policies },
    });
  }

  /** A failed reload changes nothing, so recording it is best effort. */
  async function auditReload(files: number, policies: number, error: string): Promise<void> {
    try {
      await recordReload(files, policies, error);
    } catch (e) {
      opts.logger.error({ err: (e as Error).message }, 'could not audit a failed policy reload');
    }
  }

  function load(): Promise<ReloadOutcome> {
    const next = chain.then(doLoad, doLoad);
    chain = next.catch(() => undefined);
    return next;
  }

  function evaluate(c: CedarRequest, a: Active): { decision: 'allow' | 'deny'; reason: string[]; errors: string[]; mayPermit: boolean } {
    const ans = cedar.statefulIsAuthorized({
      principal: c.principal,
      action: c.action,
      resource: c.resource,
      context: c.context,
      entities: c.entities,
      preparsedPolicySetId: a.psetIds.get(psetKey(c.principal.type === 'Tessera::User' ? 'user' : 'agent', c.action.id))!,
      // No schema at evaluation: `context.args` is open (see schema.ts). The request is built
      // by our own code from typed inputs, and the policies were validated at load.
      validateRequest: false,
    });
    if (ans.type === 'failure') {
      throw fail('TESSERA_POLICY_REQUEST_INVALID', `the policy request could not be evaluated: ${ans.errors.map((e) => e.message).join('; ')}`);
    }
    const errors = ans.response.diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`);
    // Cedar skips a policy whose condition errors. For `forbid` that would fail open (a guard
    // reading a missing tool argument would silently stop forbidding), so we deny instead.
    const errored = ans.response.diagnostics.errors.map((e) => e.policyId);
    const erroredForbids = errored.filter((id) => a.set.policies.get(id)?.effect === 'forbid');
    // Cedar's own answer skips erroring policies: `allow` means a permit is satisfied and no
    // forbid is; `deny` with reasons means a forbid is satisfied. Only permits may make a tool
    // look callable with other arguments (ADR 0140): an erroring forbid never does.
    const forbidSatisfied = ans.response.decision === 'deny' && ans.response.diagnostics.reason.length > 0;
    const permitErrored = errored.some((id) => a.set.policies.get(id)?.effect === 'permit');
    const mayPermit = ans.response.decision === 'allow' || (permitErrored && !forbidSatisfied);
    if (erroredForbids.length > 0) return { decision: 'deny', reason: erroredForbids, errors, mayPermit };
    return { decision: ans.response.decision, reason: ans.response.diagnostics.reason, errors, mayPermit };
  }

  function current(): Active {
    if (!active) throw fail('TESSERA_POLICY_NOT_LOADED', `no valid policy set is loaded from ${opts.dir}; fix the errors shown by \`tessera policy validate\``);
    return active;
  }

  const engine: PolicyEngine = {
    load,
    async start() {
      await load();
      if (opts.watch === false) return;
      const schedule = (): void => {
        if (debounce) clearTimeout(debounce);
        debounce = setTimeout(() => void load(), opts.debounceMs ?? 100);
        debounce.unref();
      };
      // One non-recursive watch per real directory the bounded scan read (loader.ts): a
      // recursive watch would walk symlink loops and links out of the directory itself.
      let dirs: string[] = [opts.dir];
      try {
        dirs = scanPolicyDir(opts.dir).dirs.slice(0, MAX_WATCHED_DIRS);
      } catch {
        // unreadable now: the periodic re-check notices when it becomes readable
      }
      for (const d of dirs) {
        try {
          const w = fsWatch(d, { persistent: false }, schedule);
          w.on('error', (e) => opts.logger.warn({ err: e.message }, 'policy directory watch failed; relying on periodic re-check'));
          watchers.push(w);
        } catch (e) {
          opts.logger.warn({ err: (e as Error).message }, 'cannot watch the policy directory; relying on periodic re-check');
        }
      }
      poll = setInterval(() => {
        if (fingerprint() !== lastFingerprint) void load();
      }, opts.pollIntervalMs ?? 5000);
      poll.unref();
    },
    stop() {
      for (const w of watchers.splice(0)) w.close();
      if (debounce) clearTimeout(debounce);
      if (poll) clearInterval(poll);
      debounce = poll = undefined;
    },
    status() {
      const s: PolicyStatus = {
        ready: active !== undefined,
        errors: lastErrors,
        policies: active?.set.policies.size ?? 0,
        files: active?.set.files ?? [],
        dir: opts.dir,
        ids: active ? [...active.set.policies.keys()].sort() : [],
        ...(lastGoodAt !== undefined ? { lastGoodAt } : {}),
        ...(lastErrors[0] ? { lastError: lastErrors[0] } : {}),
        ...(active ? { digest: active.digest } : {}),
      };
      return s;
    },
    authorize(request: PolicyRequest): Decision {
      const a = current();
      const withKey = cache.capacity > 0 ? toCedarRequestWithKey(request) : undefined;
      const c = withKey ? withKey.request : toCedarRequest(request);
      // Decisions are a pure function of (policy set, entities, request): the entities are
      // built from the request alone and the context carries no clock, so the full request
      // is a sound key for the lifetime of one policy set. Its JSON text (native, ≈ 3× faster
      // than the key-sorted canonical form, docs/adr/0190-task-token-hot-path.md): equal text
      // means an equal request, which is all a key needs; toCedarRequest builds its objects in
      // a fixed order, so the same request gives the same text (a map of the caller's, such as
      // tool arguments, given in another order only misses the cache). The same text answers
      // whether the request holds an unpaired surrogate (toCedarRequestWithKey).
      const key = withKey ? withKey.key : '';
      const at = cache.epoch;
      if (key) {
        const hit = cache.get(key);
        if (hit) {
          cacheHits++;
          cacheHitCounter?.inc();
          decisions?.inc({ result: hit.allowed ? 'allow' : 'deny' });
          return hit;
        }
      }
      const r = evaluate(c, a);
      const d: Decision = { allowed: r.decision === 'allow', policies: r.reason, errors: r.errors, cached: false, mayPermit: r.mayPermit };
      decisions?.inc({ result: r.decision });
      // Only cache when the set that decided is still active (load() is async, evaluate is not,
      // so this holds; kept explicit for safety).
      if (key && active === a) cache.set(key, { ...d, cached: true }, { owner: request.principal.spiffeId, epoch: at });
      return d;
    },
    literals(action) {
      return active?.literals.get(action) ?? [];
    },
    explain(request: PolicyRequest): Explanation {
      const a = current();
      const r = evaluate(toCedarRequest(request), a);
      return {
        decision: r.decision,
        policies: r.reason.map((id) => {
          const p = a.set.policies.get(id);
          return { id, effect: p?.effect ?? 'permit', file: p?.file ?? '', line: p?.line ?? 0 };
        }),
        errors: r.errors,
      };
    },
    invalidate() {
      cache.clear();
    },
    readinessCheck(): ReadinessCheck {
      return {
        name: 'policy',
        async check() {
          const s = engine.status();
          // A bad change keeps serving the last good set, so the replica stays ready; the
          // error is reported here and in tessera_policy_last_reload_success.
          return {
            ok: s.ready,
            detail: {
              dir: s.dir,
              policies: s.policies,
              files: s.files.length,
              ...(s.lastGoodAt !== undefined ? { last_good_at: new Date(s.lastGoodAt).toISOString() } : {}),
              ...(s.lastError ? { last_error: formatPolicyError(s.lastError) } : {}),
            },
          };
        },
      };
    },
    get cacheHits() {
      return cacheHits;
    },
  };
  return engine;
}
