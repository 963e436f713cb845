/**
 * The queries the views need (ListServices, SearchTraces, GetRedSeries, GetEventSeries, GetTrace in
 * tree order) against the embedded store, filled by the real OpenTelemetry SDK and OTLP/HTTP
 * exporters with tenant-bound tokens; and the CLI commands over them (services, traces, logs, trace).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.js';
import { EventService, Severity } from '../../src/gen/heimdall/v1/events_pb.js';
import { QueryService, SpanStatus } from '../../src/gen/heimdall/v1/query_pb.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { processTimeout, runCli } from '../support/cli.js';
import { SeverityNumber, testResource } from '../support/otel-clients.js';
import { refused, until } from '../support/wait.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { SearchTracesRequestSchema } from '../../src/gen/heimdall/v1/query_pb.js';

type SearchRequest = MessageInitShape<typeof SearchTracesRequestSchema>;

const TOKENS = {
  ingestA: 'queries-ingest-tenant-a-01',
  ingestB: 'queries-ingest-tenant-b-01',
  queryA: 'queries-query-tenant-a-001',
  queryB: 'queries-query-tenant-b-001',
  query: 'queries-query-every-tenant',
};

const MINUTE = 60_000;
/** The start of a 10-minute window that ended at least 10 minutes ago: every span and event is placed in it. */
const T0 = Math.floor((Date.now() - 20 * MINUTE) / (10 * MINUTE)) * 10 * MINUTE;
const ts = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 });
const WINDOW = { startTime: ts(T0), endTime: ts(T0 + 10 * MINUTE) };

/** A real SDK sending with a token: one tracer per service, one flush. */
function sender(t: TestAgent, token: string) {
  const providers: BasicTracerProvider[] = [];
  const headers = { authorization: `Bearer ${token}` };
  return {
    tracer(service: string): Tracer {
      const exporter = new OTLPTraceExporter({ url: `${t.otlpHttpUrl}/v1/traces`, headers });
      // Up to 1000 events a span (the SDK keeps 128 by default): GetTrace's own bound is tested.
      const provider = new BasicTracerProvider({ resource: testResource(service), spanLimits: { eventCountLimit: 1000 }, spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 4096, maxExportBatchSize: 1024, scheduledDelayMillis: 3_600_000 })] });
      providers.push(provider);
      return provider.getTracer('queries-test');
    },
    logger(service: string) {
      const exporter = new OTLPLogExporter({ url: `${t.otlpHttpUrl}/v1/logs`, headers });
      const provider = new LoggerProvider({ resource: testResource(service), processors: [new BatchLogRecordProcessor({ exporter })] });
      return { logger: provider.getLogger('queries-test'), flush: async () => (await provider.forceFlush(), await provider.shutdown()) };
    },
    async flush() {
      for (const p of providers) {
        await p.forceFlush();
        await p.shutdown();
      }
    },
  };
}

/** Starts and ends a span at fixed times (ms since the epoch); a root unless `parent` is given. */
function span(tracer: Tracer, name: string, kind: SpanKind, startMs: number, durationMs: number, options: { parent?: Span; error?: boolean; attributes?: Record<string, string>; events?: Array<{ name: string; atMs: number; attributes: Record<string, string> }> } = {}): Span {
  const ctx = options.parent ? trace.setSpan(ROOT_CONTEXT, options.parent) : ROOT_CONTEXT;
  const s = tracer.startSpan(name, { kind, startTime: new Date(startMs), attributes: options.attributes, root: !options.parent }, ctx);
  for (const e of options.events ?? []) s.addEvent(e.name, e.attributes, new Date(e.atMs));
  s.setStatus({ code: options.error ? SpanStatusCode.ERROR : SpanStatusCode.OK });
  s.end(new Date(startMs + durationMs));
  return s;
}

const fieldOf = (err: ServiceError): string => err.details.split(':')[0] ?? '';

describe('queries for the views', () => {
  let t: TestAgent;
  const client = (token: string) => connect({ addr: t.grpcAddress, token });
  const ids: { t1: string; t2: string; t2Parent: string; bTrace: string } = { t1: '', t2: '', t2Parent: 'aaaaaaaaaaaaaaaa', bTrace: '' };

  /** Tenant a: RED data for checkout and worker, a three-service trace with clock skew (T1), a trace without its root (T2), logs. */
  async function sendTenantA(): Promise<void> {
    const a = sender(t, TOKENS.ingestA);
    const checkout = a.tracer('checkout');
    const payments = a.tracer('payments');
    const worker = a.tracer('worker');
    const batch = a.tracer('batch');
    // 100 POST /pay in minute 2 lasting 1..100 ms, every tenth an error; the first five call out (client spans: not requests).
    for (let i = 0; i < 100; i++) {
      const root = span(checkout, 'POST /pay', SpanKind.SERVER, T0 + 2 * MINUTE + i * 500, i + 1, { error: i % 10 === 0, attributes: { 'http.route': '/pay' } });
      if (i < 5) span(checkout, 'call payments', SpanKind.CLIENT, T0 + 2 * MINUTE + i * 500, 1, { parent: root });
    }
    for (let i = 0; i < 20; i++) span(checkout, 'GET /cart', SpanKind.SERVER, T0 + 5 * MINUTE + i * 1000, 200);
    for (let i = 0; i < 3; i++) span(worker, 'process order', SpanKind.CONSUMER, T0 + 4 * MINUTE + i * 1000, 10);
    // T1 in minute 8: the payments span starts 5 ms before its parent (clock skew) and fails.
    const at = T0 + 8 * MINUTE;
    const root = span(checkout, 'POST /pay', SpanKind.SERVER, at, 400);
    const charge = span(checkout, 'charge', SpanKind.CLIENT, at + 10, 350, { parent: root, attributes: { 'payment.method': 'card' } });
    const remote = span(payments, 'POST /charge', SpanKind.SERVER, at + 5, 300, {
      parent: charge,
      error: true,
      events: [
        { name: 'retry', atMs: at + 100, attributes: { attempt: '1' } },
        { name: 'exception', atMs: at + 250, attributes: { 'exception.type': 'CardDeclined', 'exception.message': 'card declined' } },
      ],
    });
    ids.t1 = root.spanContext().traceId;
    // T2 in minute 9: its parent is not stored.
    const missingParent = trace.wrapSpanContext({ traceId: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', spanId: ids.t2Parent, traceFlags: TraceFlags.SAMPLED, isRemote: true });
    const nightly = batch.startSpan('nightly', { kind: SpanKind.INTERNAL, startTime: new Date(T0 + 9 * MINUTE) }, trace.setSpan(ROOT_CONTEXT, missingParent));
    // 130 span events: GetTrace shows the first 128.
    const noisy = Array.from({ length: 130 }, (_, i) => ({ name: `tick ${i}`, atMs: T0 + 9 * MINUTE + 1, attributes: {} }));
    span(batch, 'step', SpanKind.INTERNAL, T0 + 9 * MINUTE + 1, 10, { parent: nightly, events: noisy });
    nightly.end(new Date(T0 + 9 * MINUTE + 50));
    ids.t2 = nightly.spanContext().traceId;
    await a.flush();
    const logs = a.logger('payments');
    const ctx = trace.setSpan(ROOT_CONTEXT, remote);
    logs.logger.emit({ timestamp: new Date(at + 6), severityNumber: SeverityNumber.WARN, severityText: 'WARN', body: 'card declined, retrying', context: ctx });
    logs.logger.emit({ timestamp: new Date(at + 7), severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: 'charge started', context: ctx });
    await logs.flush();
  }

  /** Tenant b: one POST /pay of checkout in minute 3 and a service of its own. */
  async function sendTenantB(): Promise<void> {
    const b = sender(t, TOKENS.ingestB);
    const checkout = b.tracer('checkout');
    ids.bTrace = span(checkout, 'POST /pay', SpanKind.SERVER, T0 + 3 * MINUTE, 5).spanContext().traceId;
    span(b.tracer('b-only'), 'secret', SpanKind.SERVER, T0 + 3 * MINUTE, 5);
    await b.flush();
  }

  beforeAll(async () => {
    t = await startTestAgent({
      auth: {
        enabled: true,
        tokens: [
          { name: 'ingest-a', token: TOKENS.ingestA, scopes: ['ingest'], tenant: 'a' },
          { name: 'ingest-b', token: TOKENS.ingestB, scopes: ['ingest'], tenant: 'b' },
          { name: 'query-a', token: TOKENS.queryA, scopes: ['query'], tenant: 'a' },
          { name: 'query-b', token: TOKENS.queryB, scopes: ['query'], tenant: 'b' },
          { name: 'query', token: TOKENS.query, scopes: ['query'] },
        ],
      },
      ingest: { batch: { max_delay: '20ms' } },
      jobs: { system_check: { enabled: false } },
    });
    await sendTenantA();
    await sendTenantB();
    const at = (ms: number) => ts(T0 + ms);
    await client(TOKENS.ingestA).unary(EventService.method.writeEvents, {
      events: [
        { eventType: 'e', source: 'series', severity: Severity.INFO, message: 'i1', timestamp: at(MINUTE + 1) },
        { eventType: 'e', source: 'series', severity: Severity.INFO, message: 'i2', timestamp: at(MINUTE + 2) },
        { eventType: 'e', source: 'series', severity: Severity.ERROR, message: 'e1', timestamp: at(MINUTE + 3) },
        ...[1, 2, 3].map((n) => ({ eventType: 'e', source: 'series', severity: Severity.WARNING, message: `w${n}`, timestamp: at(6 * MINUTE + n) })),
      ],
    });
    // 133 spans of tenant a, 2 of tenant b, 2 log records, 6 events.
    const stored = "SELECT (SELECT count() FROM otel_traces) + (SELECT count() FROM otel_logs) + (SELECT count() FROM heimdall_events WHERE Source = 'series') AS n";
    await until(async () => Number((await t.agent.storage.transport.query<{ n: string }>(stored, {}))[0]?.n) >= 143, 60_000, 'every span, log record and event stored');
  }, 120_000);
  afterAll(async () => t.stop());

  describe('ListServices', () => {
    it('lists services and their operations with span and error counts, by name, for the tenant only', async () => {
      const res = await client(TOKENS.queryA).unary(QueryService.method.listServices, WINDOW);
      expect(res.truncated).toBe(false);
      expect(res.services.map((s) => [s.serviceName, Number(s.spanCount), Number(s.errorCount), s.operations.map((o) => [o.spanName, Number(o.spanCount), Number(o.errorCount)])])).toEqual([
        ['batch', 2, 0, [['nightly', 1, 0], ['step', 1, 0]]],
        ['checkout', 127, 10, [['GET /cart', 20, 0], ['POST /pay', 101, 10], ['call payments', 5, 0], ['charge', 1, 0]]],
        ['payments', 1, 1, [['POST /charge', 1, 1]]],
        ['worker', 3, 0, [['process order', 3, 0]]],
      ]);
      const b = await client(TOKENS.queryB).unary(QueryService.method.listServices, WINDOW);
      expect(b.services.map((s) => [s.serviceName, Number(s.spanCount)])).toEqual([['b-only', 1], ['checkout', 1]]);
      const all = await client(TOKENS.query).unary(QueryService.method.listServices, WINDOW);
      expect(all.services.find((s) => s.serviceName === 'checkout')?.spanCount).toBe(128n);
    });

    it('keeps the busiest services and operations within max_services and max_operations, and says so', async () => {
      const res = await client(TOKENS.queryA).unary(QueryService.method.listServices, { ...WINDOW, maxServices: 2, maxOperations: 1 });
      expect(res.truncated).toBe(true);
      expect(res.services.map((s) => [s.serviceName, s.operations.map((o) => o.spanName), s.operationsTruncated])).toEqual([
        ['checkout', ['POST /pay'], true],
        ['worker', ['process order'], false],
      ]);
      for (const [req, field] of [[{ maxServices: 1001 }, 'max_services'], [{ maxOperations: 1001 }, 'max_operations'], [{ startTime: ts(0) }, 'start_time']] as const) {
        const err = await refused(client(TOKENS.queryA).unary(QueryService.method.listServices, req));
        expect([err.code, fieldOf(err)]).toEqual([status.INVALID_ARGUMENT, field]);
      }
    });
  });

  describe('SearchTraces', () => {
    const search = (req: SearchRequest, token = TOKENS.queryA) => client(token).unary(QueryService.method.searchTraces, { ...WINDOW, ...req } as SearchRequest);

    it('finds a trace by any span matching every filter, summarised over the whole trace', async () => {
      const expected = { traceId: ids.t1, rootServiceName: 'checkout', rootSpanName: 'POST /pay', rootMissing: false, spanCount: 3, errorCount: 1, services: ['checkout', 'payments'], durationMs: 400 };
      for (const req of [
        { serviceName: 'payments' },
        { attributes: [{ key: 'payment.method', value: 'card' }] },
        { serviceName: 'checkout', spanName: 'charge', minDurationMs: 300, maxDurationMs: 360 },
        { minDurationMs: 250 },
        { serviceName: 'payments', status: SpanStatus.ERROR },
      ]) {
        const res = await search(req);
        expect(res.traces.map((x) => ({ ...x, startTime: undefined, $typeName: undefined }))).toEqual([{ ...expected, startTime: undefined, $typeName: undefined }]);
        expect(res.traces[0]?.startTime).toEqual(expect.objectContaining(ts(T0 + 8 * MINUTE)));
      }
      for (const req of [{ attributes: [{ key: 'payment.method', value: 'cash' }] }, { serviceName: 'payments', status: SpanStatus.OK }, { serviceName: "x' OR 1=1 --" }, { serviceName: 'b-only' }]) {
        expect((await search(req)).traces).toEqual([]);
      }
    });

    it('says when a trace has no root stored, naming its earliest span', async () => {
      const res = await search({ serviceName: 'batch' });
      expect(res.traces.map((x) => [x.traceId, x.rootMissing, x.rootServiceName, x.rootSpanName, x.spanCount])).toEqual([[ids.t2, true, 'batch', 'nightly', 2]]);
    });

    it('pages newest first without gaps or repeats, 20 a page by default', async () => {
      const req = { serviceName: 'checkout', spanName: 'POST /pay', pageSize: 30 };
      const first = await search({ serviceName: 'checkout', spanName: 'POST /pay' });
      expect(first.traces).toHaveLength(20);
      const seen: Array<{ id: string; start: bigint }> = [];
      let pageToken = '';
      do {
        const res = await search({ ...req, pageToken });
        seen.push(...res.traces.map((x) => ({ id: x.traceId, start: (x.startTime?.seconds ?? 0n) * 1_000_000_000n + BigInt(x.startTime?.nanos ?? 0) })));
        pageToken = res.nextPageToken;
      } while (pageToken);
      expect(seen).toHaveLength(101);
      expect(new Set(seen.map((s) => s.id)).size).toBe(101);
      expect(seen.map((s) => s.start)).toEqual([...seen.map((s) => s.start)].sort((x, y) => (x > y ? -1 : x < y ? 1 : 0)));
      expect(seen[0]?.id).toBe(ids.t1);
      // Errors among them: every tenth, and the five with a client span have two spans.
      const errors = await search({ serviceName: 'checkout', spanName: 'POST /pay', status: SpanStatus.ERROR, pageSize: 200 });
      expect(errors.traces).toHaveLength(10);
      const short = await search({ serviceName: 'checkout', maxDurationMs: 5, spanName: 'POST /pay' });
      expect(short.traces.map((x) => x.spanCount).sort()).toEqual([2, 2, 2, 2, 2]);
    });

    it('refuses each unbounded input with INVALID_ARGUMENT naming its field, and a token made for other filters', async () => {
      const cases: Array<[SearchRequest, string]> = [
        [{ pageSize: 201 }, 'page_size'],
        [{ attributes: Array.from({ length: 17 }, (_, i) => ({ key: `k${i}`, value: 'v' })) }, 'attributes'],
        [{ attributes: [{ key: 'k'.repeat(257), value: 'v' }] }, 'attributes[0].key'],
        [{ attributes: [{ key: '', value: 'v' }] }, 'attributes[0].key'],
        [{ attributes: [{ key: 'k', value: 'v'.repeat(1025) }] }, 'attributes[0].value'],
        [{ serviceName: 's'.repeat(1025) }, 'service_name'],
        [{ spanName: 's'.repeat(1025) }, 'span_name'],
        [{ minDurationMs: -1 }, 'min_duration_ms'],
        [{ minDurationMs: 10, maxDurationMs: 5 }, 'max_duration_ms'],
        [{ status: 9 as SpanStatus }, 'status'],
        [{ startTime: ts(0) }, 'start_time'],
      ];
      for (const [req, field] of cases) {
        const err = await refused(search(req));
        expect([err.code, fieldOf(err)]).toEqual([status.INVALID_ARGUMENT, field]);
      }
      const page = await search({ serviceName: 'checkout', pageSize: 1 });
      const err = await refused(search({ serviceName: 'payments', pageSize: 1, pageToken: page.nextPageToken }));
      expect([err.code, fieldOf(err)]).toEqual([status.INVALID_ARGUMENT, 'page_token']);
    });

    it("shows a tenant only its own traces, and GetTrace nothing of another tenant's", async () => {
      expect((await search({ serviceName: 'b-only' }, TOKENS.queryB)).traces).toHaveLength(1);
      expect((await search({ serviceName: 'payments' }, TOKENS.queryB)).traces).toEqual([]);
      expect((await search({ serviceName: 'b-only' }, TOKENS.query)).traces).toHaveLength(1);
      const other = await client(TOKENS.queryA).unary(QueryService.method.getTrace, { id: { case: 'traceId', value: ids.bTrace } });
      expect(other.items).toEqual([]);
    });
  });

  describe('GetRedSeries', () => {
    const red = (req: object, token = TOKENS.queryA) => client(token).unary(QueryService.method.getRedSeries, { ...WINDOW, maxBuckets: 10, ...req });

    it('gives rate, errors and p50/p95/p99 of the entry spans per one-minute bucket, matching the spans sent', async () => {
      const res = await red({ serviceName: 'checkout' });
      expect(res.stepSeconds).toBe(60);
      expect(res.bucketTimes).toHaveLength(10);
      expect(res.bucketTimes[0]).toEqual(expect.objectContaining(ts(T0)));
      expect(res.truncated).toBe(false);
      const [s] = res.series;
      expect(s?.serviceName).toBe('checkout');
      // Minute 2: the 100 POST /pay (the client spans do not count), minute 5: 20 GET /cart, minute 8: T1's root.
      expect(s?.requests.map(Number)).toEqual([0, 0, 100, 0, 0, 20, 0, 0, 1, 0]);
      expect(s?.errors.map(Number)).toEqual([0, 0, 10, 0, 0, 0, 0, 0, 0, 0]);
      expect(s?.rate[2]).toBeCloseTo(100 / 60, 10);
      expect(s?.errorRate[2]).toBeCloseTo(0.1, 10);
      // Durations 1..100 ms: quantilesTDigest interpolates between neighbours; allow 1.5 ms either way.
      expect(s?.p50Ms[2]).toBeGreaterThan(49);
      expect(s?.p50Ms[2]).toBeLessThan(52);
      expect(s?.p95Ms[2]).toBeGreaterThan(94);
      expect(s?.p95Ms[2]).toBeLessThan(97);
      expect(s?.p99Ms[2]).toBeGreaterThan(98);
      expect(s?.p99Ms[2]).toBeLessThanOrEqual(100);
      expect([s?.p50Ms[5], s?.p99Ms[5], s?.p50Ms[8]]).toEqual([200, 200, 400]);
      expect([s?.p50Ms[0], s?.rate[0], s?.errorRate[0]]).toEqual([0, 0, 0]);
    });

    it('splits by operation or by service, keeping the busiest max_series', async () => {
      const ops = await red({ serviceName: 'checkout', bySpanName: true });
      expect(ops.series.map((x) => [x.spanName, x.requests.reduce((a, b) => a + b, 0n)])).toEqual([['GET /cart', 20n], ['POST /pay', 101n]]);
      const one = await red({ serviceName: 'checkout', spanName: 'GET /cart' });
      expect(one.series.map((x) => [x.serviceName, x.spanName, x.requests[5]])).toEqual([['checkout', 'GET /cart', 20n]]);
      const services = await red({});
      expect(services.series.map((x) => [x.serviceName, x.requests.reduce((a, b) => a + b, 0n)])).toEqual([['checkout', 121n], ['payments', 1n], ['worker', 3n]]);
      const top = await red({ maxSeries: 1 });
      expect([top.series.map((x) => x.serviceName), top.truncated]).toEqual([['checkout'], true]);
      const empty = await red({ startTime: ts(T0 - 60 * MINUTE), endTime: ts(T0 - 50 * MINUTE) });
      expect([empty.series, empty.truncated, empty.bucketTimes.length]).toEqual([[], false, 10]);
    });

    it('counts only the tenant\'s spans for a tenant-bound token', async () => {
      const a = await red({ serviceName: 'checkout' });
      const b = await red({ serviceName: 'checkout' }, TOKENS.queryB);
      const all = await red({ serviceName: 'checkout' }, TOKENS.query);
      expect([a.series[0]?.requests[3], b.series[0]?.requests[3], all.series[0]?.requests[3], b.series[0]?.requests[2], all.series[0]?.requests[2]]).toEqual([0n, 1n, 1n, 0n, 100n]);
    });

    it('refuses each unbounded input with INVALID_ARGUMENT naming its field', async () => {
      for (const [req, field] of [
        [{ maxBuckets: 301 }, 'max_buckets'],
        [{ maxBuckets: 1 }, 'max_buckets'],
        [{ maxSeries: 101 }, 'max_series'],
        [{ spanName: 'POST /pay' }, 'service_name'],
        [{ serviceName: 's'.repeat(1025) }, 'service_name'],
        [{ startTime: ts(0) }, 'start_time'],
      ] as const) {
        const err = await refused(red(req));
        expect([err.code, fieldOf(err)]).toEqual([status.INVALID_ARGUMENT, field]);
      }
    });
  });

  describe('GetEventSeries', () => {
    it('counts events per bucket by severity, for the tenant only', async () => {
      const res = await client(TOKENS.queryA).unary(QueryService.method.getEventSeries, { ...WINDOW, maxBuckets: 10 });
      expect(res.stepSeconds).toBe(60);
      const bySeverity = Object.fromEntries(res.series.map((x) => [Severity[x.severity], x.counts.map(Number)]));
      expect(bySeverity).toEqual({
        DEBUG: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        INFO: [0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
        NOTICE: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        WARNING: [0, 0, 0, 0, 0, 0, 3, 0, 0, 0],
        ERROR: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        CRITICAL: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      });
      const b = await client(TOKENS.queryB).unary(QueryService.method.getEventSeries, { ...WINDOW, maxBuckets: 10 });
      expect(b.series.flatMap((x) => x.counts).every((n) => n === 0n)).toBe(true);
      const err = await refused(client(TOKENS.queryA).unary(QueryService.method.getEventSeries, { ...WINDOW, maxBuckets: 301 }));
      expect([err.code, fieldOf(err)]).toEqual([status.INVALID_ARGUMENT, 'max_buckets']);
    });
  });

  describe('GetTrace', () => {
    it('returns spans in tree order, the log records under their span, and marks orphans', async () => {
      const res = await client(TOKENS.queryA).unary(QueryService.method.getTrace, { id: { case: 'traceId', value: ids.t1 } });
      expect(res.items.map((i) => (i.item.case === 'span' ? `${i.item.value.name}@${i.item.value.depth}` : i.item.case === 'log' ? `log:${i.item.value.body}` : ''))).toEqual([
        'POST /pay@0',
        'charge@1',
        'POST /charge@2',
        'log:card declined, retrying',
        'log:charge started',
      ]);
      // Span events come with their span, in the order recorded, with their times and attributes.
      const failed = res.items.find((i) => i.item.case === 'span' && i.item.value.name === 'POST /charge');
      const events = failed?.item.case === 'span' ? failed.item.value.events : [];
      expect(events.map((e) => [e.name, Number(e.time?.seconds) * 1000 + Math.round((e.time?.nanos ?? 0) / 1e6), e.attributes])).toEqual([
        ['retry', T0 + 8 * MINUTE + 100, { attempt: '1' }],
        ['exception', T0 + 8 * MINUTE + 250, { 'exception.type': 'CardDeclined', 'exception.message': 'card declined' }],
      ]);
      const orphan = await client(TOKENS.queryA).unary(QueryService.method.getTrace, { id: { case: 'traceId', value: ids.t2 } });
      expect(orphan.items.map((i) => (i.item.case === 'span' ? [i.item.value.name, i.item.value.depth, i.item.value.orphan] : []))).toEqual([
        ['nightly', 0, true],
        ['step', 1, false],
      ]);
      const step = orphan.items.find((i) => i.item.case === 'span' && i.item.value.name === 'step');
      const stepEvents = step?.item.case === 'span' ? step.item.value.events.map((e) => e.name) : [];
      expect([stepEvents.length, stepEvents.at(-1)]).toEqual([128, 'tick 127']);
    });
  });

  describe('CLI', () => {
    const cli = (...args: string[]) => runCli([...args, '--addr', t.grpcAddress, '--token', TOKENS.queryA]);

    it('services, traces, logs and trace print one line per item, in tree order for a trace', async () => {
      const [services, traces, orphan, logs, tree, badStatus] = await Promise.all([
        cli('services', '--since', '1h'),
        cli('traces', '--service', 'checkout', '--operation', 'charge', '--attr', 'payment.method=card', '--min-duration', '250ms', '--max-duration', '1s', '--status', 'ok', '--since', '1h'),
        cli('traces', '--service', 'batch', '--since', '1h', '--limit', '5'),
        cli('logs', '--service', 'payments', '--trace', ids.t1, '--severity', 'warn', '--contains', 'DECLINED'),
        cli('trace', ids.t1),
        cli('traces', '--status', 'broken'),
      ]);
      expect(services.status).toBe(0);
      expect(services.stdout.split('\n').slice(0, 3).map((l) => l.split(/\s{2,}/))).toEqual([
        ['SERVICE', 'OPERATION', 'SPANS', 'ERRORS'],
        ['batch', '(all)', '2', '0'],
        ['', 'nightly', '1', '0'],
      ]);
      expect(services.stdout).toMatch(/\n\s+POST \/pay\s+101\s+10\n/);
      expect(traces.status).toBe(0);
      const traceLines = traces.stdout.trim().split('\n');
      expect(traceLines[0]?.split(/\s{2,}/)).toEqual(['TRACE ID', 'ROOT', 'DURATION', 'SPANS', 'ERRORS', 'START']);
      expect(traceLines.slice(1).map((l) => l.split(/\s{2,}/))).toEqual([[ids.t1, 'checkout POST /pay', '400.0 ms', '3', '1', new Date(T0 + 8 * MINUTE).toISOString()]]);
      expect(orphan.stdout).toContain(`${ids.t2}  (no root) batch nightly`);
      expect(logs.status).toBe(0);
      const logLines = logs.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
      expect(logLines).toEqual([
        ['TIME', 'SEVERITY', 'SERVICE', 'TRACE ID', 'BODY'],
        [new Date(T0 + 8 * MINUTE + 6).toISOString(), 'WARN', 'payments', ids.t1, 'card declined, retrying'],
      ]);
      expect(tree.status).toBe(0);
      expect(tree.stdout.split('\n').filter((l) => /^\+/.test(l))).toEqual([
        '+     0 ms  checkout POST /pay (server, 400.0 ms, ok)',
        '+    10 ms    checkout charge (client, 350.0 ms, ok)',
        '+     5 ms      payments POST /charge (server, 300.0 ms, error)',
        '+     6 ms        · log WARN: card declined, retrying',
        '+     7 ms        · log INFO: charge started',
      ]);
      expect(badStatus.status).toBe(1);
      expect(badStatus.stderr).toContain('--status: expected ok, error or unset');
    }, processTimeout(6));

    it('exits 1 naming the field when the agent refuses a bound', async () => {
      const r = await cli('traces', '--limit', '5', '--attr', `${'k'.repeat(300)}=v`);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('INVALID_ARGUMENT: attributes[0].key: at most 256 characters');
    }, processTimeout(1));
  });
});
