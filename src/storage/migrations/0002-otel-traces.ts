import { TRACE_ID_TS, TRACES } from '../tables.js';
import { TABLE_SETTINGS, ttlClause, type Migration } from './context.js';

// Layout of the OpenTelemetry Collector's ClickHouse exporter (exporter/clickhouseexporter), which
// Grafana's ClickHouse datasource and other tools read: names, types, codecs, indexes and ordering match.
export const migration0002: Migration = {
  version: 2,
  name: 'otel_traces and the trace id lookup table',
  retention: [
    { table: TRACES.name, column: 'toDateTime(Timestamp)', signal: 'traces' },
    { table: TRACE_ID_TS.name, column: 'Start', signal: 'traces' },
  ],
  statements: (ctx) => [
    `CREATE TABLE IF NOT EXISTS ${TRACES.name}${ctx.onCluster} (
  Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
  TraceId String CODEC(ZSTD(1)),
  SpanId String CODEC(ZSTD(1)),
  ParentSpanId String CODEC(ZSTD(1)),
  TraceState String CODEC(ZSTD(1)),
  SpanName LowCardinality(String) CODEC(ZSTD(1)),
  SpanKind LowCardinality(String) CODEC(ZSTD(1)),
  ServiceName LowCardinality(String) CODEC(ZSTD(1)),
  ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
  ScopeName String CODEC(ZSTD(1)),
  ScopeVersion String CODEC(ZSTD(1)),
  SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
  Duration UInt64 CODEC(T64, ZSTD(1)),
  StatusCode LowCardinality(String) CODEC(ZSTD(1)),
  StatusMessage String CODEC(ZSTD(1)),
  Events Nested (
    Timestamp DateTime64(9),
    Name LowCardinality(String),
    Attributes Map(LowCardinality(String), String)
  ) CODEC(ZSTD(1)),
  Links Nested (
    TraceId String,
    SpanId String,
    TraceState String,
    Attributes Map(LowCardinality(String), String)
  ) CODEC(ZSTD(1)),
  ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
  SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
  INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
  INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
  INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
  INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
  INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
  INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
  INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = ${ctx.engine}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)${ttlClause('toDateTime(Timestamp)', ctx.retention.traces)}
SETTINGS ${TABLE_SETTINGS}`,
    `CREATE TABLE IF NOT EXISTS ${TRACE_ID_TS.name}${ctx.onCluster} (
  TraceId String CODEC(ZSTD(1)),
  Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
  End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = ${ctx.aggregatingEngine}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)${ttlClause('Start', ctx.retention.traces)}
SETTINGS ${TABLE_SETTINGS}`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${TRACE_ID_TS.name}_mv${ctx.onCluster}
TO ${TRACE_ID_TS.name}
AS SELECT
  TraceId,
  min(toDateTime(Timestamp)) AS Start,
  max(toDateTime(Timestamp)) AS End
FROM ${TRACES.name}
WHERE TraceId != ''
GROUP BY TraceId`,
  ],
};
