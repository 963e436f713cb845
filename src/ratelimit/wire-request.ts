import { isUtf8 } from 'node:buffer';

/**
 * A hand-written protobuf decoder for envoy.service.ratelimit.v3.RateLimitRequest (the hot path of
 * every check): it reads the request straight into the plain shape the check takes, without
 * @bufbuild's message objects, unknown-field lists or per-field closures. It accepts only what
 * @bufbuild's fromBinary accepts, and decodes it to the same values (the tests compare them on
 * generated messages); it is stricter on some malformed input fromBinary lets through: a known
 * field with the wrong wire type, a field running past the end of its sub-message, a varint over
 * 10 bytes.
 */

/** One descriptor entry. */
export interface RequestEntry {
  key: string;
  value: string;
}

/** One descriptor: its entries, the request's limit override, its own hits (UInt64Value). */
export interface RequestDescriptor {
  entries: RequestEntry[];
  limit?: { requestsPerUnit: number; unit: number } | undefined;
  hitsAddend?: bigint | undefined;
}

/** A RateLimitRequest as the check reads it (a decoded @bufbuild RateLimitRequest has this shape too). */
export interface RateLimitInput {
  domain: string;
  descriptors: RequestDescriptor[];
  /** The request's hits_addend (0 when unset). */
  hitsAddend: number;
}

const VARINT = 0;
const BIT64 = 1;
const DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const BIT32 = 5;
/** Nesting of unknown groups skipped at most (@bufbuild's recursion limit). */
const GROUP_DEPTH = 100;

/** The decoder's cursor (one decode runs at a time: decoding is synchronous). */
let buf: Buffer = Buffer.alloc(0);
let pos = 0;
/** The last varint read: its low and high 32 bits, unsigned. */
let lo = 0;
let hi = 0;
/** The last tag read. */
let fieldNo = 0;
let wireType = 0;

const fail = (reason: string): Error => new Error(reason);

/** Reads a varint of at most 10 bytes ending before `end` into lo/hi (bits past 64 dropped, as @bufbuild does). */
function varint(end: number): void {
  lo = 0;
  hi = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw fail('premature EOF');
    const b = buf[pos++] as number;
    if (i < 4) lo |= (b & 0x7f) << (7 * i);
    else if (i === 4) {
      lo |= (b & 0x0f) << 28;
      hi = (b & 0x70) >> 4;
    } else hi |= (b & 0x7f) << (7 * i - 32);
    if (b < 0x80) {
      lo >>>= 0;
      hi >>>= 0;
      return;
    }
  }
  throw fail('invalid varint');
}

/** Reads a tag into fieldNo/wireType (and answers the wire type), refusing what @bufbuild refuses (over uint32, field 0, wire type 6 or 7). */
function tag(end: number): number {
  const start = pos;
  varint(end);
  if (pos - start > 5 || hi !== 0) throw fail('illegal tag: varint overflows uint32');
  fieldNo = lo >>> 3;
  wireType = lo & 7;
  if (fieldNo === 0 || wireType > BIT32) throw fail(`illegal tag: field no ${fieldNo} wire type ${wireType}`);
  return wireType;
}

/** Reads a length prefix and answers where the delimited value ends (within `end`). */
function delimited(end: number): number {
  varint(end);
  if (lo > end - pos) throw fail('premature EOF');
  return pos + lo;
}

/** Skips the value of an unknown field (of the last tag's wire type). */
function skip(end: number, depth: number): void {
  switch (wireType) {
    case VARINT:
      return varint(end);
    case BIT64:
    case BIT32: {
      const n = wireType === BIT64 ? 8 : 4;
      if (n > end - pos) throw fail('premature EOF');
      pos += n;
      return;
    }
    case DELIMITED:
      pos = delimited(end);
      return;
    case START_GROUP: {
      if (depth <= 0) throw fail('maximum recursion depth reached');
      const group = fieldNo;
      for (;;) {
        if (tag(end) === END_GROUP) {
          if (fieldNo !== group) throw fail('invalid end group tag');
          return;
        }
        skip(end, depth - 1);
      }
    }
    default:
      throw fail(`cant skip wire type ${wireType}`);
  }
}

/** Checks the wire type of a known field. */
function expect(type: number): void {
  if (wireType !== type) throw fail(`field ${fieldNo}: wire type ${wireType}, expected ${type}`);
}

/** A proto3 string field's value: UTF-8, refused when invalid (as @bufbuild's strict decoding does). */
function string(end: number): string {
  expect(DELIMITED);
  const stop = delimited(end);
  const start = pos;
  pos = stop;
  for (let i = start; i < stop; i++) {
    if ((buf[i] as number) >= 0x80) {
      if (!isUtf8(buf.subarray(start, stop))) throw fail('invalid UTF-8');
      return buf.toString('utf8', start, stop);
    }
  }
  return buf.toString('latin1', start, stop);
}

/** A varint field's low 32 bits, unsigned. */
function uint32(end: number): number {
  expect(VARINT);
  varint(end);
  return lo;
}

/** Skips an unknown field at nesting `depth` (1: the request). */
const unknown = (end: number, depth: number): void => skip(end, GROUP_DEPTH - depth);

function entry(end: number): RequestEntry {
  const e: RequestEntry = { key: '', value: '' };
  while (pos < end) {
    tag(end);
    if (fieldNo === 1) e.key = string(end);
    else if (fieldNo === 2) e.value = string(end);
    else unknown(end, 3);
  }
  return e;
}

/** Reads a RateLimitOverride into `limit` (a repeated one merges into the earlier, as protobuf does). */
function override(end: number, limit: { requestsPerUnit: number; unit: number }): void {
  while (pos < end) {
    tag(end);
    if (fieldNo === 1) limit.requestsPerUnit = uint32(end);
    else if (fieldNo === 2) limit.unit = uint32(end) | 0;
    else unknown(end, 3);
  }
}

/** Reads a UInt64Value onto `hits` (its value when set there, else `hits`). */
function uint64Value(end: number, hits: bigint): bigint {
  let value = hits;
  while (pos < end) {
    tag(end);
    if (fieldNo !== 1) {
      unknown(end, 3);
      continue;
    }
    uint32(end);
    value = hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }
  return value;
}

function descriptor(end: number): RequestDescriptor {
  const d: RequestDescriptor = { entries: [], limit: undefined, hitsAddend: undefined };
  while (pos < end) {
    tag(end);
    if (fieldNo < 1 || fieldNo > 3) {
      unknown(end, 2);
      continue;
    }
    expect(DELIMITED);
    const stop = delimited(end);
    if (fieldNo === 1) d.entries.push(entry(stop));
    else if (fieldNo === 2) override(stop, (d.limit ??= { requestsPerUnit: 0, unit: 0 }));
    else d.hitsAddend = uint64Value(stop, d.hitsAddend ?? 0n);
  }
  return d;
}

/**
 * Decodes a RateLimitRequest. Unknown fields are skipped by the protobuf wire rules; malformed
 * bytes (truncated varints or lengths, a wrong wire type on a known field, invalid UTF-8, a bad
 * group) throw an Error naming what is wrong.
 */
export function decodeRateLimitRequest(bytes: Uint8Array): RateLimitInput {
  buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  const req: RateLimitInput = { domain: '', descriptors: [], hitsAddend: 0 };
  const end = buf.length;
  try {
    while (pos < end) {
      tag(end);
      if (fieldNo === 1) req.domain = string(end);
      else if (fieldNo === 2) {
        expect(DELIMITED);
        req.descriptors.push(descriptor(delimited(end)));
      } else if (fieldNo === 3) req.hitsAddend = uint32(end);
      else unknown(end, 1);
    }
  } finally {
    buf = EMPTY;
  }
  return req;
}

const EMPTY = Buffer.alloc(0);
