// The lease states, in a module of their own: the CLI validates `lease list --state` against
// them without loading the lease service.
/**
 * Lease states (docs/leases.md has the diagram):
 *   pending ──create ok──▶ active ──expiry / revoke──▶ revoking ──disable ok──▶ disabled ──cleanup ok──▶ revoked
 *      │                                                 │ disable failed,            │ cleanup failed: retried,
 *      └──create failed / abandoned intent──▶ revoking   ▼ attempts exhausted         ▼ the credential stays unusable
 *                                                   irrevocable                    disabled (cleanup pending)
 * `pending` is the persisted intent written before the engine creates anything. Revocation
 * always disables the credential first (no login, sessions ended) and only then cleans up:
 * docs/adr/0071-revocation-disable-first.md.
 */
export const LEASE_STATES = ['pending', 'active', 'revoking', 'disabled', 'revoked', 'irrevocable'] as const;
export type LeaseState = (typeof LEASE_STATES)[number];
