import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * The one logger. Paths that could carry a secret or a token are redacted at the source, and
 * services never log request bodies. Pass `destination` in tests to capture output.
 *
 * Logs go to standard error by default, for every command (`tessera server` and `dev`
 * included): standard output carries only what a command prints for its reader (the dev banner,
 * `--json` results, an MCP relay's protocol), so `tessera dev --json | jq` reads one JSON object.
 * Writing through `process.stderr` (not a separate file descriptor) lets the CLI's broken-pipe
 * guard see a closed stderr too (src/cli/io.ts).
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
  return pino(opts, options.destination ?? process.stderr);
}

export const silentLogger: Logger = pino({ level: 'silent' });
