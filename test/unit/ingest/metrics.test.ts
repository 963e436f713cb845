/** metricsToRows per point kind: the columns of each kind's row, the histogram bucket check, nameless metrics, NaN and infinities. */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ExportMetricsServiceRequestSchema } from '../../../src/gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import type { MetricSchema } from '../../../src/gen/opentelemetry/proto/metrics/v1/metrics_pb.js';
import { metricsToRows } from '../../../src/ingest/otlp/metrics.js';
import { METRIC_TABLES } from '../../../src/storage/tables.js';

type MetricInit = MessageInitShape<typeof MetricSchema>;

const str = (value: string) => ({ value: { case: 'stringValue' as const, value } });
const T0 = 1_700_000_000_000_000_000n;
const point = { attributes: [{ key: 'route', value: str('/a') }], startTimeUnixNano: T0, timeUnixNano: T0 + 1_000_000n, flags: 1 };

/** One request with one metric under a resource (service.name "svc") and a scope "lib" 1.0. */
function convert(...metrics: MetricInit[]) {
  return metricsToRows(create(ExportMetricsServiceRequestSchema, {
    resourceMetrics: [{ resource: { attributes: [{ key: 'service.name', value: str('svc') }] }, schemaUrl: 'https://r', scopeMetrics: [{ scope: { name: 'lib', version: '1.0' }, schemaUrl: 'https://s', metrics }] }],
  }));
}

const common = {
  ResourceAttributes: { 'service.name': 'svc' }, ResourceSchemaUrl: 'https://r', ServiceName: 'svc',
  ScopeName: 'lib', ScopeVersion: '1.0', ScopeAttributes: {}, ScopeDroppedAttrCount: 0, ScopeSchemaUrl: 'https://s',
  MetricName: 'm', MetricDescription: 'd', MetricUnit: 'u',
  Attributes: { route: '/a' }, StartTimeUnix: '1700000000.000000000', TimeUnix: '1700000000.001000000', Flags: 1,
};
const noExemplars = { 'Exemplars.FilteredAttributes': [], 'Exemplars.TimeUnix': [], 'Exemplars.Value': [], 'Exemplars.SpanId': [], 'Exemplars.TraceId': [] };
const rowsOf = (c: ReturnType<typeof convert>, table: string) => c.tables.get(table) ?? [];

describe('metricsToRows', () => {
  it('a gauge point: the shared columns, its value and its exemplars', () => {
    const c = convert({ name: 'm', description: 'd', unit: 'u', data: { case: 'gauge', value: { dataPoints: [{ ...point, value: { case: 'asDouble', value: 1.5 }, exemplars: [{ timeUnixNano: T0, value: { case: 'asInt', value: 7n }, spanId: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }] }] } } });
    expect(c).toMatchObject({ accepted: 1, rejected: 0 });
    expect(rowsOf(c, METRIC_TABLES.gauge.name)).toEqual([{ ...common, Value: 1.5, 'Exemplars.FilteredAttributes': [{}], 'Exemplars.TimeUnix': ['1700000000.000000000'], 'Exemplars.Value': [7], 'Exemplars.SpanId': ['0102030405060708'], 'Exemplars.TraceId': [''] }]);
  });

  it('a sum point: its value, temporality and monotonicity; NaN and infinities as ClickHouse reads them', () => {
    const c = convert({ name: 'm', description: 'd', unit: 'u', data: { case: 'sum', value: { aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ ...point, value: { case: 'asDouble', value: Number.NaN } }, { ...point, value: { case: 'asDouble', value: -Infinity } }] } } });
    expect(rowsOf(c, METRIC_TABLES.sum.name)).toEqual([
      { ...common, Value: 'nan', AggregationTemporality: 2, IsMonotonic: true, ...noExemplars },
      { ...common, Value: '-inf', AggregationTemporality: 2, IsMonotonic: true, ...noExemplars },
    ]);
  });

  it('a histogram point: counts as text, bounds; one whose bucket counts do not fit its bounds is rejected by its path', () => {
    const c = convert({ name: 'm', description: 'd', unit: 'u', data: { case: 'histogram', value: { aggregationTemporality: 1, dataPoints: [
      { ...point, count: 3n, sum: 6, bucketCounts: [1n, 2n], explicitBounds: [5], min: 1, max: Infinity },
      { ...point, count: 1n, bucketCounts: [1n], explicitBounds: [5] },
    ] } } });
    expect(c).toMatchObject({ accepted: 1, rejected: 1, reasons: ['resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[1]: 1 bucket counts for 1 bounds (want bounds + 1)'] });
    expect(rowsOf(c, METRIC_TABLES.histogram.name)).toEqual([{ ...common, Count: '3', Sum: 6, BucketCounts: ['1', '2'], ExplicitBounds: [5], Min: 1, Max: 'inf', AggregationTemporality: 1, ...noExemplars }]);
  });

  it('an exponential histogram point: scale, zero count, both bucket ranges (absent ones empty)', () => {
    const c = convert({ name: 'm', description: 'd', unit: 'u', data: { case: 'exponentialHistogram', value: { aggregationTemporality: 2, dataPoints: [{ ...point, count: 4n, sum: 2.5, scale: 3, zeroCount: 1n, positive: { offset: -2, bucketCounts: [1n, 2n] } }] } } });
    expect(rowsOf(c, METRIC_TABLES.exponentialHistogram.name)).toEqual([
      { ...common, Count: '4', Sum: 2.5, Scale: 3, ZeroCount: '1', PositiveOffset: -2, PositiveBucketCounts: ['1', '2'], NegativeOffset: 0, NegativeBucketCounts: [], Min: 0, Max: 0, AggregationTemporality: 2, ...noExemplars },
    ]);
  });

  it('a summary point: count, sum and quantiles (no exemplars)', () => {
    const c = convert({ name: 'm', description: 'd', unit: 'u', data: { case: 'summary', value: { dataPoints: [{ ...point, count: 2n, sum: 3, quantileValues: [{ quantile: 0.5, value: 1 }, { quantile: 1, value: 2 }] }] } } });
    expect(rowsOf(c, METRIC_TABLES.summary.name)).toEqual([{ ...common, Count: '2', Sum: 3, 'ValueAtQuantiles.Quantile': [0.5, 1], 'ValueAtQuantiles.Value': [1, 2] }]);
  });

  it('rejects every point of a nameless metric, and stores nothing for a metric without data', () => {
    const nameless: MetricInit = { name: '', data: { case: 'gauge', value: { dataPoints: [point, point] } } };
    const c = convert(nameless, { name: 'empty' });
    expect(c).toMatchObject({ accepted: 0, rejected: 2, reasons: ['resource_metrics[0].scope_metrics[0].metrics[0]: metric name is empty'] });
    expect(c.tables.size).toBe(0);
  });
});
