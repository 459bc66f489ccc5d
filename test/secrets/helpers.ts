import { randomBytes } from 'node:crypto';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { createKvService, type KvService } from '../../src/secrets/kv.js';
import type { Sealer } from '../../src/secrets/sealer.js';
import type { Authorizer, PolicyRequest, Decision } from '../../src/policy/types.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { matchesPathGlob } from '../../src/secrets/path.js';
import { createRequestAuthorizer, type RequestAuthorizer } from '../../src/pipeline/authorize.js';

export interface Fixture {
  store: Store;
  clock: ManualClock;
  audit: MemoryAuditWriter;
  sealer: Sealer;
  kv: KvService;
}

export async function fixture(options: { file?: string; maxValueBytes?: number; sealer?: Sealer } = {}): Promise<Fixture> {
  const store = openSqliteStore({ file: options.file ?? ':memory:' });
  await store.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const sealer = options.sealer ?? masterSealer(randomBytes(32));
  const kv = createKvService({ store, sealer, clock, audit, ...(options.maxValueBytes ? { maxValueBytes: options.maxValueBytes } : {}) });
  return { store, clock, audit, sealer, kv };
}

export const admin = { actor: { id: 'admin:adm_test' } };

export function principal(spiffeId = 'spiffe://tessera.local/ns/prod/sa/patient-reader'): AgentPrincipal {
  return { spiffeId, trustDomain: 'tessera.local', path: spiffeId.replace(/^spiffe:\/\/[^/]+/, ''), attributes: {}, jti: 'jti-secret-value', expiresAt: Date.UTC(2030, 0, 1) };
}

/**
 * A small in-test Authorizer (the Cedar one is built elsewhere): permits `action` on Secret
 * resources whose path matches one of the globs; records every request.
 */
export class GlobAuthorizer implements Authorizer {
  readonly requests: PolicyRequest[] = [];
  constructor(private readonly rules: { action: string; glob: string }[]) {}
  /** This authorizer behind the request pipeline's scope gate: what enforcement points take. */
  get pipeline(): RequestAuthorizer {
    return createRequestAuthorizer(this);
  }
  authorize(request: PolicyRequest): Decision {
    this.requests.push(request);
    const r = request.resource;
    const idx = this.rules.findIndex((rule) => rule.action === request.action && r.type === 'Secret' && matchesPathGlob(rule.glob, r.path));
    return { allowed: idx >= 0, policies: idx >= 0 ? [`test:${idx}`] : [], errors: [], cached: false };
  }
}
