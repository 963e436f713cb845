import { METRIC_TABLES } from '../tables.js';
import { TABLE_SETTINGS, ttlClause, type Migration, type SchemaContext } from './context.js';

// The five metric tables of the Collector's ClickHouse exporter. Upstream is mid-way through moving
// some of them to second-precision DateTime; all five keep nanosecond DateTime64(9) here, as OTLP has.
const TYPE_COLUMNS: Record<keyof typeof METRIC_TABLES, readonly string[]> = {
  gauge: ['Value Float64 CODEC(ZSTD(1))', 'Flags UInt32 CODEC(ZSTD(1))'],
  sum: ['Value Float64 CODEC(ZSTD(1))', 'Flags UInt32 CODEC(ZSTD(1))', 'AggregationTemporality Int32 CODEC(ZSTD(1))', 'IsMonotonic Boolean CODEC(Delta, ZSTD(1))'],
  histogram: [
    'Count UInt64 CODEC(Delta, ZSTD(1))',
    'Sum Float64 CODEC(ZSTD(1))',
    'BucketCounts Array(UInt64) CODEC(ZSTD(1))',
    'ExplicitBounds Array(Float64) CODEC(ZSTD(1))',
    'Flags UInt32 CODEC(ZSTD(1))',
    'Min Float64 CODEC(ZSTD(1))',
    'Max Float64 CODEC(ZSTD(1))',
    'AggregationTemporality Int32 CODEC(ZSTD(1))',
  ],
  exponentialHistogram: [
    'Count UInt64 CODEC(Delta, ZSTD(1))',
    'Sum Float64 CODEC(ZSTD(1))',
    'Scale Int32 CODEC(ZSTD(1))',
    'ZeroCount UInt64 CODEC(ZSTD(1))',
    'PositiveOffset Int32 CODEC(ZSTD(1))',
    'PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1))',
    'NegativeOffset Int32 CODEC(ZSTD(1))',
    'NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1))',
    'Flags UInt32 CODEC(ZSTD(1))',
    'Min Float64 CODEC(ZSTD(1))',
    'Max Float64 CODEC(ZSTD(1))',
    'AggregationTemporality Int32 CODEC(ZSTD(1))',
  ],
  summary: ['Count UInt64 CODEC(Delta, ZSTD(1))', 'Sum Float64 CODEC(ZSTD(1))', 'ValueAtQuantiles Nested (\n    Quantile Float64,\n    Value Float64\n  ) CODEC(ZSTD(1))', 'Flags UInt32 CODEC(ZSTD(1))'],
};

const EXEMPLARS = `Exemplars Nested (
    FilteredAttributes Map(LowCardinality(String), String),
    TimeUnix DateTime64(9),
    Value Float64,
    SpanId String,
    TraceId String
  ) CODEC(ZSTD(1))`;

function metricTable(ctx: SchemaContext, type: keyof typeof METRIC_TABLES): string {
  const columns = [
    'ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1))',
    'ResourceSchemaUrl String CODEC(ZSTD(1))',
    'ScopeName String CODEC(ZSTD(1))',
    'ScopeVersion String CODEC(ZSTD(1))',
    'ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1))',
    'ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1))',
    'ScopeSchemaUrl String CODEC(ZSTD(1))',
    'ServiceName LowCardinality(String) CODEC(ZSTD(1))',
    'MetricName String CODEC(ZSTD(1))',
    'MetricDescription String CODEC(ZSTD(1))',
    'MetricUnit String CODEC(ZSTD(1))',
    'Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1))',
    'StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1))',
    'TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1))',
    ...TYPE_COLUMNS[type],
    ...(type === 'summary' ? [] : [EXEMPLARS]),
    'INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1',
    'INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1',
    'INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1',
    'INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1',
    'INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1',
    'INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1',
  ];
  return `CREATE TABLE IF NOT EXISTS ${METRIC_TABLES[type].name}${ctx.onCluster} (
  ${columns.join(',\n  ')}
) ENGINE = ${ctx.engine}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))${ttlClause('toDateTime(TimeUnix)', ctx.retention.metrics)}
SETTINGS ${TABLE_SETTINGS}`;
}

const TYPES = Object.keys(METRIC_TABLES) as Array<keyof typeof METRIC_TABLES>;

export const migration0004: Migration = {
  version: 4,
  name: 'otel_metrics_{gauge,sum,histogram,exp_histogram,summary}',
  retention: TYPES.map((type) => ({ table: METRIC_TABLES[type].name, column: 'toDateTime(TimeUnix)', signal: 'metrics' as const })),
  statements: (ctx) => TYPES.map((type) => metricTable(ctx, type)),
};
