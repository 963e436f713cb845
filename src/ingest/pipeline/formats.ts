import { encodeRowBinary } from '../../storage/rowbinary.js';
import { tableSpec } from '../../storage/tables.js';
import { encodeJsonEachRow } from '../../storage/transport.js';
import type { Conversion, Row } from '../otlp/result.js';

/** Encoded rows for one table (in the table's insert format, see storage/tables.ts) and their count. */
export interface TableRows {
  table: string;
  data: Buffer;
  rows: number;
}

/** Encodes rows of `table` in its insert format (RowBinary in its catalogue columns' order, else JSONEachRow). */
export function encodeRows(table: string, rows: readonly Row[]): TableRows {
  const { format, columns } = tableSpec(table);
  const data = format === 'RowBinary' && columns ? encodeRowBinary(rows, columns) : encodeJsonEachRow(rows);
  return { table, data, rows: rows.length };
}

/** Encodes a conversion's rows per table, each table in its format. */
export function encodeTables(c: Conversion): TableRows[] {
  return [...c.tables].map(([table, rows]) => encodeRows(table, rows));
}
