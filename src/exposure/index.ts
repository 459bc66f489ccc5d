export { EXPOSURE_KINDS, EXPOSURE_GROUPINGS, type ExposureKind, type ExposureGrouping } from './kinds.js';
export { createExposureService, type ExposureService, type SecretUse } from './service.js';
export { registerExposureRoutes } from './routes.js';
export { insertExposures, closeForRevocation, closeAllTokens, reopenClosedBy, type ExposureRow, type ClosedWindow } from './store.js';
