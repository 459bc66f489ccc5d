/**
 * Roles of an OIDC identity from its ID token claims (`console.oidc.roles`): the first role whose
 * rules one claim matches — `admin` before `auditor` — or undefined (403 TESSERA_CONSOLE_NO_ROLE).
 */
import type { OperatorRole } from './store.js';
import type { RoleRule } from './config.js';

/** The claim at a dotted path (`realm_access.roles`), or undefined. Own properties only. */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  let v: unknown = claims;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** True when the claim equals the rule's value, or is an array containing it (no type coercion). */
export function ruleMatches(claims: Record<string, unknown>, rule: RoleRule): boolean {
  const v = claimAt(claims, rule.claim);
  return Array.isArray(v) ? v.some((x) => x === rule.equals) : v === rule.equals;
}

export function roleOf(claims: Record<string, unknown>, roles: { admin: readonly RoleRule[]; auditor: readonly RoleRule[] }): OperatorRole | undefined {
  if (roles.admin.some((r) => ruleMatches(claims, r))) return 'admin';
  if (roles.auditor.some((r) => ruleMatches(claims, r))) return 'auditor';
  return undefined;
}

/** A display name for the session (1–64 of `[A-Za-z0-9._@-]`): `preferred_username`, `email` or `sub`. */
export function displayNameOf(claims: Record<string, unknown>): string {
  for (const k of ['preferred_username', 'email', 'sub']) {
    const v = claims[k];
    if (typeof v === 'string' && v.length > 0) {
      const cleaned = v.replace(/[^A-Za-z0-9._@-]/g, '_').slice(0, 64);
      if (cleaned.length > 0) return cleaned;
    }
  }
  return 'oidc-user';
}
