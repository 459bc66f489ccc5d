/**
 * What a change of the revocations in force ends (docs/adr/0061-cache-invalidation.md,
 * docs/adr/0195-revocation-refresh-keeps-caches.md): the auth epoch (every cached verification
 * and decision), the policy decision cache, the gateway sessions and calls and the proxy's
 * connections of what is now revoked. A refresh (every 30 s, or on another replica's notification) that found the same set
 * in force (`changed` false: the revocation generation did not move) ends nothing: the caches
 * stay warm. A local revocation is always a change, and is announced to the other replicas.
 */
import type { AuthEpoch } from '../shared/auth-epoch.js';

export interface RevocationHookDeps {
  readonly epoch: Pick<AuthEpoch, 'bump'>;
  /** The policy decision cache. */
  readonly policy: { invalidate(): void };
  /** The MCP gateway, once built (it closes sessions and cancels calls of revoked principals). */
  readonly gateway: () => { onRevocation(): void } | undefined;
  /** The injection proxy, once built (it closes the connections and tunnels of revoked principals). */
  readonly proxy?: () => { onRevocation(): void } | undefined;
  /** Tells the other replicas to refresh (PostgreSQL LISTEN/NOTIFY; in-process on SQLite). */
  readonly announce: () => void;
}

/** The revocation service's `onRevoke` listener (src/revocations/service.ts). */
export function revocationHook(deps: RevocationHookDeps): (source: 'local' | 'refresh', changed: boolean) => void {
  return (source, changed) => {
    if (changed) {
      // Defence in depth: every cache also re-checks revocation on each hit (docs/adr/0061).
      deps.epoch.bump('revocation');
      deps.policy.invalidate();
      deps.gateway()?.onRevocation();
      deps.proxy?.()?.onRevocation();
    }
    if (source === 'local') deps.announce();
  };
}
