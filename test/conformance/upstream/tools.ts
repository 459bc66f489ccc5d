/**
 * The tools the conformance suite's server scenarios call (@modelcontextprotocol/conformance
 * 0.1.16, `tools-*`, `json-schema-2020-12`, `elicitation-*`, `server-sse-polling`), each written
 * from its scenario's "Server Implementation Requirements" and checks.
 */
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { CallToolRequestSchema, CreateMessageResultSchema, ElicitResultSchema, ListToolsRequestSchema, type CallToolResult, type ElicitRequestFormParams, type LoggingLevel, type ServerNotification, type ServerRequest, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { RED_PIXEL_PNG, SILENT_WAV } from './media.js';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;
type Args = Record<string, unknown>;

const NO_ARGS = { type: 'object', properties: {} } as const;
const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] });
const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/** What the tools need of their session: its log level (logging/setLevel). */
export interface ToolSession {
  logLevelAllows(level: LoggingLevel): boolean;
}

const TOOLS: Tool[] = [
  { name: 'test_simple_text', description: 'Returns a simple text', inputSchema: NO_ARGS },
  { name: 'test_image_content', description: 'Returns an image', inputSchema: NO_ARGS },
  { name: 'test_audio_content', description: 'Returns an audio clip', inputSchema: NO_ARGS },
  { name: 'test_embedded_resource', description: 'Returns an embedded resource', inputSchema: NO_ARGS },
  { name: 'test_multiple_content_types', description: 'Returns text, image and resource content', inputSchema: NO_ARGS },
  { name: 'test_tool_with_logging', description: 'Sends three info log messages while it runs', inputSchema: NO_ARGS },
  { name: 'test_error_handling', description: 'Always fails (isError)', inputSchema: NO_ARGS },
  { name: 'test_tool_with_progress', description: 'Reports progress 0, 50, 100 of 100', inputSchema: NO_ARGS },
  { name: 'test_sampling', description: 'Asks the client to sample an LLM', inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] } },
  { name: 'test_elicitation', description: 'Asks the user for a username and an email', inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } },
  { name: 'test_elicitation_sep1034_defaults', description: 'Elicitation whose fields have defaults (SEP-1034)', inputSchema: NO_ARGS },
  { name: 'test_elicitation_sep1330_enums', description: 'Elicitation with the five enum forms (SEP-1330)', inputSchema: NO_ARGS },
  { name: 'test_reconnection', description: 'Closes its SSE stream before answering (SEP-1699)', inputSchema: NO_ARGS },
  {
    name: 'json_schema_2020_12_tool',
    description: 'Tool with JSON Schema 2020-12 features',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false,
    },
  },
];

const SEP1034_SCHEMA: ElicitRequestFormParams['requestedSchema'] = {
  type: 'object',
  properties: {
    name: { type: 'string', default: 'John Doe' },
    age: { type: 'integer', default: 30 },
    score: { type: 'number', default: 95.5 },
    status: { type: 'string', enum: ['active', 'inactive', 'pending'], default: 'active' },
    verified: { type: 'boolean', default: true },
  },
};

const SEP1330_SCHEMA = {
  type: 'object',
  properties: {
    untitledSingle: { type: 'string', enum: ['option1', 'option2', 'option3'] },
    titledSingle: { type: 'string', oneOf: [{ const: 'value1', title: 'First Option' }, { const: 'value2', title: 'Second Option' }, { const: 'value3', title: 'Third Option' }] },
    legacyEnum: { type: 'string', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
    untitledMulti: { type: 'array', items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
    titledMulti: { type: 'array', items: { anyOf: [{ const: 'value1', title: 'First Choice' }, { const: 'value2', title: 'Second Choice' }, { const: 'value3', title: 'Third Choice' }] } },
  },
} as unknown as ElicitRequestFormParams['requestedSchema'];

async function elicit(extra: Extra, message: string, requestedSchema: ElicitRequestFormParams['requestedSchema']): Promise<CallToolResult> {
  const r = await extra.sendRequest({ method: 'elicitation/create', params: { message, requestedSchema } }, ElicitResultSchema);
  return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
}

async function withLogging(session: ToolSession, extra: Extra): Promise<CallToolResult> {
  const lines = ['Tool execution started', 'Tool processing data', 'Tool execution completed'];
  for (const [i, data] of lines.entries()) {
    if (i > 0) await pause(50, extra.signal);
    if (session.logLevelAllows('info')) await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'conformance', data } });
  }
  return text('Tool with logging executed');
}

async function withProgress(args: { _meta?: { progressToken?: string | number } }, extra: Extra): Promise<CallToolResult> {
  const token = args._meta?.progressToken;
  for (const progress of [0, 50, 100]) {
    if (progress > 0) await pause(50, extra.signal);
    if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, total: 100 } });
  }
  return text('Tool with progress executed');
}

async function sampling(args: Args, extra: Extra): Promise<CallToolResult> {
  const r = await extra.sendRequest(
    { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: String(args.prompt ?? '') } }], maxTokens: 100 } },
    CreateMessageResultSchema,
  );
  const answer = r.content.type === 'text' ? r.content.text : `[${r.content.type}]`;
  return text(`LLM response: ${answer}`);
}

async function reconnection(extra: Extra): Promise<CallToolResult> {
  // SEP-1699: close the POST's SSE stream (the client resumes with GET + Last-Event-ID), then answer.
  if (extra.closeSSEStream) {
    extra.closeSSEStream();
    await pause(100, extra.signal);
  }
  return text('Reconnection test completed successfully');
}

async function call(name: string, params: { arguments?: Args; _meta?: { progressToken?: string | number } }, session: ToolSession, extra: Extra): Promise<CallToolResult> {
  const args = params.arguments ?? {};
  switch (name) {
    case 'test_simple_text': return text('This is a simple text response for testing.');
    case 'test_image_content': return { content: [{ type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' }] };
    case 'test_audio_content': return { content: [{ type: 'audio', data: SILENT_WAV, mimeType: 'audio/wav' }] };
    case 'test_embedded_resource':
      return { content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }] };
    case 'test_multiple_content_types':
      return {
        content: [
          { type: 'text', text: 'Multiple content types test:' },
          { type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' },
          { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } },
        ],
      };
    case 'test_tool_with_logging': return withLogging(session, extra);
    case 'test_error_handling': return { isError: true, content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }] };
    case 'test_tool_with_progress': return withProgress(params, extra);
    case 'test_sampling': return sampling(args, extra);
    case 'test_elicitation':
      return elicit(extra, String(args.message ?? ''), {
        type: 'object',
        properties: { username: { type: 'string', description: "User's response" }, email: { type: 'string', description: "User's email address" } },
        required: ['username', 'email'],
      });
    case 'test_elicitation_sep1034_defaults': return elicit(extra, 'Please review your information', SEP1034_SCHEMA);
    case 'test_elicitation_sep1330_enums': return elicit(extra, 'Please pick your options', SEP1330_SCHEMA);
    case 'test_reconnection': return reconnection(extra);
    case 'json_schema_2020_12_tool': return text(`received ${JSON.stringify(args)}`);
    default: return { isError: true, content: [{ type: 'text', text: `unknown tool ${name}` }] };
  }
}

/** Registers tools/list and tools/call on one session's server. */
export function registerTools(server: Server, session: ToolSession): void {
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => call(req.params.name, req.params, session, extra));
}
