import { describe, expect, it } from 'vitest';
import { tracesToRows } from '../../../src/ingest/otlp/traces.js';
import { encodeRows, encodeTables } from '../../../src/ingest/pipeline/formats.js';
import { encodeRowBinary } from '../../../src/storage/rowbinary.js';
import { EVENTS, LOGS, TRACES } from '../../../src/storage/tables.js';
import { parseJsonLines } from '../../../src/storage/transport.js';
import { traceRequest } from '../../support/otlp-requests.js';

describe('row encoding', () => {
  it('writes JSONEachRow tables as one JSON object per line', () => {
    const rows = [{ Id: 'a', Message: 'line 1\nline "2"' }, { Id: 'b', Message: '' }];
    const part = encodeRows(EVENTS.name, rows);
    expect(part.rows).toBe(2);
    expect(part.data.toString()).toBe(`${JSON.stringify(rows[0])}\n${JSON.stringify(rows[1])}\n`);
    expect(parseJsonLines(part.data.toString())).toEqual(rows);
    expect(encodeRows(LOGS.name, [])).toEqual({ table: LOGS.name, data: Buffer.alloc(0), rows: 0 });
  });

  it('writes RowBinary tables in the catalogue columns order, each table of a conversion in its format', () => {
    const c = tracesToRows(traceRequest('svc', 3));
    c.tables.set(EVENTS.name, [{ Id: 'x' }]);
    const parts = encodeTables(c);
    expect(parts.map((p) => [p.table, p.rows])).toEqual([
      [TRACES.name, 3],
      [EVENTS.name, 1],
    ]);
    expect(parts[0]?.data).toEqual(encodeRowBinary(c.tables.get(TRACES.name) ?? [], TRACES.columns));
    expect(parts[1]?.data.toString()).toBe('{"Id":"x"}\n');
  });
});
