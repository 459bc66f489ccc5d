// `node:fs` as it is, plus the `globSync` Node 20 lacks (ADR 0180). The conformance CLI uses
// `globSync` only in its `tier-check` command, which Tessera's tests never run: calling it
// throws, naming the Node version it needs, rather than pretending to glob.
import fs from 'node:fs';

export * from 'node:fs';
export default fs;

export function globSync() {
  throw new Error(`fs.globSync needs Node >= 22 (this is ${process.version}); the conformance suite's tier-check command cannot run here`);
}
