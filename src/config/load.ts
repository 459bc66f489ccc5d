import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { TesseraError } from '../shared/errors.js';
import { configSchema, type TesseraConfig } from './schema.js';

/** Validates a parsed config object; every error names the key path and what is expected. */
export function parseConfig(raw: unknown, source = 'tessera.yaml'): TesseraConfig {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const key = i.path.length ? i.path.map(String).join('.') : '(top level)';
      return `${key}: ${i.message}`;
    });
    throw new TesseraError('TESSERA_CONFIG_INVALID', `${source} is invalid:\n  ${lines.join('\n  ')}`, { issues: lines });
  }
  return result.data;
}

/** A file's YAML as written (not validated): the raw input that `loadConfig` parses once. */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TesseraError('TESSERA_CONFIG_NOT_FOUND', `cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new TesseraError('TESSERA_CONFIG_INVALID', `${path} is not valid YAML: ${(e as Error).message}`);
  }
  return raw;
}

export function loadConfigFile(path: string): TesseraConfig {
  return parseConfig(readConfigFile(path), path);
}

/** Values given on the command line (`--data-dir`, `--listen`); they replace the file's. */
export interface ConfigOverrides {
  readonly dataDir?: string;
  readonly listen?: string;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The configuration every command uses (`dev`, `server`, `init`, `operator`, `audit verify
 * --offline`): the file's YAML (or nothing: the defaults) with the command-line overrides put
 * into the RAW input, then validated and converted ONCE. Parsed values are never turned back
 * into input, so a value (a duration, a size) means the same in every command.
 * Throws TESSERA_CONFIG_NOT_FOUND or TESSERA_CONFIG_INVALID (naming each bad key).
 */
export function loadConfig(opts: { path?: string; overrides?: ConfigOverrides } = {}): TesseraConfig {
  const raw = opts.path ? readConfigFile(opts.path) : {};
  return parseConfig(withOverrides(raw, opts.overrides ?? {}), opts.path ?? 'the configuration');
}

/** Applies overrides to raw input; a file that is not a mapping is left for the schema to refuse. */
function withOverrides(raw: unknown, o: ConfigOverrides): unknown {
  const base = raw ?? {};
  if (!isPlainObject(base) || (o.dataDir === undefined && o.listen === undefined)) return base;
  const out: Record<string, unknown> = { ...base };
  if (o.dataDir !== undefined) out.data_dir = o.dataDir;
  if (o.listen !== undefined) {
    const server = base.server ?? {};
    if (isPlainObject(server)) out.server = { ...server, listen: o.listen };
  }
  return out;
}
