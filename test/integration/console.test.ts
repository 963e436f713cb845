/**
 * The web console in headless Chromium against a real agent (auth on, embedded storage) filled by the
 * real OpenTelemetry SDK exporters: sign-in, every page of the first half (overview, logs, events,
 * jobs), what a token without admin is offered, where the token goes, and the CSP. Saves a screenshot
 * of each page to docs/screenshots/.
 */
import { context, trace } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP } from '../../src/console/console-routes.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { expectClean, haveChromium, launchBrowser, openPage, type PageRecord, screenshot, signIn } from '../support/browser.js';
import { sendTraces, SeverityNumber, testResource } from '../support/otel-clients.js';
import { tempDir } from '../support/temp.js';

const ADMIN = 'console-admin-token-7f3a9c1e5b';
const VIEWER = 'console-viewer-token-2d8e4a6f0c';
const INGEST = 'console-ingest-token-9b1c3e5a7d';
/** A word only the known log record holds. */
const NEEDLE = `declined-${Date.now().toString(36)}`;

/** Sends one trace (a server span with a child) and its logs, the known one among them, through the OTLP/HTTP protobuf exporters. */
async function sendTelemetry(otlpHttpUrl: string): Promise<{ traceId: string }> {
  const headers = { authorization: `Bearer ${INGEST}` };
  const tracer = new BasicTracerProvider({ resource: testResource('checkout'), spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${otlpHttpUrl}/v1/traces`, headers }))] });
  const logs = new LoggerProvider({ resource: testResource('checkout'), processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${otlpHttpUrl}/v1/logs`, headers }) })] });
  const logger = logs.getLogger('checkout');
  const root = tracer.getTracer('console-test').startSpan('POST /pay');
  const ctx = trace.setSpan(context.active(), root);
  const child = tracer.getTracer('console-test').startSpan('charge card', {}, ctx);
  logger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: 'charging card for order 42', context: trace.setSpan(ctx, child) });
  logger.emit({ severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: `payment ${NEEDLE}: card expired`, context: ctx });
  logger.emit({ severityNumber: SeverityNumber.WARN, severityText: 'WARN', body: 'retrying with the backup processor', context: ctx });
  child.end();
  root.end();
  for (const p of [tracer, logs]) {
    await p.forceFlush();
    await p.shutdown();
  }
  return { traceId: root.spanContext().traceId };
}

/** Sends `n` spans of service `frontend` (traffic for the overview's rate chart). */
const sendSpans = (otlpHttpUrl: string, n: number): Promise<void> =>
  sendTraces(otlpHttpUrl, INGEST, 'frontend', (tracer) => {
    for (let i = 0; i < n; i += 1) tracer.startSpan(`GET /page/${i % 5}`).end();
  });

describe.runIf(haveChromium())('web console in Chromium', () => {
  const exportsDir = tempDir();
  let t: TestAgent;
  let browser: Browser;
  let admin: { context: BrowserContext; page: Page; record: PageRecord };
  let ui: string;
  let traceId: string;
  const records: PageRecord[] = [];

  beforeAll(async () => {
    t = await startTestAgent({
      auth: {
        enabled: true,
        tokens: [
          { name: 'ops', token: ADMIN, scopes: ['admin', 'query'] },
          { name: 'viewer', token: VIEWER, scopes: ['query'] },
          { name: 'apps', token: INGEST, scopes: ['ingest'] },
        ],
      },
      ingest: { batch: { max_delay: '20ms' } },
      jobs: { export_dir: exportsDir.path, scheduled: [{ name: 'nightly-retention', schedule: '0 0 3 * * *', kind: 'retention', params: { dry_run: true } }] },
    });
    ui = `${t.adminUrl}/ui/`;
    ({ traceId } = await sendTelemetry(t.otlpHttpUrl));
    // Rows for an export long enough to report progress many times (one chunk of 2,000 rows at a time).
    const start = Date.now() - 3_600_000;
    await t.agent.storage.transport.command(
      `INSERT INTO heimdall_events (Timestamp, Id, EventType, Source, Severity, Message, Payload)
       SELECT fromUnixTimestamp64Milli(toInt64(${start} + number)), toString(number), 'bulk', 'export-test', 2, concat('row ', toString(number)), '{}' FROM numbers(300000)`,
    );
    browser = await launchBrowser();
    admin = await openPage(browser);
    records.push(admin.record);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    exportsDir.cleanup();
  });

  it('asks for a token, refuses an unknown one, signs in and shows the overview with every component', async () => {
    const { page } = admin;
    await page.goto(ui);
    await page.locator('input[name="token"]').waitFor();
    await screenshot(page, 'sign-in');
    await page.locator('input[name="token"]').fill('not-a-token-of-this-agent');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('[role="alert"]').textContent()).toContain('unknown API token');
    await signIn(page, ui, ADMIN);
    await expect.poll(() => page.locator('[data-testid="scopes"]').textContent()).toBe('ops: admin, query');
    const components = page.locator('[data-testid="components"] tbody tr');
    await expect.poll(() => components.count(), { timeout: 20_000 }).toBeGreaterThan(5);
    expect(await page.locator('[data-testid="components"] tr[data-key="storage"]').textContent()).toContain('ready');
    // The chart needs three /metrics readings, 5 s apart: traffic meanwhile, so it shows a rate.
    let feeding = Promise.resolve();
    const feed = setInterval(() => {
      feeding = feeding.then(() => sendSpans(t.otlpHttpUrl, 50));
    }, 1_000);
    try {
      await page.locator('[data-testid="ingest-chart"] canvas').waitFor({ timeout: 45_000 });
    } finally {
      clearInterval(feed);
      await feeding;
    }
    expect(await page.locator('[data-testid="ingest-rate"] .stat-value').textContent()).not.toBe('…');
    await screenshot(page, 'overview');
    await expectClean(admin.record);
  }, 90_000);

  it('logs: a search finds the known record, and its link leads to the URL of its trace', async () => {
    const { page } = admin;
    await page.goto(`${ui}logs?service=checkout&window=1h`);
    const rows = page.locator('[data-testid="logs"] tbody tr[data-key]');
    await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(3);
    await screenshot(page, 'logs');
    // The search form puts the search in the URL, so it can be pasted.
    await page.locator('input[name="q"]').fill(NEEDLE);
    await page.locator('select[name="severity"]').selectOption('error');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.url()).toBe(`${ui}logs?service=checkout&severity=error&q=${NEEDLE}&window=1h`);
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain(`payment ${NEEDLE}: card expired`);
    await rows.first().locator('a.trace-link').click();
    await expect.poll(() => page.url()).toBe(`${ui}traces/${traceId}`);
    // A pasted link opens the same search.
    await page.goto(`${ui}logs?q=${NEEDLE}&window=1h`);
    await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(1);
    await expectClean(admin.record);
  }, 60_000);

  it('jobs: pauses, resumes and triggers a scheduled job', async () => {
    const { page } = admin;
    await page.goto(`${ui}jobs`);
    const row = page.locator('[data-testid="scheduled-jobs"] tr[data-key="nightly-retention"]');
    await row.waitFor({ timeout: 20_000 });
    expect(await row.locator('.badge').first().textContent()).toBe('active');
    await row.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => row.locator('.badge').first().textContent()).toBe('paused');
    expect(t.agent.jobs.list().find((j) => j.spec.name === 'nightly-retention')?.paused).toBe(true);
    await row.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => row.locator('.badge').first().textContent()).toBe('active');
    expect(t.agent.jobs.list().find((j) => j.spec.name === 'nightly-retention')?.paused).toBe(false);
    // Trigger: a manual run of the job shows in its run history.
    await row.getByRole('button', { name: 'Trigger' }).click();
    await row.getByRole('link', { name: 'nightly-retention' }).click();
    await expect.poll(() => page.url()).toBe(`${ui}jobs?job=nightly-retention`);
    const runs = page.locator('[data-testid="runs"] tbody tr[data-key]');
    await expect.poll(() => runs.allTextContents(), { timeout: 20_000 }).toEqual([expect.stringMatching(/nightly-retention.*manual/)]);
    await expectClean(admin.record);
  }, 60_000);

  it('jobs: submits an on-demand export and shows its progress move to the end (WatchJob)', async () => {
    const { page } = admin;
    await page.goto(`${ui}jobs`);
    await page.locator('[data-testid="submit-job"] select[name="kind"]').selectOption('export');
    await page.locator('[data-testid="submit-job"] textarea[name="params"]').fill(JSON.stringify({ source: 'events', filters: { source: 'export-test' }, since: '2h', chunk_rows: 2000 }));
    // Every progress value the page shows, as the DOM changes (not sampled: no timing involved).
    // (In-page scripts are strings: the Node tsconfig has no DOM types.)
    await page.evaluate(`(() => {
      const seen = (window.__progress = []);
      new MutationObserver(() => {
        const v = document.querySelector('[data-testid="watch-job"] progress')?.getAttribute('data-progress');
        if (v != null && seen[seen.length - 1] !== Number(v)) seen.push(Number(v));
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-progress'] });
    })()`);
    await page.locator('[data-testid="submit-job"]').getByRole('button', { name: 'Submit' }).click();
    await expect.poll(() => page.url()).toMatch(/\/ui\/jobs\?watch=[0-9a-f-]{36}$/);
    await expect.poll(() => page.locator('[data-testid="watch-job"] h2 .badge').textContent(), { timeout: 90_000 }).toBe('succeeded');
    const seen = await page.evaluate<number[]>('window.__progress');
    expect(seen[seen.length - 1]).toBe(100);
    expect(seen.filter((v) => v > 0 && v < 100).length).toBeGreaterThan(1);
    for (let i = 1; i < seen.length; i += 1) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1] as number);
    expect(await page.locator('[data-testid="watch-job"]').textContent()).toMatch(/300000 rows/);
    const id = new URL(page.url()).searchParams.get('watch') ?? '';
    await expect.poll(() => page.locator(`[data-testid="runs"] tr[data-key="${id}"]`).count(), { timeout: 15_000 }).toBe(1);
    await screenshot(page, 'jobs');
    await expectClean(admin.record);
  }, 150_000);

  it('events: filters in the URL, and a correlation id shows every event of that operation', async () => {
    const { page } = admin;
    await page.goto(`${ui}events?source=scheduler&window=1h`);
    const rows = page.locator('[data-testid="events"] tbody tr[data-key]');
    await expect.poll(() => rows.count(), { timeout: 20_000 }).toBeGreaterThan(1);
    await screenshot(page, 'events');
    const link = rows.first().locator('a.correlation-link');
    const correlation = new URL((await link.getAttribute('href')) ?? '', ui).searchParams.get('correlation') ?? '';
    expect(correlation).not.toBe('');
    await link.click();
    await expect.poll(() => page.url()).toBe(`${ui}events?correlation=${encodeURIComponent(correlation)}`);
    await expect.poll(() => page.locator('h1').textContent()).toBe(`Events of ${correlation}`);
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    for (const link of await rows.locator('a.correlation-link').all()) {
      expect(new URL((await link.getAttribute('href')) ?? '', ui).searchParams.get('correlation')).toBe(correlation);
    }
    await expectClean(admin.record);
  }, 60_000);

  it('every page and placeholder loads without console errors, failed requests or CSP violations', async () => {
    const { page } = admin;
    for (const path of ['', 'services', 'traces', `traces/${traceId}`, 'logs', 'events', 'jobs', 'security']) {
      await page.goto(`${ui}${path}`);
      await page.locator('main h1').waitFor();
      // Let the page's calls answer before looking.
      await page.waitForLoadState('networkidle').catch(() => undefined);
    }
    await expectClean(admin.record);
    const res = await fetch(ui);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  }, 60_000);

  it('a token without the admin scope is offered no admin page or button', async () => {
    const viewer = await openPage(browser);
    records.push(viewer.record);
    try {
      const { page } = viewer;
      await signIn(page, ui, VIEWER);
      await expect.poll(() => page.locator('[data-testid="scopes"]').textContent()).toBe('viewer: query');
      expect(await page.locator('header nav a').allTextContents()).toEqual(['Overview', 'Services', 'Traces', 'Logs', 'Events']);
      await page.goto(`${ui}jobs`);
      await page.locator('main h1').waitFor();
      for (const name of ['Pause', 'Resume', 'Trigger', 'Submit']) expect(await page.getByRole('button', { name }).count()).toBe(0);
      expect(await page.locator('main').textContent()).toContain('Jobs need a token with the admin scope.');
      await page.goto(ui);
      await page.locator('[data-testid="ingest-rate"]').waitFor();
      expect(await page.locator('[data-testid="components"]').count()).toBe(0);
      await page.goto(`${ui}logs?q=${NEEDLE}&window=1h`);
      await expect.poll(() => page.locator('[data-testid="logs"] tbody tr[data-key]').count(), { timeout: 20_000 }).toBe(1);
      // Signing out forgets the token: the next visit asks again.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.locator('input[name="token"]').waitFor();
      expect(await page.evaluate('sessionStorage.length')).toBe(0);
      await page.goto(ui);
      await page.locator('input[name="token"]').waitFor();
      await expectClean(viewer.record);
    } finally {
      await viewer.context.close();
    }
  }, 60_000);

  it('the token is never in a URL requested, nor in the agent log', () => {
    const urls = records.flatMap((r) => r.requests);
    expect(urls.length).toBeGreaterThan(20);
    for (const token of [ADMIN, VIEWER]) {
      expect(urls.filter((u) => u.includes(token))).toEqual([]);
      expect(t.logs.filter((l) => JSON.stringify(l).includes(token))).toEqual([]);
    }
  });
});

describe.runIf(haveChromium())('web console with auth off', () => {
  let t: TestAgent;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestAgent();
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('needs no sign-in: every page is offered at once, and there is no sign out', async () => {
    const { context, page, record } = await openPage(browser);
    try {
      await page.goto(`${t.adminUrl}/ui/jobs`);
      await page.locator('[data-testid="scheduled-jobs"] tr[data-key="system-check"]').waitFor({ timeout: 20_000 });
      expect(await page.locator('[data-testid="scopes"]').textContent()).toBe('auth off');
      expect(await page.locator('header nav a').allTextContents()).toEqual(['Overview', 'Services', 'Traces', 'Logs', 'Events', 'Jobs', 'Security']);
      expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
      expect(await page.locator('input[name="token"]').count()).toBe(0);
      await expectClean(record);
    } finally {
      await context.close();
    }
  }, 60_000);
});
