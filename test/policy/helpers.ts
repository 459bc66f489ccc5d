import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentPrincipal } from '../../src/shared/principal.js';

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-policy-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export function agent(spiffeId: string, extra: Partial<AgentPrincipal> = {}): AgentPrincipal {
  const m = /^spiffe:\/\/([^/]+)(.*)$/.exec(spiffeId)!;
  return { spiffeId, trustDomain: m[1]!, path: m[2]!, attributes: {}, jti: 'j1', expiresAt: 0, ...extra };
}

/**
 * A principal as a Kubernetes attestor (`template: kubernetes`) would prove it: namespace and
 * service account from the verified token — derived here from a `/ns/<ns>/sa/<sa>` ID for brevity.
 */
export function k8sAgent(spiffeId: string, extra: Partial<AgentPrincipal> = {}, attestor = 'k8s-prod'): AgentPrincipal {
  const m = /\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(spiffeId);
  if (!m) throw new Error(`not a Kubernetes-shaped SPIFFE ID: ${spiffeId}`);
  return agent(spiffeId, { attestor, attestorKind: 'kubernetes', ...extra, attributes: { namespace: m[1]!, service_account: m[2]!, ...(extra.attributes ?? {}) } });
}

/** Polls `cond` until true; bounded (no fixed sleeps as assertions). */
export async function until(cond: () => boolean, what: string, maxMs = 10_000): Promise<void> {
  for (let waited = 0; waited < maxMs; waited += 20) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
