import type { AgentPrincipal } from '../shared/principal.js';
import type { AuditWhere } from '../audit/events.js';

/**
 * The contract between the gateway core (the `/mcp` endpoint, authorization, scrubbing, audit)
 * and the things that actually run tools: upstream MCP servers (stdio or Streamable HTTP) and
 * Tessera's declarative tools (`http`, `postgres`).
 *
 * Tools are namespaced `<server>/<tool>`; a provider serves one `<server>`.
 */
export interface GatewayTool {
  /** `<tool>` without the server prefix. */
  readonly name: string;
  readonly description?: string;
  /** JSON Schema (object) for the arguments, as MCP `inputSchema`. */
  readonly inputSchema: Readonly<Record<string, unknown>>;
  readonly annotations?: Readonly<Record<string, unknown>>;
  /** MCP `title` and `outputSchema` as the upstream sent them: pinned by drift (src/drift), not served. */
  readonly title?: string;
  readonly outputSchema?: Readonly<Record<string, unknown>>;
  /** MCP `_meta` the gateway adds (drift marks a changed tool served under `on_change: flag`). */
  readonly _meta?: Readonly<Record<string, unknown>>;
}

/**
 * Tool-definition pinning (src/drift/tool-gate.ts, docs/drift.md): which tools of an upstream's
 * listing are served. `check` is called for every listing the gateway uses and must be cheap for
 * a listing it has seen (the gate caches by the array's identity).
 */
export interface ToolGate {
  check(server: string, tools: readonly GatewayTool[]): Promise<GatedListing>;
}

export interface GatedListing {
  readonly tools: readonly GatewayTool[];
  /** Tools held back (changed, or never approved), with the error a tools/call of one gets. */
  readonly held: ReadonlyMap<string, Error>;
}

/** MCP CallToolResult as JSON (content blocks, structuredContent, isError). */
export type ToolResult = {
  readonly content: readonly Readonly<Record<string, unknown>>[];
  readonly structuredContent?: Readonly<Record<string, unknown>>;
  readonly isError?: boolean;
};

/**
 * Exposure windows (src/exposure, ADR 0150): each injected kv secret is recorded as one use, from
 * its resolution to the end of the call (declarative tools) or of the connection it was injected
 * into (upstream servers).
 */
export interface SecretUseRecorder {
  now(): number;
  recordUse(use: { agent: string; task: string | null; root: string | null; user: string | null; resource: string; startedAt: number; endedAt: number }): void;
}

/** Everything a provider may use while serving one call, supplied by the gateway core. */
export interface ToolCallContext {
  readonly principal: AgentPrincipal;
  readonly where: AuditWhere;
  readonly signal: AbortSignal;
  /**
   * Resolves a kv secret for injection (policy `secret.inject` for this principal) and registers
   * its value with the call's scrubber. Providers must obtain every secret through this.
   */
  resolveSecret(path: string): Promise<string>;
  /**
   * Issues a dynamic credential (lease owned by the calling agent, policy `cred.issue`) and
   * registers every string value of `data` with the scrubber.
   */
  issueCredential(engine: string, role: string, ttlMs?: number): Promise<{ leaseId: string; data: Readonly<Record<string, unknown>> }>;
  /**
   * Optional: revokes a lease this call issued, as soon as the provider is done with it
   * (declarative `postgres` tools call it right after the statement). When absent, the lease
   * lives until its TTL expires.
   */
  revokeCredential?(leaseId: string): Promise<void>;
  /** Registers an extra sensitive value with the scrubber. */
  addSensitive(value: string): void;
  /**
   * A short-lived token for an upstream's `audience` carrying this caller's task context
   * (`task_token`, src/gateway/downstream.ts). The caller registers it with the scrubber.
   */
  downstreamToken(audience: string, ttlMs: number): Promise<string>;
}

export interface ToolProvider {
  /** The `<server>` namespace. */
  readonly server: string;
  /** Tools this provider offers (may start an upstream to ask it). */
  listTools(signal: AbortSignal): Promise<readonly GatewayTool[]>;
  /**
   * Checks `args` against `<tool>`'s schema with the provider's own validator (throws
   * TESSERA_TOOL_ARGS_INVALID naming the argument: `argument "days": must be <= 14`). When a
   * provider has it, the core uses it instead of its generic JSON Schema check, so an agent sees
   * the messages docs/gateway-tools.md documents. Unknown tools pass (the call then says so).
   */
  validateArgs?(tool: string, args: Readonly<Record<string, unknown>>): void;
  /** Runs `<tool>`; arguments have already been authorized (and checked by `validateArgs` when present). */
  callTool(tool: string, args: Readonly<Record<string, unknown>>, ctx: ToolCallContext): Promise<ToolResult>;
  /** Stops upstream processes and connections. */
  close(): Promise<void>;
}
