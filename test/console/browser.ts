/**
 * The console's browser harness (issue 11 "Tests"): Debian's headless Chromium driven by
 * playwright-core against a real Tessera (test/e2e/harness.ts). One browser per test file
 * (`launchConsoleBrowser`, ~1 s to start); each test gets a fresh context (its own cookies).
 * Every response the page receives is captured with its body for the leak scan; event streams
 * (their bodies never end) are listed apart and scanned by `readEventStream` instead.
 *
 * When Chromium is missing the tests SKIP with a message naming the package (`apt-get install
 * chromium`); they never pass silently. `TESSERA_CHROMIUM` points at another binary.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';
/** The flags the contract fixes (CONSOLE-CONTRACT.md "Browser tests"); playwright adds `--headless`. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/**
 * Set while the console's pages (ui-a, ui-b) are not merged: the tests that need them are
 * skipped with this reason (not run, not passed). Set to undefined once the pages are in.
 */
export const PAGES_TODO: string | undefined = 'needs the console pages (overview … operators), not merged yet';
export const VIEWPORT = { width: 1280, height: 800 };
/** How long a locator waits for the page to show something (a condition, not a sleep). */
export const UI_TIMEOUT_MS = 15_000;

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  return `no Chromium at ${CHROMIUM}: the console's browser tests need it — run \`apt-get install chromium\` (Debian) or set TESSERA_CHROMIUM`;
}

/** Skips the test (with the reason) when Chromium is missing; true when skipped. */
export function skipWithoutChromium(t: TestContext): boolean {
  const why = chromiumMissing();
  if (why) t.skip(why);
  return why !== undefined;
}

export interface CapturedResponse {
  url: string;
  status: number;
  contentType: string;
  body: string;
}

export interface ConsolePage {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Every response body the page received so far (await `settle()` first for the latest). */
  readonly responses: CapturedResponse[];
  /** URLs of event streams the page opened (bodies not capturable; scan them with readEventStream). */
  readonly streams: string[];
  /** Waits until every captured response's body has been read. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export interface ConsoleBrowser {
  readonly browser: Browser;
  /** A fresh context (no cookies) and page, every response captured. */
  newPage(opts?: { bypassCSP?: boolean }): Promise<ConsolePage>;
  close(): Promise<void>;
}

/**
 * Launches Chromium with the contract's flags. `chromium.launch()` gives the browser a new empty
 * `--user-data-dir` of its own (a temp dir it removes on close; it refuses the flag from us), and
 * each `newPage()` a fresh incognito-like context, so that each test has cookies of its own.
 */
export async function launchConsoleBrowser(): Promise<ConsoleBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
  const pages = new Set<ConsolePage>();
  return {
    browser,
    async newPage(opts = {}) {
      const context = await browser.newContext({ viewport: VIEWPORT, bypassCSP: opts.bypassCSP ?? false, serviceWorkers: 'block' });
      context.setDefaultTimeout(UI_TIMEOUT_MS);
      const page = await context.newPage();
      const cp = capture(page, context);
      pages.add(cp);
      return cp;
    },
    async close() {
      for (const p of pages) await p.close().catch(() => undefined);
      await browser.close().catch(() => undefined);
    },
  };
}

function capture(page: Page, context: BrowserContext): ConsolePage {
  const responses: CapturedResponse[] = [];
  const streams: string[] = [];
  const pending = new Set<Promise<void>>();
  const onResponse = (res: import('playwright-core').Response): void => {
    const contentType = res.headers()['content-type'] ?? '';
    if (contentType.startsWith('text/event-stream')) {
      streams.push(res.url());
      return;
    }
    const status = res.status();
    if (status >= 300 && status < 400) return; // no body for redirects
    const p = res
      .text()
      .then((body) => void responses.push({ url: res.url(), status, contentType, body }))
      .catch(() => undefined) // the page navigated away before the body was read: nothing was rendered from it
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  page.on('response', onResponse);
  return {
    page,
    context,
    responses,
    streams,
    async settle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    async close() {
      await context.close().catch(() => undefined);
    },
  };
}

/** Opens the console and signs in through the real sign-in form; resolves once the nav shows. */
export async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/ui/`);
  await page.getByLabel('Operator token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('signout').waitFor();
}

/**
 * Every place in `texts` where a sensitive value occurs (as is, or JSON/URL-escaped). Returns
 * `where: <first 8 chars>…` lines — never the value itself.
 */
export function findLeaks(texts: readonly { where: string; text: string }[], sensitive: Iterable<string>): string[] {
  const found: string[] = [];
  for (const value of sensitive) {
    if (typeof value !== 'string' || value.length < 8) continue;
    const spellings = new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)]);
    for (const { where, text } of texts) {
      if ([...spellings].some((s) => text.includes(s))) found.push(`${where}: ${value.slice(0, 8)}…`);
    }
  }
  return found;
}

/**
 * Reads an event stream with the page's cookies from the first event (`Last-Event-ID: 0`) until
 * `until(text)` holds or `maxBytes` arrive; returns the raw text (for the leak scan).
 */
export async function readEventStream(url: string, cookie: string, until: (text: string) => boolean, maxBytes = 4 << 20): Promise<string> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { cookie, accept: 'text/event-stream', 'last-event-id': '0' }, signal: ac.signal });
  if (!res.ok || !res.body) throw new Error(`event stream ${url}: ${res.status} ${await res.text()}`);
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      if (until(text) || text.length >= maxBytes) break;
    }
  } finally {
    ac.abort();
  }
  return text;
}

/** The `name=value` cookie header of a context for `url` (what the browser would send). */
export async function cookieHeader(context: BrowserContext, url: string): Promise<string> {
  return (await context.cookies(url)).map((c) => `${c.name}=${c.value}`).join('; ');
}

const SHOT_DIR = mkdtempSync(join(tmpdir(), 'tessera-console-shots-'));
/** The names photographed so far in this process (a test compares them with docs/console.md). */
export const screenshotsTaken = new Set<string>();
export const DOCS_SHOT_DIR = 'docs/console';

/**
 * A screenshot of the viewport (1280×800): always to a temp dir (returned path); also to
 * docs/console/<name>.png when TESSERA_SCREENSHOTS=1 (the set docs/console.md shows).
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`screenshot name ${name}`);
  const path = join(SHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: false, animations: 'disabled', caret: 'hide' });
  screenshotsTaken.add(name);
  if (process.env.TESSERA_SCREENSHOTS === '1') {
    mkdirSync(DOCS_SHOT_DIR, { recursive: true });
    writeFileSync(join(DOCS_SHOT_DIR, `${name}.png`), readFileSync(path));
  }
  return path;
}

/** The rules the accessibility check asserts on (issue 11: labels, contrast, landmarks, names). */
export const A11Y_RULES = [
  'label', 'label-title-only', 'form-field-multiple-labels', 'select-name', 'aria-input-field-name', 'aria-toggle-field-name',
  'color-contrast',
  'landmark-one-main', 'landmark-no-duplicate-main', 'landmark-unique', 'landmark-main-is-top-level', 'region', 'bypass',
  'button-name', 'link-name', 'input-button-name', 'image-alt', 'svg-img-alt', 'role-img-alt', 'aria-dialog-name', 'document-title', 'html-has-lang', 'frame-title',
  'aria-allowed-attr', 'aria-required-attr', 'aria-valid-attr', 'aria-valid-attr-value', 'aria-roles', 'aria-hidden-focus', 'nested-interactive', 'duplicate-id-aria',
];

export interface A11yViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

const AXE_SOURCE = readFileSync('node_modules/axe-core/axe.min.js', 'utf8');

/**
 * Runs axe-core in the page and returns the serious/critical violations of A11Y_RULES. axe is
 * evaluated through the DevTools protocol (`page.evaluate` with its source), which the page's
 * CSP (`script-src 'self'`, no inline) does not govern: the check runs against the page exactly
 * as served, without bypassCSP.
 */
export async function axeViolations(page: Page): Promise<A11yViolation[]> {
  const loaded = await page.evaluate(() => typeof (globalThis as { axe?: unknown }).axe !== 'undefined');
  if (!loaded) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async (rules) => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const r = await axe.run(document, { runOnly: { type: 'rule', values: rules }, resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  }, A11Y_RULES);
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Presses Tab (at most `max` times) until the focused element matches `selector`; true when reached. */
export async function tabUntil(page: Page, selector: string, max = 60): Promise<boolean> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((sel) => document.activeElement?.matches(sel) ?? false, selector)) return true;
  }
  return false;
}
