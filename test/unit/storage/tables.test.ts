import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ExportLogsServiceRequestSchema } from '../../../src/gen/opentelemetry/proto/collector/logs/v1/logs_service_pb.js';
import { ExportMetricsServiceRequestSchema } from '../../../src/gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb.js';
import { logsToRows } from '../../../src/ingest/otlp/logs.js';
import { metricsToRows } from '../../../src/ingest/otlp/metrics.js';
import { tracesToRows } from '../../../src/ingest/otlp/traces.js';
import { schemaContext } from '../../../src/storage/migrate.js';
import { MIGRATIONS, RETENTION_TABLES } from '../../../src/storage/migrations/index.js';
import { EVENTS, insertOptionsFor, JOB_RUNS, LOGS, METRIC_TABLES, tableSpec, TABLES, TRACES } from '../../../src/storage/tables.js';
import { traceRequest } from '../../support/otlp-requests.js';

const ctx = schemaContext({ retention: { traces: 0, logs: 0, metrics: 0, events: 0 } });
/** Each table's CREATE TABLE statement, by table name. */
const DDL = new Map(
  MIGRATIONS.flatMap((m) => m.statements(ctx))
    .map((sql) => [/^CREATE TABLE IF NOT EXISTS (\w+) \(/.exec(sql)?.[1], sql] as const)
    .filter((e): e is [string, string] => e[0] !== undefined),
);
/** The top-level column names of a CREATE TABLE statement (a nested column's prefix, e.g. `Events`). */
const columnsOf = (sql: string): Set<string> => new Set([...sql.matchAll(/^ {2}(\w+) /gm)].map((m) => m[1] ?? '').filter((c) => c !== 'INDEX'));

describe('table catalogue', () => {
  it('lists exactly the tables the migrations create, each once', () => {
    const names = TABLES.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...DDL.keys()].sort());
    for (const r of RETENTION_TABLES) expect(names).toContain(r.table);
  });

  it('defers only indexes that its table declares, and never the trace id lookup index', () => {
    for (const t of TABLES) {
      const sql = DDL.get(t.name) ?? '';
      for (const index of t.deferredIndexes ?? []) expect(sql, `${t.name}.${index}`).toContain(`INDEX ${index} `);
      expect(t.deferredIndexes ?? []).not.toContain('idx_trace_id');
    }
    expect(insertOptionsFor(METRIC_TABLES.summary.name).deferredIndexes).toEqual(['idx_res_attr_key', 'idx_res_attr_value', 'idx_scope_attr_key', 'idx_scope_attr_value', 'idx_attr_key', 'idx_attr_value']);
  });

  it('gives each table one insert format: RowBinary with its columns in order, else JSONEachRow', () => {
    expect(insertOptionsFor(TRACES.name)).toEqual({ format: 'RowBinary', columns: TRACES.columns.map((c) => c.name), deferredIndexes: TRACES.deferredIndexes });
    expect(insertOptionsFor(LOGS.name)).toEqual({ format: 'JSONEachRow', deferredIndexes: LOGS.deferredIndexes });
    expect(insertOptionsFor(EVENTS.name)).toEqual({ format: 'JSONEachRow', deferredIndexes: undefined });
    expect(insertOptionsFor('not_a_table')).toEqual({ format: 'JSONEachRow', deferredIndexes: undefined });
    for (const t of TABLES) expect(t.format === 'RowBinary', t.name).toBe(t.columns !== undefined);
  });

  it('names the items of each table as the Collector does, "rows" for any other', () => {
    expect(tableSpec(TRACES.name).item).toBe('spans');
    expect(tableSpec(LOGS.name).item).toBe('log_records');
    for (const t of Object.values(METRIC_TABLES)) expect(tableSpec(t.name).item).toBe('metric_points');
    expect(tableSpec(EVENTS.name).item).toBe('rows');
    expect(tableSpec('not_a_table')).toEqual({ name: 'not_a_table', item: 'rows', format: 'JSONEachRow' });
  });

  it('builds row ids from columns of their table', () => {
    for (const t of TABLES) {
      if (!t.rowId) continue;
      const columns = columnsOf(DDL.get(t.name) ?? '');
      const used = [...t.rowId.expr.matchAll(/\b([A-Z]\w*)\b/g)].map((m) => m[1] ?? '');
      expect(used.length, t.name).toBeGreaterThan(0);
      for (const c of used) expect(columns, `${t.name}: ${c}`).toContain(c);
    }
    expect(LOGS.rowId).toEqual({ expr: expect.stringMatching(/^cityHash64\(Timestamp, /) as string, type: 'UInt64' });
    expect(EVENTS.rowId.expr).toBe('Id');
    expect(JOB_RUNS.rowId.expr).toBe('Id');
  });

  it('has RowBinary columns that exist in the table, as the converters write them', () => {
    const columns = columnsOf(DDL.get(TRACES.name) ?? '');
    for (const c of TRACES.columns) expect(columns).toContain(c.name.split('.')[0]);
    const rows = tracesToRows(traceRequest('svc', 2)).tables.get(TRACES.name) ?? [];
    expect(rows).toHaveLength(2);
    expect(Object.keys(rows[0] ?? {})).toEqual(TRACES.columns.map((c) => c.name));
  });

  it('is where the converters write: every column they fill exists in the catalogue table', () => {
    const logs = logsToRows(create(ExportLogsServiceRequestSchema, { resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: { value: { case: 'stringValue', value: 'x' } } }] }] }] }));
    const metrics = metricsToRows(
      create(ExportMetricsServiceRequestSchema, {
        resourceMetrics: [
          {
            scopeMetrics: [
              {
                metrics: [
                  { name: 'g', data: { case: 'gauge', value: { dataPoints: [{}] } } },
                  { name: 's', data: { case: 'sum', value: { dataPoints: [{}] } } },
                  { name: 'h', data: { case: 'histogram', value: { dataPoints: [{}] } } },
                  { name: 'e', data: { case: 'exponentialHistogram', value: { dataPoints: [{}] } } },
                  { name: 'q', data: { case: 'summary', value: { dataPoints: [{}] } } },
                ],
              },
            ],
          },
        ],
      }),
    );
    const written = [...logs.tables, ...metrics.tables];
    expect(written.map(([t]) => t).sort()).toEqual([LOGS.name, ...Object.values(METRIC_TABLES).map((t) => t.name)].sort());
    for (const [table, rows] of written) {
      const columns = columnsOf(DDL.get(table) ?? '');
      for (const key of Object.keys(rows[0] ?? {})) expect(columns, `${table}.${key}`).toContain(key.split('.')[0]);
    }
  });
});
