import type { MessageInitShape } from '@bufbuild/protobuf';
import { invalidFields } from '../errors/agent-error.js';
import type { GetRedSeriesRequest, GetRedSeriesResponseSchema, RedSeriesSchema } from '../gen/heimdall/v1/query_pb.js';
import { Span_SpanKind } from '../gen/opentelemetry/proto/trace/v1/trace_pb.js';
import { KIND } from '../ingest/otlp/traces.js';
import { TRACES } from '../storage/tables.js';
import type { QueryParams } from '../storage/transport.js';
import { timestamp } from '../time/range.js';
import type { Query, Range } from './budget.js';
import { boundedCount, boundedText } from './bounds.js';
import { BUCKET_INDEX, bucketParams, bucketsOf, bucketStarts, secondsInside, type Buckets } from './buckets.js';
import { ERROR_STATUS, otelWhere, windowParams } from './sql.js';

/** Series of one answer when the request says 0, and at most. */
const DEFAULT_SERIES = 10;
const MAX_SERIES = 100;

/**
 * A service's requests: its entry spans, kind server or consumer, as Grafana's Application
 * Observability counts them (Jaeger's monitor tab shows server spans by default).
 */
const ENTRY_KINDS = [KIND[Span_SpanKind.SERVER] ?? 'Server', KIND[Span_SpanKind.CONSUMER] ?? 'Consumer'];

interface PointRow {
  key: string;
  bucket: string;
  requests: string;
  errors: string;
  q: number[];
}

type Series = MessageInitShape<typeof RedSeriesSchema> & { requests: bigint[]; rate: number[]; errors: bigint[]; errorRate: number[]; p50Ms: number[]; p95Ms: number[]; p99Ms: number[] };

/** What the series of a request are: per service, per operation of one service, or one (a service, or one of its operations). */
function grouping(req: GetRedSeriesRequest): { key: string; where: string; params: QueryParams; /** The one series' key, when the request names one. */ single: string | undefined; series: (key: string) => { serviceName: string; spanName: string } } {
  const service = boundedText(req.serviceName, 'service_name');
  const spanName = boundedText(req.spanName, 'span_name');
  if (service === '' && (spanName !== '' || req.bySpanName)) throw invalidFields([{ field: 'service_name', description: 'needed with span_name or by_span_name' }]);
  if (service === '') return { key: 'ServiceName', where: '', params: {}, single: undefined, series: (k) => ({ serviceName: k, spanName: '' }) };
  if (req.bySpanName) return { key: 'SpanName', where: ' AND ServiceName = {service:String}', params: { service }, single: undefined, series: (k) => ({ serviceName: service, spanName: k }) };
  const where = ` AND ServiceName = {service:String}${spanName !== '' ? ' AND SpanName = {spanName:String}' : ''}`;
  return { key: 'ServiceName', where, params: { service, spanName }, single: service, series: () => ({ serviceName: service, spanName }) };
}

/** Empty series for `keys`, one value per bucket. */
function emptySeries(keys: string[], count: number, named: (key: string) => { serviceName: string; spanName: string }): Map<string, Series> {
  const zeros = () => Array.from({ length: count }, () => 0);
  const zeroCounts = () => Array.from({ length: count }, () => 0n);
  return new Map(keys.map((k) => [k, { ...named(k), requests: zeroCounts(), rate: zeros(), errors: zeroCounts(), errorRate: zeros(), p50Ms: zeros(), p95Ms: zeros(), p99Ms: zeros() }]));
}

/** Fills each series' buckets from the rows (rates over the part of each bucket inside the window). */
function fill(series: Map<string, Series>, rows: PointRow[], b: Buckets, range: Range): void {
  const seconds = secondsInside(b, range);
  for (const r of rows) {
    const s = series.get(r.key);
    const i = Number(r.bucket);
    if (!s || i < 0 || i >= b.count) continue;
    const requests = Number(r.requests);
    s.requests[i] = BigInt(r.requests);
    s.rate[i] = requests / (seconds[i] ?? 1);
    s.errors[i] = BigInt(r.errors);
    s.errorRate[i] = requests === 0 ? 0 : Number(r.errors) / requests;
    [s.p50Ms[i], s.p95Ms[i], s.p99Ms[i]] = r.q.map((ns) => Number(ns) / 1e6) as [number, number, number];
  }
}

/**
 * GetRedSeries over `range` for `tenant` (empty: every tenant): requests (entry spans), rate,
 * errors, error rate and p50/p95/p99 duration per bucket, for each series the request names (the
 * busiest max_series when it groups). Percentiles are ClickHouse's quantilesTDigest: bounded memory
 * per bucket, approximate (ClickHouse documents at most 1% error).
 */
export async function redSeries(query: Query, range: Range, tenant: string, req: GetRedSeriesRequest): Promise<MessageInitShape<typeof GetRedSeriesResponseSchema>> {
  const maxSeries = boundedCount(req.maxSeries, 'max_series', DEFAULT_SERIES, MAX_SERIES);
  const b = bucketsOf(range, req.maxBuckets);
  const g = grouping(req);
  const where = `${otelWhere(tenant)} AND SpanKind IN {kinds:Array(String)}${g.where}`;
  const params: QueryParams = { ...windowParams(range, tenant), ...g.params, ...bucketParams(b), kinds: ENTRY_KINDS, error: ERROR_STATUS, maxSeries: maxSeries + 1 };
  const keys =
    g.single !== undefined
      ? [g.single]
      : (await query<{ key: string }>(`SELECT ${g.key} AS key, count() AS n FROM ${TRACES.name} WHERE ${where} GROUP BY key ORDER BY n DESC, key LIMIT {maxSeries:UInt32}`, params)).map((r) => r.key);
  const listed = keys.slice(0, maxSeries).sort();
  const rows = listed.length === 0 ? [] : await query<PointRow>(
    `SELECT ${g.key} AS key, toString(${BUCKET_INDEX}) AS bucket, count() AS requests, countIf(StatusCode = {error:String}) AS errors, quantilesTDigest(0.5, 0.95, 0.99)(Duration) AS q
     FROM ${TRACES.name} WHERE ${where} AND ${g.key} IN {keys:Array(String)} GROUP BY key, bucket`,
    { ...params, keys: listed },
  );
  const series = emptySeries(listed, b.count, g.series);
  fill(series, rows, b, range);
  return {
    startTime: timestamp(range.start),
    endTime: timestamp(range.end),
    stepSeconds: Number(b.stepNs / 1_000_000_000n),
    bucketTimes: bucketStarts(b).map((ns) => timestamp(ns)),
    series: [...series.values()],
    truncated: keys.length > maxSeries,
  };
}
