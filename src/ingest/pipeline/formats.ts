import type { ColumnSpec } from '../../storage/rowbinary.js';
import { encodeRowBinary } from '../../storage/rowbinary.js';
import type { InsertFormat } from '../../storage/transport.js';
import type { Conversion } from '../otlp/result.js';
import { TRACES_COLUMNS, TRACES_TABLE } from '../otlp/traces.js';
import type { TableRows } from './batcher.js';

/** Tables written in RowBinary (the hot ones), with their columns; the others take JSONEachRow. */
const ROW_BINARY_TABLES: ReadonlyMap<string, readonly ColumnSpec[]> = new Map([[TRACES_TABLE, TRACES_COLUMNS]]);

/** How rows of `table` are encoded: one format per table, so batches and queued records never mix. */
export function insertFormatOf(table: string): InsertFormat {
  const columns = ROW_BINARY_TABLES.get(table);
  return columns ? { format: 'RowBinary', columns: columns.map((c) => c.name) } : { format: 'JSONEachRow' };
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
