/**
 * deploy/grafana: every dashboard is a valid JSON model whose data source is a variable; every
 * ClickHouse query (panels and variables), expanded as Grafana and the ClickHouse plugin expand it
 * (test/support/grafana.ts), runs against the embedded store of a real agent filled by the real
 * OpenTelemetry exporters and returns its columns, the key panels their values; every PromQL
 * expression parses (promtool check rules) and selects metrics and labels that the same agent's
 * /metrics has.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SpanKind, SpanStatusCode, context, trace, type Context } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { connect } from '../../src/cli/client.js';
import { RateLimitService } from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';
import { EventService, Severity } from '../../src/gen/heimdall/v1/events_pb.js';
import { Registry } from 'prom-client';
import { createLimitStats } from '../../src/ratelimit/stats.js';
import { createSeriesLimits } from '../../src/telemetry/series-limits.js';
import { startTestAgent, type TestAgent } from '../support/agent.js';
import { haveBinary, promtoolCheckRules } from '../support/binaries.js';
import { applyConditionalAll, applyVariables, expandClickHouseQuery, panelsOf, type GrafanaDashboard, type GrafanaVariable, type QueryContext } from '../support/grafana.js';
import { exporters, SeverityNumber, testResource } from '../support/otel-clients.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { familyLabels, familyOf, parseFamilies, parsePromql, type Families } from '../support/promql.js';
import { silentLogger, tempDir } from '../support/temp.js';
import { until } from '../support/wait.js';

const DIR = join(import.meta.dirname, '..', '..', 'deploy', 'grafana', 'dashboards');
const CH = 'grafana-clickhouse-datasource';
const dashboards: GrafanaDashboard[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(DIR, f), 'utf8')) as GrafanaDashboard);
const byUid = (uid: string) => dashboards.find((d) => d.uid === uid)!;
const dsType = (d: GrafanaDashboard) => d.templating.list.find((v) => v.type === 'datasource')?.query as string;
const targetsOf = (d: GrafanaDashboard) => panelsOf(d).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));

describe('Grafana dashboards: the JSON models', () => {
  it('parse, have unique uids, the current schemaVersion and a data source variable every panel and query uses', () => {
    expect(dashboards.map((d) => d.uid).sort()).toEqual(['heimdall-agent', 'heimdall-events', 'heimdall-logs', 'heimdall-services', 'heimdall-traces']);
    for (const d of dashboards) {
      expect(d.schemaVersion, d.uid).toBe(42);
      expect([CH, 'prometheus'], d.uid).toContain(dsType(d));
      for (const { panel, target } of targetsOf(d)) {
        expect(panel.datasource, `${d.uid}/${panel.title}`).toEqual({ type: dsType(d), uid: '${datasource}' });
        expect(target.datasource, `${d.uid}/${panel.title}`).toEqual({ type: dsType(d), uid: '${datasource}' });
      }
      for (const v of d.templating.list.filter((x) => x.type === 'query')) expect(v.datasource, `${d.uid}/${v.name}`).toEqual({ type: dsType(d), uid: '${datasource}' });
    }
  });

  it('come with provisioning files: a file provider, and example data sources of the types the dashboards pick from', () => {
    const provisioning = join(DIR, '..', 'provisioning');
    const providers = (parse(readFileSync(join(provisioning, 'dashboards.yaml'), 'utf8')) as { apiVersion: number; providers: Array<{ type: string; options: { path: string } }> }).providers;
    expect(providers).toEqual([expect.objectContaining({ type: 'file', options: expect.objectContaining({ path: '/var/lib/grafana/dashboards/heimdall' }) })]);
    const sources = (parse(readFileSync(join(provisioning, 'datasources.example.yaml'), 'utf8')) as { datasources: Array<{ type: string }> }).datasources;
    expect(sources.map((x) => x.type).sort()).toEqual([...new Set(dashboards.map(dsType))].sort());
  });

  it('links to dashboards and variables that exist', () => {
    const links = dashboards.flatMap((d) => JSON.stringify(d).match(/\/d\/[^"]+/g) ?? []);
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) {
      const [, uid, query] = /^\/d\/([\w-]+)\/[\w-]+\?(.*)$/.exec(link) ?? [];
      const target = byUid(uid ?? '');
      expect(target, link).toBeDefined();
      for (const [, name] of (query ?? '').matchAll(/var-(\w+)=/g)) expect(target.templating.list.map((v) => v.name), link).toContain(name);
    }
  });
});

describe('Grafana and ClickHouse plugin expansion (grafana/clickhouse-datasource pkg/macros/macros.go, src/data/CHDatasource.ts)', () => {
  const ctx: QueryContext = {
    from: new Date('2026-01-02T03:04:05.678Z'),
    to: new Date('2026-01-02T04:04:05.678Z'),
    intervalMs: 30_000,
    variables: { service: { value: ["o'brien", 'b'] }, one: { value: 'x' }, all: { value: ['$__all'], options: ['p', 'q'] }, empty: { value: '' } },
  };
  const expand = (sql: string) => expandClickHouseQuery(sql, ctx);

  it('expands the time macros', () => {
    expect(expand('$__timeFilter(Timestamp)')).toBe('Timestamp >= toDateTime(1767323045) AND Timestamp <= toDateTime(1767326645)');
    expect(expand('$__timeFilter_ms( Timestamp )')).toBe('Timestamp >= fromUnixTimestamp64Milli(1767323045678) AND Timestamp <= fromUnixTimestamp64Milli(1767326645678)');
    expect(expand('$__dateFilter(d)')).toBe("d >= toDate('2026-01-02') AND d <= toDate('2026-01-02')");
    expect(expand('$__dt(d, t)')).toBe("(d >= toDate('2026-01-02') AND d <= toDate('2026-01-02')) AND (t >= toDateTime(1767323045) AND t <= toDateTime(1767326645))");
    expect(expand('$__fromTime $__toTime $__fromTime_ms $__toTime_ms')).toBe('toDateTime(1767323045) toDateTime(1767326645) fromUnixTimestamp64Milli(1767323045678) fromUnixTimestamp64Milli(1767326645678)');
    expect(expand('$__timeInterval(toDateTime(Timestamp)) / $__interval_s')).toBe('toStartOfInterval(toDateTime(toDateTime(Timestamp)), INTERVAL 30 second) / 30');
    expect(expand('$__timeInterval_ms(Timestamp)')).toBe('toStartOfInterval(toDateTime64(Timestamp, 3), INTERVAL 30000 millisecond)');
    expect(expandClickHouseQuery('$__interval_s', { ...ctx, intervalMs: 200 })).toBe('1');
    expect(() => expand('$__timeFilter(a, b)')).toThrow(/1 argument/);
    expect(() => expand('$__unknown(x)')).toThrow(/unknown macro/);
  });

  it('expands $__conditionalAll before the variables, and the variables in their formats', () => {
    expect(applyConditionalAll('a AND $__conditionalAll(s IN (${all:singlequote}), $all) AND $__conditionalAll(f(x, y) = 1, ${one})', ctx.variables)).toBe('a AND 1=1 AND f(x, y) = 1');
    expect(applyConditionalAll('$__conditionalAll(z, $empty)', ctx.variables)).toBe('1=1');
    expect(applyVariables('${service:singlequote} | $service | ${one} | ${one:singlequote} | ${all:singlequote} | ${__from} ${__to:date:seconds} | $__timeFilter(x)', ctx)).toBe(
      "'o\\'brien','b' | 'o'brien','b' | x | 'x' | 'p','q' | 1767323045678 1767326645 | $__timeFilter(x)",
    );
  });
});

/** Data sent through the real exporters: ten checkout traces (root, a database call, a payments call), two of them failed. */
interface Sent {
  traceIds: string[];
  /** Root span duration of trace i (ms). */
  durations: number[];
  failed: number[];
}

const FAILED = [3, 7];
const T0 = Math.floor(Date.now() / 60_000) * 60_000 - 20 * 60_000;

function span(tracer: ReturnType<BasicTracerProvider['getTracer']>, name: string, kind: SpanKind, start: number, end: number, ctx?: Context, failed = false) {
  const s = tracer.startSpan(name, { kind, startTime: start }, ctx);
  if (failed) s.setStatus({ code: SpanStatusCode.ERROR, message: `${name} failed` });
  s.end(end);
  return s;
}

/** Sends the traces (checkout over gRPC, payments over HTTP/protobuf) and one log record per trace (two for failed ones) over HTTP/JSON. */
async function sendTelemetry(t: TestAgent): Promise<Sent> {
  const ex = (transport: 'grpc' | 'http/protobuf' | 'http/json') => exporters(transport, t.grpcAddress, t.otlpHttpUrl);
  const checkout = new BasicTracerProvider({ resource: testResource('checkout'), spanProcessors: [new SimpleSpanProcessor(ex('grpc').traces)] });
  const payments = new BasicTracerProvider({ resource: testResource('payments'), spanProcessors: [new SimpleSpanProcessor(ex('http/protobuf').traces)] });
  const logs = new LoggerProvider({ resource: testResource('checkout'), processors: [new BatchLogRecordProcessor({ exporter: ex('http/json').logs })] });
  const [ct, pt, logger] = [checkout.getTracer('shop', '1.0.0'), payments.getTracer('pay', '2.0.0'), logs.getLogger('shop')];
  const sent: Sent = { traceIds: [], durations: [], failed: FAILED };
  for (let i = 0; i < 10; i++) {
    const start = T0 + i * 10_000;
    const failed = FAILED.includes(i);
    const root = ct.startSpan('POST /checkout', { kind: SpanKind.SERVER, startTime: start, attributes: { 'http.route': '/checkout', 'order.index': i } });
    root.addEvent('cart.loaded', { items: i }, start + 1);
    const ctx = trace.setSpan(context.active(), root);
    span(ct, 'SELECT orders', SpanKind.CLIENT, start + 10, start + 30, ctx);
    span(pt, 'charge', SpanKind.SERVER, start + 40, start + 90, ctx, failed);
    logger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: `order placed ${i}`, timestamp: start + 5, context: ctx });
    if (failed) logger.emit({ severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: `payment declined ${i}`, timestamp: start + 95, context: ctx });
    if (failed) root.setStatus({ code: SpanStatusCode.ERROR, message: 'payment failed' });
    root.end(start + (i + 1) * 100);
    sent.traceIds.push(root.spanContext().traceId);
    sent.durations.push((i + 1) * 100);
  }
  await Promise.all([checkout.shutdown(), payments.shutdown(), logs.shutdown()]);
  return sent;
}

class CollectingReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** Sends one counter point, so that the metric tables' families have samples too. */
async function sendMetric(t: TestAgent): Promise<void> {
  const reader = new CollectingReader();
  const provider = new MeterProvider({ resource: testResource('checkout'), readers: [reader] });
  provider.getMeter('shop').createCounter('orders').add(10);
  const { resourceMetrics } = await reader.collect();
  const exporter = exporters('grpc', t.grpcAddress, t.otlpHttpUrl).metrics;
  await new Promise<void>((resolve, reject) => exporter.export(resourceMetrics, (r: ExportResult) => (r.code === ExportResultCode.SUCCESS ? resolve() : reject(r.error ?? new Error('metric export failed')))));
  await Promise.all([exporter.shutdown(), provider.shutdown()]);
}

let t: TestAgent;
let redis: TestRedis | undefined;
let sent: Sent;
const dir = tempDir();
/** Rows of `table` (those `where` selects). */
const count = async (table: string, where = '1') => Number((await t.agent.storage.transport.query<{ n: string }>(`SELECT count() AS n FROM ${table} WHERE ${where}`))[0]?.n);

beforeAll(async () => {
  // A limit of one hit a minute (two checks: one within, one over), a system check every second
  // (job runs), over-limit records every second, ack: queued (the durable queue's families), a size budget (the size guard's).
  const limits = join(dir.path, 'limits');
  mkdirSync(limits);
  writeFileSync(
    join(limits, 'shop.yaml'),
    ['domain: shop', 'descriptors:', '  - key: user', '    rate_limit: { unit: minute, requests_per_unit: 1 }', '  - key: team', '    rate_limit: { unit: minute, requests_per_unit: 100, backend: redis }'].join('\n'),
  );
  // Redis for the shared buckets' families (CI installs redis-server).
  redis = haveBinary('redis-server') ? await startRedis() : undefined;
  t = await startTestAgent({
    storage: { embedded: { max_size: '1GiB' } },
    ratelimit: { config_path: limits, over_limit_window: '1s', ...(redis ? { redis: { url: redis.url, timeout: '2s' } } : {}), security: { automation: { honeypots: [{ name: 'trap', entries: ['path=/trap'] }] } } },
    jobs: { system_check: { schedule: '*/1 * * * * *' } },
    ingest: { ack: 'queued', queue: { path: join(dir.path, 'queue') }, batch: { max_delay: '20ms' } },
  });
  sent = await sendTelemetry(t);
  await sendMetric(t);
  const c = connect({ addr: t.grpcAddress });
  for (let i = 0; i < 2; i++) await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'shop', descriptors: [{ entries: [{ key: 'user', value: 'u1' }] }] });
  if (redis) await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'shop', descriptors: [{ entries: [{ key: 'team', value: 't1' }] }] });
  await c.unary(EventService.method.writeEvents, { events: [{ eventType: 'deploy', source: 'shop', severity: Severity.INFO, message: 'v2 rolled out' }] });
  c.close();
  await until(async () => (await count('otel_traces')) === 30 && (await count('otel_logs')) === 12, 60_000, 'spans and logs stored');
  await until(async () => (await count('heimdall_events', "EventType IN ('deploy', 'ratelimit.over_limit')")) === 2, 60_000, 'the event and the over-limit record stored');
}, 120_000);

afterAll(async () => {
  await t?.stop();
  await redis?.stop();
  dir.cleanup();
});

/** The context of a ClickHouse dashboard: its variables' defaults, `overrides` on top; query variables take the values their own query returns. */
async function clickHouseContext(d: GrafanaDashboard, overrides: Record<string, GrafanaVariable['value']> = {}): Promise<QueryContext> {
  const ctx: QueryContext = { from: new Date(T0 - 5 * 60_000), to: new Date(Date.now() + 60_000), intervalMs: 60_000, variables: {} };
  for (const v of d.templating.list) {
    if (v.type === 'datasource') continue;
    const current = (v.current as { value?: string | string[] } | undefined)?.value ?? '';
    const variable: GrafanaVariable = { value: overrides[v.name] ?? current };
    if (v.type === 'query') variable.options = (await runQuery((v.query as { rawSql: string }).rawSql, ctx)).map((r) => String(Object.values(r)[0]));
    ctx.variables[v.name] = variable;
  }
  return ctx;
}

const runQuery = (sql: string, ctx: QueryContext) => t.agent.storage.transport.query<Record<string, unknown>>(expandClickHouseQuery(sql, ctx));
const panelSql = (uid: string, title: string) => panelsOf(byUid(uid)).find((p) => p.title === title)!.targets![0]!.rawSql as string;
const run = async (uid: string, title: string, overrides: Record<string, GrafanaVariable['value']> = {}) => runQuery(panelSql(uid, title), await clickHouseContext(byUid(uid), overrides));

/** The columns each ClickHouse panel returns. */
const COLUMNS: Record<string, string[]> = {
  'heimdall-services/Requests per second': ['time', 'ServiceName', 'rate'],
  'heimdall-services/Errors per second': ['time', 'ServiceName', 'errors'],
  'heimdall-services/Error ratio': ['time', 'ServiceName', 'error_ratio'],
  'heimdall-services/Duration p50 / p95 / p99': ['time', 'ServiceName', 'p50', 'p95', 'p99'],
  'heimdall-services/Services': ['service', 'spans', 'rate_per_s', 'errors', 'error_ratio', 'p50_ms', 'p95_ms', 'p99_ms'],
  'heimdall-services/Operations': ['service', 'operation', 'kind', 'spans', 'errors', 'error_ratio', 'p50_ms', 'p95_ms', 'p99_ms'],
  'heimdall-traces/Traces': ['trace_id', 'start', 'root_service', 'root_span', 'duration_ms', 'spans', 'errors', 'services'],
  // Grafana's trace data frame, as the plugin's trace-id query names its columns.
  'heimdall-traces/Trace view': ['traceID', 'spanID', 'parentSpanID', 'serviceName', 'operationName', 'startTime', 'duration', 'tags', 'serviceTags', 'kind', 'statusCode', 'statusMessage', 'instrumentationLibraryName', 'instrumentationLibraryVersion', 'logs'],
  'heimdall-traces/Logs of the trace': ['timestamp', 'body', 'level', 'service', 'spanID', 'traceID'],
  'heimdall-logs/Log volume': ['time', 'severity', 'records'],
  'heimdall-logs/Logs': ['timestamp', 'body', 'level', 'service', 'traceID', 'spanID', 'labels'],
  'heimdall-logs/Errors and warnings': ['time', 'service', 'severity', 'body', 'trace_id'],
  'heimdall-events/Events': ['time', 'type', 'events'],
  'heimdall-events/Latest events': ['time', 'type', 'source', 'severity', 'category', 'message', 'status', 'correlation_id', 'actor', 'trace_id'],
  'heimdall-events/Over-limit hits by limit': ['time', 'limit', 'hits'],
  'heimdall-events/Top entities': ['entity', 'hits'],
  'heimdall-events/Incidents': ['time', 'domain', 'descriptor', 'entity', 'hits'],
};

describe('ClickHouse dashboards against an embedded store filled by the OpenTelemetry exporters', () => {
  const chDashboards = dashboards.filter((d) => dsType(d) === CH);

  it('every variable query runs and lists what was sent', async () => {
    const options = Object.fromEntries(
      await Promise.all(chDashboards.map(async (d) => [d.uid, Object.fromEntries(Object.entries((await clickHouseContext(d)).variables).filter(([, v]) => v.options).map(([k, v]) => [k, v.options]))])),
    );
    // The agent writes events of its own too.
    expect(options['heimdall-events']).toEqual({ event_type: expect.arrayContaining(['deploy', 'ratelimit.over_limit']), source: expect.arrayContaining(['shop']) });
    delete options['heimdall-events'];
    expect(options).toEqual({
      'heimdall-services': { service: ['checkout', 'payments'], kind: ['Client', 'Server'] },
      'heimdall-traces': { service: ['checkout', 'payments'], operation: ['POST /checkout', 'SELECT orders', 'charge'] },
      'heimdall-logs': { service: ['checkout'], severity: ['ERROR', 'INFO'] },
    });
  });

  it('every panel query runs and returns its columns', async () => {
    const panels = chDashboards.flatMap((d) => panelsOf(d).map((p) => ({ d, p, key: `${d.uid}/${p.title}` })));
    expect(panels.map((x) => x.key).sort()).toEqual(Object.keys(COLUMNS).sort());
    for (const { d, p, key } of panels) {
      for (const target of p.targets ?? []) {
        const rows = await runQuery(target.rawSql as string, await clickHouseContext(d, { trace_id: sent.traceIds[3]!, threshold: '1' }));
        expect(rows.length, key).toBeGreaterThan(0);
        expect(Object.keys(rows[0]!), key).toEqual(COLUMNS[key]);
      }
    }
  });

  it('Services: spans, errors and duration quantiles of each service (Server spans by default)', async () => {
    const rows = await run('heimdall-services', 'Services');
    expect(rows.map((r) => [r.service, Number(r.spans), Number(r.errors), r.error_ratio])).toEqual([
      ['checkout', 10, 2, 0.2],
      ['payments', 10, 2, 0.2],
    ]);
    const [checkout, payments] = rows as [Record<string, number>, Record<string, number>];
    expect(checkout.p50_ms).toBeGreaterThanOrEqual(500);
    expect(checkout.p50_ms).toBeLessThanOrEqual(600);
    expect(checkout.p99_ms).toBeGreaterThanOrEqual(900);
    expect(checkout.p99_ms).toBeLessThanOrEqual(1000);
    expect([payments.p50_ms, payments.p95_ms, payments.p99_ms]).toEqual([50, 50, 50]);
    // Every kind, one service: the database calls join the roots.
    const ops = await run('heimdall-services', 'Operations', { service: ['checkout'], kind: ['$__all'] });
    expect(ops.map((r) => [r.operation, r.kind, Number(r.spans), Number(r.errors)])).toEqual([
      ['POST /checkout', 'Server', 10, 2],
      ['SELECT orders', 'Client', 10, 0],
    ]);
    const rate = await run('heimdall-services', 'Requests per second', { service: ['payments'] });
    expect(rate.reduce((sum, r) => sum + Number(r.rate) * 60, 0)).toBeCloseTo(10);
  });

  it('Traces: the search lists each trace with its root span, duration, span and error counts; the filters narrow it', async () => {
    const rows = await run('heimdall-traces', 'Traces');
    expect(rows.map((r) => [r.trace_id, r.root_service, r.root_span, r.duration_ms, Number(r.spans), Number(r.errors), r.services])).toEqual(
      sent.traceIds.map((id, i) => [id, 'checkout', 'POST /checkout', sent.durations[i], 3, FAILED.includes(i) ? 2 : 0, 'checkout, payments']).reverse(),
    );
    const ids = async (overrides: Record<string, string | string[]>) => (await run('heimdall-traces', 'Traces', overrides)).map((r) => sent.traceIds.indexOf(r.trace_id as string)).sort();
    expect(await ids({ errors: '1' })).toEqual(FAILED);
    expect(await ids({ min_ms: '500' })).toEqual([4, 5, 6, 7, 8, 9]);
    expect(await ids({ min_ms: '200', max_ms: '300' })).toEqual([1, 2]);
    expect(await ids({ attribute: 'order.index=5' })).toEqual([5]);
    expect(await ids({ service: ['payments'], operation: ['charge'], errors: '1' })).toEqual(FAILED);
    expect(await ids({ operation: ['no such operation'] })).toEqual([]);
  });

  it('Traces: the trace view returns the spans of one trace in the trace panel format, and the logs of that trace', async () => {
    const id = sent.traceIds[3]!;
    const spans = await run('heimdall-traces', 'Trace view', { trace_id: id });
    expect(spans.map((s) => [s.traceID, s.serviceName, s.operationName, s.kind, s.statusCode, s.duration])).toEqual([
      [id, 'checkout', 'POST /checkout', 'Server', 2, 400],
      [id, 'checkout', 'SELECT orders', 'Client', 0, 20],
      [id, 'payments', 'charge', 'Server', 2, 50],
    ]);
    const [root, db, charge] = spans as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    expect([root.parentSpanID, db.parentSpanID, charge.parentSpanID]).toEqual(['', root.spanID, root.spanID]);
    expect(root.startTime).toBe(T0 + 3 * 10_000);
    expect(root.tags).toContainEqual({ key: 'http.route', value: '/checkout' });
    expect(root.serviceTags).toContainEqual({ key: 'service.name', value: 'checkout' });
    expect(root.logs).toEqual([{ name: 'cart.loaded', timestamp: String(T0 + 3 * 10_000 + 1), fields: [{ key: 'items', value: '3' }] }]);
    const logs = await run('heimdall-traces', 'Logs of the trace', { trace_id: id });
    expect(logs.map((l) => [l.body, l.level, l.traceID])).toEqual([
      ['order placed 3', 'INFO', id],
      ['payment declined 3', 'ERROR', id],
    ]);
  });

  it('Logs: records by service and severity, each with its trace id', async () => {
    const all = await run('heimdall-logs', 'Logs');
    expect(all).toHaveLength(12);
    const errors = await run('heimdall-logs', 'Logs', { severity: ['ERROR'] });
    expect(errors.map((r) => [r.body, r.service, r.traceID])).toEqual(FAILED.map((i) => [`payment declined ${i}`, 'checkout', sent.traceIds[i]]).reverse());
    const table = await run('heimdall-logs', 'Errors and warnings');
    expect(table.map((r) => r.trace_id)).toEqual(FAILED.map((i) => sent.traceIds[i]).reverse());
    expect(await run('heimdall-logs', 'Logs', { search: 'DECLINED 7' })).toHaveLength(1);
    expect(await run('heimdall-logs', 'Logs', { trace_id: sent.traceIds[0]! })).toHaveLength(1);
  });

  it('Events: the events sent, the over-limit records, and the incidents past the threshold', async () => {
    const latest = await run('heimdall-events', 'Latest events', { event_type: ['deploy'] });
    expect(latest.map((r) => [r.type, r.source, r.severity, r.message])).toEqual([['deploy', 'shop', 'INFO', 'v2 rolled out']]);
    expect(await run('heimdall-events', 'Latest events', { search: 'ROLLED', source: ['shop'] })).toHaveLength(1);
    // One check over the limit of one a minute: one hit, below the default threshold (100).
    expect(await run('heimdall-events', 'Incidents')).toEqual([]);
    const incidents = await run('heimdall-events', 'Incidents', { threshold: '1' });
    expect(incidents.map((r) => [r.domain, r.descriptor, r.entity, Number(r.hits)])).toEqual([['shop', 'shop.user', 'user=u1', 1]]);
    expect((await run('heimdall-events', 'Top entities')).map((r) => [r.entity, Number(r.hits)])).toEqual([['user=u1', 1]]);
  });
});

/** A Prometheus expression as Prometheus receives it from Grafana: the range variables at fixed durations, the dashboard's variables at "any". */
const expandPromQL = (expr: string) =>
  expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '30s')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?(job|instance)\}?/g, '.+');

/** Every PromQL expression of the Prometheus dashboard: panel targets, and the series selectors of label_values() variables. */
function promExpressions(): Array<{ where: string; expr: string }> {
  const d = dashboards.find((x) => dsType(x) === 'prometheus')!;
  const targets = targetsOf(d).map(({ panel, target }) => ({ where: `${panel.title}/${target.refId}`, expr: target.expr as string }));
  const variables = d.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ where: `$${v.name}`, expr: /^label_values\((.*),\s*\w+\)$/.exec((v.query as { query: string }).query)?.[1] ?? 'invalid' }));
  return [...targets, ...variables].map((e) => ({ ...e, expr: expandPromQL(e.expr) }));
}

/**
 * The request-labelled rate-limit families as the rate-limit worker registers them (its registry is in
 * its own thread): the same factory, in a registry of the test's.
 */
const workerFamilies = new Registry();
createLimitStats(workerFamilies, createSeriesLimits({ config: { max_label_length: 128, max_family_size: 1 << 20 }, metrics: workerFamilies, logger: silentLogger() }), 1_000);

/** The labels of `family`: those its samples carry, else (a family with no sample yet) those the agent (or its rate-limit worker) registered it with. */
function labelsOf(families: Families, family: string): Set<string> {
  const own = familyLabels(families, family, t.agent.metrics);
  return own.size > 0 ? own : familyLabels(families, family, workerFamilies);
}

describe.runIf(haveBinary('promtool') && haveBinary('redis-server'))('the Prometheus dashboard against a real agent', () => {
  it('every expression parses (promtool check rules)', () => {
    const exprs = promExpressions();
    expect(exprs.length).toBeGreaterThan(40);
    const rules = stringify({ groups: [{ name: 'grafana-dashboard', rules: exprs.map((e, i) => ({ record: `heimdall_dashboard:expr_${i}`, expr: e.expr })) }] });
    expect(promtoolCheckRules(rules)).toMatch(/SUCCESS: \d+ rules found\s+exit=0$/);
  });

  it('every metric an expression selects is on /metrics, with the labels the expression uses', async () => {
    const exprs = promExpressions();
    const missing = (families: Families) => [...new Set(exprs.flatMap((e) => parsePromql(e.expr).selectors.map((s) => s.metric)))].filter((m) => !familyOf(families, m));
    const scrape = async () => parseFamilies(await (await fetch(`${t.adminUrl}/metrics`)).text());
    // A honeypot hit (here, after the other panels' data is checked): the worker's family gets its label.
    const c = connect({ addr: t.grpcAddress });
    await c.unary(RateLimitService.method.shouldRateLimit, { domain: 'shop', descriptors: [{ entries: [{ key: 'path', value: '/trap' }] }] }).finally(() => c.close());
    // Job runs (and the rows they insert) come within seconds of the start.
    await until(async () => (await scrape()).get('heimdall_job_runs_total')?.labels.size, 60_000, 'a job run');
    const families = await scrape();
    expect(missing(families)).toEqual([]);
    // Prometheus adds the target's labels; a histogram's buckets carry `le`.
    const TARGET = ['instance', 'job'];
    const problems: string[] = [];
    for (const { where, expr } of exprs) {
      const { selectors, grouping } = parsePromql(expr);
      const labelsBySelector = selectors.map((s) => new Set([...labelsOf(families, familyOf(families, s.metric)!), ...TARGET, ...(s.metric.endsWith('_bucket') ? ['le'] : [])]));
      selectors.forEach((s, i) => problems.push(...s.labels.filter((l) => !labelsBySelector[i]!.has(l)).map((l) => `${where}: ${s.metric} has no label ${l}`)));
      for (const l of grouping) if (!labelsBySelector.some((set) => set.has(l))) problems.push(`${where}: no selected metric has label ${l}`);
    }
    expect(problems).toEqual([]);
  }, 90_000);
});
