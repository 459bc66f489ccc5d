import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * The one logger. Paths that could carry a secret or a token are redacted at the source, and
 * services never log request bodies. Pass `destination` in tests to capture output.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  'subject_token',
  'actor_token',
  'password',
  'secret',
  'value',
  '*.token',
  '*.password',
  '*.secret',
  '*.value',
  '*.subject_token',
  '*.actor_token',
];

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  const opts = {
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: undefined,
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

export const silentLogger: Logger = pino({ level: 'silent' });
