/**
 * Test entry point: the relay on this process's real stdio, as `tessera mcp` runs it.
 * Arguments: --addr <url> [--token-file <path>] [--join-token <token>] [--login-file <path>] [--audience <uri>] [--url <gateway url>]
 */
import { parseArgs } from 'node:util';
import { runStdioRelay } from '../../src/gateway/stdio-relay/index.js';

const { values } = parseArgs({ options: { addr: { type: 'string' }, 'token-file': { type: 'string' }, 'join-token': { type: 'string' }, audience: { type: 'string' }, url: { type: 'string' }, 'login-file': { type: 'string' } } });
const result = await runStdioRelay({
  addr: values.addr ?? '',
  tokenFile: values['token-file'],
  joinToken: values['join-token'],
  loginFile: values['login-file'],
  audience: values.audience,
  mcpUrl: values.url,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
process.exitCode = result.exitCode;
