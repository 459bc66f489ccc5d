/**
 * The pod annotations the injector reads (pure; docs/k8s-injector.md "Annotations", names fixed
 * by the issue 12 contract). Every `tessera.io/` annotation is checked, whether or not the pod
 * asks for injection: an unknown one is refused with the list of known ones, because a typo
 * (`tessera.io/agnet`) must not silently leave a pod without what its author asked for. Task
 * defaults are checked by the same functions the server uses at login (src/tasks/params.ts,
 * src/policy/scope.ts), so a pod is refused at admission rather than crash-looping later.
 *
 * Errors: TESSERA_INJECTOR_ANNOTATION_UNKNOWN, TESSERA_INJECTOR_ANNOTATION_INVALID.
 */
import { TesseraError, fail } from '../../shared/errors.js';
import { parseDuration } from '../../config/duration.js';
import { parsePurpose, parseScopeParam } from '../../tasks/params.js';
import { ROLE_NAME_RULE, isRoleName } from '../../shared/principal.js';

export const PREFIX = 'tessera.io/';

export const ANNOTATIONS = {
  inject: 'tessera.io/inject',
  agent: 'tessera.io/agent',
  proxy: 'tessera.io/proxy',
  caBundle: 'tessera.io/ca-bundle',
  role: 'tessera.io/role',
  taskScope: 'tessera.io/task-scope',
  taskPurpose: 'tessera.io/task-purpose',
  taskTtl: 'tessera.io/task-ttl',
  /** Written by the webhook (its version): the idempotence marker. */
  injected: 'tessera.io/injected',
} as const;

export const KNOWN_ANNOTATIONS: readonly string[] = Object.values(ANNOTATIONS);

/** Caps on the values read (the server caps again at login); the TTL range is the sidecar's `--task-ttl`. */
export const LIMITS = { scopeChars: 4096, ttlChars: 32, minTtlSeconds: 10, maxTtlSeconds: 86_400 } as const;

/** What a pod asks for, parsed. `inject: false` means: leave the pod alone. */
export interface InjectionRequest {
  readonly inject: boolean;
  readonly agent: boolean;
  readonly proxy: boolean;
  readonly caBundle: boolean;
  readonly role?: string;
  /** Validated scope strings, joined by single spaces as given. */
  readonly taskScope?: string;
  readonly taskPurpose?: string;
  /** Whole seconds. */
  readonly taskTtlSeconds?: number;
  /** The pod was already mutated by an injector (value: that injector's version). */
  readonly injected?: string;
}

const invalid = (name: string, message: string): TesseraError => fail('TESSERA_INJECTOR_ANNOTATION_INVALID', `annotation ${name}: ${message}`, { annotation: name });

/** Shows a value in a message: bounded, control characters escaped (it is the pod author's text). */
export function shown(value: string, max = 64): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(cut).replace(/[\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function flag(annotations: Readonly<Record<string, string>>, name: string): boolean {
  const v = annotations[name];
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  throw invalid(name, `must be "true" or "false" (quoted in YAML), got ${shown(v)}`);
}

/** Re-throws a server-side validation error as an annotation refusal naming the annotation. */
function asAnnotation<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof TesseraError) throw invalid(name, `${e.message} (${e.code} at login)`);
    throw e;
  }
}

function parseTtl(v: string): number {
  const name = ANNOTATIONS.taskTtl;
  if (v.length > LIMITS.ttlChars) throw invalid(name, `is longer than ${LIMITS.ttlChars} characters`);
  const ms = parseDuration(v);
  if (ms === null || v.trim() !== v) throw invalid(name, `must be a duration such as "15m", "1h" or "900s", got ${shown(v)}`);
  if (ms % 1000 !== 0 || ms < LIMITS.minTtlSeconds * 1000 || ms > LIMITS.maxTtlSeconds * 1000) throw invalid(name, `must be whole seconds from 10s to 24h (what the sidecar accepts), got ${shown(v)}`);
  return ms / 1000;
}

/** The `tessera.io/` annotations only, refusing unknown names (the whole list in one message). */
function ours(annotations: Readonly<Record<string, string>>): Record<string, string> {
  const mine: Record<string, string> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(annotations)) {
    if (!k.startsWith(PREFIX)) continue;
    if (KNOWN_ANNOTATIONS.includes(k)) mine[k] = v;
    else unknown.push(k);
  }
  if (unknown.length > 0) {
    throw fail('TESSERA_INJECTOR_ANNOTATION_UNKNOWN', `unknown annotation${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 8).map((k) => shown(k, 80)).join(', ')}; the injector knows ${KNOWN_ANNOTATIONS.join(', ')} (a typo would silently change what the pod gets)`, { unknown: unknown.slice(0, 8) });
  }
  return mine;
}

/**
 * Parses and checks the pod's annotations. Throws TESSERA_INJECTOR_ANNOTATION_UNKNOWN or
 * TESSERA_INJECTOR_ANNOTATION_INVALID naming the annotation; a pod without any `tessera.io/`
 * annotation gives `{ inject: false }`.
 */
export function parseAnnotations(annotations: Readonly<Record<string, string>>): InjectionRequest {
  const a = ours(annotations);
  const injected = a[ANNOTATIONS.injected];
  const inject = flag(a, ANNOTATIONS.inject);
  const given = Object.keys(a).filter((k) => k !== ANNOTATIONS.inject && k !== ANNOTATIONS.injected);
  if (!inject) {
    // `inject: "false"` is an explicit opt-out; the other annotations without `inject` are a mistake.
    if (a[ANNOTATIONS.inject] === undefined && given.length > 0 && injected === undefined) {
      throw invalid(given[0]!, `needs ${ANNOTATIONS.inject}: "true" (without it the pod would get nothing)`);
    }
    return { inject: false, agent: false, proxy: false, caBundle: false, ...(injected !== undefined ? { injected } : {}) };
  }
  const agent = flag(a, ANNOTATIONS.agent);
  const proxy = flag(a, ANNOTATIONS.proxy);
  const caBundle = flag(a, ANNOTATIONS.caBundle);
  if (proxy && !agent) throw invalid(ANNOTATIONS.proxy, `needs ${ANNOTATIONS.agent}: "true": the app's HTTPS_PROXY is the sidecar's local proxy, which adds the pod's identity`);
  const role = a[ANNOTATIONS.role];
  const scope = a[ANNOTATIONS.taskScope];
  const purpose = a[ANNOTATIONS.taskPurpose];
  const ttl = a[ANNOTATIONS.taskTtl];
  for (const [name, v] of [[ANNOTATIONS.role, role], [ANNOTATIONS.taskScope, scope], [ANNOTATIONS.taskPurpose, purpose], [ANNOTATIONS.taskTtl, ttl]] as const) {
    if (v !== undefined && !agent) throw invalid(name, `needs ${ANNOTATIONS.agent}: "true": the sidecar is what logs in with the role and opens the task`);
  }
  // The server's rule (src/shared/principal.ts): refused here rather than at the sidecar's login.
  if (role !== undefined && !isRoleName(role)) throw invalid(ANNOTATIONS.role, `must be ${ROLE_NAME_RULE}; got ${shown(role)}`);
  if (scope !== undefined && scope.length > LIMITS.scopeChars) throw invalid(ANNOTATIONS.taskScope, `is longer than ${LIMITS.scopeChars} characters`);
  const taskScope = scope === undefined ? undefined : asAnnotation(ANNOTATIONS.taskScope, () => parseScopeParam(scope).join(' '));
  const taskPurpose = purpose === undefined ? undefined : asAnnotation(ANNOTATIONS.taskPurpose, () => parsePurpose(purpose));
  // The sidecar opens a task only with a scope (its purpose defaults to "kubernetes agent sidecar").
  if ((ttl !== undefined || purpose !== undefined) && scope === undefined) {
    throw invalid(ttl !== undefined ? ANNOTATIONS.taskTtl : ANNOTATIONS.taskPurpose, `needs ${ANNOTATIONS.taskScope}: the sidecar opens a task only with a scope`);
  }
  return {
    inject, agent, proxy, caBundle,
    ...(role !== undefined ? { role } : {}),
    ...(taskScope !== undefined ? { taskScope } : {}),
    ...(taskPurpose !== undefined ? { taskPurpose } : {}),
    ...(ttl !== undefined ? { taskTtlSeconds: parseTtl(ttl) } : {}),
    ...(injected !== undefined ? { injected } : {}),
  };
}
