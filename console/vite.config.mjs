// Build of the operator console (docs/adr/0230-console-stack.md): Preact + Vite, served by
// Tessera itself at /ui from dist/console (src/console/static.ts). No CDN, no inline script or
// style (the console's Content-Security-Policy forbids both), no source maps in the package.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/ui/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // Everything as files (no data: URIs for scripts or styles): the CSP allows 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});
