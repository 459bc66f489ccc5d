import { randomBytes } from 'node:crypto';
import { TesseraError } from '../../src/shared/errors.js';
import type { DynamicEngine, EngineData, LeaseContext, ReconcileLease, ReconcileResult, RoleSpec } from '../../src/leases/engine.js';

/**
 * A real dynamic engine over an in-process map of "credentials", for tests. It follows the
 * port's two-step revocation: `disable` makes a credential unusable (it stays in the map with
 * `disabled: true`), `revoke` (cleanup) deletes it. It can be told to fail create / disable /
 * revoke / renew N times (or to be "down"), to exercise retries, disabled and irrevocable
 * leases, crash recovery and idempotency. `credentials` is the backend's truth; `usable()` says
 * whether a credential would still authenticate.
 */
export class MemoryEngine implements DynamicEngine {
  readonly credentials = new Map<string, { password: string; validUntil: number; role: string; disabled: boolean }>();
  readonly roles = new Map<string, RoleSpec>();
  failCreate = 0;
  failDisable = 0;
  /** Failures of the cleanup step (`revoke`). */
  failRevoke = 0;
  failRenew = 0;
  /** Unreachable backend: every call throws TESSERA_ENGINE_UNAVAILABLE. */
  down = false;
  /** Makes create wait on this promise (to revoke while a create is in flight). */
  createGate: Promise<void> | undefined;
  /** Makes disable wait on this promise (to observe what happens before a revocation finishes). */
  disableGate: Promise<void> | undefined;
  readonly calls = { create: 0, disable: 0, revoke: 0, renew: 0, reconcile: 0 };
  /** Engine calls in order (`create`, `disable`, `revoke`, ...), for ordering assertions. */
  readonly log: string[] = [];

  constructor(
    readonly name = 'mem',
    roles: Record<string, RoleSpec> = { reader: { defaultTtlMs: 60_000, maxTtlMs: 300_000, renewable: true } },
  ) {
    for (const [k, v] of Object.entries(roles)) this.roles.set(k, v);
  }

  role(name: string): RoleSpec | undefined {
    return this.roles.get(name);
  }

  prepare(lease: LeaseContext): EngineData {
    return { username: `tsr_${lease.id}` };
  }

  /** Whether the credential would still authenticate: it exists, is not disabled and not past VALID UNTIL. */
  usable(username: string, now: number): boolean {
    const c = this.credentials.get(username);
    return c !== undefined && !c.disabled && c.validUntil > now;
  }

  private check(kind: 'create' | 'disable' | 'revoke' | 'renew'): void {
    if (this.down) throw new TesseraError('TESSERA_ENGINE_UNAVAILABLE', `${this.name} backend is down`);
    const field = ({ create: 'failCreate', disable: 'failDisable', revoke: 'failRevoke', renew: 'failRenew' } as const)[kind];
    if (this[field] > 0) {
      this[field]--;
      throw new TesseraError('TESSERA_ENGINE_FAILED', `${this.name} refused ${kind} (injected)`);
    }
  }

  async create(lease: LeaseContext, data: EngineData, signal: AbortSignal): Promise<{ data: Record<string, unknown> }> {
    this.calls.create++;
    this.log.push('create');
    if (this.createGate) await this.createGate;
    signal.throwIfAborted();
    this.check('create');
    const password = randomBytes(18).toString('base64url');
    this.credentials.set(String(data.username), { password, validUntil: lease.expiresAt, role: lease.role, disabled: false });
    return { data: { username: data.username, password } };
  }

  async renew(data: EngineData, newExpiresAt: number): Promise<void> {
    this.calls.renew++;
    this.check('renew');
    const c = this.credentials.get(String(data.username));
    if (!c) throw new TesseraError('TESSERA_ENGINE_FAILED', 'no such credential');
    c.validUntil = newExpiresAt;
  }

  /** Idempotent: disabling a credential that does not exist (or is disabled) succeeds. */
  async disable(data: EngineData): Promise<void> {
    this.calls.disable++;
    this.log.push('disable');
    if (this.disableGate) await this.disableGate;
    this.check('disable');
    const c = this.credentials.get(String(data.username));
    if (c) c.disabled = true;
  }

  /** Cleanup. Idempotent: dropping a credential that does not exist succeeds. */
  async revoke(data: EngineData): Promise<void> {
    this.calls.revoke++;
    this.log.push('revoke');
    this.check('revoke');
    this.credentials.delete(String(data.username));
  }

  async reconcile(leases: readonly ReconcileLease[]): Promise<ReconcileResult> {
    this.calls.reconcile++;
    if (this.down) throw new TesseraError('TESSERA_ENGINE_UNAVAILABLE', `${this.name} backend is down`);
    const known = new Set(leases.map((l) => String(l.engineData.username)));
    let orphansDropped = 0;
    for (const user of [...this.credentials.keys()]) {
      if (!known.has(user)) {
        this.credentials.delete(user);
        orphansDropped++;
      }
    }
    const missing = leases.filter((l) => l.state !== 'pending' && !this.credentials.has(String(l.engineData.username))).map((l) => l.id);
    return { orphansDropped, missing };
  }
}
