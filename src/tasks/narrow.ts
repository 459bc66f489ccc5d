/**
 * The narrowing rules of delegation (pure, DESIGN.md "Tasks and delegation"; docs/tasks.md
 * "Narrowing rules"). A child task may only hold less than its parent: scope, lifetime, depth,
 * audiences and binding only narrow, task facts only grow without changing. Every rule refuses
 * with its own stable code; nothing is trimmed unless the caller asked (`scope_mode=trim`).
 */
import { proveHolder } from '../dpop/holder.js';
import { fail } from '../shared/errors.js';
import { scopeCovers } from '../policy/scope.js';
import { TASK_LIMITS } from './claims.js';

/**
 * The child's scope. `exact`: every requested string must be covered by the parent's scope
 * (glob containment, src/policy/scope.ts), else TESSERA_TASK_SCOPE_WIDENED naming the first that
 * is not. `trim`: the requested strings the parent covers, plus the parent's strings a requested
 * one covers (the parts of the request the parent can give); refused only when nothing remains.
 */
export function narrowScope(parent: readonly string[], requested: readonly string[], mode: 'exact' | 'trim'): string[] {
  if (mode === 'exact') {
    for (const r of requested) {
      if (!scopeCovers(parent, r)) {
        throw fail('TESSERA_TASK_SCOPE_WIDENED', `scope "${r}" is not within the parent task's scope (${parent.join(' ')}); a sub-agent gets at most what its parent holds. Ask for a narrower scope, or send scope_mode=trim to receive only the covered part`, { scope: r });
      }
    }
    return [...requested];
  }
  const out: string[] = [];
  for (const r of requested) if (scopeCovers(parent, r) && !out.includes(r)) out.push(r);
  for (const p of parent) if (requested.some((r) => scopeCovers([r], p)) && !out.includes(p)) out.push(p);
  if (out.length === 0) {
    throw fail('TESSERA_TASK_SCOPE_WIDENED', `no part of the requested scope (${requested.join(' ')}) is within the parent task's scope (${parent.join(' ')})`, { scope: requested.join(' ') });
  }
  return out.slice(0, TASK_LIMITS.scopes);
}

/**
 * The child's `exp` (seconds): the requested lifetime, else the default, never beyond
 * `maxTtlMs` (tokens.task_ttl) nor the parent's `exp`. A request beyond either is refused
 * (TESSERA_TASK_LIFETIME_EXCEEDED), never shortened; the default is shortened to fit.
 */
export function childExpiry(now: number, parentExpS: number, requestedMs: number | undefined, defaultMs: number, maxTtlMs: number, parentName: string): number {
  const nowS = Math.floor(now / 1000);
  if (parentExpS <= nowS) throw fail('TESSERA_TASK_LIFETIME_EXCEEDED', `the ${parentName} expires now; no lifetime is left to give a task. Get a fresh one first`);
  if (requestedMs === undefined) return Math.min(Math.floor((now + Math.min(defaultMs, maxTtlMs)) / 1000), parentExpS);
  if (requestedMs > maxTtlMs) throw fail('TESSERA_TASK_LIFETIME_EXCEEDED', `requested_ttl ${requestedMs / 1000} s is longer than tasks may live (tokens.task_ttl, ${Math.floor(maxTtlMs / 1000)} s)`, { max_s: Math.floor(maxTtlMs / 1000) });
  const exp = Math.floor((now + requestedMs) / 1000);
  if (exp > parentExpS) {
    throw fail('TESSERA_TASK_LIFETIME_EXCEEDED', `requested_ttl ${requestedMs / 1000} s would outlive the ${parentName}, which expires in ${parentExpS - nowS} s; a task never outlives what it derives from`, { max_s: parentExpS - nowS });
  }
  return exp;
}

/** Depth and max_depth of a child: depth + 1 within the parent's max_depth, which the child may lower, never raise. */
export function childDepth(parent: { depth: number; maxDepth: number }, requestedMax: number | undefined): { depth: number; maxDepth: number } {
  const depth = parent.depth + 1;
  if (depth > parent.maxDepth) {
    throw fail('TESSERA_TASK_DEPTH_EXCEEDED', `the parent task is at depth ${parent.depth} of its tree's max_depth ${parent.maxDepth}: it may not delegate further`, { depth, max_depth: parent.maxDepth });
  }
  if (requestedMax === undefined) return { depth, maxDepth: parent.maxDepth };
  if (requestedMax > parent.maxDepth) throw fail('TESSERA_TASK_MAX_DEPTH_RAISED', `max_depth ${requestedMax} is above the parent's ${parent.maxDepth}; a child may lower it, never raise it`, { max_depth: parent.maxDepth });
  if (requestedMax < depth) throw fail('TESSERA_TASK_PARAMETER_INVALID', `max_depth: ${requestedMax} is below the child's own depth ${depth}`, { field: 'max_depth' });
  return { depth, maxDepth: requestedMax };
}

/** A root task's max_depth: the requested one, at most the configured bound (tokens.delegation.max_depth). */
export function rootMaxDepth(requested: number | undefined, configured: number): number {
  if (requested === undefined) return configured;
  if (requested > configured) throw fail('TESSERA_TASK_MAX_DEPTH_RAISED', `max_depth ${requested} is above this Tessera's bound (tokens.delegation.max_depth = ${configured})`, { max_depth: configured });
  return requested;
}

/** Audiences: every requested one among the parent's (default: all of the parent's); none in common → TESSERA_TASK_AUDIENCE_WIDENED. */
export function narrowAudience(parent: readonly string[], requested: readonly string[], parentName: string): string[] {
  if (parent.length === 0) throw fail('TESSERA_TASK_AUDIENCE_WIDENED', `the ${parentName} have no audience in common; a task is usable only where what it derives from is. Log the sub-agent in for the parent's audience (e.g. the API, not only /mcp)`, { audience: null });
  if (requested.length === 0) return [...parent];
  for (const a of requested) {
    if (!parent.includes(a)) throw fail('TESSERA_TASK_AUDIENCE_WIDENED', `audience "${a.slice(0, 200)}" is not an audience of the ${parentName} (${parent.join(', ')}); a task is usable only where what it derives from is`, { audience: a });
  }
  return [...new Set(requested)];
}

/** Task facts: the parent's, plus new keys; an existing key keeps its value (TESSERA_TASK_CONTEXT_CHANGED otherwise). */
export function extendTctx(parent: Readonly<Record<string, string>>, requested: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = { ...parent };
  for (const [k, v] of Object.entries(requested ?? {})) {
    if (Object.hasOwn(parent, k) && parent[k] !== v) {
      throw fail('TESSERA_TASK_CONTEXT_CHANGED', `tctx "${k}" is set by the parent task; a child may add facts but never change one`, { key: k });
    }
    out[k] = v;
  }
  if (Object.keys(out).length > TASK_LIMITS.tctxKeys) throw fail('TESSERA_TASK_PARAMETER_INVALID', `tctx: with the parent's facts the task would hold more than ${TASK_LIMITS.tctxKeys} keys`, { field: 'tctx' });
  if (Buffer.byteLength(JSON.stringify(out), 'utf8') > TASK_LIMITS.tctxJsonBytes) throw fail('TESSERA_TASK_PARAMETER_INVALID', `tctx: with the parent's facts the task's facts would exceed ${TASK_LIMITS.tctxJsonBytes} bytes`, { field: 'tctx' });
  return out;
}

/**
 * The key the new token is bound to (RFC 9449 §6.1 `cnf.jkt`), or undefined for a bearer token.
 * The only key a token is ever bound to is the one the request PROVED: `proofJkt`, the RFC 7638
 * thumbprint of the DPoP proof the token endpoint verified (RFC 9449 §5); never one named by a
 * parameter.
 * - `subjectJkt`: the subject token (a parent task token, or the agent token opening a root
 *   task) is bound: the proof must be by its key, and the new token is bound too (a bound parent
 *   yields only bound children, to the same key);
 * - `actorJkt`: the `actor_token` (the sub-agent's own agent token) is bound: the proof must be
 *   by its key too, so the child is bound to the sub-agent's key (a bound identity cannot be
 *   lent to a request that does not hold its key). With a bound parent as well, the two keys
 *   must be the same one (a request carries one proof);
 * - `required`: refuse an unbound result (tokens.delegation.require_dpop_for_labels).
 * Throws TESSERA_TASK_BINDING_REQUIRED (no proof) or TESSERA_TASK_KEY_MISMATCH (a proof by another key).
 */
export function childBinding(opts: { subjectJkt?: string | undefined; actorJkt?: string | undefined; proofJkt?: string | undefined; required?: string | undefined }): string | undefined {
  const codes = { missing: 'TESSERA_TASK_BINDING_REQUIRED', mismatch: 'TESSERA_TASK_KEY_MISMATCH' } as const;
  proveHolder(opts.subjectJkt, opts.proofJkt, { ...codes, what: 'the subject token', field: 'subject_token', hint: 'its children are bound too' });
  proveHolder(opts.actorJkt, opts.proofJkt, {
    ...codes, what: 'the actor_token', field: 'actor_token',
    hint: opts.subjectJkt !== undefined
      ? 'the subject token and the actor_token are bound to different keys, and a request carries one proof: a sub-agent with a key of its own is delegated to from an unbound parent (the proof, signed by the sub-agent\'s key, binds the child)'
      : 'the sub-agent\'s key must sign the proof; the child is bound to it',
  });
  const jkt = opts.proofJkt;
  if (jkt === undefined && opts.required !== undefined) throw fail('TESSERA_TASK_BINDING_REQUIRED', opts.required);
  return jkt;
}
