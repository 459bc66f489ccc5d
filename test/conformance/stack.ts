/**
 * The stack the conformance suite runs against: the fixture upstream (./upstream/server.ts) as
 * gateway server `conf` (Streamable HTTP), the whole of Tessera (test/gateway/harness.ts) with
 * a policy that permits the test agent everything on that server, and the front
 * (./front.ts) that adds the agent's token. The suite's URL is the front's.
 */
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';
import { startConformanceUpstream, type ConformanceUpstream } from './upstream/server.js';
import { startFront, type Front } from './front.js';
import { serverMapping } from './names.js';

/** The fixture's server name in the gateway: its names are listed as `conf__<name>`. */
export const SERVER = 'conf';
const AGENT = 'spiffe://example.org/conformance/suite';

/** Everything on the fixture's server, for this one agent (the suite's checks are about MCP, not policy). */
const POLICIES = `
permit (principal == Tessera::Agent::"${AGENT}", action, resource in Tessera::Server::"${SERVER}");
`;

export interface ConformanceStack {
  readonly upstream: ConformanceUpstream;
  readonly gateway: GatewayHarness;
  readonly front: Front;
  close(): Promise<void>;
}

export async function startConformanceStack(): Promise<ConformanceStack> {
  const upstream = await startConformanceUpstream();
  const front = await startFront(serverMapping(SERVER));
  const gateway = await startGatewayHarness({
    policies: POLICIES,
    gateway: { servers: [{ name: SERVER, transport: 'streamable_http', url: upstream.url }] },
    // The front preserves Host and Origin, like a reverse proxy in front of Tessera would.
    config: { server: { listen: '127.0.0.1:0', allowed_hosts: [front.authority], allowed_origins: [`http://${front.authority}`] } },
  });
  front.target(gateway.mcpUrl, await gateway.login(AGENT));
  return {
    upstream,
    gateway,
    front,
    async close() {
      await front.close();
      await gateway.close();
      await upstream.close();
    },
  };
}
