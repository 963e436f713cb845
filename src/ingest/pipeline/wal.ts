import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import type { TableRows } from './formats.js';

/*
 * Segment file format (version 2):
 *   segment header, twice (48 bytes): magic "HEIMWAL\0", u32 version (2), the queue's salt (8 random
 *     bytes, the same in every segment of a queue and in its checkpoint), u32 CRC-32 of the 20 bytes
 *     before it. The second copy is read when the first is damaged; when both are, the salt is taken
 *     from the checkpoint or another segment, and confirmed by a record that checks out with it.
 *   records: u32 magic, u32 payload length, u64 sequence number, u32 CRC of the payload, u32 CRC of
 *     the 20 header bytes before it, then the payload. Both CRCs are seeded with the segment's seed
 *     (from the salt and the segment's first sequence number), so bytes a client sent (a payload that
 *     embeds a record) never pass for a record of this queue.
 * Version 1 (segments written before the header existed): records only, each u32 payload length,
 *   u32 CRC-32 of the payload, u64 sequence number, payload. Still read; never written.
 */

/** Bytes of a record header (version 2). */
export const HEADER_BYTES = 24;
/** Bytes of a version 1 record header. */
const V1_HEADER_BYTES = 16;
/** Bytes of the segment header (two copies of 24 bytes). */
export const SEGMENT_HEADER_BYTES = 48;
/** Bytes of a queue's salt. */
export const SALT_BYTES = 8;
const SEGMENT_MAGIC = Buffer.from('HEIMWAL\0', 'latin1');
const RECORD_MAGIC = Buffer.from([0xd7, 0x48, 0x52, 0x02]);
const RECORD_MAGIC_U32 = RECORD_MAGIC.readUInt32LE(0);
const VERSION = 2;
/** Version 1 records carry no magic: a record found by scanning must follow the last good one within this many sequence numbers. */
const V1_SEQ_WINDOW = 1n << 20n;
/** Bytes a damage scan covers between two yields to the event loop. */
const SCAN_SLICE = 1 << 20;

/** How a segment's records are framed: version 1 (legacy) or 2 with the seed of its CRCs. */
export type SegmentFormat = { version: 1 } | { version: 2; seed: number };

/** CRC-32 (IEEE) of bytes, continuing from `seed` (the CRC of what came before). */
export function crc32(bytes: Uint8Array, seed = 0): number {
  return zlibCrc32(bytes, seed);
}

/**
 * Frames the parts of one append as a record payload: per part, u16 table length, table, u32 rows,
 * u32 data length, data. The encoded rows go in as they are (no second encoding, no escaping).
 */
export function encodeParts(parts: readonly TableRows[]): Buffer {
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
export function recordBytes(parts: readonly TableRows[]): number {
  return parts.reduce((n, p) => n + 10 + Buffer.byteLength(p.table) + p.data.length, HEADER_BYTES);
}

/** Reads the parts framed by encodeParts. Throws on a payload that is not such a frame. */
export function decodeParts(payload: Buffer): TableRows[] {
  const parts: TableRows[] = [];
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

/** A new random salt for a queue. */
export function newSalt(): Buffer {
  return randomBytes(SALT_BYTES);
}

/** The format of the records of the segment whose first sequence number is `first`, in a queue with `salt`. */
export function formatFor(salt: Buffer, first: bigint): Extract<SegmentFormat, { version: 2 }> {
  const firstBytes = Buffer.alloc(8);
  firstBytes.writeBigUInt64LE(first);
  return { version: 2, seed: crc32(firstBytes, crc32(salt)) };
}

/** The header of a new segment of a queue with `salt`. */
export function segmentHeader(salt: Buffer): Buffer {
  const copy = Buffer.alloc(SEGMENT_HEADER_BYTES / 2);
  SEGMENT_MAGIC.copy(copy, 0);
  copy.writeUInt32LE(VERSION, 8);
  salt.copy(copy, 12);
  copy.writeUInt32LE(crc32(copy.subarray(0, 20)), 20);
  return Buffer.concat([copy, copy]);
}

/** The salt in a segment header (`head`: the segment's first bytes) from a copy that checks out, or undefined. */
export function headerSalt(head: Buffer): { salt: Buffer; damagedCopies: 0 | 1 } | undefined {
  const half = SEGMENT_HEADER_BYTES / 2;
  for (const i of [0, 1] as const) {
    const copy = head.subarray(i * half, (i + 1) * half);
    if (copy.length === half && copy.subarray(0, 8).equals(SEGMENT_MAGIC) && copy.readUInt32LE(8) === VERSION && crc32(copy.subarray(0, 20)) === copy.readUInt32LE(20)) {
      return { salt: Buffer.from(copy.subarray(12, 20)), damagedCopies: i };
    }
  }
  return undefined;
}

/** How a segment's records are framed, where they start, and how many copies of its header were damaged. */
export interface SegmentLayout {
  format: SegmentFormat;
  dataStart: number;
  damagedCopies: 0 | 1 | 2;
}

/**
 * The layout of a segment from its first bytes (`head`; a few MiB when its header is damaged):
 * version 2 when either header copy checks out; when both are damaged, version 2 with the first of
 * the queue's `salts` (from the checkpoint and other segments) under which a record checks out;
 * version 1 only when a version 1 record does and no version 2 one (a segment from before the
 * header existed). With nothing that checks out, version 2 with the first salt (its bytes are damage).
 */
export function segmentLayout(head: Buffer, first: bigint, salts: readonly Buffer[]): SegmentLayout {
  const valid = headerSalt(head);
  if (valid) return { format: formatFor(valid.salt, first), dataStart: SEGMENT_HEADER_BYTES, damagedCopies: valid.damagedCopies };
  const formats = salts.map((salt) => formatFor(salt, first));
  const found = formats.find((f) => findRecord(head, SEGMENT_HEADER_BYTES, 0, f, first - 1n) >= 0);
  if (found) return { format: found, dataStart: SEGMENT_HEADER_BYTES, damagedCopies: 2 };
  // A version 1 segment starts with its first record, numbered as the segment is named (that record may be longer than `head`).
  const v1 = head.length >= V1_HEADER_BYTES && head.readBigUInt64LE(8) === first;
  if (v1 || findRecord(head, 0, 0, { version: 1 }, first - 1n) >= 0) return { format: { version: 1 }, dataStart: 0, damagedCopies: 0 };
  return { format: formats[0] ?? formatFor(Buffer.alloc(SALT_BYTES), first), dataStart: SEGMENT_HEADER_BYTES, damagedCopies: 2 };
}

/** Encodes one record of a version 2 segment: its header and its payload (written as they are). */
export function encodeRecord(seq: bigint, payload: Buffer, format: Extract<SegmentFormat, { version: 2 }>): Buffer[] {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  RECORD_MAGIC.copy(header, 0);
  header.writeUInt32LE(payload.length, 4);
  header.writeBigUInt64LE(seq, 8);
  header.writeUInt32LE(crc32(payload, format.seed), 16);
  header.writeUInt32LE(crc32(header.subarray(0, 20), format.seed), 20);
  return [header, payload];
}

/** One record read back from a segment. */
export interface WalRecord {
  seq: bigint;
  payload: Buffer;
  /** Byte offsets of the record (header included) in its segment. */
  start: number;
  end: number;
}

/**
 * What is at a position of a segment: a record; `short`, a record that may be whole but needs
 * `need` bytes from the position (more than the buffer holds); or `bad`, no record.
 */
export type RecordCheck = { kind: 'record'; record: WalRecord } | { kind: 'short'; need: number } | { kind: 'bad' };

/**
 * Checks for a record at `pos` of `data` (which starts at byte `base` of its segment) whose sequence
 * number follows `after` (the last good record's). Cheap when there is none: the header is checked
 * before the payload's CRC is computed.
 */
export function checkRecord(data: Buffer, pos: number, base: number, format: SegmentFormat, after: bigint): RecordCheck {
  if (format.version === 2) {
    if (pos + HEADER_BYTES > data.length) return { kind: 'short', need: HEADER_BYTES };
    if (data.readUInt32LE(pos) !== RECORD_MAGIC_U32) return { kind: 'bad' };
    if (crc32(data.subarray(pos, pos + 20), format.seed) !== data.readUInt32LE(pos + 20)) return { kind: 'bad' };
    const len = data.readUInt32LE(pos + 4);
    const seq = data.readBigUInt64LE(pos + 8);
    if (seq <= after) return { kind: 'bad' };
    const end = pos + HEADER_BYTES + len;
    if (end > data.length) return { kind: 'short', need: HEADER_BYTES + len };
    const payload = data.subarray(pos + HEADER_BYTES, end);
    if (crc32(payload, format.seed) !== data.readUInt32LE(pos + 16)) return { kind: 'bad' };
    return { kind: 'record', record: { seq, payload, start: base + pos, end: base + end } };
  }
  if (pos + V1_HEADER_BYTES > data.length) return { kind: 'short', need: V1_HEADER_BYTES };
  const len = data.readUInt32LE(pos);
  const seq = data.readBigUInt64LE(pos + 8);
  if (seq <= after || seq - after > V1_SEQ_WINDOW) return { kind: 'bad' };
  const end = pos + V1_HEADER_BYTES + len;
  if (end > data.length) return { kind: 'short', need: V1_HEADER_BYTES + len };
  const payload = data.subarray(pos + V1_HEADER_BYTES, end);
  if (crc32(payload) !== data.readUInt32LE(pos + 4)) return { kind: 'bad' };
  return { kind: 'record', record: { seq, payload, start: base + pos, end: base + end } };
}

/**
 * The index in `data` of the first whole record that starts in [`from`, `end`) (see checkRecord), or
 * -1. One pass: version 2 jumps from record magic to record magic (Buffer.indexOf) and computes a
 * payload CRC only behind a header whose CRC matched; version 1 tries every offset but stops
 * computing CRCs past a budget of a few times the data's size.
 */
export function findRecord(data: Buffer, from: number, base: number, format: SegmentFormat, after: bigint, end = data.length): number {
  if (format.version === 2) {
    for (let i = data.indexOf(RECORD_MAGIC, from); i >= 0 && i < end; i = data.indexOf(RECORD_MAGIC, i + 1)) {
      if (checkRecord(data, i, base, format, after).kind === 'record') return i;
    }
    return -1;
  }
  let budget = 8 * (end - from) + (1 << 20);
  // The sequence number window in plain numbers (no BigInt per offset: this loop visits every byte).
  const low = Number(after);
  const high = low + Number(V1_SEQ_WINDOW);
  for (let i = from; i < end && i + V1_HEADER_BYTES <= data.length && budget > 0; i++) {
    const seq = data.readUInt32LE(i + 12) * 2 ** 32 + data.readUInt32LE(i + 8);
    if (seq <= low || seq > high) continue;
    const len = data.readUInt32LE(i);
    if (i + V1_HEADER_BYTES + len > data.length) continue;
    budget -= len;
    if (checkRecord(data, i, base, format, after).kind === 'record') return i;
  }
  return -1;
}

/** findRecord from `from` to the end, in slices with a yield to the event loop between them (damage can be long). */
export async function findRecordYielding(data: Buffer, from: number, base: number, format: SegmentFormat, after: bigint): Promise<number> {
  for (let at = from; at < data.length; at += SCAN_SLICE) {
    const found = findRecord(data, at, base, format, after, Math.min(data.length, at + SCAN_SLICE));
    if (found >= 0) return found;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return -1;
}

/** Bytes of a segment between two offsets that hold no valid record. */
export interface Region {
  start: number;
  end: number;
}

/** What a whole segment holds: its records, the damaged regions between them, and what follows the last one. */
export interface SegmentScan {
  records: WalRecord[];
  /** Regions with no valid record, each followed by a valid record. */
  damaged: Region[];
  /**
   * Bytes after the last valid record, to the end: `torn` when they look like a write cut short by a
   * crash (a record running past the end, or zeros), otherwise damage.
   */
  tail: (Region & { torn: boolean }) | undefined;
}

/**
 * Reads every record of a segment (`data` is the whole file), resynchronising after damage on the
 * next valid record, so a damaged record costs only itself. `first` is the segment's first sequence
 * number. Yields to the event loop while it scans damage.
 */
export async function scanSegment(data: Buffer, format: SegmentFormat, dataStart: number, first: bigint): Promise<SegmentScan> {
  const records: WalRecord[] = [];
  const damaged: Region[] = [];
  let after = first - 1n;
  let pos = dataStart;
  while (pos < data.length) {
    const c = checkRecord(data, pos, 0, format, after);
    if (c.kind === 'record') {
      records.push(c.record);
      after = c.record.seq;
      pos = c.record.end;
      continue;
    }
    const next = await findRecordYielding(data, pos + 1, 0, format, after);
    if (next < 0) {
      const torn = c.kind === 'short' || data.subarray(pos).every((b) => b === 0);
      return { records, damaged, tail: { start: pos, end: data.length, torn } };
    }
    damaged.push({ start: pos, end: next });
    pos = next;
  }
  return { records, damaged, tail: undefined };
}

/** Whether a file name is a segment's. */
export function isSegmentName(name: string): boolean {
  return /^seg-\d{20}\.wal$/.test(name);
}

/** The first sequence number of a segment, from its file name. */
export function segmentFirst(name: string): bigint {
  return BigInt(name.slice(4, 24));
}

/** The file name of the segment whose first record is `first`. */
export function segmentName(first: bigint): string {
  return `seg-${first.toString().padStart(20, '0')}.wal`;
}
