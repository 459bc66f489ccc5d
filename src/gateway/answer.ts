/**
 * What every gateway answer built from an upstream's reply shares (tools/call, resources/read,
 * prompts/get, completion/complete, and their listings): the scrubber for the values injected
 * into the upstream, the audit names of agent- or upstream-chosen text, the actor, the session
 * HMAC, and the `gateway.exfiltration_suspected` event of each scrub hit. One per gateway.
 */
import type { AuditWhere } from '../audit/events.js';
import type { AuditWriter } from '../audit/port.js';
import { credentialLike, redactCredentialLike } from '../shared/credential-like.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { createScrubber, type Scrubber, type ScrubHit, type SecretInput } from './scrub/index.js';
import type { UpstreamCaller } from './upstream.js';

export const NO_SECRETS: readonly SecretInput[] = Object.freeze([]);
/** Scrub hits audited one by one per answer; the answer's own event counts them all. */
export const MAX_AUDITED_HITS = 16;

/** What was asked when a scrub hit was found: the policy action and the item (a tool, a URI, a prompt). */
export interface HitSource {
  readonly action: string;
  readonly server: string;
  /** The tool name, resource URI or prompt name (audited through `auditName`). */
  readonly item: string;
  /** What kind of item, when not a tool (`resource`, `prompt`, `completion`). */
  readonly itemKind?: 'resource' | 'prompt' | 'completion';
}

export interface AnswerKit {
  /** One scrubber per set of injected values (an upstream connection's), derived with a call's own `extra`. */
  scrubberFor(base: readonly SecretInput[], extra?: readonly SecretInput[]): Scrubber;
  /**
   * A name from an agent or an upstream as the audit may record it: the HMAC of the whole name
   * when it holds a credential shape (the audit log's or the scrubber's), else cut to 256
   * characters (ADR 0041).
   */
  auditName(name: string): string;
  actor(p: AgentPrincipal): { id: string; chain?: readonly string[]; user?: string };
  sessionHmac(sessionId: string): string;
  where(caller: UpstreamCaller): AuditWhere;
  /** `gateway.exfiltration_suspected` for each of the first MAX_AUDITED_HITS hits. */
  auditHits(hits: readonly ScrubHit[], source: HitSource, caller: UpstreamCaller, inError: boolean): Promise<void>;
}

export function createAnswerKit(audit: AuditWriter): AnswerKit {
  const scrubbers = new WeakMap<readonly SecretInput[], Scrubber>();
  const sessionHmacs = new Map<string, string>();

  function scrubberFor(base: readonly SecretInput[], extra: readonly SecretInput[] = NO_SECRETS): Scrubber {
    let s = scrubbers.get(base);
    if (!s) {
      s = createScrubber(base);
      scrubbers.set(base, s);
    }
    return extra.length ? s.derive(extra) : s;
  }

  function auditName(name: string): string {
    const shaped = credentialLike(name) !== undefined || scrubberFor(NO_SECRETS).scrubText(name).hits.length > 0;
    return shaped ? `hmac:${audit.hmac(name)}` : name.slice(0, 256);
  }

  function actor(p: AgentPrincipal): { id: string; chain?: readonly string[]; user?: string } {
    return { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) };
  }

  function sessionHmac(sessionId: string): string {
    let h = sessionHmacs.get(sessionId);
    if (h === undefined) {
      if (sessionHmacs.size > 10_000) sessionHmacs.clear();
      h = audit.hmac(sessionId);
      sessionHmacs.set(sessionId, h);
    }
    return h;
  }

  async function auditHits(hits: readonly ScrubHit[], source: HitSource, caller: UpstreamCaller, inError: boolean): Promise<void> {
    const what = source.itemKind === undefined ? 'a tool result' : source.itemKind === 'completion' ? 'a completion' : `a ${source.itemKind}`;
    for (const h of hits.slice(0, MAX_AUDITED_HITS)) {
      await audit.append({
        kind: 'gateway.exfiltration_suspected', actor: actor(caller.principal), action: source.action, resource: auditName(`${source.server}/${source.item}`), result: 'deny',
        reason: { message: `${what} carried a secret value or credential shape; it was redacted before reaching the agent` },
        ...(caller.principal.task ? { txn: caller.principal.task } : {}),
        where: caller.where,
        details: {
          server: auditName(source.server), tool: auditName(source.item), ...(source.itemKind ? { item: source.itemKind } : {}),
          hit_kind: h.kind, form: String(h.form), in_error: inError, ...(h.label ? { label: h.label } : {}), ...(h.path ? { path: redactCredentialLike(h.path).slice(0, 256) } : {}), ...(h.split ? { split: true } : {}),
        },
      });
    }
  }

  return { scrubberFor, auditName, actor, sessionHmac, where: (c) => c.where, auditHits };
}
