/**
 * The auth epoch (docs/adr/0061-cache-invalidation.md): one process-wide generation number that
 * every event able to change a verification or authorization answer bumps, and that every cache
 * of such an answer checks on each hit. An entry filled under an older generation is never
 * served, so a new kind of event or a new cache needs one `bump` or one check, not a list of
 * ad-hoc clears that must be kept complete by hand.
 *
 * Bumps are process-local. Events on another replica reach this one through the store's
 * publish/subscribe channels (src/main.ts), whose handlers reload the changed state here and
 * bump the epoch after the new state is in place.
 */

/** What changed (label of `tessera_auth_epoch_bumps_total`). */
export type AuthEpochCause = 'keys' | 'revocation' | 'policy';

export interface AuthEpoch {
  /** The current generation (starts at 0, only grows). */
  readonly value: number;
  /**
   * Call AFTER the new state is in place (key set swapped, policy set swapped, revocation
   * recorded): a verification that read the old state captured the old value before it began,
   * so its result is refused by every cache (see AuthCache.set).
   */
  bump(cause: AuthEpochCause): void;
}

export function createAuthEpoch(onBump?: (cause: AuthEpochCause) => void): AuthEpoch {
  let value = 0;
  return {
    get value() {
      return value;
    },
    bump(cause) {
      value++;
      onBump?.(cause);
    },
  };
}
