// The modes of a kv secret (docs/secrets.md): `read` — allowed agents may read the value;
// `inject` — only Tessera uses it on an agent's behalf. A module of its own so the CLI checks
// `kv put --mode` without loading the kv service.
export type SecretMode = 'inject' | 'read';
export const SECRET_MODES = ['inject', 'read'] as const;
