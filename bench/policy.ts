/**
 * Policy decision latency: 100 policies, one realistic request. Measures the engine cold
 * (decision cache off: pre-parsed set via statefulIsAuthorized) and cached, against the
 * baseline of raw cedar-wasm `isAuthorized` (policy text parsed on every call) on the same
 * request in the same run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { createPolicyEngine } from '../src/policy/engine.js';
import { toCedarRequest } from '../src/policy/entities.js';
import type { PolicyRequest } from '../src/policy/types.js';
import { silentLogger } from '../src/shared/logger.js';
import { systemClock } from '../src/shared/clock.js';
import { MemoryAuditWriter } from '../src/audit/port.js';
import { latencies, percentile, type BenchResult } from './lib.js';

function policies(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    if (kind === 0) out.push(`@id("p${i}") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"team${i}/prod") when { principal.namespace == "team${i}" };`);
    else if (kind === 1) out.push(`@id("p${i}") permit(principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"srv${i}/query") when { context.args has ward && context.args.ward == "w${i}" };`);
    else if (kind === 2) out.push(`@id("p${i}") forbid(principal, action, resource in Tessera::Folder::"frozen${i}") unless { principal.service_account == "break-glass" };`);
    else out.push(`@id("p${i}") permit(principal, action == Tessera::Action::"cred.issue", resource in Tessera::Engine::"pg${i}") when { principal.hasTag("team") && principal.getTag("team") == "t${i}" };`);
  }
  // The one that decides the measured request.
  out.push(`@id("hit") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"healthcare/prod") when { principal.namespace == "healthcare" };`);
  return out.join('\n');
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-policy-'));
  try {
    const text = policies(99);
    writeFileSync(join(dir, 'bench.cedar'), text);
    const request: PolicyRequest = {
      principal: {
        spiffeId: 'spiffe://example.org/ns/healthcare/sa/patient-reader', trustDomain: 'example.org', path: '/ns/healthcare/sa/patient-reader',
        attestor: 'k8s-prod', attestorKind: 'kubernetes', attributes: { namespace: 'healthcare', service_account: 'patient-reader', 'label.team': 'records' },
        jti: 'j', expiresAt: 0, scope: ['secret:healthcare/**'],
      },
      action: 'secret.read',
      resource: { type: 'Secret', path: 'healthcare/prod/db-password' },
    };
    const mk = (cacheSize: number) => createPolicyEngine({ dir, clock: systemClock, logger: silentLogger, audit: new MemoryAuditWriter(), cacheSize, watch: false });
    const cold = mk(0);
    const cached = mk(10_000);
    const r1 = await cold.load();
    await cached.load();
    if (!r1.ok || r1.policies !== 100) throw new Error(`bench policies failed to load: ${JSON.stringify(r1.errors)}`);
    if (!cold.authorize(request).allowed) throw new Error('bench request should be allowed');

    const c = toCedarRequest(request);
    const raw = () => {
      const a = cedar.isAuthorized({ principal: c.principal, action: c.action, resource: c.resource, context: c.context, entities: c.entities, policies: { staticPolicies: text } });
      if (a.type !== 'success' || a.response.decision !== 'allow') throw new Error('baseline disagrees');
    };
    const N = 3000;
    // Warm up the JIT and wasm for all three.
    await latencies(raw, 200);
    await latencies(() => cold.authorize(request), 500);
    await latencies(() => cached.authorize(request), 500);

    const base = await latencies(raw, Math.min(N, 1000));
    const coldL = await latencies(() => cold.authorize(request), N);
    const cachedL = await latencies(() => cached.authorize(request), N);
    const baseP50 = percentile(base, 50);
    const baseline = { name: 'raw cedar-wasm isAuthorized (policy text parsed per call), p50', value: round(baseP50), unit: 'µs' };
    const res = (name: string, value: number, goal?: { text: string; max: number }): BenchResult => ({
      name,
      value: round(value),
      unit: 'µs',
      baseline,
      ratio: round(baseP50 / value),
      ratioNote: 'baseline p50 / this (higher is better)',
      ...(goal ? { goal: goal.text, met: value <= goal.max } : {}),
    });
    return [
      res('policy decision, 100 policies, cold (cache off, pre-parsed set), p50', percentile(coldL, 50), { text: 'cold p50 ≤ 250 µs', max: 250 }),
      res('policy decision, 100 policies, cold (cache off, pre-parsed set), p99', percentile(coldL, 99)),
      res('policy decision, 100 policies, cached, p50', percentile(cachedL, 50), { text: 'cached p50 ≤ 25 µs', max: 25 }),
      res('policy decision, 100 policies, cached, p99', percentile(cachedL, 99)),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (v: number): number => Math.round(v * 10) / 10;

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
