/**
 * What the CLI needs from the composition root (src/main.ts) for the commands that run the
 * server or touch the data directory offline. The CLI never imports store adapters or
 * services itself; main.ts implements this interface and passes it to `runCli`.
 */
export interface RunningServer {
  url: string;
  /** Printed by `tessera dev` only (the dev root token). */
  adminToken?: string;
  /** Dev mode: true when `adminToken` is the --root-token value (the same at every start), false when it was generated at this start. */
  adminTokenFixed?: boolean;
  /** A fresh join token for the demo agent, printed by `tessera dev`. */
  joinToken?: string;
  /** The same join token in a 0600 file (dev mode: `<data dir>/demo-join-token`), for `tessera login --join-token-file`. */
  joinTokenFile?: string;
  /** The policy directory being served (dev banner): the demo set until `configuredDir` exists. */
  readonly policy?: { readonly dir: string; readonly demo: boolean; readonly configuredDir: string; readonly ids: readonly string[] };
  /** The injection proxy's URL, when it listens (docs/proxy.md). */
  readonly proxyUrl?: string;
  close(): Promise<void>;
}

/** What `tessera config validate` reports (`--json` prints it as is). */
export interface ConfigReport {
  readonly ok: boolean;
  readonly config: string;
  readonly problems: readonly { readonly key: string; readonly path?: string; readonly message: string }[];
  readonly notes: readonly { readonly key: string; readonly path?: string; readonly message: string }[];
  /** Works, but weakens security (e.g. a stdio upstream without run_as). */
  readonly warnings?: readonly { readonly key: string; readonly path?: string; readonly message: string }[];
  readonly checked: readonly string[];
}

export interface Runtime {
  /** Everything in one process: embedded SQLite, generated master key, demo policies. */
  dev(opts: { listen?: string; dataDir?: string; rootToken?: string; configPath?: string }): Promise<RunningServer>;
  server(opts: { configPath: string }): Promise<RunningServer>;
  init(opts: { configPath?: string; dataDir?: string }): Promise<{ adminToken: string; dataDir: string; masterKeyFile?: string }>;
  rotateMasterKey(opts: { configPath?: string; dataDir?: string; newKeyFile: string; onProgress?(done: number, total: number): void }): Promise<{ rewrapped: number }>;
  /** `witness`: a sink output file to check against (verify --witness); `archiveDir`: archived segments to verify too. */
  verifyAuditOffline?(opts: { configPath?: string; dataDir?: string; witness?: string; archiveDir?: string }): Promise<unknown>;
  /**
   * `tessera config validate`: the configuration parsed, and every file it names checked, the
   * master key read and the policy directory validated — nothing created, written or started.
   */
  checkConfig?(opts: { configPath: string; dataDir?: string }): Promise<ConfigReport>;
  /** Archives and prunes what `audit.retention` allows (`archiveDir` overrides its archive_dir). */
  archiveAuditOffline?(opts: { configPath?: string; dataDir?: string; archiveDir?: string }): Promise<unknown>;
}
