export { AGENT_TOKEN_TYP, TASK_TOKEN_TYP, TOKEN_TYPE_ACCESS_TOKEN, MAX_DEPTH_CEILING, TASK_LIMITS, taskClaimsSchema, actorsOf, nestActors, taskPrincipal, type TaskClaims, type Actor } from './claims.js';
export { createTaskExchange, type TaskExchange, type TaskExchangeDeps, type TaskExchangeRequest, type TaskTokenResponse } from './exchange.js';
export { createTaskStore, insertTask, type TaskStore, type TaskNode, type TaskListFilter } from './store.js';
export { narrowScope, childExpiry, childDepth, rootMaxDepth, narrowAudience, extendTctx, childBinding } from './narrow.js';
export { parseTaskParams, parseScopeParam, parsePurpose, parseTctx, parseLabel, refuseClaimParameters, CLAIM_PARAMETERS, type TaskParams, type RawTaskParams } from './params.js';
export { registerTaskRoutes } from './routes.js';
export { listTasks, taskTree, nodeState, TASK_STATES, TREE_LIMITS, type TaskState, type TaskViewDeps, type TaskTree } from './tree.js';
