import { readFileSync } from 'node:fs';
import { TesseraError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { MetricsRegistry } from '../../shared/metrics.js';
import { fileSink } from './file.js';
import { httpSink } from './http.js';
import { stdoutSink } from './stdout.js';
import { syslogSink, type SyslogFacility } from './syslog.js';
import type { AuditSink } from './types.js';

export type { AuditSink } from './types.js';
export { recordLine, headLine, checkpointLine, batchLines, parseSignedLine, HEAD_LINE_TYPE, CHECKPOINT_LINE_TYPE, type SinkBatch } from './lines.js';
export { syslogMessage, SYSLOG_FACILITIES, type SyslogFacility } from './syslog.js';
export { createForwarder, PermanentDeliveryError, type Forwarder } from './forwarder.js';

/** Forwarder tuning shared by the http and syslog sinks (durations in ms). Defaults in FORWARD_DEFAULTS. */
interface ForwardTuning {
  readonly timeout?: number;
  readonly max_queue?: number;
  readonly batch_max_lines?: number;
  readonly retry_initial?: number;
  readonly retry_max?: number;
}

export const FORWARD_DEFAULTS = { timeout: 10_000, max_queue: 100_000, batch_max_lines: 500, retry_initial: 1000, retry_max: 60_000 } as const;

/** `audit.sinks[]` after config parsing (docs/configuration.md). */
export type AuditSinkConfig =
  | { readonly kind: 'store' }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stdout' }
  | ({
      readonly kind: 'http';
      readonly url: string;
      /** The header value comes from an environment variable or a file (trailing newline removed); never from the config itself. */
      readonly auth?: { readonly header?: string; readonly env?: string; readonly file?: string };
      readonly ca_file?: string;
    } & ForwardTuning)
  | ({
      readonly kind: 'syslog';
      readonly transport?: 'udp' | 'tcp';
      readonly host?: string;
      readonly port?: number;
      readonly facility?: SyslogFacility;
      readonly app_name?: string;
    } & ForwardTuning);

/** Reads the http sink's auth header value; fails at start (not at the first event) when it is missing. */
function authValue(auth: NonNullable<Extract<AuditSinkConfig, { kind: 'http' }>['auth']>, env: NodeJS.ProcessEnv): string {
  let value: string | undefined;
  if (auth.env) {
    value = env[auth.env];
    if (!value) throw new TesseraError('TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE', `the http audit sink's auth value is taken from environment variable ${auth.env}, which is not set`);
  } else if (auth.file) {
    try {
      value = readFileSync(auth.file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new TesseraError('TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE', `the http audit sink's auth file ${auth.file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (!value || /[\r\n\0]/.test(value)) throw new TesseraError('TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE', `the http audit sink's auth value (from ${auth.env ? `env ${auth.env}` : `file ${auth.file}`}) is empty or contains a line break`);
  return value;
}

/** Builds the external sinks (everything but `store`) from the configuration. */
export function createSinks(configs: readonly AuditSinkConfig[], deps: { logger: Logger; metrics?: MetricsRegistry; stdout?: { write(chunk: string): unknown }; env?: NodeJS.ProcessEnv }): AuditSink[] {
  const env = deps.env ?? process.env;
  return configs.flatMap((s): AuditSink[] => {
    switch (s.kind) {
      case 'store':
        return [];
      case 'file':
        return [fileSink(s.path)];
      case 'stdout':
        return [stdoutSink(deps.stdout ?? process.stdout)];
      case 'http': {
        let ca: string | undefined;
        if (s.ca_file) {
          try {
            ca = readFileSync(s.ca_file, 'utf8');
          } catch (e) {
            throw new TesseraError('TESSERA_CONFIG_INVALID', `audit.sinks: the http sink's ca_file ${s.ca_file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
          }
        }
        return [httpSink({
          url: s.url,
          ...(s.auth ? { auth: { header: s.auth.header ?? 'authorization', value: authValue(s.auth, env) } } : {}),
          ...(ca ? { ca } : {}),
          ...tuning(s),
          logger: deps.logger,
          metrics: deps.metrics,
        })];
      }
      case 'syslog':
        return [syslogSink({
          transport: s.transport ?? 'udp',
          host: s.host ?? '127.0.0.1',
          port: s.port ?? 514,
          facility: s.facility ?? 'local0',
          appName: s.app_name ?? 'tessera',
          ...tuning(s),
          logger: deps.logger,
          metrics: deps.metrics,
        })];
    }
  });
}

function tuning(s: ForwardTuning) {
  return {
    timeoutMs: s.timeout ?? FORWARD_DEFAULTS.timeout,
    maxQueue: s.max_queue ?? FORWARD_DEFAULTS.max_queue,
    batchMaxLines: s.batch_max_lines ?? FORWARD_DEFAULTS.batch_max_lines,
    retryInitialMs: s.retry_initial ?? FORWARD_DEFAULTS.retry_initial,
    retryMaxMs: s.retry_max ?? FORWARD_DEFAULTS.retry_max,
  };
}
