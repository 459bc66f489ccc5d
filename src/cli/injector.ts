/**
 * `tessera injector [--config tessera.yaml]`: runs the mutating admission webhook
 * (docs/k8s-injector.md) until SIGINT/SIGTERM. Reads `kubernetes.injector` from the
 * configuration; `--listen`, `--tls-cert-file` and `--tls-key-file` replace those keys. Needs no
 * data directory, database or master key: the webhook holds no secret but its TLS key.
 */
import { Option, type Command } from 'commander';
import type { DestinationStream } from 'pino';
import { waitForShutdown, type CliIo } from './io.js';
import { terminalJson } from '../shared/terminal.js';
import { VERSION } from '../shared/package.js';

interface InjectorOpts {
  config?: string;
  listen?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  logLevel?: string;
}

export function registerInjectorCommand(program: Command, deps: { io: CliIo; out(s: string): void; info(s: string): void; isJson(cmd: Command): boolean }): void {
  program
    .command('injector')
    .description('run the Kubernetes mutating admission webhook that injects Tessera into annotated pods (HTTPS: POST /mutate, GET /healthz)')
    .option('--config <file>', 'tessera.yaml (reads kubernetes.injector; default: the built-in defaults)')
    .option('--listen <host:port>', 'listen address (default: kubernetes.injector.listen, 0.0.0.0:8443)')
    .option('--tls-cert-file <file>', 'PEM certificate (default: kubernetes.injector.tls_cert_file)')
    .option('--tls-key-file <file>', 'PEM private key (default: kubernetes.injector.tls_key_file)')
    .addOption(new Option('--log-level <level>', 'log level (refusals are logged at info)').choices(['error', 'warn', 'info', 'debug']).default('info'))
    .action(async (opts: InjectorOpts, cmd: Command) => {
      const settings = await loadSettings(opts);
      const { createLogger } = await import('../shared/logger.js');
      const { startInjector } = await import('../k8s/injector/index.js');
      const logger = createLogger({ level: opts.logLevel, destination: deps.io.stderr as unknown as DestinationStream });
      const server = await startInjector({ settings, logger });
      if (deps.isJson(cmd)) deps.out(terminalJson({ url: server.url, mutate: `${server.url}/mutate` }));
      else deps.out(`Tessera injector is listening on ${server.url} (POST /mutate, GET /healthz; Ctrl-C to stop)`);
      const sig = await waitForShutdown(deps.io).promise;
      deps.info(`received ${sig}, shutting down…`);
      await server.close();
      deps.info('stopped');
    });
}

/** The configuration with the command-line values put into the raw input, then validated once. */
async function loadSettings(opts: InjectorOpts): Promise<import('../k8s/injector/index.js').InjectorSettings> {
  const { parseConfig, readConfigFile } = await import('../config/load.js');
  const raw = opts.config ? readConfigFile(opts.config) : {};
  const overrides = {
    ...(opts.listen !== undefined ? { listen: opts.listen } : {}),
    ...(opts.tlsCertFile !== undefined ? { tls_cert_file: opts.tlsCertFile } : {}),
    ...(opts.tlsKeyFile !== undefined ? { tls_key_file: opts.tlsKeyFile } : {}),
  };
  const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  // A file that is not a mapping is left as it is, for the schema to refuse with its message.
  const mapping = raw === null || raw === undefined || (typeof raw === 'object' && !Array.isArray(raw));
  const k8s = obj(obj(raw).kubernetes);
  const withFlags = Object.keys(overrides).length === 0 || !mapping ? raw : { ...obj(raw), kubernetes: { ...k8s, injector: { ...obj(k8s.injector), ...overrides } } };
  const config = parseConfig(withFlags, opts.config ?? 'the command line');
  return { ...config.kubernetes.injector, version: VERSION };
}
