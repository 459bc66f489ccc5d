/**
 * Task tokens: their claims, and the principal a verified one stands for (pure; no I/O).
 *
 * A task token is a JWT Tessera signs (ES256) with the explicit type `tessera-task+jwt`
 * (RFC 8725 §3.11), so it can never be taken for an agent token (`typ: JWT`, a JWT-SVID) or the
 * other way round. Its claims (docs/tasks.md "Claims"):
 *
 *   sub        the original principal: the agent that opened the root task (a user later)
 *   act        RFC 8693 §4.1 actor chain, the newest actor outermost: `{ sub, label?, act? }`;
 *              the innermost `act` is the agent that opened the root task. Always present.
 *   txn        this task node's id; `ptxn` its parent's, `rtxn` the root's
 *   anc        every ancestor task id, root first (so revoking any ancestor refuses this token
 *              with map lookups only: no store access per request)
 *   scope      RFC 8693 §4.2 space-separated scope strings (src/policy/scope.ts)
 *   purpose    bounded text, why this task exists (audited)
 *   depth      delegation hops from the root (0 = root); `max_depth` the bound for the subtree
 *   tctx       task facts: a small object of string values, only ever extended down the tree
 *   cnf        RFC 7800 §3.1 confirmation `{ jkt }` (RFC 9449 §6.1) when sender-constrained
 *   tessera    the attestation facts of the ACTING agent (as in an agent token), so policy sees
 *              its attributes without a store lookup
 *   usr        when `sub` is a person (on behalf of a user, docs/users.md): the users.issuers name
 *              and the claims mapped to Cedar `User` tags and `Group` parents, bounded; present
 *              exactly when `sub` is not a SPIFFE ID
 * plus `iss`, `aud`, `exp`, `iat`, `nbf`, `jti` as in agent tokens.
 */
import { z } from 'zod';
import { ATTESTOR_KINDS, ROLE_NAME, attestedPrincipalFields, type AgentPrincipal } from '../shared/principal.js';
import { isSpiffeId } from '../identity/spiffe-id.js';
import { usrClaimSchema } from '../users/identity.js';

/** JOSE `typ` of agent tokens (SPIFFE JWT-SVID §3) and of task tokens (RFC 8725 §3.11). */
export const AGENT_TOKEN_TYP = 'JWT';
export const TASK_TOKEN_TYP = 'tessera-task+jwt';

/** RFC 8693 §3: the token type of Tessera's own access tokens (agent and task tokens) in an exchange. */
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

/** No configuration may allow deeper trees than this (act nesting stays small and bounded). */
export const MAX_DEPTH_CEILING = 8;

/** Bounds of the task parameters (docs/tasks.md "Limits"). */
export const TASK_LIMITS = {
  purposeChars: 512,
  labelChars: 64,
  tctxKeys: 16,
  tctxKeyChars: 64,
  tctxValueChars: 256,
  tctxJsonBytes: 4096,
  scopes: 64,
  scopeChars: 512,
} as const;

/** Task ids: `task_` + 22 base64url characters (src/tasks/txn.ts: the creation time, then 84 random bits). */
export const TXN_PATTERN = /^task_[A-Za-z0-9_-]{22}$/;
/** A sub-agent label: what a runtime-spawned sub-agent without an identity is called. */
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** tctx keys double as Cedar attribute names (`context.tctx.ticket`). */
export const TCTX_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** RFC 7638 SHA-256 thumbprint, base64url without padding (43 characters). */
export const JKT_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** One actor of the RFC 8693 §4.1 chain. */
export interface Actor {
  readonly sub: string;
  /** Set when this hop is a sub-agent without an identity of its own: it acts as `sub`, named by its parent. */
  readonly label?: string;
  readonly act?: Actor;
}

const txn = z.string().regex(TXN_PATTERN);

const actor: z.ZodType<Actor> = z.lazy(() =>
  z.object({
    sub: z.string().min(1).max(2048),
    label: z.string().regex(LABEL_PATTERN).optional(),
    act: actor.optional(),
  }),
);

/** The `tessera` claim of agent and task tokens: the acting agent's attestor name and kind, and the attributes it proved (ADR 0021). */
export const attestationClaimSchema = z.object({ attestor: z.string().max(128), kind: z.enum(ATTESTOR_KINDS), attrs: z.record(z.string().max(256), z.string().max(1024)), role: z.string().regex(ROLE_NAME) }).partial();

/**
 * The registered claims (RFC 7519 §4.1) of agent and task tokens, as Tessera bounds them: `exp`,
 * `iat`, `nbf` in epoch seconds, `aud` one string or 1–16, `jti` 16–128 characters.
 */
export const registeredClaimsShape = {
  iss: z.string().min(1),
  sub: z.string().min(1).max(2048),
  aud: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(16)]),
  exp: z.number().int().positive(),
  iat: z.number().int().positive(),
  nbf: z.number().int().positive().optional(),
  jti: z.string().min(16).max(128),
};

export const taskClaimsSchema = z.object({
  ...registeredClaimsShape,
  act: actor,
  txn,
  ptxn: txn.optional(),
  rtxn: txn,
  anc: z.array(txn).max(MAX_DEPTH_CEILING),
  scope: z.string().min(1).max(TASK_LIMITS.scopes * (TASK_LIMITS.scopeChars + 1)),
  purpose: z.string().max(TASK_LIMITS.purposeChars),
  depth: z.number().int().min(0).max(MAX_DEPTH_CEILING),
  max_depth: z.number().int().min(0).max(MAX_DEPTH_CEILING),
  tctx: z.record(z.string().regex(TCTX_KEY_PATTERN), z.string().max(TASK_LIMITS.tctxValueChars)).optional(),
  cnf: z.object({ jkt: z.string().regex(JKT_PATTERN) }).optional(),
  tessera: attestationClaimSchema.optional(),
  usr: usrClaimSchema.optional(),
});

export type TaskClaims = z.output<typeof taskClaimsSchema>;

/**
 * isSpiffeId for the `sub` of claims Tessera signs (or has just verified the signature of): a
 * pure function of the string, asked twice per task token (taskClaimsProblem, taskPrincipal), so
 * its answers are kept. Bounded (cleared when full); only signed values reach it.
 */
const subIsAgent = new Map<string, boolean>();
function isAgentSub(sub: string): boolean {
  let v = subIsAgent.get(sub);
  if (v === undefined) {
    v = isSpiffeId(sub);
    if (subIsAgent.size >= 1024) subIsAgent.clear();
    subIsAgent.set(sub, v);
  }
  return v;
}

/** The actors of a chain, oldest (the root task's opener) first. At most MAX_DEPTH_CEILING + 1. */
export function actorsOf(act: Actor): Actor[] {
  const out: Actor[] = [];
  for (let a: Actor | undefined = act; a; a = a.act) {
    out.push(a);
    if (out.length > MAX_DEPTH_CEILING + 1) break;
  }
  return out.reverse();
}

/** Builds the nested `act` claim from actors oldest first (RFC 8693 §4.1: newest outermost). */
export function nestActors(actors: readonly Actor[]): Actor {
  let act: Actor | undefined;
  for (const a of actors) act = { sub: a.sub, ...(a.label !== undefined ? { label: a.label } : {}), ...(act ? { act } : {}) };
  if (!act) throw new Error('an actor chain needs at least one actor');
  return act;
}

/**
 * What a signed task token must hold beyond its types: the tree fields agree with each other.
 * Returns the first problem, or undefined. (Tessera only signs consistent claims; this is
 * defence in depth against a bug or a stolen signing key producing a half-formed tree.)
 */
export function taskClaimsProblem(c: TaskClaims): string | undefined {
  const actors = actorsOf(c.act);
  if (actors.length !== c.depth + 1) return 'act (its nesting does not match depth)';
  if (c.depth > c.max_depth) return 'depth (beyond max_depth)';
  if (c.anc.length !== c.depth) return 'anc (its length does not match depth)';
  if (c.depth === 0) {
    if (c.rtxn !== c.txn || c.ptxn !== undefined) return 'rtxn/ptxn (a root task is its own root and has no parent)';
  } else if (c.anc[0] !== c.rtxn || c.anc[c.anc.length - 1] !== c.ptxn) return 'anc (it must run from rtxn to ptxn)';
  if (c.anc.includes(c.txn)) return 'anc (a task cannot be its own ancestor)';
  if (actors[0]!.label !== undefined) return 'act (the root actor cannot be a label)';
  // A person's task carries what policy knows of them; an agent's never does (docs/users.md).
  if (isAgentSub(c.sub) === (c.usr !== undefined)) return 'usr (present exactly when sub is a user)';
  return undefined;
}

/** The scope strings of the `scope` claim (RFC 8693 §4.2: space-separated). */
export function scopeList(scope: string): string[] {
  return scope.split(' ').filter((s) => s.length > 0);
}

/**
 * The principal a verified task token stands for: the ACTING agent (the newest actor; for a
 * label hop, the identity it acts as) with the task, its chain and its facts. `chain` holds the
 * delegators, oldest first (the acting agent excluded), so `chain.length` is the depth.
 */
export function taskPrincipal(c: TaskClaims, acting: { trustDomain: string; path: string }): AgentPrincipal {
  const actors = actorsOf(c.act);
  const me = actors[actors.length - 1]!;
  return {
    spiffeId: me.sub,
    trustDomain: acting.trustDomain,
    path: acting.path,
    ...attestedPrincipalFields(c, 'task'),
    scope: scopeList(c.scope),
    task: c.txn,
    ...(c.ptxn !== undefined ? { parentTask: c.ptxn } : {}),
    rootTask: c.rtxn,
    ancestors: c.anc,
    chain: actors.slice(0, -1).map((a) => a.sub),
    depth: c.depth,
    maxDepth: c.max_depth,
    ...(me.label !== undefined ? { label: me.label } : {}),
    purpose: c.purpose,
    ...(c.tctx !== undefined ? { tctx: c.tctx } : {}),
    ...(c.cnf !== undefined ? { cnf: { jkt: c.cnf.jkt } } : {}),
    // On behalf of a user (DESIGN.md "Users"), `sub` is the user, not an agent: the request is
    // then also the user's, and `revoke user` refuses it.
    ...(isAgentSub(c.sub) ? {} : { user: c.sub }),
    ...(c.usr !== undefined ? { userClaims: { issuer: c.usr.iss, attrs: c.usr.attrs ?? {}, groups: c.usr.groups ?? [] } } : {}),
    actors: actors.map((a) => ({ sub: a.sub, ...(a.label !== undefined ? { label: a.label } : {}) })),
  };
}
