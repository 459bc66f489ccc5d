import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TesseraError } from '../shared/errors.js';
import { createKeySealer, type Sealer } from './sealer.js';

/**
 * The master key wraps every data key and every sealed private key. It comes from a file
 * (base64 or hex of 32 bytes, mode 0600 or stricter) or an environment variable. Its id is a
 * short fingerprint, so stored data records which master key wrapped it.
 */
export function decodeMasterKey(text: string, source: string): Buffer {
  const t = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(t)) key = Buffer.from(t, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!key || key.length !== 32) {
    throw new TesseraError('TESSERA_MASTER_KEY_INVALID', `master key from ${source} must be 32 bytes encoded as base64 (44 chars) or hex (64 chars)`);
  }
  return key;
}

export function masterKeyId(key: Uint8Array): string {
  return `mk_${createHash('sha256').update('tessera-master-key-id').update(key).digest('hex').slice(0, 16)}`;
}

export function loadMasterKeyFile(path: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new TesseraError('TESSERA_MASTER_KEY_INVALID', `cannot read master key file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!st.isFile()) {
    throw new TesseraError('TESSERA_MASTER_KEY_INVALID', `master key file ${path} is not a regular file`);
  }
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new TesseraError('TESSERA_MASTER_KEY_INVALID', `master key file ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`);
  }
  return decodeMasterKey(readFileSync(path, 'utf8'), path);
}

export function loadMasterKeyEnv(name: string, env: NodeJS.ProcessEnv): Buffer {
  const v = env[name];
  if (!v) throw new TesseraError('TESSERA_MASTER_KEY_INVALID', `environment variable ${name} (master_key.env) is not set`);
  return decodeMasterKey(v, `$${name}`);
}

/** Dev mode and `tessera init`: generate a key into a new file with mode 0600. */
export function generateMasterKeyFile(path: string): Buffer {
  const key = randomBytes(32);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return key;
}

export function masterSealer(key: Uint8Array): Sealer {
  return createKeySealer(key, masterKeyId(key));
}

export const DEFAULT_MASTER_KEY_FILE = 'master.key';

export interface ResolvedMasterKey {
  readonly sealer: Sealer;
  readonly keyId: string;
  /** Where it came from, for the startup log (never the key itself). */
  readonly source: string;
  readonly generated: boolean;
}

/**
 * Picks the master key per `master_key` config: `env` (variable name) or `file`; with neither,
 * `<data_dir>/master.key`. Only dev mode generates a missing key (mode 0600); a server refuses
 * to start without one, because a new key would make every stored secret unreadable.
 */
export function resolveMasterKey(options: { config: { file?: string; env?: string }; dataDir: string; dev: boolean; env: NodeJS.ProcessEnv }): ResolvedMasterKey {
  const { config } = options;
  if (config.env) {
    const key = loadMasterKeyEnv(config.env, options.env);
    return { sealer: masterSealer(key), keyId: masterKeyId(key), source: `env:${config.env}`, generated: false };
  }
  const file = config.file ?? join(options.dataDir, DEFAULT_MASTER_KEY_FILE);
  let exists = true;
  try {
    statSync(file);
  } catch {
    exists = false;
  }
  if (!exists) {
    if (!options.dev) {
      throw new TesseraError('TESSERA_MASTER_KEY_INVALID', `master key file ${file} does not exist; run \`tessera init\` to create one, or set master_key.file / master_key.env`);
    }
    const key = generateMasterKeyFile(file);
    return { sealer: masterSealer(key), keyId: masterKeyId(key), source: `file:${file}`, generated: true };
  }
  const key = loadMasterKeyFile(file);
  return { sealer: masterSealer(key), keyId: masterKeyId(key), source: `file:${file}`, generated: false };
}
