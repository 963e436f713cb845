/**
 * Real OpenTelemetry JS SDK exporters (OTLP gRPC, HTTP protobuf, HTTP JSON) send traces, logs and
 * metrics to a running agent; the test reads ClickHouse and checks counts and field values exactly.
 */
import { SpanKind, SpanStatusCode, context, trace, type Link } from '@opentelemetry/api';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { AggregationType, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { exporters, gzipTraceExporter, SeverityNumber, testResource, TRANSPORTS, type Transport } from '../support/otel-clients.js';

class CollectingReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

function exportMetrics(exporter: { export(m: ResourceMetrics, cb: (r: { code: number; error?: Error }) => void): void }, rm: ResourceMetrics): Promise<void> {
  return new Promise((resolve, reject) => exporter.export(rm, (r) => (r.code === 0 ? resolve() : reject(r.error ?? new Error(`export failed: ${r.code}`)))));
}

describe('OTLP ingestion with the real OpenTelemetry JS exporters', () => {
  let t: TestAgent;
  const q = <T>(sql: string, params?: Record<string, unknown>) => t.agent.storage.transport.query<T>(sql, params as never);
  beforeAll(async () => {
    t = await startTestAgent({ ingest: { batch: { max_delay: '20ms' } } });
  });
  afterAll(async () => t.stop());

  describe.each(TRANSPORTS)('%s', (transport: Transport) => {
    const service = `svc-${transport.replace('/', '-')}`;

    it('stores spans with every field the layout has', async () => {
      const { traces } = exporters(transport, t.grpcAddress, t.otlpHttpUrl);
      const provider = new BasicTracerProvider({ resource: testResource(service), spanProcessors: [new SimpleSpanProcessor(traces)] });
      const tracer = provider.getTracer('test-scope', '1.2.3');
      const parent = tracer.startSpan('GET /orders', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.response.status_code': 500, 'retry': true, 'ratio': 0.5, 'tags': ['a', 'b'], 'zeta': 'last', 'alpha': 'first' } });
      const linkTarget = tracer.startSpan('linked');
      linkTarget.end();
      const link: Link = { context: linkTarget.spanContext(), attributes: { 'link.kind': 'follows' } };
      const child = tracer.startSpan('SELECT orders', { kind: SpanKind.CLIENT, links: [link] }, trace.setSpan(context.active(), parent));
      child.addEvent('cache miss', { key: 'orders:1' });
      child.end();
      parent.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
      parent.end();
      await provider.forceFlush();
      await provider.shutdown();

      const rows = await q<Record<string, unknown>>(
        "SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, ScopeName, ScopeVersion, StatusCode, StatusMessage, Duration, mapKeys(SpanAttributes) AS keys, SpanAttributes, ResourceAttributes['host.name'] AS host, Events.Name AS events, Events.Attributes AS eventAttrs, Links.TraceId AS linkTraces, Links.SpanId AS linkSpans, Links.Attributes AS linkAttrs FROM otel_traces WHERE ServiceName = {s:String} ORDER BY SpanName",
        { s: service },
      );
      expect(rows.map((r) => r.SpanName)).toEqual(['GET /orders', 'SELECT orders', 'linked']);
      const [get, select, linked] = rows as [Record<string, any>, Record<string, any>, Record<string, any>];
      expect(get.TraceId).toBe(parent.spanContext().traceId);
      expect(get.SpanId).toBe(parent.spanContext().spanId);
      expect(get.ParentSpanId).toBe('');
      expect(get.SpanKind).toBe('Server');
      expect(get.StatusCode).toBe('Error');
      expect(get.StatusMessage).toBe('boom');
      expect(get.ScopeName).toBe('test-scope');
      expect(get.ScopeVersion).toBe('1.2.3');
      expect(get.host).toBe('box');
      expect(get.keys).toEqual(['alpha', 'http.request.method', 'http.response.status_code', 'ratio', 'retry', 'tags', 'zeta']);
      expect(get.SpanAttributes).toEqual({ alpha: 'first', 'http.request.method': 'GET', 'http.response.status_code': '500', ratio: '0.5', retry: 'true', tags: '["a","b"]', zeta: 'last' });
      expect(Number(get.Duration)).toBeGreaterThanOrEqual(0);
      expect(select.ParentSpanId).toBe(parent.spanContext().spanId);
      expect(select.TraceId).toBe(parent.spanContext().traceId);
      expect(select.SpanKind).toBe('Client');
      expect(select.events).toEqual(['cache miss']);
      expect(select.eventAttrs).toEqual([{ key: 'orders:1' }]);
      expect(select.linkTraces).toEqual([linkTarget.spanContext().traceId]);
      expect(select.linkSpans).toEqual([linkTarget.spanContext().spanId]);
      expect(select.linkAttrs).toEqual([{ 'link.kind': 'follows' }]);
      expect(linked.StatusCode).toBe('Unset');
      const lookup = await q<{ n: string }>('SELECT count() AS n FROM otel_traces_trace_id_ts WHERE TraceId = {id:String}', { id: parent.spanContext().traceId });
      expect(Number(lookup[0]?.n)).toBeGreaterThanOrEqual(1);
    });

    it('stores log records with string and structured bodies, severity and trace context', async () => {
      const { logs } = exporters(transport, t.grpcAddress, t.otlpHttpUrl);
      const provider = new LoggerProvider({ resource: testResource(service), processors: [new BatchLogRecordProcessor({ exporter: logs })] });
      const logger = provider.getLogger('log-scope', '0.1.0');
      const tracer = new BasicTracerProvider().getTracer('x');
      const span = tracer.startSpan('op');
      const ctx = trace.setSpan(context.active(), span);
      logger.emit({ severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: 'payment failed', attributes: { 'order.id': 42, 'user.password': 'hunter2' }, context: ctx });
      logger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: { event: 'checkout', items: [1, 2], ok: true } });
      await provider.forceFlush();
      await provider.shutdown();
      const rows = await q<Record<string, any>>(
        'SELECT Body, SeverityText, SeverityNumber, TraceId, SpanId, TraceFlags, LogAttributes, ScopeName, ScopeVersion, ServiceName, TimestampTime FROM otel_logs WHERE ServiceName = {s:String} ORDER BY SeverityNumber DESC',
        { s: service },
      );
      expect(rows).toHaveLength(2);
      const [err, info] = rows as [Record<string, any>, Record<string, any>];
      expect(err.Body).toBe('payment failed');
      expect(err.SeverityText).toBe('ERROR');
      expect(err.SeverityNumber).toBe(17);
      expect(err.TraceId).toBe(span.spanContext().traceId);
      expect(err.SpanId).toBe(span.spanContext().spanId);
      expect(err.TraceFlags).toBe(1);
      expect(err.LogAttributes).toEqual({ 'order.id': '42', 'user.password': '[REDACTED]' });
      expect(err.ScopeName).toBe('log-scope');
      expect(err.ScopeVersion).toBe('0.1.0');
      expect(err.TimestampTime).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      expect(JSON.parse(info.Body as string)).toEqual({ event: 'checkout', items: [1, 2], ok: true });
      expect(info.TraceId).toBe('');
      span.end();
    });

    it('stores sums, gauges, histograms and exponential histograms', async () => {
      const { metrics } = exporters(transport, t.grpcAddress, t.otlpHttpUrl);
      const reader = new CollectingReader();
      const provider = new MeterProvider({
        resource: testResource(service),
        readers: [reader],
        views: [{ instrumentName: 'latency.exp', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }],
      });
      const meter = provider.getMeter('meter-scope', '2.0.0');
      meter.createCounter('requests', { description: 'Requests', unit: '{request}' }).add(5, { route: '/a' });
      meter.createUpDownCounter('inflight').add(-3);
      meter.createGauge('temperature', { unit: 'Cel' }).record(21.5, { room: 'lab' });
      const h = meter.createHistogram('latency', { unit: 'ms', advice: { explicitBucketBoundaries: [10, 100] } });
      for (const v of [5, 50, 500]) h.record(v);
      const e = meter.createHistogram('latency.exp');
      for (const v of [1, 2, 4, 8]) e.record(v);
      const { resourceMetrics } = await reader.collect();
      await exportMetrics(metrics, resourceMetrics);
      await metrics.shutdown();
      await provider.shutdown();
      await expect
        .poll(async () => (await q<{ n: string }>('SELECT count() AS n FROM otel_metrics_exp_histogram WHERE ServiceName = {s:String}', { s: service }))[0]?.n)
        .toBe('1');
      const sums = await q<Record<string, any>>('SELECT MetricName, MetricDescription, MetricUnit, Value, IsMonotonic, AggregationTemporality, Attributes, ScopeName FROM otel_metrics_sum WHERE ServiceName = {s:String} ORDER BY MetricName', { s: service });
      expect(sums.map((r) => [r.MetricName, r.Value, r.IsMonotonic, r.AggregationTemporality])).toEqual([
        ['inflight', -3, false, 2],
        ['requests', 5, true, 2],
      ]);
      expect(sums[1]).toMatchObject({ MetricDescription: 'Requests', MetricUnit: '{request}', Attributes: { route: '/a' }, ScopeName: 'meter-scope' });
      const gauges = await q<Record<string, any>>('SELECT MetricName, Value, Attributes, MetricUnit FROM otel_metrics_gauge WHERE ServiceName = {s:String}', { s: service });
      expect(gauges).toEqual([{ MetricName: 'temperature', Value: 21.5, Attributes: { room: 'lab' }, MetricUnit: 'Cel' }]);
      const hist = await q<Record<string, any>>("SELECT Count, Sum, BucketCounts, ExplicitBounds, Min, Max FROM otel_metrics_histogram WHERE ServiceName = {s:String} AND MetricName = 'latency'", { s: service });
      expect(hist).toEqual([{ Count: '3', Sum: 555, BucketCounts: ['1', '1', '1'], ExplicitBounds: [10, 100], Min: 5, Max: 500 }]);
      const exp = await q<Record<string, any>>('SELECT Count, Sum, Scale, ZeroCount, PositiveBucketCounts, Min, Max FROM otel_metrics_exp_histogram WHERE ServiceName = {s:String}', { s: service });
      expect(exp[0]).toMatchObject({ Count: '4', Sum: 15, ZeroCount: '0', Min: 1, Max: 8 });
      expect((exp[0]?.PositiveBucketCounts as string[]).reduce((n, c) => n + Number(c), 0)).toBe(4);
    });
  });

  it('takes gzip-compressed exports over gRPC and HTTP', async () => {
    for (const transport of ['grpc', 'http/protobuf'] as const) {
      const service = `gzip-${transport.replace('/', '-')}`;
      const provider = new BasicTracerProvider({ resource: testResource(service), spanProcessors: [new SimpleSpanProcessor(gzipTraceExporter(transport, t.grpcAddress, t.otlpHttpUrl))] });
      const tracer = provider.getTracer('gzip');
      for (let i = 0; i < 20; i++) tracer.startSpan(`compressed ${i}`, { attributes: { payload: 'x'.repeat(200) } }).end();
      await provider.forceFlush();
      await provider.shutdown();
      const [row] = await q<{ n: string }>('SELECT count() AS n FROM otel_traces WHERE ServiceName = {s:String}', { s: service });
      expect(row?.n).toBe('20');
    }
  });

  it('counts accepted items per signal and transport in /metrics', async () => {
    const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
    for (const transport of ['grpc', 'http']) {
      expect(text).toMatch(new RegExp(`^heimdall_receiver_accepted_spans_total\\{transport="${transport}"\\} [1-9]`, 'm'));
      expect(text).toMatch(new RegExp(`^heimdall_receiver_accepted_log_records_total\\{transport="${transport}"\\} [1-9]`, 'm'));
      expect(text).toMatch(new RegExp(`^heimdall_receiver_accepted_metric_points_total\\{transport="${transport}"\\} [1-9]`, 'm'));
    }
    expect(text).toMatch(/^heimdall_spans_total\{service_name="svc-grpc",span_name="GET \/orders",span_kind="Server",status_code="Error"\} 1$/m);
    expect(text).toMatch(/^heimdall_exporter_sent_spans_total\{table="otel_traces"\} 49$/m);
    expect(text).toMatch(/^heimdall_exporter_sent_metric_points_total\{table="otel_metrics_sum"\} 6$/m);
  });
});
