import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { TesseraError } from '../shared/errors.js';
import { toPublicKey, type Checkpoint } from './chain.js';
import type { RetentionPolicy } from './archive.js';
import { createAuditJobs, type AuditJobs } from './jobs.js';
import type { AuditLog } from './log.js';
import { createWitnessChecker, type WitnessReport } from './witness.js';

export interface AuditOperations {
  readonly jobs: AuditJobs;
  /** POST /v1/admin/audit/witness: one batch of witnessed heads against the store. */
  checkWitness(heads: readonly Checkpoint[]): Promise<WitnessReport>;
  /** Stops the retention timer and the running job. */
  close(): Promise<void>;
}

/**
 * The operator side of the audit log that runs in the server: background verify/archive jobs,
 * the witness check, and (with `retention.everyMs` > 0) archiving on a timer. Wired by main.ts.
 */
export function createAuditOperations(deps: {
  store: Store;
  clock: Clock;
  logger: Logger;
  replicaId: string;
  audit: AuditLog;
  retention?: RetentionPolicy & { readonly everyMs: number };
  pageSize?: number;
}): AuditOperations {
  const publicKey = toPublicKey(deps.audit.publicKey);
  const jobs = createAuditJobs({
    store: deps.store,
    clock: deps.clock,
    replicaId: deps.replicaId,
    logger: deps.logger,
    audit: deps.audit,
    publicKey,
    ...(deps.retention ? { retention: deps.retention } : {}),
    ...(deps.pageSize ? { pageSize: deps.pageSize } : {}),
  });
  const timer = deps.retention && deps.retention.everyMs > 0
    ? setInterval(() => {
        jobs.start('archive').catch((e: unknown) => {
          if (e instanceof TesseraError && e.code === 'TESSERA_AUDIT_JOB_BUSY') return; // a verify job is running: next round
          deps.logger.error({ err: (e as Error).message }, 'scheduled audit archive could not start');
        });
      }, deps.retention.everyMs)
    : undefined;
  timer?.unref();
  return {
    jobs,
    async checkWitness(heads) {
      const checker = createWitnessChecker({ db: deps.store, publicKey, keyId: deps.audit.keyId });
      await checker.check(heads);
      return checker.report();
    },
    async close() {
      if (timer) clearInterval(timer);
      await jobs.close();
    },
  };
}
