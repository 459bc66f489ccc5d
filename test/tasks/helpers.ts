/**
 * Helpers for task-token tests: the RFC 8693 exchange over real HTTP against the whole server
 * (test/e2e/harness.ts), and a policy set for orchestrators and sub-agents. Every token a test
 * obtains is registered with the harness, so the suite-wide leak scan looks for it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import type { Harness } from '../e2e/harness.js';
import { makeProof, type ProofKey } from '../helpers/dpop.js';

export const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT = 'urn:ietf:params:oauth:token-type:jwt';

export const ORCH = 'spiffe://tessera.local/ns/ops/sa/orchestrator';
export const SUB = 'spiffe://tessera.local/ns/ops/sa/summarizer';
export const INTRUDER = 'spiffe://tessera.local/ns/ops/sa/intruder';

/**
 * Orchestrators of tessera.local may open and delegate tasks (to agents of the domain and to
 * label sub-agents), but never a task on every secret, never to the "intruder" agent, never to a
 * sub-agent labelled "shell". Agents of the domain read and inject team/**; a sub-agent labelled
 * "untrusted" never reads team/private; team/tickets only within the ticket INC-42, which only a root
 * task may declare (a delegator adding it to a child is refused).
 */
export const TASK_POLICIES = `
@id("delegate-in-domain")
permit (principal, action == Tessera::Action::"token.delegate", resource)
when { principal.trust_domain == "tessera.local" && resource.trust_domain == "tessera.local" && context.delegation.depth <= 5 };

@id("no-task-on-every-secret")
forbid (principal, action == Tessera::Action::"token.delegate", resource)
when { context.delegation.covers_all.contains("secret") };

@id("no-intruder")
forbid (principal, action == Tessera::Action::"token.delegate", resource == Tessera::Agent::"${INTRUDER}");

@id("no-shell-subagent")
forbid (principal, action == Tessera::Action::"token.delegate", resource is Tessera::SubAgent)
when { resource.name == "shell" };

@id("team-secrets")
permit (principal, action in [Tessera::Action::"secret.read", Tessera::Action::"secret.inject"], resource in Tessera::Folder::"team")
when { principal.trust_domain == "tessera.local" };

@id("team-creds")
permit (principal, action == Tessera::Action::"cred.issue", resource in Tessera::Engine::"mem")
when { principal.trust_domain == "tessera.local" };

@id("untrusted-fence")
forbid (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"team/private")
when { context has label && context.label == "untrusted" };

@id("ticket-fence")
forbid (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"team/tickets")
unless { context.tctx has ticket && context.tctx.ticket == "INC-42" };

@id("ticket-only-from-the-root")
forbid (principal, action == Tessera::Action::"token.delegate", resource)
when { context.delegation.depth > 0 && context.delegation.added_facts.contains("ticket") };
`;

export function policyDir(text = TASK_POLICIES): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-task-policies-'));
  writeFileSync(join(dir, 'tasks.cedar'), text);
  return dir;
}

export interface Exchanged {
  readonly status: number;
  readonly body: any;
  readonly headers: Headers;
}

/**
 * POST /v1/oauth/token with a form (and a `DPoP` proof header when given); a task token in the
 * answer is registered for the leak scan.
 */
export async function exchange(h: Harness, params: Record<string, string | string[]>, opts: { dpop?: string } = {}): Promise<Exchanged> {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries({ grant_type: GRANT, subject_token_type: ACCESS, ...params })) for (const x of Array.isArray(v) ? v : [v]) form.append(k, x);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', ...(opts.dpop !== undefined ? { dpop: opts.dpop } : {}) };
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers, body: form });
  const body = (await res.json()) as any;
  if (typeof body?.access_token === 'string') h.sensitive.add(body.access_token);
  return { status: res.status, body, headers: res.headers };
}

/** Opens a root task (200 asserted). */
export async function openTask(h: Harness, agentToken: string, params: Record<string, string | string[]> = {}): Promise<{ token: string; txn: string; body: any }> {
  const r = await exchange(h, { subject_token: agentToken, scope: 'secret:team/**', purpose: 'test task', ...params });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { token: r.body.access_token, txn: r.body.txn, body: r.body };
}

/** A DPoP proof (RFC 9449 §4.2) for a token request to this harness, signed with `key`. */
export function tokenProof(h: Harness, key: ProofKey): string {
  return makeProof(key, { htm: 'POST', htu: `${h.tessera.url}/v1/oauth/token` });
}

/** Delegates a child (200 asserted); with `key`, the request carries a DPoP proof by it. */
export async function delegate(h: Harness, parentToken: string, params: Record<string, string | string[]>, key?: ProofKey): Promise<{ token: string; txn: string; body: any }> {
  const r = await exchange(h, { subject_token: parentToken, ...params }, key ? { dpop: tokenProof(h, key) } : {});
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { token: r.body.access_token, txn: r.body.txn, body: r.body };
}

/** Asserts an RFC 6749 §5.2 error with Tessera's code. */
export function assertRefused(r: Exchanged, status: number, oauth: string, code: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error, oauth, JSON.stringify(r.body));
  assert.equal(r.body.code, code, JSON.stringify(r.body));
}

export const part = (token: string, i: 0 | 1): any => JSON.parse(Buffer.from(token.split('.')[i]!, 'base64url').toString('utf8'));
export const claimsOf = (token: string): any => part(token, 1);
export const headerOf = (token: string): any => part(token, 0);

/** The token with its payload replaced (the signature no longer matches). */
export function tamper(token: string, edit: (claims: any) => any): string {
  const [h, , s] = token.split('.');
  return `${h}.${Buffer.from(JSON.stringify(edit(claimsOf(token)))).toString('base64url')}.${s}`;
}
