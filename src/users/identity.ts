/**
 * Who a person is, as Tessera carries it (pure; no I/O): the user id and the claims mapped to
 * Cedar `User` tags and `Group` parents (docs/users.md "Mapping claims"). Built once from a
 * verified user token (or the ID token of a federated login) and carried in the task token's
 * `usr` claim, so no request needs a store or a provider to know the person's entitlement.
 */
import { z } from 'zod';
import { fail } from '../shared/errors.js';
import { credentialLike } from '../shared/credential-like.js';
import { USER_LIMITS, type UserIssuerConfig } from './config.js';

/** A person acting through an agent. */
export interface UserIdentity {
  /** `user_id_prefix` + the user-id claim: the task token's `sub`, the target of `revoke user`. */
  readonly id: string;
  /** The configured issuer's `name` (Cedar `principal.issuer`). */
  readonly issuer: string;
  /** Cedar `User` tags (mapped claims), strings only. */
  readonly attrs: Readonly<Record<string, string>>;
  /** Cedar `Group` parents. */
  readonly groups: readonly string[];
}

/** A user id: printable ASCII without spaces (it is a revocation target and audited), never a SPIFFE ID. */
const USER_ID = /^[\x21-\x7e]+$/;

/** The `usr` claim of a task token acting for a person: where the user came from and what policy sees. */
export const usrClaimSchema = z.object({
  iss: z.string().min(1).max(32),
  attrs: z.record(z.string().max(64), z.string().max(USER_LIMITS.attributeChars)).refine((r) => Object.keys(r).length <= USER_LIMITS.attributes).optional(),
  groups: z.array(z.string().min(1).max(USER_LIMITS.groupChars)).max(USER_LIMITS.groups).optional(),
}).strict();
export type UsrClaim = z.output<typeof usrClaimSchema>;

export function usrClaimOf(u: UserIdentity): UsrClaim {
  return { iss: u.issuer, ...(Object.keys(u.attrs).length ? { attrs: { ...u.attrs } } : {}), ...(u.groups.length ? { groups: [...u.groups] } : {}) };
}

export function identityFromUsr(sub: string, usr: UsrClaim): UserIdentity {
  return { id: sub, issuer: usr.iss, attrs: usr.attrs ?? {}, groups: usr.groups ?? [] };
}

/** Reads `a.b.c` from a claims object (own properties only). */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  let v: unknown = claims;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.prototype.hasOwnProperty.call(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** Whether `id` can name a person: refused with its reason, or undefined. */
export function userIdProblem(id: string): string | undefined {
  if (id.length === 0 || id.length > USER_LIMITS.userIdChars) return `must be 1 to ${USER_LIMITS.userIdChars} characters`;
  if (!USER_ID.test(id)) return 'must be printable ASCII without spaces';
  // A SPIFFE ID as `sub` would make the task read as an agent's own (docs/users.md "Threats").
  if (/^spiffe:/i.test(id)) return 'must not be a SPIFFE ID (agents are named that way)';
  if (credentialLike(id)) return 'looks like a credential';
  return undefined;
}

/**
 * Maps verified claims to a UserIdentity. Throws TESSERA_USER_CLAIM_MISSING when the user-id
 * claim is absent, TESSERA_USER_CLAIM_INVALID when it or a mapped claim has an unusable value
 * (never truncated: dropping a group could slip past a `forbid`).
 */
export function mapUserClaims(cfg: Pick<UserIssuerConfig, 'name' | 'user_id_claim' | 'user_id_prefix' | 'attributes' | 'groups_claim'>, claims: Readonly<Record<string, unknown>>): UserIdentity {
  const raw = claimAt(claims, cfg.user_id_claim);
  if (raw === undefined || raw === null || raw === '') {
    throw fail('TESSERA_USER_CLAIM_MISSING', `the user token has no "${cfg.user_id_claim}" claim, which names the person for issuer "${cfg.name}" (users.issuers[].user_id_claim)`, { claim: cfg.user_id_claim, issuer: cfg.name });
  }
  if (typeof raw !== 'string') throw fail('TESSERA_USER_CLAIM_INVALID', `the "${cfg.user_id_claim}" claim must be a string`, { claim: cfg.user_id_claim, issuer: cfg.name });
  const id = `${cfg.user_id_prefix}${raw}`;
  const problem = userIdProblem(id);
  if (problem) throw fail('TESSERA_USER_CLAIM_INVALID', `the user id from "${cfg.user_id_claim}" ${problem}`, { claim: cfg.user_id_claim, issuer: cfg.name });
  const attrs: Record<string, string> = {};
  for (const [tag, path] of Object.entries(cfg.attributes)) {
    const v = claimAt(claims, path);
    if (v === undefined || v === null) continue; // absent: `principal.hasTag(…)` is false
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw fail('TESSERA_USER_CLAIM_INVALID', `claim "${path}" (attribute ${tag}) must be a string, number or boolean`, { claim: path, issuer: cfg.name });
    const s = String(v);
    if (s.length > USER_LIMITS.attributeChars || credentialLike(s)) throw fail('TESSERA_USER_CLAIM_INVALID', `claim "${path}" (attribute ${tag}) is longer than ${USER_LIMITS.attributeChars} characters or looks like a credential`, { claim: path, issuer: cfg.name });
    attrs[tag] = s;
  }
  return { id, issuer: cfg.name, attrs, groups: cfg.groups_claim ? groupsOf(claims, cfg.groups_claim, cfg.name) : [] };
}

function groupsOf(claims: Readonly<Record<string, unknown>>, path: string, issuer: string): string[] {
  const v = claimAt(claims, path);
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  const bad = (why: string) => fail('TESSERA_USER_CLAIM_INVALID', `the groups claim "${path}" ${why}`, { claim: path, issuer });
  if (!Array.isArray(list)) throw bad('must be an array of strings');
  if (list.length > USER_LIMITS.groups) throw bad(`has more than ${USER_LIMITS.groups} groups (none are dropped: a dropped group could slip past a forbid policy); map a narrower claim`);
  const out = new Set<string>();
  for (const g of list) {
    if (typeof g !== 'string' || g.length === 0 || g.length > USER_LIMITS.groupChars) throw bad(`must hold strings of 1 to ${USER_LIMITS.groupChars} characters`);
    out.add(g);
  }
  return [...out].sort();
}
