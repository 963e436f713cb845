/**
 * ClickHouse's RowBinary format: each row is its columns' values back to back, in the order of the
 * INSERT's column list. Strings and arrays are prefixed with their length as a LEB128 varint,
 * integers are little-endian, DateTime64(9) is an Int64 of nanoseconds, a Map is an array of
 * key/value pairs and LowCardinality(String) is written as a plain String.
 */

/** Column types the generic row encoder knows (the ones the OTLP tables use). */
export type ColumnType =
  | 'String'
  | 'UInt64'
  | 'DateTime64(9)'
  | 'Map(String,String)'
  | 'Array(String)'
  | 'Array(DateTime64(9))'
  | 'Array(Map(String,String))';

/** A column of a RowBinary insert: its name in the INSERT's column list and its type. */
export interface ColumnSpec {
  name: string;
  type: ColumnType;
}

/** Appends RowBinary values to a growing buffer. */
export class RowBinaryWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  /** Bytes it holds room for now (it grows as needed). */
  get capacity(): number {
    return this.buf.length;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** An unsigned LEB128 varint (lengths and counts), for values below 2^32. */
  varUInt(value: number): void {
    this.ensure(5);
    let v = value >>> 0;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }

  /** A 64-bit integer given as its low and high 32-bit halves. */
  u64(lo: number, hi: number): void {
    this.ensure(8);
    const b = this.buf;
    const p = this.pos;
    // Byte by byte: cheaper than two checked writeUInt32LE calls.
    b[p] = lo;
    b[p + 1] = lo >>> 8;
    b[p + 2] = lo >>> 16;
    b[p + 3] = lo >>> 24;
    b[p + 4] = hi;
    b[p + 5] = hi >>> 8;
    b[p + 6] = hi >>> 16;
    b[p + 7] = hi >>> 24;
    this.pos = p + 8;
  }

  /** A 64-bit integer given as a bigint (two's complement for negative values). */
  bigint64(value: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, value), this.pos);
    this.pos += 8;
  }

  /** A String column value from JavaScript text (UTF-8). */
  string(text: string): void {
    const len = text.length;
    if (len < 0x80) {
      // Short ASCII text (most values) is copied by hand: cheaper than a call into Buffer.write.
      this.ensure(1 + len);
      const start = this.pos;
      const buf = this.buf;
      buf[start] = len;
      let i = 0;
      for (; i < len; i++) {
        const c = text.charCodeAt(i);
        if (c > 0x7f) break;
        buf[start + 1 + i] = c;
      }
      if (i === len) {
        this.pos = start + 1 + len;
        return;
      }
    }
    // UTF-8 takes at most three bytes per UTF-16 unit; write first, then the exact length.
    const max = len * 3;
    if (max < 0x80) {
      this.ensure(1 + max);
      const n = this.buf.write(text, this.pos + 1);
      this.buf[this.pos] = n;
      this.pos += 1 + n;
      return;
    }
    const n = Buffer.byteLength(text);
    this.varUInt(n);
    this.ensure(n);
    this.pos += this.buf.write(text, this.pos, n);
  }

  /** A String column value holding the lowercase hex of `bytes[start, end)`. */
  hex(bytes: Uint8Array, start: number, end: number): void {
    const n = (end - start) * 2;
    this.varUInt(n);
    this.ensure(n);
    for (let i = start; i < end; i++) {
      const b = bytes[i] ?? 0;
      this.buf[this.pos++] = HEX_DIGITS[b >>> 4] ?? 0;
      this.buf[this.pos++] = HEX_DIGITS[b & 15] ?? 0;
    }
  }

  /** Bytes already in RowBinary form (for example a map encoded once and repeated). */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** The bytes written since `from`, copied out. */
  copyFrom(from: number): Buffer {
    return Buffer.from(this.buf.subarray(from, this.pos));
  }

  /** Forgets everything written after `to` (a row abandoned half way). */
  truncate(to: number): void {
    this.pos = to;
  }

  /** The bytes written so far: a view of the writer's own memory, valid until it is written to again. */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** Everything written, copied into a right-sized buffer (not zero-filled first: every byte is copied over). */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }
}

const HEX_DIGITS = Buffer.from('0123456789abcdef');

/** The largest DateTime64(9) value, 2262-04-11 23:47:16.854775807 UTC, in nanoseconds. */
export const MAX_DATETIME64_NANOS = 9_223_372_036_854_775_807n;

/** DateTime64(9) text `ssssssssss.nnnnnnnnn` (as the JSON rows carry it) to nanoseconds. */
function dateTime64Nanos(text: string): bigint {
  const dot = text.indexOf('.');
  if (dot < 0) return BigInt(text) * 1_000_000_000n;
  return BigInt(text.slice(0, dot)) * 1_000_000_000n + BigInt(text.slice(dot + 1).padEnd(9, '0').slice(0, 9));
}

function writeMap(w: RowBinaryWriter, map: Record<string, string>): void {
  const keys = Object.keys(map);
  w.varUInt(keys.length);
  for (const k of keys) {
    w.string(k);
    w.string(map[k] ?? '');
  }
}

function writeValue(w: RowBinaryWriter, type: ColumnType, value: unknown): void {
  switch (type) {
    case 'String':
      return w.string(typeof value === 'string' ? value : '');
    case 'UInt64':
      return w.bigint64(BigInt((value as string | number | bigint | undefined) ?? 0));
    case 'DateTime64(9)':
      return w.bigint64(dateTime64Nanos(typeof value === 'string' ? value : '0'));
    case 'Map(String,String)':
      return writeMap(w, (value as Record<string, string> | undefined) ?? {});
    case 'Array(String)':
    case 'Array(DateTime64(9))':
    case 'Array(Map(String,String))': {
      const items = (value as unknown[] | undefined) ?? [];
      const inner = type.slice(6, -1) as ColumnType;
      w.varUInt(items.length);
      for (const item of items) writeValue(w, inner, item);
      return;
    }
  }
}

/**
 * Encodes rows (objects keyed by column name, in the JSONEachRow conventions: DateTime64 as
 * `seconds.nanos` text, UInt64 as text or number) as RowBinary for `columns`.
 */
export function encodeRowBinary(rows: readonly Record<string, unknown>[], columns: readonly ColumnSpec[], w = new RowBinaryWriter()): Buffer {
  for (const row of rows) for (const c of columns) writeValue(w, c.type, row[c.name]);
  return w.finish();
}
