/**
 * Facts about the installed package, read once from its package.json: where it is
 * (`src/..` in a checkout, `dist/src/..` when built or installed from npm) and its name and
 * version (`tessera --version`, the OpenAPI document, `/healthz`, the `server.started` event).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the nearest directory above this module that holds a package.json. */
export const PACKAGE_ROOT: string = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

/** The npm package name (`tessera-broker`; the command it installs is `tessera`). */
export const PACKAGE_NAME: string = manifest.name;
/** The package version, e.g. `0.1.0` (semver). */
export const VERSION: string = manifest.version;
