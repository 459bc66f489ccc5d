/**
 * Scope algebra (pure). A scope string is `<kind>:<pattern>`:
 *
 *   tool:<server>/<tool>     secret:<path-glob>     cred:<engine>/<role>     http:<route-or-host>
 *
 * Patterns are `/`-separated segments. `*` matches exactly one segment; `**` matches any
 * number of segments, with gitignore semantics: in the middle it may match none
 * (`a/**\/b` covers `a/b`), at the end it matches one or more (`a/**` covers everything
 * inside `a` but not a secret called `a`). A segment is either literal or a whole wildcard;
 * `a*` is rejected so that patterns stay unambiguous.
 *
 * Scope narrows what Cedar permits; it never widens it (see authorizeWithScope).
 */
import { fail } from '../shared/errors.js';
import type { Authorizer, Decision, PolicyRequest, ResourceRef } from './types.js';

export const SCOPE_KINDS = ['tool', 'secret', 'cred', 'http'] as const;
export type ScopeKind = (typeof SCOPE_KINDS)[number];

export interface Scope {
  readonly kind: ScopeKind;
  readonly segments: readonly string[];
}

const MAX_SEGMENTS = 32;
const SEGMENT = /^[A-Za-z0-9._~:@+-]+$/;

/** Parses a scope string; throws TESSERA_OAUTH_INVALID_SCOPE naming what is wrong. */
export function parseScope(text: string): Scope {
  const i = text.indexOf(':');
  const kind = i > 0 ? text.slice(0, i) : '';
  if (!(SCOPE_KINDS as readonly string[]).includes(kind)) {
    throw fail('TESSERA_OAUTH_INVALID_SCOPE', `scope "${text}" must start with one of ${SCOPE_KINDS.map((k) => `${k}:`).join(', ')}`);
  }
  const body = text.slice(i + 1);
  const segments = body.split('/');
  if (body === '' || segments.length > MAX_SEGMENTS) throw fail('TESSERA_OAUTH_INVALID_SCOPE', `scope "${text}" needs 1 to ${MAX_SEGMENTS} path segments`);
  for (const s of segments) {
    if (s === '*' || s === '**') continue;
    if (!SEGMENT.test(s) || s === '.' || s === '..') throw fail('TESSERA_OAUTH_INVALID_SCOPE', `scope "${text}" has an invalid segment "${s}" (empty, "."/"..", a partial wildcard, or a character outside A-Z a-z 0-9 . _ ~ : @ + -)`);
  }
  if ((kind === 'tool' || kind === 'cred') && segments.length !== 2) {
    throw fail('TESSERA_OAUTH_INVALID_SCOPE', `scope "${text}" must be ${kind}:<${kind === 'tool' ? 'server' : 'engine'}>/<${kind === 'tool' ? 'tool' : 'role'}> (wildcards allowed)`);
  }
  return { kind: kind as ScopeKind, segments };
}

/** True when pattern `g` matches every string pattern `r` can match (r may itself contain wildcards). */
function covers(g: readonly string[], r: readonly string[]): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * (MAX_SEGMENTS + 2) + j;
    const m = memo.get(key);
    if (m !== undefined) return m;
    let out: boolean;
    if (i === g.length) out = j === r.length;
    else if (g[i] === '**') {
      const trailing = i === g.length - 1;
      // Absorb k >= (trailing ? 1 : 0) segments of r. An r `**` absorbed here is fine: g's
      // `**` matches any sequence, so it matches whatever r's `**` stands for.
      out = false;
      for (let k = trailing ? 1 : 0; j + k <= r.length && !out; k++) out = go(i + 1, j + k);
      // r `**` at the end means "one or more": g `**` absorbing it covers it.
    } else if (j === r.length) out = false;
    else if (r[j] === '**') out = false; // only g `**` covers an r `**`
    else if (g[i] === '*') out = go(i + 1, j + 1);
    else out = g[i] === r[j] && go(i + 1, j + 1);
    memo.set(key, out);
    return out;
  };
  return go(0, 0);
}

/** True when one of the granted scopes covers the requested scope (itself possibly a pattern). */
export function scopeCovers(granted: readonly string[], requested: string): boolean {
  const r = parseScope(requested);
  return granted.some((gs) => {
    const g = parseScope(gs);
    return g.kind === r.kind && covers(g.segments, r.segments);
  });
}

/** For delegation: every child scope is covered by the parent's scopes (a child can only narrow). */
export function isSubset(child: readonly string[], parent: readonly string[]): boolean {
  return child.every((c) => scopeCovers(parent, c));
}

/** The scope a request needs: `secret:<path>`, `cred:<engine>/<role>`, `tool:<server>/<tool>`, `http:<route>`. */
export function requiredScopeFor(resource: ResourceRef): string | undefined {
  switch (resource.type) {
    case 'Secret':
      return `secret:${resource.path.replace(/^\/+|\/+$/g, '')}`;
    case 'Role':
      return `cred:${resource.engine}/${resource.role}`;
    case 'Tool':
      return `tool:${resource.server}/${resource.tool}`;
    case 'Route':
      return `http:${resource.route}`;
    case 'Agent':
    case 'SubAgent':
      return undefined; // delegation narrows scope itself (src/tasks/narrow.ts); no scope names an agent
  }
}

/**
 * Allowed only when Cedar permits AND (the token carries no scope, OR its scope covers the
 * request). Policy is the ceiling; scope narrows it per task (DESIGN.md principle 4).
 * A scope refusal is marked `scopeDenied` so callers answer TESSERA_TOKEN_INSUFFICIENT_SCOPE.
 */
export function authorizeWithScope(authorizer: Authorizer, request: PolicyRequest, requiredScope: string | undefined = requiredScopeFor(request.resource)): Decision {
  const granted = request.principal.scope;
  if (granted !== undefined && requiredScope !== undefined) {
    let ok: boolean;
    try {
      ok = scopeCovers(granted, requiredScope);
    } catch {
      ok = false; // a resource name that is not a valid scope cannot be covered
    }
    if (!ok) return { allowed: false, policies: [], errors: [`token scope does not cover ${requiredScope}`], cached: false, scopeDenied: true };
  }
  return authorizer.authorize(request);
}
