// Loads what the example uses from this checkout: the compiled dist/ when it is current (as
// bin/tessera.js does), else the TypeScript sources through the tsx loader (a checkout edited
// since the last `npm run build`), so the example always runs the code that is there.
// The SDK is the public `tessera-broker/sdk`; the server parts are this repository's own.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** True when every src/**\/*.ts has a compiled dist/src/**\/*.js at least as new. */
function distIsCurrent(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const e of entries) {
    const src = join(dir, e.name);
    if (e.isDirectory()) {
      if (!distIsCurrent(src, join(out, e.name))) return false;
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
      try {
        if (statSync(join(out, `${e.name.slice(0, -3)}.js`)).mtimeMs < statSync(src).mtimeMs) return false;
      } catch {
        return false;
      }
    }
  }
  return true;
}

export async function loadTessera() {
  const compiled = distIsCurrent(join(root, 'src'), join(root, 'dist', 'src'));
  if (!compiled) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  const base = compiled ? join(root, 'dist', 'src') : join(root, 'src');
  const ext = compiled ? 'js' : 'ts';
  const mod = (p) => import(pathToFileURL(join(base, `${p}.${ext}`)).href);
  const [sdk, main, config, logger, task] = await Promise.all([compiled ? import('tessera-broker/sdk') : mod('sdk/index'), mod('main'), mod('config/index'), mod('shared/logger'), mod('cli/task')]);
  return { sdk, startTessera: main.startTessera, parseConfig: config.parseConfig, silentLogger: logger.silentLogger, renderTree: task.renderTree, compiled };
}
