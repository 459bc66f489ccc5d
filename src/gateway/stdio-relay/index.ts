export { runStdioRelay, RELAY_EXIT } from './relay.js';
export type { StdioRelayOptions, StdioRelayResult } from './relay.js';
