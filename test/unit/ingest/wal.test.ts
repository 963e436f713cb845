import { describe, expect, it } from 'vitest';
import { checkRecord, countRows, crc32, decodeParts, encodeParts, encodeRecord, findRecord, HEADER_BYTES, newSegmentHeader, scanSegment, SEGMENT_HEADER_BYTES, segmentLayout, type SegmentFormat } from '../../../src/ingest/pipeline/wal.js';

type V2 = Extract<SegmentFormat, { version: 2 }>;

/** A version 2 segment holding records `seqs` with payloads `p<seq>`, and where each record starts. */
function segment(seqs: readonly bigint[], header = newSegmentHeader()): { data: Buffer; format: V2; starts: number[] } {
  const format = header.format as V2;
  const parts: Buffer[] = [header.header];
  const starts: number[] = [];
  let at = header.header.length;
  for (const seq of seqs) {
    starts.push(at);
    const rec = Buffer.concat(encodeRecord(seq, Buffer.from(`p${seq}`.repeat(10)), format));
    parts.push(rec);
    at += rec.length;
  }
  return { data: Buffer.concat(parts), format, starts };
}

/** A segment in the format written before segment headers existed (version 1): u32 length, u32 CRC, u64 sequence number, payload. */
function v1Record(seq: bigint, payload: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(payload.length, 0);
  h.writeUInt32LE(crc32(payload), 4);
  h.writeBigUInt64LE(seq, 8);
  return Buffer.concat([h, payload]);
}

const flip = (data: Buffer, at: number): Buffer => {
  const copy = Buffer.from(data);
  copy[at] = (copy[at] ?? 0) ^ 0x10;
  return copy;
};

const seqs = (scan: { records: Array<{ seq: bigint }> }) => scan.records.map((r) => r.seq);

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

  it('computes the standard CRC-32, continuing from a seed', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
    expect(crc32(Buffer.from('56789'), crc32(Buffer.from('1234')))).toBe(0xcbf43926);
  });

  it('reads back what it wrote, and reports a write torn by a crash at the end as torn', () => {
    const { data, format } = segment([1n, 2n, 3n]);
    expect(seqs(scanSegment(data, format, SEGMENT_HEADER_BYTES, 1n))).toEqual([1n, 2n, 3n]);
    const torn = Buffer.concat([data, Buffer.concat(encodeRecord(4n, Buffer.from('four'), format)).subarray(0, HEADER_BYTES + 2)]);
    const scan = scanSegment(torn, format, SEGMENT_HEADER_BYTES, 1n);
    expect(seqs(scan)).toEqual([1n, 2n, 3n]);
    expect(scan.tail).toEqual({ start: data.length, end: torn.length, torn: true });
    // Less than a header, or zeros (a file extended but never written), are torn too.
    expect(scanSegment(Buffer.concat([data, Buffer.from([0xd7, 0x48])]), format, SEGMENT_HEADER_BYTES, 1n).tail?.torn).toBe(true);
    expect(scanSegment(Buffer.concat([data, Buffer.alloc(4096)]), format, SEGMENT_HEADER_BYTES, 1n).tail?.torn).toBe(true);
  });

  it('a flipped byte anywhere in a record costs that record only: the scan resynchronises on the next one', () => {
    const { data, format, starts } = segment([1n, 2n, 3n, 4n, 5n]);
    const recordBytes = (starts[1] ?? 0) - (starts[0] ?? 0);
    for (const [i, start] of starts.entries()) {
      for (let off = 0; off < recordBytes; off++) {
        const scan = scanSegment(flip(data, start + off), format, SEGMENT_HEADER_BYTES, 1n);
        const expected = [1n, 2n, 3n, 4n, 5n].filter((s) => s !== BigInt(i + 1));
        expect(seqs(scan), `record ${i + 1}, byte ${off}`).toEqual(expected);
        const bad = i === starts.length - 1 ? scan.tail : scan.damaged[0];
        expect(bad, `record ${i + 1}, byte ${off}`).toMatchObject({ start, end: start + recordBytes });
        // Damage at the end of a segment is damage, not a torn write (its whole length is there).
        if (i === starts.length - 1) expect(scan.tail?.torn).toBe(false);
      }
    }
  });

  it('reads a segment whose header copy is damaged from the other copy, and guesses the salt when both are', () => {
    const { data, format } = segment([7n, 8n]);
    for (const at of [0, 9, 13, 21]) {
      const layout = segmentLayout(flip(data, at), 7n);
      expect(layout).toEqual({ format, dataStart: SEGMENT_HEADER_BYTES, damagedCopies: 1 });
    }
    const both = flip(flip(data, 2), SEGMENT_HEADER_BYTES / 2 + 2);
    const layout = segmentLayout(both, 7n);
    expect(layout.damagedCopies).toBe(2);
    expect(seqs(scanSegment(both, layout.format, layout.dataStart, 7n))).toEqual([7n, 8n]);
  });

  it('never takes bytes a client sent for a record: a payload embedding a whole record of another segment', () => {
    const other = segment([2n]);
    const embedded = other.data.subarray(other.starts[0]);
    const mine = newSegmentHeader();
    const format = mine.format as V2;
    const carrier = Buffer.concat(encodeRecord(1n, Buffer.concat([Buffer.from('xx'), embedded]), format));
    const data = flip(Buffer.concat([mine.header, carrier]), SEGMENT_HEADER_BYTES + 1); // damage record 1's header
    expect(findRecord(data, SEGMENT_HEADER_BYTES + 1, 0, format, 0n)).toBe(-1);
    expect(checkRecord(embedded, 0, 0, other.format, 1n).kind).toBe('record');
    expect(checkRecord(embedded, 0, 0, format, 1n).kind).toBe('bad');
  });

  it('scans damage in one pass over the bytes (a segment full of record magic)', () => {
    const { data, format } = segment([1n]);
    const magic = Buffer.concat(encodeRecord(2n, Buffer.alloc(0), format)).subarray(0, 4);
    const junk = Buffer.concat(Array.from({ length: 1 << 18 }, () => magic)); // 1 MiB of magic numbers, no valid header
    const scan = scanSegment(Buffer.concat([data, junk, Buffer.concat(encodeRecord(3n, Buffer.from('after'), format))]), format, SEGMENT_HEADER_BYTES, 1n);
    expect(seqs(scan)).toEqual([1n, 3n]);
    expect(scan.damaged).toEqual([{ start: data.length, end: data.length + junk.length }]);
  });

  it('still reads segments of the previous format (no header), resynchronising after damage', () => {
    const records = [1n, 2n, 3n, 4n].map((s) => v1Record(s, Buffer.from(`legacy-${s}`)));
    const data = Buffer.concat(records);
    const layout = segmentLayout(data, 1n);
    expect(layout).toEqual({ format: { version: 1 }, dataStart: 0, damagedCopies: 0 });
    expect(seqs(scanSegment(data, layout.format, 0, 1n))).toEqual([1n, 2n, 3n, 4n]);
    const len = records[0]?.length ?? 0;
    // The length field, the CRC and the payload of record 2.
    for (const off of [0, 1, 5, 20]) expect(seqs(scanSegment(flip(data, len + off), layout.format, 0, 1n)), `byte ${off}`).toEqual([1n, 3n, 4n]);
    // Torn at the end.
    const torn = scanSegment(Buffer.concat([data, v1Record(5n, Buffer.from('five')).subarray(0, 18)]), layout.format, 0, 1n);
    expect(seqs(torn)).toEqual([1n, 2n, 3n, 4n]);
    expect(torn.tail?.torn).toBe(true);
  });
});
