/**
 * The PostgreSQL URL of a `store: { kind: postgres }` configuration: `store.url` as written, or
 * the value of the environment variable `store.url_env` names (Kubernetes passes the Secret
 * `tessera-database` that way, docs/kubernetes.md). Never logged; the error names the variable only.
 * Throws TESSERA_CONFIG_INVALID when the variable is unset or empty.
 */
import { TesseraError } from '../shared/errors.js';

export function postgresUrl(store: { readonly url?: string; readonly url_env?: string }, env: Readonly<Record<string, string | undefined>>): string {
  if (store.url !== undefined) return store.url;
  const name = store.url_env ?? '';
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new TesseraError('TESSERA_CONFIG_INVALID', `store.url_env: the environment variable ${name} is not set or empty; it must hold the PostgreSQL URL`, { key: 'store.url_env' });
  }
  return value;
}
