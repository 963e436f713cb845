/**
 * The console's trace search and trace view in headless Chromium against a real agent (auth on,
 * embedded storage) filled by the real OpenTelemetry SDK over OTLP/HTTP: a known trace (root → two
 * children → a grandchild with an error, a child starting before its parent) and its logs. The search
 * finds it by service and attribute, and by status; the view shows the tree in order with its depths,
 * a span's attributes and the trace's logs and events; the URLs of a search and of a selected span open the same
 * view in a fresh browser. Saves traces.png and trace.png to docs/screenshots/.
 */
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { EventService, Severity } from '../../src/gen/heimdall/v1/events_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { expectClean, haveChromium, launchBrowser, openPage, screenshot, signIn } from '../support/browser.js';
import { sendLogs, sendTraces, SeverityNumber, testResource } from '../support/otel-clients.js';

const ADMIN = 'traces-admin-token-5c2e8a1f9d';
const INGEST = 'traces-ingest-token-3b7d1f6e2a';
/** The known trace's attribute value: no other trace has it. */
const ORDER = `ord-${Date.now().toString(36)}`;

/** The known trace's spans in tree order (children by start time): name and depth. */
const TREE: Array<[string, number]> = [
  ['GET /checkout', 0],
  ['charge card', 1],
  ['authorize payment', 2],
  ['reserve stock', 1],
];

/** Providers for two services sending over OTLP/HTTP protobuf; the caller shuts them down. */
function providers(otlpHttpUrl: string) {
  const headers = { authorization: `Bearer ${INGEST}` };
  const tracer = (service: string) =>
    new BasicTracerProvider({ resource: testResource(service), spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${otlpHttpUrl}/v1/traces`, headers }))] });
  const logs = new LoggerProvider({ resource: testResource('shop'), processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${otlpHttpUrl}/v1/logs`, headers }) })] });
  return { shop: tracer('shop'), payments: tracer('payments'), logs };
}

/**
 * Sends the known trace and one more trace of `shop` without an error. Start times are set: `charge
 * card` starts 30 ms before its parent (time order would put it first), `reserve stock` after it.
 */
async function sendTelemetry(otlpHttpUrl: string): Promise<{ traceId: string; spanIds: Record<string, string>; t0: number }> {
  const p = providers(otlpHttpUrl);
  const t0 = Date.now() - 5_000;
  const shop = p.shop.getTracer('console-traces');
  const payments = p.payments.getTracer('console-traces');
  const logger = p.logs.getLogger('shop');
  const root = shop.startSpan('GET /checkout', { kind: SpanKind.SERVER, startTime: t0, attributes: { 'order.id': ORDER, 'http.method': 'GET' } });
  const rootCtx = trace.setSpan(context.active(), root);
  const charge = payments.startSpan('charge card', { kind: SpanKind.SERVER, startTime: t0 - 30, attributes: { 'payment.provider': 'acme', 'amount.cents': 4200 } }, rootCtx);
  charge.addEvent('fraud check passed', { 'fraud.score': '0.02' }, t0 + 5);
  const chargeCtx = trace.setSpan(rootCtx, charge);
  const authorize = payments.startSpan('authorize payment', { kind: SpanKind.CLIENT, startTime: t0 + 10 }, chargeCtx);
  authorize.setStatus({ code: SpanStatusCode.ERROR, message: 'card declined by issuer' });
  const reserve = shop.startSpan('reserve stock', { kind: SpanKind.INTERNAL, startTime: t0 + 200 }, rootCtx);
  logger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: `checkout of ${ORDER} started`, timestamp: t0 + 5, context: rootCtx });
  logger.emit({ severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: 'issuer declined the card', timestamp: t0 + 90, attributes: { 'decline.code': '51' }, context: trace.setSpan(chargeCtx, authorize) });
  authorize.end(t0 + 120);
  charge.end(t0 + 150);
  reserve.end(t0 + 350);
  root.end(t0 + 400);
  shop.startSpan('GET /health', { kind: SpanKind.SERVER, startTime: t0 + 1_000 }).end(t0 + 1_002);
  for (const provider of [p.shop, p.payments, p.logs]) {
    await provider.forceFlush();
    await provider.shutdown();
  }
  const spanIds = Object.fromEntries([root, charge, authorize, reserve].map((s, i) => [TREE[i]?.[0] ?? '', s.spanContext().spanId]));
  return { traceId: root.spanContext().traceId, spanIds, t0 };
}

/** Writes a Heimdall event on `charge card` of the known trace (WriteEvents over gRPC, as the CLI client does). */
async function sendEvent(grpcAddress: string, traceId: string, spanId: string, atMs: number): Promise<void> {
  const client = connect({ addr: grpcAddress, token: INGEST });
  try {
    const event = { eventType: 'payment.declined', source: 'payments', severity: Severity.WARNING, message: 'issuer declined the order', traceId, spanId, timestamp: timestampFromMs(atMs) };
    await client.unary(EventService.method.writeEvents, { events: [event] });
  } finally {
    client.close();
  }
}

/** Sends `n` one-span traces of service `bulk` (more than a page of the search). */
const sendBulk = (otlpHttpUrl: string, n: number): Promise<void> =>
  sendTraces(otlpHttpUrl, INGEST, 'bulk', (tracer) => {
    for (let i = 0; i < n; i += 1) tracer.startSpan(`job ${i}`).end();
  });

/** Log records of service `bulk`: more than one page of the logs page (100). */
const BULK_LOGS = 130;

/** The waterfall's span rows as [name, depth], in DOM order. */
async function spanRows(page: Page): Promise<Array<[string, number]>> {
  const rows = page.locator('[data-testid="waterfall"] .wf-span');
  return Promise.all((await rows.all()).map(async (r) => [(await r.locator('.span-name').textContent()) ?? '', Number(await r.getAttribute('data-depth'))] as [string, number]));
}

describe.runIf(haveChromium())('console traces in Chromium', () => {
  let t: TestAgent;
  let browser: Browser;
  let ui: string;
  let traceId: string;
  let spanIds: Record<string, string>;

  beforeAll(async () => {
    t = await startTestAgent({
      auth: {
        enabled: true,
        tokens: [
          { name: 'ops', token: ADMIN, scopes: ['admin', 'query'] },
          { name: 'apps', token: INGEST, scopes: ['ingest'] },
        ],
      },
      ingest: { batch: { max_delay: '20ms' } },
    });
    ui = `${t.adminUrl}/ui/`;
    const sent = await sendTelemetry(t.otlpHttpUrl);
    ({ traceId, spanIds } = sent);
    await sendEvent(t.grpcAddress, traceId, spanIds['charge card'] ?? '', sent.t0 + 130);
    await sendBulk(t.otlpHttpUrl, 25);
    await sendLogs(t.otlpHttpUrl, INGEST, 'bulk', (logger) => {
      for (let i = 0; i < BULK_LOGS; i += 1) logger.emit({ severityNumber: SeverityNumber.INFO, body: `bulk line ${i}`, timestamp: Date.now() - 60_000 + i });
    });
    browser = await launchBrowser();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('search: finds the known trace by service and attribute (the URL holds the search) and by status', async () => {
    const { context: ctx, page, record } = await openPage(browser);
    try {
      await signIn(page, `${ui}traces`, ADMIN);
      const rows = page.locator('[data-testid="traces"] tbody tr[data-key]');
      // The service picker is filled from ListServices; the search form puts the filters in the URL.
      await expect.poll(() => page.locator('select[name="service"] option').allTextContents(), { timeout: 20_000 }).toEqual(['any', 'bulk', 'payments', 'shop']);
      await page.locator('select[name="service"]').selectOption('shop');
      await expect.poll(() => page.locator('select[name="operation"] option').allTextContents()).toEqual(['any', 'GET /checkout', 'GET /health', 'reserve stock']);
      await page.getByRole('button', { name: '+ Attribute' }).click();
      await page.locator('input[name="attr-key-0"]').fill('order.id');
      await page.locator('input[name="attr-value-0"]').fill(ORDER);
      await page.getByRole('button', { name: 'Search' }).click();
      await expect.poll(() => page.url()).toBe(`${ui}traces?service=shop&attr=order.id%3D${ORDER}&since=1h`);
      await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(1);
      const row = page.locator(`[data-testid="traces"] tr[data-key="${traceId}"]`);
      const cells = await row.locator('td').allTextContents();
      expect(cells.slice(1)).toEqual(['shop · GET /checkout', expect.any(String), '430ms', '4', '1', 'payments, shop']);
      expect(await row.locator('.badge.sev-error').textContent()).toBe('1');
      // Status error: only the known trace (its error span is of payments; the other trace of shop has none).
      await page.goto(`${ui}traces?status=error&since=1h`);
      await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(1);
      expect(await rows.first().getAttribute('data-key')).toBe(traceId);
      await page.goto(`${ui}traces?service=shop&since=1h`);
      await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(2);
      await page.locator('[data-testid="trace-scatter"] canvas').waitFor();
      await screenshot(page, 'traces');
      // A page of 20, then the rest on demand.
      await page.goto(`${ui}traces?service=bulk&since=1h`);
      await expect.poll(() => rows.count(), { timeout: 20_000 }).toBe(20);
      await page.getByRole('button', { name: 'Load more' }).click();
      await expect.poll(() => rows.count()).toBe(25);
      expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);
      expect(new Set(await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-key')))).size).toBe(25);
      // A malformed duration is refused in the page, not sent.
      await page.goto(`${ui}traces?min=soon&since=1h`);
      await expect.poll(() => page.locator('[role="alert"]').textContent()).toContain('"soon" is not a duration');
      await expectClean(record);
    } finally {
      await ctx.close();
    }
  }, 90_000);

  it('view: the waterfall shows the tree in order with depths, span details with attributes, and the logs on the timeline', async () => {
    const { context: ctx, page, record } = await openPage(browser);
    try {
      await signIn(page, `${ui}traces?service=shop&attr=order.id%3D${ORDER}&since=1h`, ADMIN);
      // The pasted search URL, after sign-in, shows the same search.
      const link = page.locator(`[data-testid="traces"] tr[data-key="${traceId}"] a.trace-link`);
      await link.waitFor({ timeout: 20_000 });
      expect(await page.locator('input[name="attr-value-0"]').inputValue()).toBe(ORDER);
      await link.click();
      await expect.poll(() => page.url()).toBe(`${ui}traces/${traceId}`);
      await page.locator('[data-testid="waterfall"] .wf-span').first().waitFor({ timeout: 20_000 });
      expect(await spanRows(page)).toEqual(TREE);
      // Each log sits under its span, one level deeper, in time order with the span's children; and marks the time axis.
      const items = await page.locator('[data-testid="waterfall"] :is(.wf-span, .wf-log, .wf-event)').evaluateAll((els) =>
        els.map((e) => `${e.getAttribute('data-depth') ?? ''} ${(e.querySelector('.span-name, .note-text')?.textContent ?? '').trim()}`),
      );
      // (The root's log comes after `charge card`, which starts before it.)
      expect(items).toEqual([
        '0 GET /checkout',
        '1 charge card',
        '2 authorize payment',
        '3 issuer declined the card',
        '2 payment.declined: issuer declined the order',
        `1 checkout of ${ORDER} started`,
        '1 reserve stock',
      ]);
      expect(await page.locator('[data-testid="trace-axis"] .wf-axis-mark').count()).toBe(3);
      expect(await page.locator(`.wf-span[data-span-id="${spanIds['authorize payment']}"]`).getAttribute('class')).toContain('error');
      // A log's attributes on click.
      await page.locator('.wf-log', { hasText: 'issuer declined the card' }).click();
      expect(await page.locator('[data-testid="note-detail"] tr[data-key="decline.code"] td').textContent()).toBe('51');
      // A span's details; the selection goes into the URL.
      await page.locator(`.wf-span[data-span-id="${spanIds['charge card']}"]`).click();
      const details = page.locator('[data-testid="span-details"]');
      await expect.poll(() => details.locator('h2').textContent()).toBe('charge card');
      expect(page.url()).toBe(`${ui}traces/${traceId}?span=${spanIds['charge card']}`);
      expect(await details.locator('[data-testid="span-attributes"] tr[data-key="payment.provider"] td').textContent()).toBe('acme');
      expect(await details.locator('[data-testid="span-attributes"] tr[data-key="amount.cents"] td').textContent()).toBe('4200');
      expect(await details.textContent()).toContain(spanIds['GET /checkout']);
      expect(await details.locator('[data-testid="span-notes"]').textContent()).toContain('payment.declined: issuer declined the order');
      // Its span event, 35 ms after the span's start, with its attributes.
      const spanEvents = details.locator('[data-testid="span-events"] li');
      expect(await spanEvents.count()).toBe(1);
      expect(await spanEvents.first().textContent()).toMatch(/^\+35(\.0)? ?ms fraud check passed/);
      expect(await spanEvents.first().locator('tr[data-key="fraud.score"] td').textContent()).toBe('0.02');
      await screenshot(page, 'trace');
      await page.locator(`.wf-span[data-span-id="${spanIds['authorize payment']}"]`).click();
      await expect.poll(() => details.textContent()).toContain('card declined by issuer');
      expect(await details.locator('[data-testid="span-notes"]').textContent()).toContain('issuer declined the card');
      await expectClean(record);
    } finally {
      await ctx.close();
    }
  }, 90_000);

  it('a selected span URL opens the same view in a fresh browser, and the logs page links to it', async () => {
    const { context: ctx, page, record } = await openPage(browser);
    try {
      const url = `${ui}traces/${traceId}?span=${spanIds['charge card']}`;
      await signIn(page, url, ADMIN);
      const details = page.locator('[data-testid="span-details"]');
      await expect.poll(() => details.locator('h2').textContent(), { timeout: 20_000 }).toBe('charge card');
      expect(await spanRows(page)).toEqual(TREE);
      expect(await page.locator('.wf-span.selected').getAttribute('data-span-id')).toBe(spanIds['charge card']);
      // From the logs page: the trace link lands on this view.
      await page.goto(`${ui}logs?service=shop&window=1h`);
      const trace = page.locator('[data-testid="logs"] a.trace-link').first();
      await trace.waitFor({ timeout: 20_000 });
      await trace.click();
      await expect.poll(() => page.url()).toBe(`${ui}traces/${traceId}`);
      await expect.poll(() => spanRows(page), { timeout: 20_000 }).toEqual(TREE);
      // An id with no data says so.
      await page.goto(`${ui}traces/${'0'.repeat(31)}1`);
      await page.locator('[data-testid="no-trace"]').waitFor({ timeout: 20_000 });
      await expectClean(record);
    } finally {
      await ctx.close();
    }
  }, 90_000);

  it('the logs page pages through more than a page: Older shows the rest, Newer the first page again', async () => {
    const { context: ctx, page, record } = await openPage(browser);
    try {
      await signIn(page, `${ui}logs?service=bulk&window=1h`, ADMIN);
      const rows = page.locator('[data-testid="logs"] tbody tr');
      const bodies = async () => (await rows.allTextContents()).map((text) => /bulk line (\d+)/.exec(text)?.[1]).filter((n) => n !== undefined).map(Number);
      await expect.poll(bodies, { timeout: 20_000 }).toHaveLength(100);
      const first = await bodies();
      expect(first[0]).toBe(BULK_LOGS - 1); // newest first
      await page.getByRole('button', { name: 'Older' }).click();
      await expect.poll(bodies, { timeout: 20_000 }).toHaveLength(BULK_LOGS - 100);
      expect(new Set([...first, ...(await bodies())]).size).toBe(BULK_LOGS);
      expect(await page.getByRole('button', { name: 'Older' }).count()).toBe(0);
      await page.getByRole('button', { name: 'Newer' }).click();
      await expect.poll(bodies, { timeout: 20_000 }).toEqual(first);
      expect(await page.getByRole('button', { name: 'Newer' }).count()).toBe(0);
      await expectClean(record);
    } finally {
      await ctx.close();
    }
  }, 90_000);
});
