import type { ColumnSpec } from '../../storage/rowbinary.js';
import { encodeRowBinary } from '../../storage/rowbinary.js';
import type { InsertOptions } from '../../storage/transport.js';
import type { Conversion } from '../otlp/result.js';
import { TRACES_COLUMNS, TRACES_TABLE } from '../otlp/traces.js';
import type { TableRows } from './batcher.js';

/** Tables written in RowBinary (the hot ones), with their columns; the others take JSONEachRow. */
const ROW_BINARY_TABLES: ReadonlyMap<string, readonly ColumnSpec[]> = new Map([[TRACES_TABLE, TRACES_COLUMNS]]);

/**
 * Skip indexes over attribute maps and text (bloom filters) that inserts leave to the first merge:
 * building them costs about as much as the rest of the insert, and every merge rebuilds them.
 * Trace id lookups keep their index from the start.
 */
const ATTRIBUTE_INDEXES = ['idx_res_attr_key', 'idx_res_attr_value', 'idx_scope_attr_key', 'idx_scope_attr_value'];
const DEFERRED_INDEXES: ReadonlyMap<string, readonly string[]> = new Map([
  [TRACES_TABLE, [...ATTRIBUTE_INDEXES, 'idx_span_attr_key', 'idx_span_attr_value', 'idx_lower_span_name']],
  ['otel_logs', [...ATTRIBUTE_INDEXES, 'idx_log_attr_key', 'idx_log_attr_value', 'idx_lower_body']],
]);

const METRIC_DEFERRED_INDEXES = [...ATTRIBUTE_INDEXES, 'idx_attr_key', 'idx_attr_value'];
const ROW_BINARY_COLUMN_NAMES: ReadonlyMap<string, readonly string[]> = new Map([...ROW_BINARY_TABLES].map(([t, cols]) => [t, cols.map((c) => c.name)]));

/** How rows of `table` are inserted: one format per table (so batches and queued records never mix), and the indexes left to merges. */
export function insertOptionsFor(table: string): Pick<InsertOptions, 'format' | 'columns' | 'deferredIndexes'> {
  const columns = ROW_BINARY_COLUMN_NAMES.get(table);
  const deferredIndexes = DEFERRED_INDEXES.get(table) ?? (table.startsWith('otel_metrics_') ? METRIC_DEFERRED_INDEXES : undefined);
  return columns ? { format: 'RowBinary', columns, deferredIndexes } : { format: 'JSONEachRow', deferredIndexes };
}

/** Encodes a conversion's rows per table, each table in its format. */
export function encodeTables(c: Conversion): TableRows[] {
  const parts: TableRows[] = [];
  for (const [table, rows] of c.tables) {
    const columns = ROW_BINARY_TABLES.get(table);
    let data: Buffer;
    if (columns) data = encodeRowBinary(rows, columns);
    else {
      let text = '';
      for (const row of rows) text += `${JSON.stringify(row)}\n`;
      data = Buffer.from(text);
    }
    parts.push({ table, data, rows: rows.length });
  }
  return parts;
}
