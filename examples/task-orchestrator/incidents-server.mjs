// The example's upstream MCP server (stdio, built on the official MCP SDK): an "incident
// tracker" whose API key Tessera injects into this process only (INCIDENTS_API_KEY, from the kv
// secret incidents/api-key). The sub-agent calling its tool never sees the key: it gets the
// incidents, and Tessera scrubs the key from anything this server answers.
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const INCIDENTS = [
  { id: 'INC-311', quarter: 'Q3', severity: 'high', title: 'Checkout latency above 2 s for 40 minutes' },
  { id: 'INC-318', quarter: 'Q3', severity: 'medium', title: 'Nightly export job skipped two runs' },
  { id: 'INC-327', quarter: 'Q3', severity: 'high', title: 'Expired TLS certificate on the status page' },
  { id: 'INC-402', quarter: 'Q4', severity: 'low', title: 'Typo in the invoice footer' },
];

const tools = [
  {
    name: 'list_incidents',
    description: 'Incidents of a quarter from the incident tracker (needs the tracker API key, injected by Tessera)',
    inputSchema: { type: 'object', properties: { quarter: { type: 'string', enum: ['Q1', 'Q2', 'Q3', 'Q4'] } }, required: ['quarter'], additionalProperties: false },
  },
  { name: 'delete_incident', description: 'Deletes an incident (no sub-agent of the example may call it)', inputSchema: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } },
];

const server = new Server({ name: 'incidents', version: '1.0.0' }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));
server.setRequestHandler(CallToolRequestSchema, async (req) => {
  // A real tracker would send the key with its API calls; here it only has to be there.
  if (!process.env.INCIDENTS_API_KEY) return { isError: true, content: [{ type: 'text', text: 'the tracker refused: no API key (INCIDENTS_API_KEY) was injected' }] };
  const args = req.params.arguments ?? {};
  if (req.params.name === 'list_incidents') {
    const rows = INCIDENTS.filter((i) => i.quarter === args.quarter);
    return { content: [{ type: 'text', text: rows.map((i) => `${i.id} [${i.severity}] ${i.title}`).join('\n') }], structuredContent: { incidents: rows } };
  }
  if (req.params.name === 'delete_incident') return { content: [{ type: 'text', text: `deleted ${args.id}` }] };
  throw new Error(`unknown tool ${req.params.name}`);
});
await server.connect(new StdioServerTransport());
