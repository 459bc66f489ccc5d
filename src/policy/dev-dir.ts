/**
 * The policy directory of `tessera dev` (docs/cli.md "tessera dev", docs/adr/0081-cli-hardening.md).
 *
 * Dev mode serves the configured `policy.dir` (default `./policies`) when it exists. When it
 * does not, it serves the demo policies shipped in `examples/policies/` — and checks for the
 * configured directory once per `pollMs` (one stat). The moment it appears, that directory is
 * loaded (and watched, as configured) and replaces the demo set for good, so following an
 * example that says "write policies/x.cedar" works without a restart. Requests are decided by
 * exactly one set at any time: the new engine has loaded before it takes over.
 */
import { existsSync } from 'node:fs';
import type { Logger } from '../shared/logger.js';
import type { ReadinessCheck } from '../server/system-routes.js';
import type { PolicyEngine, PolicyStatus } from './engine.js';

export interface DevPolicyOptions {
  /** `policy.dir`, absolute. */
  readonly configuredDir: string;
  /** The shipped demo policies, absolute. */
  readonly demoDir: string;
  /** Creates an engine for a directory (same options otherwise). */
  readonly make: (dir: string) => PolicyEngine;
  readonly logger: Logger;
  /** How often to look for the configured directory while the demo set is served. Default 1 s. */
  readonly pollMs?: number;
  readonly exists?: (dir: string) => boolean;
}

/** A PolicyEngine that is the configured directory's, or the demo set's until that directory exists. */
export function createDevPolicyEngine(opts: DevPolicyOptions): PolicyEngine {
  const exists = opts.exists ?? existsSync;
  let demo = !exists(opts.configuredDir);
  let current = opts.make(demo ? opts.demoDir : opts.configuredDir);
  let timer: NodeJS.Timeout | undefined;
  let switching = false;
  let stopped = false;

  async function check(): Promise<void> {
    if (switching || stopped || !exists(opts.configuredDir)) return;
    switching = true;
    clearInterval(timer);
    timer = undefined;
    try {
      const next = opts.make(opts.configuredDir);
      await next.start();
      if (stopped) return next.stop();
      const previous = current;
      current = next;
      demo = false;
      previous.stop();
      opts.logger.info({ dir: opts.configuredDir, policies: next.status().policies }, 'the policy directory now exists; serving it instead of the demo policies');
    } finally {
      switching = false;
    }
  }

  const status = (): PolicyStatus => ({ ...current.status(), ...(demo ? { demo: true, configuredDir: opts.configuredDir } : {}) });

  const engine: PolicyEngine = {
    load: () => current.load(),
    async start() {
      await current.start();
      if (!demo) return;
      timer = setInterval(() => void check().catch((e: unknown) => opts.logger.error({ err: (e as Error).message }, 'switching to the policy directory failed')), opts.pollMs ?? 1000);
      timer.unref();
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      current.stop();
    },
    status,
    authorize: (request) => current.authorize(request),
    explain: (request) => current.explain(request),
    literals: (action) => current.literals(action),
    invalidate: () => current.invalidate(),
    readinessCheck(): ReadinessCheck {
      return {
        name: 'policy',
        async check() {
          const r = await current.readinessCheck().check();
          return demo ? { ...r, detail: { ...(r.detail as Record<string, unknown> | undefined), demo: true, configured_dir: opts.configuredDir } } : r;
        },
      };
    },
    get cacheHits() {
      return current.cacheHits;
    },
  };
  return engine;
}
