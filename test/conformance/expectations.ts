/**
 * What the conformance test expects of @modelcontextprotocol/conformance 0.1.16's server
 * scenarios, with the reasons. Every list is asserted both ways: a scenario that starts passing,
 * a warning that goes away, or a new scenario in a new suite version fails the test until the
 * list (and docs/gateway.md "Conformance") is updated.
 */

/** Every server scenario of the suite (`conformance list --server`), in its order. */
export const SCENARIOS = [
  'server-initialize', 'logging-set-level', 'ping', 'completion-complete', 'tools-list',
  'tools-call-simple-text', 'tools-call-image', 'tools-call-audio', 'tools-call-embedded-resource',
  'tools-call-mixed-content', 'tools-call-with-logging', 'tools-call-error', 'tools-call-with-progress',
  'tools-call-sampling', 'tools-call-elicitation', 'json-schema-2020-12', 'elicitation-sep1034-defaults',
  'server-sse-polling', 'server-sse-multiple-streams', 'elicitation-sep1330-enums', 'resources-list',
  'resources-read-text', 'resources-read-binary', 'resources-templates-read', 'resources-subscribe',
  'resources-unsubscribe', 'prompts-list', 'prompts-get-simple', 'prompts-get-with-args',
  'prompts-get-embedded-resource', 'prompts-get-with-image', 'dns-rebinding-protection',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Scenarios that cannot apply to a gateway, with the reason (the same list as docs/gateway.md "Conformance"). */
export const NOT_APPLICABLE: Partial<Record<Scenario, string>> = {};

/** Warnings (check ids) a scenario gives, with the reason; any other WARNING fails the test. */
export interface ExpectedWarnings {
  readonly checks: readonly string[];
  readonly reason: string;
}

/** Warnings of the fixture run directly. */
export const DIRECT_WARNINGS: Partial<Record<Scenario, ExpectedWarnings>> = {
  'server-sse-polling': {
    checks: ['server-sse-priming-event', 'server-sse-retry-field'],
    reason: 'the scenario (pending in the suite) sends its tools/call with MCP-Protocol-Version 2025-03-26, and the SDK sends priming events (and the retry field) only to 2025-11-25 clients, which can handle empty SSE data',
  },
};

/** Warnings through the gateway. */
export const GATEWAY_WARNINGS: Partial<Record<Scenario, ExpectedWarnings>> = {
  'server-sse-polling': {
    checks: ['server-sse-priming-event', 'server-sse-retry-field'],
    reason: 'the same cause as directly (the scenario announces 2025-03-26); besides, the gateway keeps no SSE event store, so its SSE answers carry no event ids and cannot be resumed with Last-Event-ID (docs/gateway.md "Limitations")',
  },
};

/**
 * Applicable scenarios that fail through the gateway, with the reason (none: every scenario
 * passes). The test asserts each listed one still fails, so the change that makes one pass
 * must remove it from here.
 */
export const KNOWN_GATEWAY_FAILURES: Partial<Record<Scenario, string>> = {};
