/** The credentials whose exposure Tessera records (docs/exposure.md, ADR 0150). */
export const EXPOSURE_KINDS = ['agent_token', 'task_token', 'lease', 'secret_use'] as const;
export type ExposureKind = (typeof EXPOSURE_KINDS)[number];

/** How GET /v1/admin/exposure groups windows. `task` is the root task (`rtxn`) of the tree. */
export const EXPOSURE_GROUPINGS = ['agent', 'task', 'user', 'kind'] as const;
export type ExposureGrouping = (typeof EXPOSURE_GROUPINGS)[number];
