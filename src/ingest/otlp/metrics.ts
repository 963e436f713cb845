import type { ExportMetricsServiceRequest } from '../../gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import type { Exemplar, Metric, NumberDataPoint } from '../../gen/opentelemetry/proto/metrics/v1/metrics_pb.js';
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

function numberValue(v: NumberDataPoint['value'] | Exemplar['value']): number | string {
  return v.case === 'asDouble' ? f64(v.value) : v.case === 'asInt' ? Number(v.value) : 0;
}

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

/**
 * Converts an OTLP metrics export into rows of the five otel_metrics_* tables. A data point is
 * rejected when its metric has no name, or when a histogram's bucket counts do not fit its bounds.
 */
export function metricsToRows(request: ExportMetricsServiceRequest): Conversion {
  const out = new ConversionBuilder();
  request.resourceMetrics.forEach((rm, r) => {
    const resource = {
      ResourceAttributes: attributesToMap(rm.resource?.attributes ?? []),
      ResourceSchemaUrl: rm.schemaUrl,
      ServiceName: serviceNameOf(rm.resource?.attributes ?? []),
    };
    rm.scopeMetrics.forEach((sm, s) => {
      const scope = {
        ScopeName: sm.scope?.name ?? '',
        ScopeVersion: sm.scope?.version ?? '',
        ScopeAttributes: attributesToMap(sm.scope?.attributes ?? []),
        ScopeDroppedAttrCount: sm.scope?.droppedAttributesCount ?? 0,
        ScopeSchemaUrl: sm.schemaUrl,
      };
      sm.metrics.forEach((metric, m) => {
        const where = `resource_metrics[${r}].scope_metrics[${s}].metrics[${m}]`;
        if (metric.name === '') return out.reject(dataPointCount(metric), `${where}: metric name is empty`);
        const base = { ...resource, ...scope, MetricName: metric.name, MetricDescription: metric.description, MetricUnit: metric.unit };
        const point = (p: { attributes: Parameters<typeof attributesToMap>[0]; startTimeUnixNano: bigint; timeUnixNano: bigint; flags: number }) => ({
          ...base,
          Attributes: attributesToMap(p.attributes),
          StartTimeUnix: nanosToDateTime64(p.startTimeUnixNano),
          TimeUnix: nanosToDateTime64(p.timeUnixNano),
          Flags: p.flags,
        });
        const data = metric.data;
        switch (data.case) {
          case 'gauge':
            for (const p of data.value.dataPoints) out.add(METRIC_TABLES.gauge.name, { ...point(p), Value: numberValue(p.value), ...exemplarColumns(p.exemplars) });
            break;
          case 'sum':
            for (const p of data.value.dataPoints) {
              out.add(METRIC_TABLES.sum.name, {
                ...point(p),
                Value: numberValue(p.value),
                AggregationTemporality: data.value.aggregationTemporality,
                IsMonotonic: data.value.isMonotonic,
                ...exemplarColumns(p.exemplars),
              });
            }
            break;
          case 'histogram':
            data.value.dataPoints.forEach((p, i) => {
              if (p.bucketCounts.length !== 0 && p.bucketCounts.length !== p.explicitBounds.length + 1) {
                return out.reject(1, `${where}.histogram.data_points[${i}]: ${p.bucketCounts.length} bucket counts for ${p.explicitBounds.length} bounds (want bounds + 1)`);
              }
              out.add(METRIC_TABLES.histogram.name, {
                ...point(p),
                Count: p.count.toString(),
                Sum: f64(p.sum ?? 0),
                BucketCounts: p.bucketCounts.map(String),
                ExplicitBounds: p.explicitBounds.map(f64),
                Min: f64(p.min ?? 0),
                Max: f64(p.max ?? 0),
                AggregationTemporality: data.value.aggregationTemporality,
                ...exemplarColumns(p.exemplars),
              });
            });
            break;
          case 'exponentialHistogram':
            for (const p of data.value.dataPoints) {
              out.add(METRIC_TABLES.exponentialHistogram.name, {
                ...point(p),
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
                AggregationTemporality: data.value.aggregationTemporality,
                ...exemplarColumns(p.exemplars),
              });
            }
            break;
          case 'summary':
            for (const p of data.value.dataPoints) {
              out.add(METRIC_TABLES.summary.name, {
                ...point(p),
                Count: p.count.toString(),
                Sum: f64(p.sum),
                'ValueAtQuantiles.Quantile': p.quantileValues.map((q) => f64(q.quantile)),
                'ValueAtQuantiles.Value': p.quantileValues.map((q) => f64(q.value)),
              });
            }
            break;
          default:
            break;
        }
      });
    });
  });
  return out.build();
}
