import type { ExportMetricsServiceRequest } from '../../gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import type { Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, SummaryDataPoint } from '../../gen/opentelemetry/proto/metrics/v1/metrics_pb.js';
import { METRIC_TABLES } from '../../storage/tables.js';
import { nanosToDateTime64 } from '../../time/datetime64.js';
import { ConversionBuilder, type Conversion, type Row } from './result.js';
import { attributesToMap, serviceNameOf, toHex } from './values.js';

/**
 * A Float64 for JSONEachRow: JSON has no NaN or infinities (JSON.stringify writes null, which
 * ClickHouse stores as 0), so those go as the strings ClickHouse reads as them.
 */
function f64(x: number): number | string {
  return Number.isFinite(x) ? x : Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
}

/** A NumberDataPoint's or Exemplar's value as a Float64 column (an int64 as a number, none as 0). */
function numberValue(v: NumberDataPoint['value'] | Exemplar['value']): number | string {
  return v.case === 'asDouble' ? f64(v.value) : v.case === 'asInt' ? Number(v.value) : 0;
}

/** The Exemplars.* columns of a data point. */
function exemplarColumns(exemplars: readonly Exemplar[]): Row {
  return {
    'Exemplars.FilteredAttributes': exemplars.map((e) => attributesToMap(e.filteredAttributes)),
    'Exemplars.TimeUnix': exemplars.map((e) => nanosToDateTime64(e.timeUnixNano)),
    'Exemplars.Value': exemplars.map((e) => numberValue(e.value)),
    'Exemplars.SpanId': exemplars.map((e) => toHex(e.spanId)),
    'Exemplars.TraceId': exemplars.map((e) => toHex(e.traceId)),
  };
}

/** Number of data points a metric carries (what is counted as accepted or rejected). */
export function dataPointCount(metric: Metric): number {
  return metric.data.case === undefined ? 0 : metric.data.value.dataPoints.length;
}

/** The columns every row of a data point's metric shares: resource, scope and the metric's name, description and unit. */
type MetricBase = Row;

/** The columns every data point has: the metric's, then its attributes, times and flags. */
function pointColumns(base: MetricBase, p: { attributes: Parameters<typeof attributesToMap>[0]; startTimeUnixNano: bigint; timeUnixNano: bigint; flags: number }): Row {
  return { ...base, Attributes: attributesToMap(p.attributes), StartTimeUnix: nanosToDateTime64(p.startTimeUnixNano), TimeUnix: nanosToDateTime64(p.timeUnixNano), Flags: p.flags };
}

/** An otel_metrics_gauge row. */
function gaugeRow(base: MetricBase, p: NumberDataPoint): Row {
  return { ...pointColumns(base, p), Value: numberValue(p.value), ...exemplarColumns(p.exemplars) };
}

/** An otel_metrics_sum row. */
function sumRow(base: MetricBase, sum: Sum, p: NumberDataPoint): Row {
  return { ...pointColumns(base, p), Value: numberValue(p.value), AggregationTemporality: sum.aggregationTemporality, IsMonotonic: sum.isMonotonic, ...exemplarColumns(p.exemplars) };
}

/** Why a histogram point's bucket counts do not fit its bounds (want none, or bounds + 1); undefined when they do. */
function bucketMismatch(p: HistogramDataPoint): string | undefined {
  if (p.bucketCounts.length === 0 || p.bucketCounts.length === p.explicitBounds.length + 1) return undefined;
  return `${p.bucketCounts.length} bucket counts for ${p.explicitBounds.length} bounds (want bounds + 1)`;
}

/** An otel_metrics_histogram row (its buckets checked first with bucketMismatch). */
function histogramRow(base: MetricBase, h: Histogram, p: HistogramDataPoint): Row {
  return {
    ...pointColumns(base, p),
    Count: p.count.toString(),
    Sum: f64(p.sum ?? 0),
    BucketCounts: p.bucketCounts.map(String),
    ExplicitBounds: p.explicitBounds.map(f64),
    Min: f64(p.min ?? 0),
    Max: f64(p.max ?? 0),
    AggregationTemporality: h.aggregationTemporality,
    ...exemplarColumns(p.exemplars),
  };
}

/** An otel_metrics_exponential_histogram row. */
function exponentialHistogramRow(base: MetricBase, h: ExponentialHistogram, p: ExponentialHistogramDataPoint): Row {
  return {
    ...pointColumns(base, p),
    Count: p.count.toString(),
    Sum: f64(p.sum ?? 0),
    Scale: p.scale,
    ZeroCount: p.zeroCount.toString(),
    PositiveOffset: p.positive?.offset ?? 0,
    PositiveBucketCounts: (p.positive?.bucketCounts ?? []).map(String),
    NegativeOffset: p.negative?.offset ?? 0,
    NegativeBucketCounts: (p.negative?.bucketCounts ?? []).map(String),
    Min: f64(p.min ?? 0),
    Max: f64(p.max ?? 0),
    AggregationTemporality: h.aggregationTemporality,
    ...exemplarColumns(p.exemplars),
  };
}

/** An otel_metrics_summary row. */
function summaryRow(base: MetricBase, p: SummaryDataPoint): Row {
  return {
    ...pointColumns(base, p),
    Count: p.count.toString(),
    Sum: f64(p.sum),
    'ValueAtQuantiles.Quantile': p.quantileValues.map((q) => f64(q.quantile)),
    'ValueAtQuantiles.Value': p.quantileValues.map((q) => f64(q.value)),
  };
}

/** Adds a metric's data points to their kind's table; a histogram point whose buckets do not fit is rejected, named by `where`. */
function addPoints(out: ConversionBuilder, base: MetricBase, data: Metric['data'], where: string): void {
  switch (data.case) {
    case 'gauge':
      for (const p of data.value.dataPoints) out.add(METRIC_TABLES.gauge.name, gaugeRow(base, p));
      break;
    case 'sum':
      for (const p of data.value.dataPoints) out.add(METRIC_TABLES.sum.name, sumRow(base, data.value, p));
      break;
    case 'histogram':
      data.value.dataPoints.forEach((p, i) => {
        const mismatch = bucketMismatch(p);
        if (mismatch) out.reject(1, `${where}.histogram.data_points[${i}]: ${mismatch}`);
        else out.add(METRIC_TABLES.histogram.name, histogramRow(base, data.value, p));
      });
      break;
    case 'exponentialHistogram':
      for (const p of data.value.dataPoints) out.add(METRIC_TABLES.exponentialHistogram.name, exponentialHistogramRow(base, data.value, p));
      break;
    case 'summary':
      for (const p of data.value.dataPoints) out.add(METRIC_TABLES.summary.name, summaryRow(base, p));
      break;
    default:
      break;
  }
}

/** The resource's columns of every row under it. */
function resourceColumns(rm: ResourceMetrics): Row {
  return { ResourceAttributes: attributesToMap(rm.resource?.attributes ?? []), ResourceSchemaUrl: rm.schemaUrl, ServiceName: serviceNameOf(rm.resource?.attributes ?? []) };
}

/** The instrumentation scope's columns of every row under it. */
function scopeColumns(sm: ScopeMetrics): Row {
  return {
    ScopeName: sm.scope?.name ?? '',
    ScopeVersion: sm.scope?.version ?? '',
    ScopeAttributes: attributesToMap(sm.scope?.attributes ?? []),
    ScopeDroppedAttrCount: sm.scope?.droppedAttributesCount ?? 0,
    ScopeSchemaUrl: sm.schemaUrl,
  };
}

/**
 * Converts an OTLP metrics export into rows of the five otel_metrics_* tables. A data point is
 * rejected when its metric has no name, or when a histogram's bucket counts do not fit its bounds.
 */
export function metricsToRows(request: ExportMetricsServiceRequest): Conversion {
  const out = new ConversionBuilder();
  request.resourceMetrics.forEach((rm, r) => {
    const resource = resourceColumns(rm);
    rm.scopeMetrics.forEach((sm, s) => {
      const scope = scopeColumns(sm);
      sm.metrics.forEach((metric, m) => {
        const where = `resource_metrics[${r}].scope_metrics[${s}].metrics[${m}]`;
        if (metric.name === '') return out.reject(dataPointCount(metric), `${where}: metric name is empty`);
        addPoints(out, { ...resource, ...scope, MetricName: metric.name, MetricDescription: metric.description, MetricUnit: metric.unit }, metric.data, where);
      });
    });
  });
  return out.build();
}
