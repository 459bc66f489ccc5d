/** DPoP configuration (`tokens.dpop`, docs/configuration.md), as the guard takes it. */
import type { DpopAlgorithm } from './jwk.js';

/**
 * `tokens.dpop.require`: which tokens must be DPoP-bound.
 * - `never`: binding is the client's choice (a proof at the exchange → a bound token);
 * - `delegated`: every delegated task token (Cedar `context.depth` ≥ 1) must be bound;
 * - `always`: every token Tessera issues must be bound; unbound tokens are refused everywhere.
 */
export const DPOP_REQUIREMENTS = ['never', 'delegated', 'always'] as const;
export type DpopRequirement = (typeof DPOP_REQUIREMENTS)[number];

export interface DpopSettings {
  readonly require: DpopRequirement;
  readonly algorithms: readonly DpopAlgorithm[];
  /** Accepted distance of a proof's `iat` from now, either side (ms). */
  readonly iatWindowMs: number;
  /** Server-provided nonces required (RFC 9449 §8, §9). */
  readonly nonce: boolean;
  readonly nonceLifetimeMs: number;
  readonly replayCacheSize: number;
  readonly replayCachePerKey: number;
}


/** The guard's settings from `tokens.dpop` (durations already in ms). */
export function dpopSettingsOf(c: {
  require: DpopRequirement; algorithms: readonly DpopAlgorithm[]; iat_window: number; nonce: boolean; nonce_lifetime: number; replay_cache_size: number; replay_cache_per_key: number;
}): DpopSettings {
  return {
    require: c.require, algorithms: [...c.algorithms], iatWindowMs: c.iat_window, nonce: c.nonce, nonceLifetimeMs: c.nonce_lifetime,
    replayCacheSize: c.replay_cache_size, replayCachePerKey: c.replay_cache_per_key,
  };
}
