import { fail } from '../../shared/errors.js';
import type { RotatorSpec } from '../options.js';
import type { Rotator } from './types.js';

/**
 * `manual`: Tessera never changes the credential; when it is due the job audits `rotation.due`
 * once per version, counts it in `tessera_rotation_overdue_secrets` and names it in /readyz.
 */
export const manualRotator: Rotator<Extract<RotatorSpec, { kind: 'manual' }>> = {
  apply() {
    return Promise.reject(fail('TESSERA_ROTATION_MANUAL', 'this secret has the manual rotator: rotate the credential where it lives and store the new value with tessera kv put'));
  },
  resume() {
    return Promise.reject(fail('TESSERA_ROTATION_MANUAL', 'the manual rotator never rotates'));
  },
};
