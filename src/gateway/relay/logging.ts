/**
 * MCP log levels (RFC 5424 severities, MCP 2025-11-25 "Logging"): `debug` < `info` < `notice` <
 * `warning` < `error` < `critical` < `alert` < `emergency`.
 */
import type { LoggingLevel } from '@modelcontextprotocol/sdk/types.js';

const ORDER: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/** Whether a message at `level` is sent to a client that asked for `minimum` and above. */
export function levelAllows(minimum: LoggingLevel, level: LoggingLevel): boolean {
  return ORDER.indexOf(level) >= ORDER.indexOf(minimum);
}
