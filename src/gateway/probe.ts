/**
 * "May this caller use anything of that server?" — asked before an upstream is started (and its
 * secrets injected) for a listing, and for the capabilities a session advertises. Pure policy
 * questions: no upstream is contacted.
 *
 * Per kind of item (tools `tool.call`, resources `resource.read`, prompts `prompt.get`):
 *  - the token's scope (when it has one) must name some item of the server (`<kind>:<server>/…`,
 *    `<kind>:*\/…` or `<kind>:**`);
 *  - Cedar must permit some candidate item name: a name no item has (server-wide permits), the
 *    names the caller's own scope and earlier listings mention, every string the action's permit
 *    policies mention (`like` patterns without their wildcards), and the caller's own attribute
 *    values (Cedar has no string concatenation, so a name a policy can permit is one of those).
 * True when the authorizer cannot list its policies' strings (fail open to a listing, never to a
 * call: every call is authorized on its own).
 */
import { principalDecisionKey } from '../policy/entities.js';
import type { Decision, PolicyAction, ResourceRef } from '../policy/types.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import type { AgentPrincipal } from '../shared/principal.js';

/** A name no item has: stands for "any item" (server-wide permits). */
export const PROBE_ITEM = '*';

export interface ProbeKind {
  readonly action: PolicyAction;
  /** The scope kind (`tool`, `resource`, `prompt`). */
  readonly scope: 'tool' | 'resource' | 'prompt';
  /** The policy resource for one candidate item name of `server`. */
  readonly ref: (server: string, item: string) => ResourceRef;
  /**
   * The item names one `<kind>:<server>/<tail>` scope names, when a scope name is not itself an
   * item name (a `resource:` scope drops a URI's empty segments: `demo:/r/**` names
   * `demo://r/x`). Default: the tail itself.
   */
  readonly itemsOfScope?: (tail: string) => readonly string[];
  /** Is the item visible (permitted, or a permit that may hold with the real arguments)? Default: `visibleFor`. */
  readonly visible?: (principal: AgentPrincipal, server: string, item: string) => boolean;
}

/**
 * Visible in a listing: Cedar permits the request with `context.args = {}`, or a `permit` errors
 * on the arguments the listing does not have (it may hold with the right ones) while no `forbid`
 * is satisfied (ADR 0140). The call itself is authorized with its real arguments.
 */
export function visibleFor(authorizer: RequestAuthorizer, principal: AgentPrincipal, action: PolicyAction, resource: ResourceRef): boolean {
  let d: Decision;
  try {
    d = authorizer.authorize({ principal, action, resource, context: { args: {} } });
  } catch {
    return false;
  }
  if (d.allowed) return true;
  return !d.scopeDenied && d.mayPermit === true;
}

/** The token's scope (if any) names some `kind` item of `server`. */
export function scopeNamesServer(p: AgentPrincipal, kind: string, server: string): boolean {
  const scope = p.scope?.filter((x) => x.startsWith(`${kind}:`));
  return scope === undefined || scope.some((x) => x.startsWith(`${kind}:${server}/`) || x.startsWith(`${kind}:*/`) || x.startsWith(`${kind}:**`));
}

export interface ServerProbe {
  /** Whether `p` may use some item of `kind` on `server` (see the module comment); `seen`: item names from earlier listings. */
  mayUse(p: AgentPrincipal, server: string, kind: ProbeKind, seen?: Iterable<string>): boolean;
}

export function createServerProbe(authorizer: RequestAuthorizer): ServerProbe {
  const caches = new WeakMap<readonly string[], Map<string, boolean>>();
  return {
    mayUse(p, server, kind, seen = []) {
      if (!scopeNamesServer(p, kind.scope, server)) return false;
      const lits = authorizer.literals?.(kind.action);
      if (!lits) return true;
      let cache = caches.get(lits);
      if (!cache) caches.set(lits, (cache = new Map()));
      const key = `${kind.action}\n${server}\n${principalDecisionKey(p)}`;
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      const candidates = new Set<string>([PROBE_ITEM, server, ...seen]);
      for (const l of lits) candidates.add(l.startsWith(`${server}/`) ? l.slice(server.length + 1) : l);
      for (const v of [p.spiffeId, p.path, p.task, p.user, p.purpose, p.label, ...(p.chain ?? []), ...Object.values(p.attributes ?? {}), ...Object.values(p.tctx ?? {})]) if (typeof v === 'string') candidates.add(v);
      const own = `${kind.scope}:${server}/`;
      for (const x of p.scope ?? []) {
        if (!x.startsWith(own)) continue;
        const tail = x.slice(own.length);
        candidates.add(tail);
        for (const item of kind.itemsOfScope?.(tail) ?? []) candidates.add(item);
      }
      const visible = kind.visible ?? ((q: AgentPrincipal, s: string, item: string) => visibleFor(authorizer, q, kind.action, kind.ref(s, item)));
      let ok = false;
      for (const c of candidates) {
        if (c.length > 0 && c.length <= 2048 && visible(p, server, c)) {
          ok = true;
          break;
        }
      }
      if (cache.size > 10_000) cache.clear();
      cache.set(key, ok);
      return ok;
    },
  };
}
