import type { Dispatcher } from 'undici';
import type { Clock } from '../../shared/clock.js';
import { fail } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { GatewayTool, ToolCallContext, ToolProvider, ToolResult } from '../types.js';
import type { DeclarativeToolConfig } from './config.js';
import { compileHttpTool, type CompiledTool } from './http-tool.js';
import { compilePostgresTool } from './postgres-tool.js';

export interface DeclarativeProviderDeps {
  /** undici dispatcher for `http` tools (e.g. an Agent with TLS options, or a ProxyAgent). */
  readonly dispatcher?: Dispatcher;
  readonly clock: Clock;
  readonly logger: Logger;
}

/**
 * One `ToolProvider` per `<server>` namespace of the (already parsed, see
 * `parseDeclarativeTools`) tool configs, in first-appearance order. Providers hold no
 * connections between calls (each postgres call opens and closes its own), so `close()` only
 * stops accepting calls.
 */
export function createDeclarativeProviders(tools: readonly DeclarativeToolConfig[], deps: DeclarativeProviderDeps): ToolProvider[] {
  const byServer = new Map<string, Map<string, CompiledTool>>();
  for (const cfg of tools) {
    const compiled = cfg.kind === 'http' ? compileHttpTool(cfg, deps) : compilePostgresTool(cfg, deps);
    let group = byServer.get(cfg.server);
    if (!group) byServer.set(cfg.server, (group = new Map()));
    if (group.has(cfg.name)) throw fail('TESSERA_CONFIG_INVALID', `gateway.tools: tool ${cfg.server}/${cfg.name} is declared twice`);
    group.set(cfg.name, compiled);
  }
  return [...byServer].map(([server, group]) => {
    const list: readonly GatewayTool[] = [...group.values()].map((c) => c.tool);
    let closed = false;
    return {
      server,
      listTools: async () => list,
      validateArgs: (tool: string, args: Readonly<Record<string, unknown>>): void => group.get(tool)?.validate(args),
      callTool: async (tool: string, args: Readonly<Record<string, unknown>>, ctx: ToolCallContext): Promise<ToolResult> => {
        const c = group.get(tool);
        if (!c || closed) throw fail('TESSERA_TOOL_NOT_FOUND', `no tool ${server}/${tool}${closed ? ' (the gateway is shutting down)' : ''}`);
        if (typeof args !== 'object' || args === null || Array.isArray(args)) throw fail('TESSERA_TOOL_ARGS_INVALID', 'arguments: must be a JSON object', { argument: null });
        return c.call(args, ctx);
      },
      close: async () => {
        closed = true;
      },
    };
  });
}
