import type { RotatorSpec } from '../options.js';

/** What a rotator is told about the rotation it performs. */
export interface RotationCall {
  readonly path: string;
  /** The version being replaced. */
  readonly fromVersion: number;
  readonly signal: AbortSignal;
}

/** What a retirement is told: the replaced version and what the rotator returned for it. */
export interface RetireCall {
  readonly path: string;
  readonly version: number;
  readonly ref: string | null;
  /** When the rotation that replaced it committed (epoch ms). */
  readonly rotatedAt: number;
  readonly signal: AbortSignal;
}

/**
 * One integration (docs/rotation.md). The job writes the intent row before `apply`; a rotator
 * that `generate`s its value locally gets it sealed into the intent first, so a crash between
 * the external change and the commit never loses the value the source now accepts.
 */
export interface Rotator<S extends RotatorSpec = RotatorSpec> {
  /** A fresh credential made by Tessera (undefined: the source makes it in `apply`). */
  generate?(): string;
  /** Makes the new credential valid at its source; returns the value and an optional reference (an id to retire it by). */
  apply(spec: S, call: RotationCall, value: string | undefined): Promise<{ value: string; ref?: string }>;
  /** After a crash or failure with the value sealed in the intent: make sure the source accepts it (idempotent). */
  resume(spec: S, call: RotationCall, value: string): Promise<void>;
  /** The kv value stored for the new version (default: the credential itself). */
  stored?(spec: S, value: string, now: number): string;
  /** Ends the previous credential after the grace period; undefined when there is nothing to end. */
  retire?(spec: S, call: RetireCall): Promise<{ result: string; sessionsEnded?: number }>;
}

/** Error codes raised before anything was sent to the source: the intent can be dropped. */
export const BEFORE_EFFECT_CODES: ReadonlySet<string> = new Set([
  'TESSERA_ROTATION_ROLE_INVALID',
  'TESSERA_ROTATION_ENGINE_MISSING',
  'TESSERA_ENGINE_NOT_FOUND',
  'TESSERA_ROTATION_HTTP_AUTH_MISSING',
]);
