export type { DynamicEngine, RoleSpec, LeaseContext, EngineData, CreatedCredential, ReconcileLease, ReconcileResult } from './engine.js';
export {
  createLeaseService,
  LEASE_STATES,
  type LeaseService,
  type LeaseServiceDeps,
  type Lease,
  type LeaseState,
  type IssuedLease,
  type RenewedLease,
  type RevokeCounts,
  type ReapResult,
  type RecoverResult,
  type CallContext,
} from './service.js';
export { registerLeaseRoutes, leaseView } from './routes.js';
export { issueAuthorized } from './authorized.js';
