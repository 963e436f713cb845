/**
 * The console's services and security pages in headless Chromium against a real agent (auth on, two
 * admin tokens and a query-only one, embedded storage) filled by the real OpenTelemetry SDK (spans of
 * two services, some errors) and by Envoy RLS checks over a limit (real gRPC client): the services
 * list and one service's charts and operations, the approval of a mode change by a second admin,
 * what a token without admin is offered. Saves services.png, service.png and security.png.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { context, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { expectClean, haveChromium, launchBrowser, openPage, type PageRecord, screenshot, signIn } from '../support/browser.js';
import { EDGE_LIMITS, overLimitBurst } from '../support/over-limit.js';
import { sendTraces } from '../support/otel-clients.js';
import { tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const TOKENS = {
  adminA: 'console3-admin-a-token-4c1d9e7f',
  adminB: 'console3-admin-b-token-8a2f6b3d',
  reader: 'console3-reader-token-5e9c1a7b',
  apps: 'console3-ingest-token-2b7d4f9a',
  envoy: 'console3-envoy-token-6f3a8c2e',
};
/** Over-limit hits of one entity in one window that make an incident; each refused check below adds this many. */
const THRESHOLD = 5;
const OFFENDER = 'remote_address=192.0.2.50';

/**
 * Spans sent, by service: `checkout` 10 server spans (POST /pay 6 with 2 errors, GET /cart 4 with 1
 * error); `inventory` 5 server spans (GET /stock, 1 error), each with an internal child (never an error).
 */
const EXPECTED = {
  checkout: { spans: 10, errors: 3 },
  inventory: { spans: 10, errors: 1 },
};

/** Sends the spans of EXPECTED through the OTLP/HTTP protobuf exporter, each with a known duration. */
async function sendSpans(otlpHttpUrl: string): Promise<void> {
  const send = (service: string, fill: (tracer: Tracer) => void) => sendTraces(otlpHttpUrl, TOKENS.apps, service, fill);
  const now = Date.now();
  const server = (tracer: Tracer, name: string, i: number, error: boolean) => {
    const start = now - 60_000 + i * 1_000;
    const span = tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: start });
    if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: 'failed' });
    return { span, start, end: () => span.end(start + 10 + i * 5) };
  };
  await send('checkout', (tracer) => {
    for (let i = 0; i < 6; i++) server(tracer, 'POST /pay', i, i < 2).end();
    for (let i = 0; i < 4; i++) server(tracer, 'GET /cart', i, i === 0).end();
  });
  await send('inventory', (tracer) => {
    for (let i = 0; i < 5; i++) {
      const s = server(tracer, 'GET /stock', i, i === 4);
      tracer.startSpan('SELECT stock', { kind: SpanKind.INTERNAL, startTime: s.start + 1 }, trace.setSpan(context.active(), s.span)).end(s.start + 5);
      s.end();
    }
  });
}

/** A Connect JSON call with `token` (for waiting on what the agent stored). */
async function call<T>(adminUrl: string, token: string, method: string, body: unknown): Promise<T> {
  const res = await fetch(`${adminUrl}/heimdall.v1.${method}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** The data-key of each row, in order. */
const keys = async (rows: Locator): Promise<Array<string | null>> => Promise.all((await rows.all()).map((r) => r.getAttribute('data-key')));

/** Cell texts of a table's row (by its data-key). */
const rowCells = (page: Page, table: string, key: string) => page.locator(`[data-testid="${table}"] tr[data-key="${key}"] td`).allTextContents();

describe.runIf(haveChromium())('console: services and security pages in Chromium', () => {
  const dir = tempDir();
  let t: TestAgent;
  let browser: Browser;
  let adminA: { context: BrowserContext; page: Page; record: PageRecord };
  let ui: string;
  const records: PageRecord[] = [];

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'limits'));
    writeFileSync(join(dir.path, 'limits', 'edge.yaml'), EDGE_LIMITS);
    t = await startTestAgent({
      auth: {
        enabled: true,
        tokens: [
          { name: 'admin-a', token: TOKENS.adminA, scopes: ['admin', 'query'] },
          { name: 'admin-b', token: TOKENS.adminB, scopes: ['admin', 'query'] },
          { name: 'reader', token: TOKENS.reader, scopes: ['query'] },
          { name: 'apps', token: TOKENS.apps, scopes: ['ingest'] },
          { name: 'envoy', token: TOKENS.envoy, scopes: ['ratelimit'] },
        ],
      },
      ingest: { batch: { max_delay: '20ms' } },
      ratelimit: { config_path: join(dir.path, 'limits'), over_limit_window: '1s', security: { incident_threshold: THRESHOLD } },
      jobs: { system_check: { enabled: false } },
    });
    ui = `${t.adminUrl}/ui/`;
    await Promise.all([sendSpans(t.otlpHttpUrl), overLimitBurst(t.grpcAddress, TOKENS.envoy, THRESHOLD)]);
    // What the pages show is stored once its batch and its over-limit window are written.
    type Services = { services?: Array<{ serviceName?: string; spanCount?: string }> };
    await until(async () => {
      const s = await call<Services>(t.adminUrl, TOKENS.reader, 'QueryService/ListServices', {});
      return Object.entries(EXPECTED).every(([name, e]) => s.services?.some((x) => x.serviceName === name && Number(x.spanCount) === e.spans));
    }, 60_000, 'both services stored');
    type Dashboard = { topEntities?: Array<{ hits?: string }> };
    await until(async () => (await call<Dashboard>(t.adminUrl, TOKENS.adminA, 'SecurityService/GetDashboard', {})).topEntities?.reduce((n, e) => n + Number(e.hits), 0) === 3 * THRESHOLD + 3, 60_000, 'the refusals on the dashboard');
    browser = await launchBrowser();
    adminA = await openPage(browser);
    records.push(adminA.record);
    await signIn(adminA.page, ui, TOKENS.adminA);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    dir.cleanup();
  });

  it('services: lists both services with their span and error counts, rate and a sparkline', async () => {
    const { page } = adminA;
    await page.goto(`${ui}services?since=1h`);
    const rows = page.locator('[data-testid="services"] tbody tr[data-key]');
    await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(2);
    expect(await keys(rows)).toEqual(['checkout', 'inventory']);
    for (const [name, e] of Object.entries(EXPECTED)) {
      // ListServices and GetRedSeries answer apart: wait for the rate.
      await expect.poll(async () => (await rowCells(page, 'services', name))[3], { timeout: 20_000 }).toMatch(/\/s$/);
      const cells = await rowCells(page, 'services', name);
      // Service, spans, error spans, requests/s, error rate, p95, sparkline, traces.
      expect(cells.slice(0, 3)).toEqual([name, String(e.spans), String(e.errors)]);
    }
    // Requests are entry spans: inventory's 5 server spans, 1 an error.
    expect((await rowCells(page, 'services', 'inventory'))[4]).toBe('20.0%');
    expect((await rowCells(page, 'services', 'checkout'))[4]).toBe('30.0%');
    expect(await page.locator('[data-testid="services"] svg.sparkline').count()).toBe(2);
    const errorsLink = page.locator('[data-testid="services"] tr[data-key="checkout"] a.err-count');
    expect(await errorsLink.getAttribute('href')).toBe('/ui/traces?service=checkout&status=error&since=1h');
    // The window is in the URL.
    await page.locator('select[name="since"]').selectOption('6h');
    await expect.poll(() => page.url()).toBe(`${ui}services?since=6h`);
    await expect.poll(() => rows.count()).toBe(2);
    await page.locator('select[name="since"]').selectOption('1h');
    await expect.poll(() => page.url()).toBe(`${ui}services?since=1h`);
    await page.waitForLoadState('networkidle');
    await screenshot(page, 'services');
    // A service's name leads to its page.
    await page.locator('[data-testid="services"] tr[data-key="checkout"] a').first().click();
    await expect.poll(() => page.url()).toBe(`${ui}services/checkout?since=1h`);
    await expectClean(adminA.record);
  }, 60_000);

  it('a service: draws its RED charts, and each operation links to the trace search of that service and operation', async () => {
    const { page } = adminA;
    await page.goto(`${ui}services/checkout?since=1h`);
    for (const chart of ['chart-rate', 'chart-errors', 'chart-duration']) await page.locator(`[data-testid="${chart}"] canvas`).waitFor({ timeout: 20_000 });
    await expect.poll(() => page.locator('[data-testid="stat-errors"] .stat-value').textContent()).toBe('3');
    expect(await page.locator('[data-testid="stat-spans"] .stat-value').textContent()).toBe('10');
    expect(await page.locator('[data-testid="stat-error-rate"] .stat-value').textContent()).toBe('30.0%');
    const ops = page.locator('[data-testid="operations"] tbody tr[data-key]');
    await expect.poll(() => ops.count()).toBe(2);
    expect(await keys(ops)).toEqual(['GET /cart', 'POST /pay']);
    expect((await rowCells(page, 'operations', 'POST /pay')).slice(0, 3)).toEqual(['POST /pay', '6', '2']);
    expect((await rowCells(page, 'operations', 'POST /pay'))[4]).toBe('2 (33.3%)');
    expect((await rowCells(page, 'operations', 'GET /cart')).slice(0, 3)).toEqual(['GET /cart', '4', '1']);
    const op = page.locator('[data-testid="operations"] tr[data-key="POST /pay"] a.op-link');
    const target = new URL((await op.getAttribute('href')) ?? '', ui);
    expect([target.pathname, Object.fromEntries(target.searchParams)]).toEqual(['/ui/traces', { service: 'checkout', operation: 'POST /pay', since: '1h' }]);
    const errors = new URL((await page.locator('[data-testid="operations"] tr[data-key="POST /pay"] a.err-count').getAttribute('href')) ?? '', ui);
    expect(Object.fromEntries(errors.searchParams)).toEqual({ service: 'checkout', operation: 'POST /pay', status: 'error', since: '1h' });
    await page.waitForLoadState('networkidle');
    await screenshot(page, 'service');
    // The window picker keeps the service in the URL; a week's charts draw too.
    await page.locator('select[name="since"]').selectOption('7d');
    await expect.poll(() => page.url()).toBe(`${ui}services/checkout?since=7d`);
    await expect.poll(() => page.locator('[data-testid="operations"] tr[data-key="POST /pay"] a.op-link').getAttribute('href')).toBe('/ui/traces?service=checkout&operation=POST+%2Fpay&since=7d');
    await page.locator('[data-testid="chart-duration"] canvas').waitFor();
    await expect.poll(() => page.locator('[data-testid="stat-rate"] .stat-value').textContent()).toBe('0.000017/s');
    await expect.poll(async () => (await rowCells(page, 'operations', 'POST /pay'))[3]).toBe('0.0000099/s');
    await page.locator('select[name="since"]').selectOption('1h');
    await expect.poll(() => page.url()).toBe(`${ui}services/checkout?since=1h`);
    await op.click();
    await expect.poll(() => page.url()).toBe(target.href);
    await page.locator('main h1').waitFor();
    await expectClean(adminA.record);
  }, 60_000);

  it('security: shows the rate-limited entity; a mode change admin A requests waits, A may not approve it, admin B does', async () => {
    const { page, record } = adminA;
    await page.goto(`${ui}security?since=1h`);
    await expect.poll(() => page.locator('[data-testid="mode"]').textContent(), { timeout: 20_000 }).toBe('normal');
    await expect.poll(() => page.locator(`[data-testid="top-entities"] tr[data-key="${OFFENDER}"]`).count(), { timeout: 20_000 }).toBe(1);
    expect(await rowCells(page, 'top-entities', OFFENDER)).toEqual([OFFENDER, '15']);
    expect(await rowCells(page, 'top-entities', 'remote_address=192.0.2.51')).toEqual(['remote_address=192.0.2.51', '3']);
    expect(await rowCells(page, 'over-limit', 'edge/edge.remote_address')).toEqual(['edge', 'edge.remote_address', '18']);
    const incidents = await page.locator('[data-testid="incidents"] tbody tr[data-key]').allTextContents();
    expect(incidents.length).toBeGreaterThan(0);
    for (const row of incidents) expect(row).toContain(OFFENDER); // the other entity's 3 hits are under the threshold

    await page.locator('[data-testid="request-mode"] select[name="mode"]').selectOption('lockdown');
    await page.locator('[data-testid="request-mode"] input[name="reason"]').fill('credential stuffing');
    await page.getByRole('button', { name: 'Request mode change' }).click();
    await expect.poll(() => page.locator('[data-testid="action-notice"]').textContent()).toMatch(/^Action \S+ \(set mode lockdown\) is pending: a second admin \(not admin-a\) must approve it before it applies\.$/);
    const pending = page.locator('[data-testid="actions"] tbody tr[data-key]').first();
    await expect.poll(() => pending.locator('.badge').textContent()).toBe('pending');
    const id = (await pending.getAttribute('data-key')) ?? '';
    expect(await pending.textContent()).toContain('set mode lockdown');
    expect(await pending.textContent()).toContain('credential stuffing');
    await screenshot(page, 'security');

    // The requester's approval: the server refuses it, and the page shows its message.
    const refusal = page.waitForResponse((r) => r.url().endsWith('/heimdall.v1.SecurityService/ApproveAction'));
    await pending.getByRole('button', { name: 'Approve' }).click();
    expect((await refusal).status()).toBe(403);
    await expect.poll(() => page.locator('[data-testid="action-error"]').textContent()).toBe(`permission_denied: action ${id} must be approved by an admin other than the one who requested it (admin-a)`);
    await expect.poll(() => page.locator('[data-testid="mode"]').textContent()).toBe('normal'); // the dashboard may be reloading (…)
    // That refusal is an answered request (403), which Chromium also logs as a console error: exactly these two, nothing else.
    expect(record.failed).toEqual([`POST ${t.adminUrl}/heimdall.v1.SecurityService/ApproveAction: HTTP 403`]);
    expect(record.errors).toEqual(['Failed to load resource: the server responded with a status of 403 (Forbidden)']);
    record.failed.length = 0;
    record.errors.length = 0;
    await expectClean(record);

    const adminB = await openPage(browser);
    records.push(adminB.record);
    try {
      await signIn(adminB.page, ui, TOKENS.adminB);
      await adminB.page.goto(`${ui}security?since=1h`);
      const row = adminB.page.locator(`[data-testid="actions"] tr[data-key="${id}"]`);
      await row.getByRole('button', { name: 'Approve' }).click();
      await expect.poll(() => adminB.page.locator('[data-testid="action-notice"]').textContent()).toBe(`Action ${id} (set mode lockdown) approved: now executed.`);
      await expect.poll(() => adminB.page.locator('[data-testid="mode"]').textContent()).toBe('lockdown');
      await expect.poll(() => row.locator('.badge').textContent()).toBe('executed');
      expect(await row.textContent()).toContain('admin-b');
      await expectClean(adminB.record);
    } finally {
      await adminB.context.close();
    }
    // Admin A's page sees the new mode at its next refresh.
    await expect.poll(() => page.locator('[data-testid="mode"]').textContent(), { timeout: 20_000 }).toBe('lockdown');
    await expectClean(record);
  }, 90_000);

  it('security: a block admin A requests applies once admin B approves it, and shows with its end and reason; its Unblock is a request too, which admin A rejects', async () => {
    const { page, record } = adminA;
    const entity = 'remote_address=198.51.100.9';
    await page.goto(`${ui}security?since=1h`);
    await page.locator('[data-testid="request-block"] input[name="entity"]').fill(entity);
    await page.locator('[data-testid="request-block"] select[name="duration"]').selectOption('3600');
    await page.locator('[data-testid="request-block"] input[name="reason"]').fill('scraping');
    await page.getByRole('button', { name: 'Request block' }).click();
    await expect.poll(() => page.locator('[data-testid="action-notice"]').textContent()).toMatch(new RegExp(`^Action \\S+ \\(block ${entity} for 1h\\) is pending: a second admin \\(not admin-a\\) must approve it`));
    expect(await page.locator(`[data-testid="blocks"] tr[data-key="${entity}"]`).count()).toBe(0);
    await expectClean(record);

    const adminB = await openPage(browser);
    records.push(adminB.record);
    try {
      const b = adminB.page;
      await signIn(b, ui, TOKENS.adminB);
      await b.goto(`${ui}security?since=1h`);
      const pending = b.locator('[data-testid="actions"] tbody tr[data-key]').first();
      await expect.poll(() => pending.textContent(), { timeout: 20_000 }).toContain(`block ${entity} for 1h`);
      await pending.getByRole('button', { name: 'Approve' }).click();
      const block = b.locator(`[data-testid="blocks"] tr[data-key="${entity}"]`);
      await expect.poll(() => block.count()).toBe(1);
      const [shown, until, reason, by] = await block.locator('td').allTextContents();
      expect([shown, reason, by]).toEqual([entity, 'scraping', 'admin-a / admin-b']);
      expect(until).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
      // Unblocking is a change too: it waits for another admin.
      await block.getByRole('button', { name: 'Unblock' }).click();
      await expect.poll(() => b.locator('[data-testid="action-notice"]').textContent()).toMatch(new RegExp(`\\(unblock ${entity}\\) is pending: a second admin \\(not admin-b\\)`));
      await expect.poll(() => b.locator('[data-testid="actions"] tbody tr[data-key]').first().textContent()).toContain(`unblock ${entity}`);
      expect(await block.count()).toBe(1);
      await expectClean(adminB.record);
    } finally {
      await adminB.context.close();
    }
    // Admin A rejects B's unblock: the block stays.
    await page.goto(`${ui}security?since=1h`);
    const unblock = page.locator('[data-testid="actions"] tbody tr[data-key]').first();
    await expect.poll(() => unblock.textContent(), { timeout: 20_000 }).toContain(`unblock ${entity}`);
    await unblock.getByRole('button', { name: 'Reject' }).click();
    await expect.poll(() => page.locator('[data-testid="action-notice"]').textContent()).toMatch(new RegExp(`\\(unblock ${entity}\\) rejected: now rejected\\.$`));
    // No action is pending now: the newest, the rejected unblock, comes first.
    await expect.poll(() => unblock.locator('.badge').textContent()).toBe('rejected');
    expect(await unblock.textContent()).toContain(`unblock ${entity}`);
    expect(await page.locator(`[data-testid="blocks"] tr[data-key="${entity}"]`).count()).toBe(1);
    await expectClean(record);
  }, 90_000);

  it('a query-only token gets the services pages but no security page, approve, reject or request button', async () => {
    const reader = await openPage(browser);
    records.push(reader.record);
    try {
      const { page } = reader;
      await signIn(page, ui, TOKENS.reader);
      expect(await page.locator('header nav a').allTextContents()).not.toContain('Security');
      await page.goto(`${ui}security?since=1h`);
      await page.locator('main h1').waitFor();
      expect(await page.locator('main').textContent()).toContain('Security needs a token with the admin scope.');
      for (const name of ['Approve', 'Reject', 'Request mode change', 'Request block', 'Unblock']) expect(await page.getByRole('button', { name }).count()).toBe(0);
      expect(reader.record.requests.filter((u) => u.includes('SecurityService'))).toEqual([]);
      await page.goto(`${ui}services/inventory?since=1h`);
      await page.locator('[data-testid="chart-rate"] canvas').waitFor({ timeout: 20_000 });
      await expect.poll(() => page.locator('[data-testid="operations"] tbody tr[data-key]').count()).toBe(2);
      await expectClean(reader.record);
    } finally {
      await reader.context.close();
    }
  }, 60_000);

  it('no token is in a URL requested, nor in the agent log', () => {
    const urls = records.flatMap((r) => r.requests);
    expect(urls.length).toBeGreaterThan(10);
    for (const token of Object.values(TOKENS)) {
      expect(urls.filter((u) => u.includes(token))).toEqual([]);
      expect(t.logs.filter((l) => JSON.stringify(l).includes(token))).toEqual([]);
    }
  });
});
