import type { ColumnSpec } from './rowbinary.js';
import type { InsertOptions } from './transport.js';

/**
 * The table catalogue: one owner for every fact about a table that more than one part of Heimdall
 * relies on. Migrations create the tables under these names, ingest encodes and inserts rows in the
 * format and with the deferred indexes given here, and queries and exports read the same names and
 * row ids. The DDL itself stays in the migrations (an applied migration never changes).
 */

/** What one row of a table is called in metric names, in the Collector's vocabulary (heimdall_exporter_sent_spans_total). */
export type ItemName = 'spans' | 'log_records' | 'metric_points' | 'rows';

/** One table and how it is written and read. */
export interface TableSpec {
  readonly name: string;
  /** What one row is called in metric names. */
  readonly item: ItemName;
  /** How ingest inserts rows: RowBinary (the hot tables; needs `columns`) or JSONEachRow (rows as objects, one per line). */
  readonly format: 'RowBinary' | 'JSONEachRow';
  /** RowBinary columns in insert order (ALIAS columns are computed). Only for RowBinary tables. */
  readonly columns?: readonly ColumnSpec[];
  /**
   * Skip indexes that inserts leave to the first merge of their part
   * (`exclude_materialize_skip_indexes_on_insert`); every name is an INDEX of the table's DDL.
   */
  readonly deferredIndexes?: readonly string[];
  /** A SQL expression identifying a row (with the row's time, a unique key to page by), and its ClickHouse type, where the table has one. */
  readonly rowId?: { readonly expr: string; readonly type: 'String' | 'UInt64' };
}

/** A table whose rows have an id. */
export type TableWithRowId = TableSpec & { readonly rowId: NonNullable<TableSpec['rowId']> };

/*
 * Deferred indexes: skip indexes over attribute maps and text (bloom filters) that inserts leave to
 * the first merge: building them costs about as much as the rest of the insert, and every merge
 * rebuilds them. Trace id lookups keep their index from the start.
 */
const RESOURCE_INDEXES = ['idx_res_attr_key', 'idx_res_attr_value'] as const;
const SCOPE_INDEXES = ['idx_scope_attr_key', 'idx_scope_attr_value'] as const;

/** Spans, in the layout of the Collector's ClickHouse exporter. */
export const TRACES = {
  name: 'otel_traces',
  item: 'spans',
  format: 'RowBinary',
  columns: [
    { name: 'Timestamp', type: 'DateTime64(9)' },
    { name: 'TraceId', type: 'String' },
    { name: 'SpanId', type: 'String' },
    { name: 'ParentSpanId', type: 'String' },
    { name: 'TraceState', type: 'String' },
    { name: 'SpanName', type: 'String' },
    { name: 'SpanKind', type: 'String' },
    { name: 'ServiceName', type: 'String' },
    { name: 'ResourceAttributes', type: 'Map(String,String)' },
    { name: 'ScopeName', type: 'String' },
    { name: 'ScopeVersion', type: 'String' },
    { name: 'SpanAttributes', type: 'Map(String,String)' },
    { name: 'Duration', type: 'UInt64' },
    { name: 'StatusCode', type: 'String' },
    { name: 'StatusMessage', type: 'String' },
    { name: 'Events.Timestamp', type: 'Array(DateTime64(9))' },
    { name: 'Events.Name', type: 'Array(String)' },
    { name: 'Events.Attributes', type: 'Array(Map(String,String))' },
    { name: 'Links.TraceId', type: 'Array(String)' },
    { name: 'Links.SpanId', type: 'Array(String)' },
    { name: 'Links.TraceState', type: 'Array(String)' },
    { name: 'Links.Attributes', type: 'Array(Map(String,String))' },
  ],
  // otel_traces has no scope attribute indexes.
  deferredIndexes: [...RESOURCE_INDEXES, 'idx_span_attr_key', 'idx_span_attr_value', 'idx_lower_span_name'],
  rowId: { expr: 'SpanId', type: 'String' },
} as const satisfies TableSpec;

/** Each trace id's first and last span time, filled by a materialized view over otel_traces (never inserted into). */
export const TRACE_ID_TS = { name: 'otel_traces_trace_id_ts', item: 'rows', format: 'JSONEachRow' } as const satisfies TableSpec;

/** Log records, in the layout of the Collector's ClickHouse exporter. */
export const LOGS = {
  name: 'otel_logs',
  item: 'log_records',
  format: 'JSONEachRow',
  deferredIndexes: [...RESOURCE_INDEXES, ...SCOPE_INDEXES, 'idx_log_attr_key', 'idx_log_attr_value', 'idx_lower_body'],
  /** The table has no id: a hash of the record (what query answers and exports show as the record's id). */
  rowId: {
    expr: 'cityHash64(Timestamp, ServiceName, SeverityNumber, SeverityText, Body, TraceId, SpanId, TraceFlags, EventName, ScopeName, ScopeVersion, toString(LogAttributes), toString(ResourceAttributes), toString(ScopeAttributes))',
    type: 'UInt64',
  },
} as const satisfies TableSpec;

const metricTable = <N extends string>(name: N) => ({ name, item: 'metric_points', format: 'JSONEachRow', deferredIndexes: [...RESOURCE_INDEXES, ...SCOPE_INDEXES, 'idx_attr_key', 'idx_attr_value'] }) as const satisfies TableSpec;

/** The five metric tables of the Collector's ClickHouse exporter, by OTLP data type. */
export const METRIC_TABLES = {
  gauge: metricTable('otel_metrics_gauge'),
  sum: metricTable('otel_metrics_sum'),
  histogram: metricTable('otel_metrics_histogram'),
  exponentialHistogram: metricTable('otel_metrics_exp_histogram'),
  summary: metricTable('otel_metrics_summary'),
} as const;

/** Heimdall's structured events. */
export const EVENTS = { name: 'heimdall_events', item: 'rows', format: 'JSONEachRow', rowId: { expr: 'Id', type: 'String' } } as const satisfies TableSpec;

/** The rate limiter's security state (mode, blocks, approval actions). */
export const SECURITY_STATE = { name: 'heimdall_security_state', item: 'rows', format: 'JSONEachRow' } as const satisfies TableSpec;

/** Scheduled jobs created through the API (and pauses of config jobs). */
export const JOBS = { name: 'heimdall_jobs', item: 'rows', format: 'JSONEachRow' } as const satisfies TableSpec;

/** Job run records (one row per state change; the newest version of an id wins). */
export const JOB_RUNS = { name: 'heimdall_job_runs', item: 'rows', format: 'JSONEachRow', rowId: { expr: 'Id', type: 'String' } } as const satisfies TableSpec;

/** The migrations applied. */
export const SCHEMA_MIGRATIONS = { name: 'heimdall_schema_migrations', item: 'rows', format: 'JSONEachRow' } as const satisfies TableSpec;

/** Every table of the catalogue. */
export const TABLES: readonly TableSpec[] = [SCHEMA_MIGRATIONS, TRACES, TRACE_ID_TS, LOGS, ...Object.values(METRIC_TABLES), EVENTS, SECURITY_STATE, JOBS, JOB_RUNS];

const BY_NAME: ReadonlyMap<string, TableSpec> = new Map(TABLES.map((t) => [t.name, t]));

/** A table not in the catalogue: rows in JSONEachRow, no deferred indexes. */
const UNKNOWN: Omit<TableSpec, 'name'> = { item: 'rows', format: 'JSONEachRow' };

/** The catalogue's entry for `name`; a table it does not list takes JSONEachRow rows called "rows". Never throws. */
export function tableSpec(name: string): TableSpec {
  return BY_NAME.get(name) ?? { name, ...UNKNOWN };
}

type TableInsertOptions = Pick<InsertOptions, 'format' | 'columns' | 'deferredIndexes'>;

const INSERT_OPTIONS: ReadonlyMap<string, TableInsertOptions> = new Map(
  TABLES.map((t) => [t.name, t.format === 'RowBinary' ? { format: 'RowBinary', columns: (t.columns ?? []).map((c) => c.name), deferredIndexes: t.deferredIndexes } : { format: 'JSONEachRow', deferredIndexes: t.deferredIndexes }]),
);

/** How rows of `table` are inserted: one format per table (so batches and queued records never mix), and the indexes left to merges. */
export function insertOptionsFor(table: string): TableInsertOptions {
  return INSERT_OPTIONS.get(table) ?? { format: 'JSONEachRow', deferredIndexes: undefined };
}
