// The task states, in a module of their own: the CLI validates `task list --state` against them
// without loading the task tree code.
/**
 * A task node's state, computed (never stored; src/tasks/tree.ts `nodeState`): `revoked` when a
 * revocation in force matches the task or an ancestor, an agent of its chain or its user; else
 * `expired` once its token's `exp` passed; else `active`.
 */
export const TASK_STATES = ['active', 'expired', 'revoked'] as const;
export type TaskState = (typeof TASK_STATES)[number];
