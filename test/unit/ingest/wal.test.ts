import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countRows, crc32, decodeParts, encodeParts, encodeRecord, HEADER_BYTES, listSegments, parseRecords, readSegment, segmentName } from '../../../src/ingest/pipeline/wal.js';
import { tempDir } from '../../support/temp.js';

describe('write-ahead log records', () => {
  it('frames record parts without re-encoding their rows', () => {
    const parts = [
      { table: 'otel_traces', rows: 2, data: Buffer.from([0, 1, 2, 255, 10, 13, 0x80]) },
      { table: 'otel_logs', rows: 1, data: Buffer.from('{"Body":"line\\nbreak ünïcødé 🚀"}\n') },
      { table: 'empty', rows: 0, data: Buffer.alloc(0) },
    ];
    const payload = encodeParts(parts);
    expect(decodeParts(payload)).toEqual(parts);
    expect(countRows(payload)).toBe(3);
    expect(() => decodeParts(payload.subarray(0, payload.length - 3))).toThrow('malformed record payload');
  });

  it('computes the standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });

  it('reads back what it wrote, and stops at a torn tail', () => {
    const dir = tempDir();
    const path = join(dir.path, segmentName(1n));
    writeFileSync(path, Buffer.concat([encodeRecord(1n, Buffer.from('one')), encodeRecord(2n, Buffer.from('two'))]));
    const whole = readFileSync(path).length;
    appendFileSync(path, encodeRecord(3n, Buffer.from('three')).subarray(0, HEADER_BYTES + 2)); // a crash mid-write
    const { records, validEnd, size } = readSegment(path);
    expect(records.map((r) => [r.seq, r.payload.toString()])).toEqual([
      [1n, 'one'],
      [2n, 'two'],
    ]);
    expect(validEnd).toBe(whole);
    expect(size).toBeGreaterThan(whole);
    expect(listSegments(dir.path)).toEqual([{ path, first: 1n, size }]);
    dir.cleanup();
  });

  it('stops at a corrupt record (checksum mismatch) and reports offsets from a base', () => {
    const a = encodeRecord(7n, Buffer.from('seven'));
    const b = encodeRecord(8n, Buffer.from('eight'));
    b.writeUInt8((b.at(-1) ?? 0) ^ 0xff, b.length - 1);
    const { records, validEnd } = parseRecords(Buffer.concat([a, b]), 1000);
    expect(records.map((r) => r.seq)).toEqual([7n]);
    expect(records[0]?.end).toBe(1000 + a.length);
    expect(validEnd).toBe(1000 + a.length);
  });
});
