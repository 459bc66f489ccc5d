export { createRotationService, LEADER_LOCK, type RotationService, type RotationDeps, type RotationResult, type StatusEntry, type PassReport, type RotationHealth } from './service.js';
export { registerRotationRoutes } from './routes.js';
export { rotationConfigSchema, type RotationConfig, type HttpRotatorConfig } from './config.js';
export { parseRotator, rotatorFromFlags, rotatorToJson, ROTATOR_KINDS, type RotatorSpec, type RotatorKind } from './options.js';
export { backoffMs, dueAt, shouldAttempt } from './schedule.js';
