/**
 * The policies page's what-if model: form fields → the body of `POST /v1/admin/policy/check`
 * (src/policy/check.ts `checkRequestSchema`), and the answer → an explanation in words.
 * Pure (test/console/policy-model.test.ts).
 */

/** src/policy/types.ts POLICY_ACTIONS. */
export const POLICY_ACTIONS = ['secret.read', 'secret.inject', 'cred.issue', 'tool.call', 'http.request', 'token.delegate', 'resource.read', 'prompt.get', 'upstream.sample', 'upstream.elicit', 'role.assume'] as const;

/** src/shared/principal.ts ATTESTOR_KINDS. */
export const ATTESTOR_KINDS = ['join_token', 'kubernetes', 'jwt', 'spiffe', 'oauth_client'] as const;

export interface WhatIfForm {
  spiffeId: string;
  /** The attestor that would have proven the identity (its tessera.yaml name); empty: none. */
  attestor: string;
  /** Its kind (policies test `principal.attestor_kind`); empty: none. */
  attestorKind: string;
  action: string;
  /** `Type::id`, e.g. `Secret::prod/db/password`, `Role::postgres/readonly`, `Tool::github/create_issue`. */
  resource: string;
  /** One `key=value` per line: attestor-proven attributes of the principal. */
  attributes: string;
  /** Space- or comma-separated token scope (empty: no scope narrowing). */
  scope: string;
  task: string;
  user: string;
  purpose: string;
  dpop: boolean;
  /** The `context` object as JSON text (`{"args": {…}}`); empty: none. */
  context: string;
}

export const EMPTY_WHAT_IF: WhatIfForm = { spiffeId: '', attestor: '', attestorKind: '', action: 'secret.read', resource: '', attributes: '', scope: '', task: '', user: '', purpose: '', dpop: false, context: '' };

export type Built = { body: Record<string, unknown> } | { error: string; field: keyof WhatIfForm };

/** `k=v` lines → a record; blank lines ignored; a line without `=` is an error. */
export function parseAttributes(text: string): { attributes: Record<string, string> } | { error: string } {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return { error: `attributes line ${i + 1}: expected key=value` };
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return { attributes: out };
}

/** The request body, or the first problem with the form (the server validates again). */
export function buildCheckBody(f: WhatIfForm): Built {
  const spiffe = f.spiffeId.trim();
  if (!spiffe.startsWith('spiffe://')) return { error: 'the principal is a SPIFFE ID such as spiffe://example.org/ns/prod/sa/reader', field: 'spiffeId' };
  const resource = f.resource.trim();
  if (!/^(?:Tessera::)?\w+::.+$/.test(resource)) return { error: 'the resource is Type::id, e.g. Secret::prod/db/password or Role::postgres/readonly', field: 'resource' };
  const attrs = parseAttributes(f.attributes);
  if ('error' in attrs) return { error: attrs.error, field: 'attributes' };
  const principal: Record<string, unknown> = { spiffe_id: spiffe };
  if (Object.keys(attrs.attributes).length) principal.attributes = attrs.attributes;
  if (f.attestor.trim()) principal.attestor = f.attestor.trim();
  if (f.attestorKind) principal.attestor_kind = f.attestorKind;
  const scope = f.scope.split(/[\s,]+/).filter(Boolean);
  if (scope.length) principal.scope = scope;
  if (f.task.trim()) principal.task = f.task.trim();
  if (f.user.trim()) principal.user = f.user.trim();
  if (f.purpose.trim()) principal.purpose = f.purpose.trim();
  if (f.dpop) principal.dpop = true;
  const body: Record<string, unknown> = { principal, action: f.action, resource };
  if (f.context.trim()) {
    let ctx: unknown;
    try {
      ctx = JSON.parse(f.context);
    } catch {
      return { error: 'the context is not valid JSON', field: 'context' };
    }
    if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx)) return { error: 'the context is a JSON object such as {"args": {"repo": "x"}}', field: 'context' };
    body.context = ctx;
  }
  return { body };
}

export interface DecidingPolicy {
  readonly id: string;
  readonly effect: 'permit' | 'forbid';
  readonly file: string;
  readonly line: number;
}

export interface CheckAnswer {
  readonly decision: 'allow' | 'deny';
  readonly policies: readonly DecidingPolicy[];
  readonly errors: readonly string[];
}

/**
 * Why, in words (Cedar semantics: a forbid that matches always wins; otherwise a permit that
 * matches allows; otherwise the default is deny).
 */
export function explainDecision(a: CheckAnswer): string {
  const name = (p: DecidingPolicy) => `${p.id} (${p.file}${p.line ? `:${p.line}` : ''})`;
  const forbids = a.policies.filter((p) => p.effect === 'forbid');
  const permits = a.policies.filter((p) => p.effect === 'permit');
  const errs = a.errors.length ? ` ${a.errors.length === 1 ? 'One policy' : `${a.errors.length} policies`} failed to evaluate and counted as not matching.` : '';
  if (a.decision === 'allow') {
    return `Allowed: ${permits.length === 1 ? 'the permit policy' : 'the permit policies'} ${permits.map(name).join(', ') || '(none reported)'} matched and no forbid policy did.${errs}`;
  }
  if (forbids.length) return `Denied: the forbid ${forbids.length === 1 ? 'policy' : 'policies'} ${forbids.map(name).join(', ')} matched (a matching forbid always wins).${errs}`;
  return `Denied by default: no permit policy matched this principal, action and resource.${errs}`;
}
