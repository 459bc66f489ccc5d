/**
 * Scope algebra (pure). A scope string is `<kind>:<pattern>`:
 *
 *   tool:<server>/<tool>     secret:<path-glob>     cred:<engine>/<role>     http:<route-or-host>
 *   resource:<server>/<uri-glob>     prompt:<server>/<prompt>
 *
 * A resource is named by its server and its upstream URI split at every `/`, empty segments
 * dropped: `file:///srv/a.md` on server `docs` is `resource:docs/file:/srv/a.md`, so
 * `resource:docs/file:/srv/**` covers every file under /srv. A URI segment with a character the
 * grammar below does not allow (`?`, `%`, `{`…) can be covered only by a wildcard. A prompt is one
 * segment whatever its name holds (`prompt:<server>/*` covers every prompt of a server).
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

export const SCOPE_KINDS = ['tool', 'secret', 'cred', 'http', 'resource', 'prompt'] as const;
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
  if ((kind === 'tool' || kind === 'cred' || kind === 'prompt') && segments.length !== 2) {
    throw fail('TESSERA_OAUTH_INVALID_SCOPE', `scope "${text}" must be ${kind}:<${kind === 'cred' ? 'engine' : 'server'}>/<${kind === 'cred' ? 'role' : kind}> (wildcards allowed)`);
  }
  return { kind: kind as ScopeKind, segments };
}

/** True when pattern `g` matches every string pattern `r` can match (r may itself contain wildcards). */
function covers(g: readonly string[], r: readonly string[]): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * (r.length + 1) + j; // r (a resource URI's segments) may be longer than MAX_SEGMENTS
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

/**
 * True when the scopes `granted` TOGETHER cover `requested` (itself possibly a pattern): every
 * resource name `requested` matches is matched by at least one of them. Unlike scopeCovers,
 * which asks one granted string to cover it, this sees that `secret:* secret:*\/**` covers
 * `secret:**`. Patterns are regular languages over segments, so this is the containment of one
 * NFA in a union of NFAs (alphabet: the literals that occur, plus one symbol for "any other
 * segment"), explored pair by pair (requested state, set of granted states). The exploration is
 * bounded (`maxStates` units of work: granted states stepped, default 20,000, a few ms); past the bound the answer is `onLimit` — the caller picks the side that
 * fails closed.
 */
export function unionCovers(granted: readonly string[], requested: string, opts: { maxStates?: number; onLimit?: boolean } = {}): boolean {
  const r = parseScope(requested);
  const gs = granted.map(parseScope).filter((g) => g.kind === r.kind);
  if (gs.length === 0) return false;
  const OTHER = '\u0000other';
  const alphabet = [...new Set([...r.segments, ...gs.flatMap((g) => g.segments)].filter((s) => s !== '*' && s !== '**')), OTHER];
  // Per pattern: states 0..n, accepting n; see the module comment for `**` (middle: zero or more, end: one or more).
  const closure = (segs: readonly string[], i: number, into: Set<number>): void => {
    for (let j = i; !into.has(j); j++) {
      into.add(j);
      if (!(j < segs.length && segs[j] === '**' && j < segs.length - 1)) break;
    }
  };
  const step = (segs: readonly string[], i: number, a: string, into: Set<number>): void => {
    if (i < segs.length) {
      const s = segs[i]!;
      if (s === '**') {
        if (i < segs.length - 1) closure(segs, i, into); // stay (zero or more), ε already taken
        else into.add(i + 1); // trailing: one, then any more at the accepting state
      } else if (s === '*' || s === a) closure(segs, i + 1, into);
    } else if (segs.length > 0 && segs[segs.length - 1] === '**') into.add(i); // trailing `**` keeps absorbing
  };
  const gStart = (): string[] => gs.flatMap((g, k) => {
    const c = new Set<number>();
    closure(g.segments, 0, c);
    return [...c].map((x) => `${k}:${x}`);
  });
  const gAccepts = (set: readonly string[]): boolean => set.some((e) => {
    const [k, x] = e.split(':').map(Number) as [number, number];
    return x === gs[k]!.segments.length;
  });
  const gStep = (set: readonly string[], a: string): string[] => {
    const out = new Set<string>();
    for (const e of set) {
      const [k, x] = e.split(':').map(Number) as [number, number];
      const next = new Set<number>();
      step(gs[k]!.segments, x, a, next);
      for (const y of next) out.add(`${k}:${y}`);
    }
    return [...out].sort();
  };
  // Work bound: pairs explored times alphabet size (64 scopes of 32 segments name up to 2048 literals).
  const max = opts.maxStates ?? 20_000;
  let work = 0;
  const rStart = new Set<number>();
  closure(r.segments, 0, rStart);
  const start = gStart().sort();
  const queue: Array<[number, string[]]> = [...rStart].map((x) => [x, start]);
  const seen = new Set(queue.map(([x, g]) => `${x}|${g.join(',')}`));
  while (queue.length > 0) {
    const [x, g] = queue.shift()!;
    if (x === r.segments.length && !gAccepts(g)) return false;
    for (const a of alphabet) {
      work += 1 + g.length;
      if (work > max) return opts.onLimit ?? false;
      const next = new Set<number>();
      step(r.segments, x, a, next);
      if (next.size === 0) continue;
      const g2 = gStep(g, a);
      for (const y of next) {
        const key = `${y}|${g2.join(',')}`;
        if (seen.has(key)) continue;
        seen.add(key);
        queue.push([y, g2]);
      }
    }
  }
  return true;
}

/** The widest scope of each kind: `<kind>:**`, `<kind>:*\/*` for the two-segment kinds, `resource:*\/**` (a resource name is a server and at least one URI segment). */
export const WHOLE_KIND: Readonly<Record<ScopeKind, string>> = { tool: 'tool:*/*', secret: 'secret:**', cred: 'cred:*/*', http: 'http:**', resource: 'resource:*/**', prompt: 'prompt:*/*' };

/**
 * The kinds whose every resource `scopes` cover together (for Cedar `context.delegation.covers_all`):
 * `["secret"]` for `secret:**`, but also for `secret:**\/**` or `secret:* secret:*\/**`, which a
 * policy comparing strings would miss. Unparsable strings are ignored (the exchange refuses them
 * first); an exploration past its bound counts as covering (a forbid on it fails closed).
 */
export function kindsCoveredWhole(scopes: readonly string[]): ScopeKind[] {
  const valid = scopes.filter((s) => {
    try {
      parseScope(s);
      return true;
    } catch {
      return false;
    }
  });
  return SCOPE_KINDS.filter((k) => {
    const mine = valid.filter((s) => s.startsWith(`${k}:`));
    // A name whose first segment no pattern names is covered only by a pattern starting with a wildcard.
    if (!mine.some((s) => s.startsWith(`${k}:*`))) return false;
    if (scopeCovers(mine, WHOLE_KIND[k])) return true;
    return unionCovers(mine, WHOLE_KIND[k], { onLimit: true });
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
    case 'Resource':
    case 'Prompt': {
      const n = scopeNameOf(resource)!;
      return `${n.kind}:${n.segments.join('/')}`;
    }
    case 'Server': // upstream.sample / upstream.elicit: policy only (ADR 0175); the upstream is reached only through tool scope
    case 'Agent':
    case 'SubAgent':
      return undefined; // delegation narrows scope itself (src/tasks/narrow.ts); no scope names an agent
  }
}

/**
 * The scope name of a resource whose names are not scope patterns (MCP resource URIs, prompt
 * names hold any character): its kind and segments, matched as literals (see the module comment).
 */
export function scopeNameOf(resource: ResourceRef): { kind: ScopeKind; segments: readonly string[] } | undefined {
  if (resource.type === 'Resource') return { kind: 'resource', segments: [resource.server, ...resource.uri.split('/').filter((s) => s !== '')] };
  if (resource.type === 'Prompt') return { kind: 'prompt', segments: [resource.server, resource.prompt] };
  return undefined;
}

/** True when one of the granted scopes covers the literal name `segments` of `kind` (scopeNameOf). */
export function scopeCoversName(granted: readonly string[], kind: ScopeKind, segments: readonly string[]): boolean {
  return granted.some((gs) => {
    const g = parseScope(gs);
    return g.kind === kind && covers(g.segments, segments);
  });
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
    const name = scopeNameOf(request.resource);
    try {
      ok = name && requiredScope === requiredScopeFor(request.resource) ? scopeCoversName(granted, name.kind, name.segments) : scopeCovers(granted, requiredScope);
    } catch {
      ok = false; // a resource name that is not a valid scope cannot be covered
    }
    if (!ok) return { allowed: false, policies: [], errors: [`token scope does not cover ${requiredScope}`], cached: false, scopeDenied: true };
  }
  return authorizer.authorize(request);
}
