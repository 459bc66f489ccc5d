/**
 * `tessera config validate`: what a configuration needs from the machine it runs on, checked
 * without side effects — nothing is created, written, started or contacted. The schema itself is
 * checked by `loadConfig` before this runs; here, every file and directory the configuration
 * names: it exists, is of the right kind, and is readable (writable where Tessera writes).
 *
 * Findings are `problems` (the server would fail, or a feature would) and `notes` (what
 * `tessera init` creates: the data directory, the SQLite database, a missing master key file).
 * Master-key contents and policy files are checked by the caller (src/main.ts), which has those
 * features; they report through the same `Finding` shape.
 */
import { accessSync, constants, readFileSync, statSync, type Stats } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { TesseraConfig } from './schema.js';
import { canSwitchUser } from '../gateway/isolation.js';
import { TesseraError } from '../shared/errors.js';

export interface Finding {
  /** The configuration key, as docs/configuration.md names it (`audit.sinks[1].path`). */
  readonly key: string;
  /** The file or directory concerned (absolute), when there is one. */
  readonly path?: string;
  readonly message: string;
}

export interface ConfigCheck {
  readonly problems: Finding[];
  readonly notes: Finding[];
  /** What works but weakens security (a stdio upstream without run_as, a data directory others can enter). */
  readonly warnings: Finding[];
  /** Keys whose files were looked at, in order. */
  readonly checked: string[];
}

function stat(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function can(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** Why `path` is not a readable file, or undefined. */
export function fileFault(path: string): string | undefined {
  const st = stat(path);
  if (!st) return stat(dirname(path)) ? 'does not exist' : `does not exist (nor does ${dirname(path)})`;
  if (st.isDirectory()) return 'is a directory, not a file';
  if (!st.isFile()) return 'is not a regular file';
  if (!can(path, constants.R_OK)) return 'is not readable by this user';
  return undefined;
}

/** What a file holds: a secret (non-empty once trimmed) or PEM certificates. */
export type FileContent = 'secret' | 'pem';

/** Why `text` is not usable as `kind`, or undefined (never quotes the text: it may be a secret). */
function contentFault(text: string, kind: FileContent): string | undefined {
  if (text.trim() === '') return 'is empty';
  if (kind === 'pem' && !text.includes('-----BEGIN CERTIFICATE-----')) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  return undefined;
}

/** Why the file at `path` cannot serve as `kind`: unreadable, empty, not PEM; or undefined. */
export function fileContentFault(path: string, kind: FileContent): string | undefined {
  const fault = fileFault(path);
  if (fault) return fault;
  try {
    return contentFault(readFileSync(path, 'utf8'), kind);
  } catch (e) {
    return `cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

/**
 * Reads a file the configuration names at `key`, at start: TESSERA_CONFIG_INVALID naming the key
 * and why (missing, a directory, unreadable, empty, not PEM) — the check `tessera config validate`
 * makes, never a raw ENOENT.
 */
export function readConfigFile(key: string, path: string, kind: FileContent): string {
  const fault = fileContentFault(path, kind);
  if (fault) throw new TesseraError('TESSERA_CONFIG_INVALID', `${key}: ${resolve(path)} ${fault}`, { key });
  return readFileSync(path, 'utf8');
}

/** Why `path` is not a readable directory (writable too when `write`), or undefined. */
export function dirFault(path: string, write = false): string | undefined {
  const st = stat(path);
  if (!st) return 'does not exist';
  if (!st.isDirectory()) return st.isFile() ? 'is a file, not a directory' : 'is not a directory';
  if (!can(path, constants.R_OK | constants.X_OK)) return 'is not readable by this user';
  if (write && !can(path, constants.W_OK)) return 'is not writable by this user';
  return undefined;
}

/** A file Tessera appends to: it may be missing, but its directory must exist and be writable. */
function writableFileFault(path: string): string | undefined {
  const st = stat(path);
  if (st) {
    if (st.isDirectory()) return 'is a directory, not a file';
    return can(path, constants.W_OK) ? undefined : 'is not writable by this user';
  }
  const parent = dirFault(dirname(path), true);
  return parent ? `cannot be created: its directory ${dirname(path)} ${parent}` : undefined;
}

/** `command` as a stdio upstream runs it: an absolute path, a path relative to `cwd`, or found on PATH. */
function commandFault(command: string, cwd: string | undefined, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const runnable = (p: string): boolean => stat(p)?.isFile() === true && can(p, constants.X_OK);
  if (command.includes('/')) {
    const p = isAbsolute(command) ? command : resolve(cwd ?? '.', command);
    return runnable(p) ? undefined : `${p} is not an executable file`;
  }
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  return dirs.some((d) => runnable(join(d, command))) ? undefined : `"${command}" is not found on PATH`;
}

/**
 * Checks every file and directory `config` names. `env` is where `*.env` settings are looked up
 * (only whether each is set; values are never read into the result).
 */
export function checkConfigPaths(config: TesseraConfig, env: Readonly<Record<string, string | undefined>>): ConfigCheck {
  const problems: Finding[] = [];
  const notes: Finding[] = [];
  const warnings: Finding[] = [];
  const checked: string[] = [];
  const problem = (key: string, path: string | undefined, message: string): void => void problems.push({ key, ...(path !== undefined ? { path: resolve(path) } : {}), message });
  const note = (key: string, path: string, message: string): void => void notes.push({ key, path: resolve(path), message });

  // The data directory and the embedded database: `tessera init` creates them.
  checked.push('data_dir');
  const dataDir = stat(config.data_dir);
  if (!dataDir) note('data_dir', config.data_dir, `${resolve(config.data_dir)} does not exist yet; \`tessera init\` creates it (mode 0700)`);
  else {
    const fault = dirFault(config.data_dir, true);
    if (fault) problem('data_dir', config.data_dir, `${resolve(config.data_dir)} ${fault}`);
    else if (process.platform !== 'win32' && (dataDir.mode & 0o077) !== 0) {
      warnings.push({ key: 'data_dir', path: resolve(config.data_dir), message: `${resolve(config.data_dir)} has mode ${(dataDir.mode & 0o777).toString(8)}: other users may enter it; run chmod 700 ${resolve(config.data_dir)} (\`tessera init\` creates it 0700)` });
    }
  }
  if (config.store.kind === 'sqlite') {
    checked.push('store.file');
    const file = config.store.file ?? join(config.data_dir, 'tessera.db');
    const key = config.store.file ? 'store.file' : 'data_dir';
    if (!stat(file)) note(key, file, `no database at ${resolve(file)} yet; \`tessera init\` creates it`);
    else {
      const fault = writableFileFault(file);
      if (fault) problem(key, file, `${resolve(file)} ${fault}`);
    }
  } else {
    notes.push({ key: 'store.url', message: 'PostgreSQL is not contacted by this check; `tessera server` connects at start' });
  }

  // Files read at start or per use.
  const readable = (key: string, path: string | undefined): void => {
    if (path === undefined) return;
    checked.push(key);
    const fault = fileFault(path);
    if (fault) problem(key, path, `${resolve(path)} ${fault}`);
  };
  const envSet = (key: string, name: string | undefined): void => {
    if (name === undefined) return;
    checked.push(key);
    if (env[name] === undefined || env[name] === '') problem(key, undefined, `the environment variable ${name} is not set here`);
  };
  if (config.store.kind === 'postgres') envSet('store.url_env', config.store.url_env);
  config.attestors.forEach((a, i) => {
    if (a.kind === 'jwt') readable(`attestors[${i}].jwks_file`, a.jwks_file);
    if (a.kind === 'spiffe') readable(`attestors[${i}].bundle_file`, a.bundle_file);
  });

  checked.push('policy.dir');
  const policyFault = dirFault(config.policy.dir);
  if (policyFault) problem('policy.dir', config.policy.dir, `${resolve(config.policy.dir)} ${policyFault}`);

  config.audit.sinks.forEach((s, i) => {
    if (s.kind === 'file') {
      checked.push(`audit.sinks[${i}].path`);
      const fault = writableFileFault(s.path);
      if (fault) problem(`audit.sinks[${i}].path`, s.path, `${resolve(s.path)} ${fault}`);
    }
    if (s.kind === 'http') {
      readable(`audit.sinks[${i}].ca_file`, s.ca_file);
      readable(`audit.sinks[${i}].auth.file`, s.auth?.file);
      envSet(`audit.sinks[${i}].auth.env`, s.auth?.env);
    }
  });
  // People (docs/users.md): what the authorization server reads at start.
  const withContent = (key: string, path: string | undefined, kind: FileContent): void => {
    if (path === undefined) return;
    checked.push(key);
    const fault = fileContentFault(path, kind);
    if (fault) problem(key, path, `${resolve(path)} ${fault}`);
  };
  config.users.issuers.forEach((iss, i) => {
    const key = `users.issuers[${i}].login`;
    withContent(`${key}.client_secret_file`, iss.login?.client_secret_file, 'secret');
    const name = iss.login?.client_secret_env;
    if (name !== undefined) {
      checked.push(`${key}.client_secret_env`);
      if (!env[name]?.trim()) problem(`${key}.client_secret_env`, undefined, `the environment variable ${name} is not set here (or is empty)`);
    }
  });
  withContent('users.authorization_server.client_metadata.ca_file', config.users.authorization_server.client_metadata.ca_file, 'pem');
  const archiveDir = config.audit.retention?.archive_dir;
  if (archiveDir !== undefined) {
    checked.push('audit.retention.archive_dir');
    const fault = stat(archiveDir) ? dirFault(archiveDir, true) : dirFault(dirname(archiveDir), true) && `cannot be created: its directory ${dirname(archiveDir)} ${dirFault(dirname(archiveDir), true)}`;
    if (fault) problem('audit.retention.archive_dir', archiveDir, `${resolve(archiveDir)} ${fault}`);
  }

  config.gateway.servers.forEach((s, i) => {
    if (s.transport !== 'stdio') return;
    const key = `gateway.servers[${i}]`;
    if (s.cwd !== undefined) {
      checked.push(`${key}.cwd`);
      const fault = dirFault(s.cwd);
      if (fault) problem(`${key}.cwd`, s.cwd, `${resolve(s.cwd)} ${fault}`);
    }
    checked.push(`${key}.command`);
    const fault = commandFault(s.command, s.cwd, env);
    if (fault) problem(`${key}.command`, undefined, `server "${s.name}": ${fault}`);
    // Process isolation (ADR 0146): without run_as the upstream runs as Tessera's own user.
    if (s.run_as === undefined) {
      warnings.push({ key: `${key}.run_as`, message: `server "${s.name}" has no run_as: it runs as Tessera's own user and a tool of its that reads files can read the master key, the database and other upstreams' environments (injected secrets); set run_as, or gateway.require_isolation: true to refuse this` });
    } else if (!canSwitchUser()) {
      problem(`${key}.run_as`, undefined, `server "${s.name}" has run_as, but this user (uid ${process.getuid?.() ?? '?'}) cannot start processes as another user (root, or CAP_SETUID and CAP_SETGID): \`tessera server\` would refuse to start`);
    }
  });
  return { problems, notes, warnings, checked };
}
