/** Shared by the drift tests: the CLI against a running Tessera, MCP calls, audit counts. */
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { GatewayHarness } from '../gateway/harness.js';

const noRuntime: Runtime = {
  dev: () => Promise.reject(new Error('not in this test')),
  server: () => Promise.reject(new Error('not in this test')),
  init: () => Promise.reject(new Error('not in this test')),
  rotateMasterKey: () => Promise.reject(new Error('not in this test')),
};

export async function cli(argv: string[], env: { addr: string; token: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s) },
    env: { TESSERA_ADDR: env.addr, TESSERA_TOKEN: env.token },
  };
  const code = await runCli(argv, noRuntime, io);
  return { code, stdout, stderr };
}

export async function toolNames(client: Client): Promise<string[]> {
  return (await client.listTools()).tools.map((t) => t.name).sort();
}

/** Lists until `pred` holds (the upstream's list_changed reaches the gateway asynchronously); bounded. */
export async function listUntil(client: Client, pred: (names: string[]) => boolean, tries = 100): Promise<string[]> {
  let names: string[] = [];
  for (let i = 0; i < tries; i++) {
    names = await toolNames(client);
    if (pred(names)) return names;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`tools/list never matched; last: ${names.join(', ')}`);
}

export async function auditKinds(h: GatewayHarness, kind: string): Promise<Record<string, any>[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>('SELECT body FROM audit_events WHERE kind = ? ORDER BY seq', [kind]);
  return rows.map((r) => JSON.parse(r.body) as Record<string, any>);
}

/** A tools/call's JSON-RPC error (the SDK throws McpError with code and data). */
export async function callError(client: Client, name: string, args: Record<string, unknown> = {}): Promise<{ code: number; data: any; message: string }> {
  try {
    await client.callTool({ name, arguments: args });
  } catch (e) {
    const err = e as { code: number; data: any; message: string };
    return { code: err.code, data: err.data, message: err.message };
  }
  throw new Error(`${name} was served`);
}
