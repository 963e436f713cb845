/** Headless Chromium (Debian's, driven by playwright-core) for the web console's browser tests. */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { haveBinary } from './binaries.js';

/** Debian's chromium (`.ci/run` installs it). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Where screenshots go: docs/screenshots (committed; the README shows them) when the run sets
 * UPDATE_SCREENSHOTS=1, else a temporary folder, so a test run leaves the checkout as it was.
 */
export const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots') : join(tmpdir(), 'heimdall-screenshots');

/** Whether Chromium is installed: in CI a missing one fails, locally the tests are skipped with the reason printed. */
export function haveChromium(): boolean {
  return haveBinary(CHROMIUM);
}

/** Launches headless Chromium with no network of its own (no sync, updates, QUIC or first-run pages). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** What a page did that a test checks afterwards: every request, and every console error, failed request and CSP violation. */
export interface PageRecord {
  /** Every URL requested, in order. */
  requests: string[];
  /** Console messages of type error, and uncaught page errors. */
  errors: string[];
  /** Requests that failed (network) or answered 400 and above; requests the page aborted itself (navigation) are not failures. */
  failed: string[];
  /** Content-Security-Policy violations the page reported. */
  cspViolations(): Promise<string[]>;
}

/**
 * Opens a fresh browser context (its own session storage) on a page that records what it does. CSP
 * violations are collected by a `securitypolicyviolation` listener installed before any page script.
 */
export async function openPage(browser: Browser, options: { viewport?: { width: number; height: number } } = {}): Promise<{ context: BrowserContext; page: Page; record: PageRecord }> {
  const context = await browser.newContext({ viewport: options.viewport ?? { width: 1360, height: 860 }, colorScheme: 'light' });
  // A string: the Node tsconfig has no DOM types.
  await context.addInitScript(`(() => {
    const seen = (window.__csp = []);
    document.addEventListener('securitypolicyviolation', (e) => seen.push(e.violatedDirective + ' ' + e.blockedURI));
  })()`);
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  const failed: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText ?? ''}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.request().method()} ${r.url()}: HTTP ${r.status()}`);
  });
  const cspViolations = (): Promise<string[]> => page.evaluate<string[]>('window.__csp ?? []');
  return { context, page, record: { requests, errors, failed, cspViolations } };
}

/** Signs in on the console's sign-in page with `token` and waits for the navigation to show. */
export async function signIn(page: Page, consoleUrl: string, token: string): Promise<void> {
  await page.goto(consoleUrl);
  await page.locator('input[name="token"]').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('header nav').waitFor();
}

/** Saves a screenshot of the page as `<name>.png` in SCREENSHOTS. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Fails with what a page did wrong: console errors, failed requests, CSP violations. */
export async function expectClean(record: PageRecord): Promise<void> {
  expect(record.errors).toEqual([]);
  expect(record.failed).toEqual([]);
  expect(await record.cspViolations()).toEqual([]);
}
