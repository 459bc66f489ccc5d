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

export function loadConfigFile(path: string): TesseraConfig {
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
  return parseConfig(raw, path);
}
