/**
 * `tessera agent` (the Kubernetes sidecar, docs/k8s-agent.md): public surface for the CLI
 * (src/cli/agent-sidecar.ts) and the tests.
 */
export { startSidecar, probeSidecar } from './sidecar.js';
export type { RunningSidecar, SidecarDeps } from './sidecar.js';
export { parseSidecarOptions, parseLoopbackListen } from './options.js';
export type { SidecarOptions, RawSidecarOptions, ListenAddress, TaskDefaults } from './options.js';
export { CredentialKeeper, renewalDelay, retryDelay } from './keeper.js';
export type { HeldCredential, KeeperState } from './keeper.js';
export { checkMemoryBacked, parseMounts, filesystemOf } from './token-out.js';
