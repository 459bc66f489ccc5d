// What a revocation names (docs/kill-switch.md), in a module of its own: the CLI checks
// `revoke list --kind` against it without loading the revocation service.
export const REVOCATION_KINDS = ['agent', 'task', 'user', 'token', 'lease', 'pod'] as const;
export type RevocationKind = (typeof REVOCATION_KINDS)[number];
