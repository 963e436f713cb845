import { describe, expect, it } from 'vitest';
import { checkRecord, crc32, decodeParts, encodeParts, encodeRecord, findRecord, formatFor, HEADER_BYTES, newSalt, scanSegment, SEGMENT_HEADER_BYTES, segmentHeader, segmentLayout, type SegmentFormat } from '../../../src/ingest/pipeline/wal.js';

type V2 = Extract<SegmentFormat, { version: 2 }>;

/** A version 2 segment holding records `seqs` with payloads `p<seq>` (in a queue with `salt`), and where each record starts. */
function segment(seqs: readonly bigint[], salt = newSalt()): { data: Buffer; format: V2; starts: number[]; salt: Buffer } {
  const format = formatFor(salt, seqs[0] ?? 1n);
  const header = segmentHeader(salt);
  const parts: Buffer[] = [header];
  const starts: number[] = [];
  let at = header.length;
  for (const seq of seqs) {
    starts.push(at);
    const rec = Buffer.concat(encodeRecord(seq, Buffer.from(`p${seq}`.repeat(10)), format));
    parts.push(rec);
    at += rec.length;
  }
  return { data: Buffer.concat(parts), format, starts, salt };
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
    expect(() => decodeParts(payload.subarray(0, payload.length - 3))).toThrow('malformed record payload');
  });

  it('computes the standard CRC-32, continuing from a seed', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
    expect(crc32(Buffer.from('56789'), crc32(Buffer.from('1234')))).toBe(0xcbf43926);
  });

  it('reads back what it wrote, and reports a write torn by a crash at the end as torn', async () => {
    const { data, format } = segment([1n, 2n, 3n]);
    expect(seqs(await scanSegment(data, format, SEGMENT_HEADER_BYTES, 1n))).toEqual([1n, 2n, 3n]);
    const torn = Buffer.concat([data, Buffer.concat(encodeRecord(4n, Buffer.from('four'), format)).subarray(0, HEADER_BYTES + 2)]);
    const scan = await scanSegment(torn, format, SEGMENT_HEADER_BYTES, 1n);
    expect(seqs(scan)).toEqual([1n, 2n, 3n]);
    expect(scan.tail).toEqual({ start: data.length, end: torn.length, torn: true });
    // Less than a header, or zeros (a file extended but never written), are torn too.
    expect((await scanSegment(Buffer.concat([data, Buffer.from([0xd7, 0x48])]), format, SEGMENT_HEADER_BYTES, 1n)).tail?.torn).toBe(true);
    expect((await scanSegment(Buffer.concat([data, Buffer.alloc(4096)]), format, SEGMENT_HEADER_BYTES, 1n)).tail?.torn).toBe(true);
  });

  it('a flipped byte anywhere in a record costs that record only: the scan resynchronises on the next one', async () => {
    const { data, format, starts } = segment([1n, 2n, 3n, 4n, 5n]);
    const recordBytes = (starts[1] ?? 0) - (starts[0] ?? 0);
    for (const [i, start] of starts.entries()) {
      for (let off = 0; off < recordBytes; off++) {
        const scan = await scanSegment(flip(data, start + off), format, SEGMENT_HEADER_BYTES, 1n);
        const expected = [1n, 2n, 3n, 4n, 5n].filter((s) => s !== BigInt(i + 1));
        expect(seqs(scan), `record ${i + 1}, byte ${off}`).toEqual(expected);
        const bad = i === starts.length - 1 ? scan.tail : scan.damaged[0];
        expect(bad, `record ${i + 1}, byte ${off}`).toMatchObject({ start, end: start + recordBytes });
        // Damage at the end of a segment is damage, not a torn write (its whole length is there).
        if (i === starts.length - 1) expect(scan.tail?.torn).toBe(false);
      }
    }
  });

  it('reads a segment whose header copy is damaged from the other copy', () => {
    const { data, format } = segment([7n, 8n]);
    for (const at of [0, 9, 13, 21]) {
      const layout = segmentLayout(flip(data, at), 7n, []);
      expect(layout).toEqual({ format, dataStart: SEGMENT_HEADER_BYTES, damagedCopies: 1 });
    }
  });

  it('reads a segment whose header is damaged in both copies with the queue salt: header zeroed, first 512 bytes zeroed, a salt byte flipped in each copy', async () => {
    const salt = newSalt();
    const seqList = Array.from({ length: 100 }, (_, i) => BigInt(i + 1));
    const { data, format, starts } = segment(seqList, salt);
    const zeroed = (n: number) => Buffer.concat([Buffer.alloc(n), data.subarray(n)]);
    const cases: Array<{ name: string; data: Buffer; lost: bigint[] }> = [
      { name: '48-byte header zeroed', data: zeroed(SEGMENT_HEADER_BYTES), lost: [] },
      { name: 'first 512 bytes zeroed', data: zeroed(512), lost: seqList.filter((_, i) => (starts[i] ?? 0) < 512) },
      { name: 'a salt byte flipped in each copy', data: flip(flip(data, 14), SEGMENT_HEADER_BYTES / 2 + 14), lost: [] },
    ];
    for (const c of cases) {
      const layout = segmentLayout(c.data, 1n, [newSalt(), salt]);
      expect(layout, c.name).toEqual({ format, dataStart: SEGMENT_HEADER_BYTES, damagedCopies: 2 });
      expect(seqs(await scanSegment(c.data, layout.format, layout.dataStart, 1n)), c.name).toEqual(seqList.filter((s) => !c.lost.includes(s)));
    }
    // Never taken for a segment of the previous format: without the salt, it is damage, not version 1.
    expect(segmentLayout(zeroed(SEGMENT_HEADER_BYTES), 1n, []).format.version).toBe(2);
  });

  it('never takes bytes a client sent for a record: a payload embedding a whole record of another segment', () => {
    const other = segment([2n]);
    const embedded = other.data.subarray(other.starts[0]);
    const mine = newSalt();
    const format = formatFor(mine, 1n);
    const carrier = Buffer.concat(encodeRecord(1n, Buffer.concat([Buffer.from('xx'), embedded]), format));
    const data = flip(Buffer.concat([segmentHeader(mine), carrier]), SEGMENT_HEADER_BYTES + 1); // damage record 1's header
    expect(findRecord(data, SEGMENT_HEADER_BYTES + 1, 0, format, 0n)).toBe(-1);
    expect(checkRecord(embedded, 0, 0, other.format, 1n).kind).toBe('record');
    expect(checkRecord(embedded, 0, 0, format, 1n).kind).toBe('bad');
  });

  it('scans damage in one pass over the bytes (a segment full of record magic)', async () => {
    const { data, format } = segment([1n]);
    const magic = Buffer.concat(encodeRecord(2n, Buffer.alloc(0), format)).subarray(0, 4);
    const junk = Buffer.concat(Array.from({ length: 1 << 18 }, () => magic)); // 1 MiB of magic numbers, no valid header
    const scan = await scanSegment(Buffer.concat([data, junk, Buffer.concat(encodeRecord(3n, Buffer.from('after'), format))]), format, SEGMENT_HEADER_BYTES, 1n);
    expect(seqs(scan)).toEqual([1n, 3n]);
    expect(scan.damaged).toEqual([{ start: data.length, end: data.length + junk.length }]);
  });

  it('still reads segments of the previous format (no header), resynchronising after damage', async () => {
    const records = [1n, 2n, 3n, 4n].map((s) => v1Record(s, Buffer.from(`legacy-${s}`)));
    const data = Buffer.concat(records);
    const layout = segmentLayout(data, 1n, [newSalt()]);
    expect(layout).toEqual({ format: { version: 1 }, dataStart: 0, damagedCopies: 0 });
    expect(seqs(await scanSegment(data, layout.format, 0, 1n))).toEqual([1n, 2n, 3n, 4n]);
    const len = records[0]?.length ?? 0;
    // The length field, the CRC and the payload of record 2.
    for (const off of [0, 1, 5, 20]) expect(seqs(await scanSegment(flip(data, len + off), layout.format, 0, 1n)), `byte ${off}`).toEqual([1n, 3n, 4n]);
    // Torn at the end.
    const torn = await scanSegment(Buffer.concat([data, v1Record(5n, Buffer.from('five')).subarray(0, 18)]), layout.format, 0, 1n);
    expect(seqs(torn)).toEqual([1n, 2n, 3n, 4n]);
    expect(torn.tail?.torn).toBe(true);
  });

  it('lets the event loop run while it scans long damage of the previous format (every offset is a candidate there)', async () => {
    // 16 MiB of version 1 records whose CRCs all fail: a scan tries every offset.
    const data = Buffer.alloc(16 << 20, 0xff);
    for (let i = 0; i + 16 <= data.length; i += 1040) {
      data.writeUInt32LE(1024, i);
      data.writeUInt32LE(0, i + 4);
      data.writeBigUInt64LE(BigInt(1 + i / 1040), i + 8);
    }
    let ticks = 0;
    let scanning = true;
    const tick = (): void => {
      ticks += 1;
      if (scanning) setImmediate(tick);
    };
    setImmediate(tick);
    const scan = await Promise.resolve(scanSegment(data, { version: 1 }, 0, 1n));
    scanning = false;
    expect(scan.records).toEqual([]);
    // The scan gave the event loop a turn between slices of 1 MiB.
    expect(ticks).toBeGreaterThanOrEqual(8);
  });
});
