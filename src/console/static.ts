/**
 * The operator console's files, served at `/ui` (issue 11; docs/console.md; ADR 0231).
 *
 * The built console (dist/console: index.html, favicon, hashed assets under assets/) is read
 * into memory once at start. A request is answered by an exact lookup of its path in that map:
 * no part of a URL ever becomes a filesystem path, so there is nothing to traverse. Every other
 * `/ui/...` path gets index.html (the console routes on the client). Every answer carries the
 * console's Content-Security-Policy, which allows only Tessera's own scripts, styles and API.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { TesseraError } from '../shared/errors.js';

/** One file of the built console. */
export interface ConsoleFile {
  readonly body: Buffer;
  readonly type: string;
  /** Content-hashed (under assets/): cached for a year; everything else is revalidated. */
  readonly immutable: boolean;
}

/**
 * The console's Content-Security-Policy (CSP Level 3): scripts, styles, images and API calls
 * from Tessera's own origin only; no inline script or style, no framing, no plugins.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** Largest file and total read into memory (a built console is ~100 KB). */
const MAX_FILE_BYTES = 5 * 1024 * 1024;
const MAX_FILES = 500;

/**
 * Reads the built console under `dir` into a map keyed by URL path (`/ui/assets/x.js`).
 * Returns undefined when `dir/index.html` does not exist (console not built).
 */
export function loadConsoleFiles(dir: string): Map<string, ConsoleFile> | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const files = new Map<string, ConsoleFile>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile()) {
        const type = TYPES[extname(e.name).toLowerCase()];
        if (!type || statSync(full).size > MAX_FILE_BYTES || files.size >= MAX_FILES) continue;
        const rel = relative(dir, full).split(sep).join('/');
        files.set(`/ui/${rel}`, { body: readFileSync(full), type, immutable: rel.startsWith('assets/') });
      }
    }
  };
  walk(dir);
  return files;
}

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply.headers({
    'content-security-policy': CONSOLE_CSP,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  });
}

function send(reply: FastifyReply, file: ConsoleFile): FastifyReply {
  securityHeaders(reply).header('content-type', file.type);
  reply.header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  return reply.send(file.body);
}

/**
 * Registers `GET /ui` (→ 308 `/ui/`) and `GET /ui/*`. `files` undefined (console not built):
 * every console path answers 503 TESSERA_CONSOLE_NOT_BUILT.
 */
export function registerConsoleStatic(app: FastifyInstance, files: Map<string, ConsoleFile> | undefined): void {
  const index = files?.get('/ui/index.html');
  app.get('/ui', async (_req, reply) => reply.redirect('/ui/', 308));
  app.get('/ui/*', async (req, reply) => {
    if (!files || !index) {
      throw new TesseraError('TESSERA_CONSOLE_NOT_BUILT', 'the operator console is not built in this installation; run `npm run build` in the Tessera checkout and restart (the API and the CLI work without it)');
    }
    const path = req.url.split('?')[0]!;
    const file = files.get(path);
    if (file) return send(reply, file);
    // A missing asset is a 404 (a stale cached index.html asking for an old bundle), never index.html.
    if (path.startsWith('/ui/assets/')) throw new TesseraError('TESSERA_NOT_FOUND', `no console asset ${path}; reload the page`);
    return send(reply, index);
  });
}
