import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Record header: payload length (u32), CRC-32 of the payload (u32), sequence number (u64). */
export const HEADER_BYTES = 16;

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** Rows of one table inside a record: the table, the row count and the encoded rows. */
export interface RecordPart {
  table: string;
  rows: number;
  data: Buffer;
}

/**
 * Frames the parts of one append as a record payload: per part, u16 table length, table, u32 rows,
 * u32 data length, data. The encoded rows go in as they are (no second encoding, no escaping).
 */
export function encodeParts(parts: readonly RecordPart[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const table = Buffer.from(p.table);
    const head = Buffer.allocUnsafe(10);
    head.writeUInt16LE(table.length, 0);
    head.writeUInt32LE(p.rows, 2);
    head.writeUInt32LE(p.data.length, 6);
    chunks.push(head.subarray(0, 2), table, head.subarray(2, 10), p.data);
  }
  return Buffer.concat(chunks);
}

/** Bytes a record of these parts takes in a segment: its header and the framing of encodeParts. */
export function recordBytes(parts: readonly RecordPart[]): number {
  return parts.reduce((n, p) => n + 10 + Buffer.byteLength(p.table) + p.data.length, HEADER_BYTES);
}

/** Reads the parts framed by encodeParts. Throws on a payload that is not such a frame. */
export function decodeParts(payload: Buffer): RecordPart[] {
  const parts: RecordPart[] = [];
  const malformed = (): Error => new Error('durable queue: malformed record payload');
  let pos = 0;
  while (pos < payload.length) {
    if (pos + 2 > payload.length) throw malformed();
    const tableLen = payload.readUInt16LE(pos);
    if (pos + 2 + tableLen + 8 > payload.length) throw malformed();
    const table = payload.toString('utf8', pos + 2, pos + 2 + tableLen);
    pos += 2 + tableLen;
    const rows = payload.readUInt32LE(pos);
    const textLen = payload.readUInt32LE(pos + 4);
    if (pos + 8 + textLen > payload.length) throw malformed();
    parts.push({ table, rows, data: payload.subarray(pos + 8, pos + 8 + textLen) });
    pos += 8 + textLen;
  }
  return parts;
}

/** Rows in a framed payload, without reading the rows. */
export function countRows(payload: Buffer): number {
  let rows = 0;
  let pos = 0;
  while (pos < payload.length) {
    const tableLen = payload.readUInt16LE(pos);
    pos += 2 + tableLen;
    rows += payload.readUInt32LE(pos);
    pos += 8 + payload.readUInt32LE(pos + 4);
  }
  return rows;
}

/** CRC-32 (IEEE) of bytes. */
export function crc32(bytes: Uint8Array): number {
  let c = -1;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Encodes one record. */
export function encodeRecord(seq: bigint, payload: Buffer): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(crc32(payload), 4);
  header.writeBigUInt64LE(seq, 8);
  return Buffer.concat([header, payload]);
}

/** One record read back from a segment. */
export interface WalRecord {
  seq: bigint;
  payload: Buffer;
  /** Byte offset just past the record in its segment. */
  end: number;
}

/**
 * Parses the valid records in `data`, which starts at byte `base` of its segment. Stops at the
 * end, or at the first torn or corrupt record (a write cut short by a crash); `validEnd` is the
 * segment offset just past the last valid record.
 */
export function parseRecords(data: Buffer, base = 0): { records: WalRecord[]; validEnd: number } {
  const records: WalRecord[] = [];
  let pos = 0;
  while (pos + HEADER_BYTES <= data.length) {
    const len = data.readUInt32LE(pos);
    const crc = data.readUInt32LE(pos + 4);
    const seq = data.readBigUInt64LE(pos + 8);
    const end = pos + HEADER_BYTES + len;
    if (end > data.length) break;
    const payload = data.subarray(pos + HEADER_BYTES, end);
    if (crc32(payload) !== crc) break;
    records.push({ seq, payload, end: base + end });
    pos = end;
  }
  return { records, validEnd: base + pos };
}

/** Reads every valid record of a segment file (used when recovering at start). */
export function readSegment(path: string): { records: WalRecord[]; validEnd: number; size: number } {
  const data = readFileSync(path);
  return { ...parseRecords(data), size: data.length };
}

/** Segment files of a queue directory, oldest first, with the first sequence number each holds. */
export function listSegments(dir: string): Array<{ path: string; first: bigint; size: number }> {
  return readdirSync(dir)
    .filter((n) => /^seg-\d{20}\.wal$/.test(n))
    .sort()
    .map((n) => ({ path: join(dir, n), first: BigInt(n.slice(4, 24)), size: statSync(join(dir, n)).size }));
}

/** The file name of the segment whose first record is `first`. */
export function segmentName(first: bigint): string {
  return `seg-${first.toString().padStart(20, '0')}.wal`;
}

/** Cuts a segment back to its last valid record. */
export function truncateTo(path: string, validEnd: number): void {
  truncateSync(path, validEnd);
}

/** Writes a small file atomically and durably (write temp, fsync, rename, fsync the directory). */
export function writeFileAtomic(dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  const fd = openSync(tmp, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, join(dir, name));
  fsyncDir(dir);
}

/** fsyncs a directory, so a created, renamed or removed file survives a crash. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
