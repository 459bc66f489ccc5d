/**
 * The console's first load and bundle size (issue 11 "Performance": "first load of the console
 * ≤ 1 s on loopback; the JavaScript bundle size reported in the bench results").
 *
 * First load: headless Chromium (Debian /usr/bin/chromium, playwright-core), a fresh browser
 * context per sample (empty HTTP cache, new connections) with a signed-in session cookie, opens
 * `/ui/` and the time from navigation start (the Performance API's time origin) to the moment the
 * overview's data is in the DOM (a MutationObserver installed before any page script records
 * `performance.now()` at the first DOM change after the page read `GET /v1/admin/overview`).
 * Median (and max) of SAMPLES.
 * Baseline, same run, interleaved: the same index.html and assets (src/console/static.ts's
 * loader, same headers) and the same API answers (recorded from the real server just before) from
 * a bare node:http server — what the browser alone costs; the ratio is Tessera's share.
 *
 * Bundle: every .js / .css under dist/console/assets, raw and gzip (level 9) bytes.
 */
import http from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium, type Browser } from 'playwright-core';
import { parseConfig } from '../src/config/index.js';
import { startTessera, CONSOLE_DIR } from '../src/main.js';
import { CONSOLE_CSP, loadConsoleFiles } from '../src/console/static.js';
import { silentLogger } from '../src/shared/logger.js';
import { percentile, type BenchResult } from './lib.js';

const CHROMIUM = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SAMPLES = 15;
const WARMUP = 2;
const AGENTS = 50;
const GOAL_MS = 1000;
/** The overview's data: the first DOM change after the page has read this API answer's body. */
export const OVERVIEW_API = '/v1/admin/overview';

const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;

/** Raw and gzip sizes of the built console's assets of one extension. */
export function bundleSize(ext: '.js' | '.css'): { raw: number; gzip: number; files: number } {
  const dir = join(CONSOLE_DIR, 'assets');
  let raw = 0;
  let gzip = 0;
  let files = 0;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(ext)) continue;
    const body = readFileSync(join(dir, f));
    raw += statSync(join(dir, f)).size;
    gzip += gzipSync(body, { level: 9 }).length;
    files++;
  }
  return { raw, gzip, files };
}

interface Recorded {
  status: number;
  type: string;
  body: Buffer;
}

/** A bare static server: the console's files from memory, the recorded API answers, nothing else. */
function baselineServer(recorded: Map<string, Recorded>): Promise<{ url: string; close: () => Promise<void> }> {
  const files = loadConsoleFiles(CONSOLE_DIR)!;
  const index = files.get('/ui/index.html')!;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const api = recorded.get(req.url ?? '');
    if (api) {
      res.writeHead(api.status, { 'content-type': api.type, 'cache-control': 'no-store' });
      res.end(api.body);
      return;
    }
    if (path.startsWith('/v1/')) {
      res.writeHead(204); // the event stream: an EventSource stops on 204
      res.end();
      return;
    }
    const f = files.get(path) ?? index;
    res.writeHead(200, {
      'content-type': f.type,
      'content-security-policy': CONSOLE_CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': f.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.end(f.body);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

/**
 * Installed before any page script (DevTools protocol, not subject to the page's CSP): notes when
 * the page has read the overview's API answer (Response.text/json resolve), then the time of the
 * first DOM mutation after it — the overview's data rendered — in `__tesseraReady`.
 */
const READY_SCRIPT = `(() => {
  const api = ${JSON.stringify(OVERVIEW_API)};
  let read = false;
  for (const m of ['text', 'json']) {
    const orig = Response.prototype[m];
    Response.prototype[m] = function (...a) {
      const p = orig.apply(this, a);
      if (new URL(this.url, location.href).pathname === api) p.then(() => { read = true; }, () => {});
      return p;
    };
  }
  new MutationObserver((_, obs) => {
    if (read && globalThis.__tesseraReady === undefined) {
      globalThis.__tesseraReady = performance.now();
      obs.disconnect();
    }
  }).observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
})();`;

/** One cold first load: ms from navigation start to the overview data rendered. */
async function firstLoad(browser: Browser, url: string, cookie: { name: string; value: string } | undefined): Promise<number> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
  try {
    if (cookie) await context.addCookies([{ ...cookie, url }]);
    await context.addInitScript({ content: READY_SCRIPT });
    const page = await context.newPage();
    await page.goto(`${url}/ui/`);
    await page.waitForFunction(() => (globalThis as { __tesseraReady?: number }).__tesseraReady !== undefined, undefined, { timeout: 30_000 });
    return await page.evaluate(() => (globalThis as unknown as { __tesseraReady: number }).__tesseraReady);
  } finally {
    await context.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  if (!existsSync(join(CONSOLE_DIR, 'index.html'))) throw new Error('dist/console is missing: run npm run build');
  const js = bundleSize('.js');
  const css = bundleSize('.css');
  const rows: BenchResult[] = [
    { name: `console JavaScript bundle, gzip -9 (${js.files} file(s), raw ${kib(js.raw)})`, value: js.gzip / 1024, unit: 'KiB' },
    { name: `console CSS, gzip -9 (${css.files} file(s), raw ${kib(css.raw)})`, value: css.gzip / 1024, unit: 'KiB' },
  ];
  if (!existsSync(CHROMIUM)) {
    process.stderr.write(`  no Chromium at ${CHROMIUM} (apt-get install chromium): the first-load row is not measured\n`);
    return rows;
  }

  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-console-'));
  const config = parseConfig({ data_dir: dir, server: { listen: '127.0.0.1:0' }, policy: { dir: 'examples/policies', watch: false }, audit: { sinks: [{ kind: 'store' }] }, log: { level: 'silent' } });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger });
  const url = tessera.localUrl;
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(url + path, { method, headers: { authorization: `Bearer ${tessera.adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  let baseline: Awaited<ReturnType<typeof baselineServer>> | undefined;
  try {
    // Some data for the overview: agents that logged in (join token → agent token).
    for (let i = 0; i < AGENTS; i++) {
      const j = (await (await admin('POST', '/v1/admin/join-tokens', { spiffe_id: `spiffe://tessera.local/ns/bench/sa/agent-${i}`, ttl: '10m' })).json()) as { token: string };
      const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: j.token, subject_token_type: 'urn:tessera:token-type:join-token' });
      const r = await fetch(`${url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
      if (r.status !== 200) throw new Error(`agent login: ${r.status}`);
    }
    // A console session (the sign-in form's call).
    const s = await fetch(`${url}/v1/console/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: tessera.adminToken }) });
    if (s.status !== 201) throw new Error(`console sign-in: ${s.status} ${await s.text()}`);
    const setCookie = s.headers.get('set-cookie') ?? '';
    const m = /^([^=]+)=([^;]*)/.exec(setCookie);
    if (!m) throw new Error('console sign-in set no cookie');
    const cookie = { name: m[1]!, value: m[2]! };

    // Record the API answers one real load fetches, for the baseline server.
    const recorded = new Map<string, Recorded>();
    {
      const context = await browser.newContext();
      await context.addCookies([{ ...cookie, url }]);
      await context.addInitScript({ content: READY_SCRIPT });
      const page = await context.newPage();
      const pending: Promise<void>[] = [];
      page.on('response', (res) => {
        const u = new URL(res.url());
        const type = res.headers()['content-type'] ?? '';
        if (!u.pathname.startsWith('/v1/') || type.startsWith('text/event-stream')) return;
        pending.push(res.body().then((body) => void recorded.set(u.pathname + u.search, { status: res.status(), type, body }), () => undefined));
      });
      await page.goto(`${url}/ui/`);
      await page.waitForFunction(() => (globalThis as { __tesseraReady?: number }).__tesseraReady !== undefined, undefined, { timeout: 30_000 });
      await Promise.all(pending);
      await context.close();
    }
    baseline = await baselineServer(recorded);

    for (let i = 0; i < WARMUP; i++) {
      await firstLoad(browser, url, cookie);
      await firstLoad(browser, baseline.url, undefined);
    }
    const real: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      real.push(await firstLoad(browser, url, cookie));
      bare.push(await firstLoad(browser, baseline.url, undefined));
    }
    real.sort((a, b) => a - b);
    bare.sort((a, b) => a - b);
    const p50 = percentile(real, 50);
    const b50 = percentile(bare, 50);
    rows.push(
      {
        name: `console first load on loopback, navigation start → overview data rendered, median of ${SAMPLES} cold loads (max ${Math.round(real[real.length - 1]!)} ms; ${AGENTS} agents)`,
        value: p50,
        unit: 'ms',
        baseline: { name: 'same files + recorded API answers from a bare node:http server', value: b50, unit: 'ms' },
        ratio: p50 / b50,
        ratioNote: 'Tessera / bare server',
        goal: `≤ ${GOAL_MS} ms`,
        met: p50 <= GOAL_MS,
      },
    );
    return rows;
  } finally {
    await browser.close().catch(() => undefined);
    await baseline?.close();
    await tessera.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
