import { fromBinary } from '@bufbuild/protobuf';
import { AnyValueSchema } from '../../gen/opentelemetry/proto/common/v1/common_pb.js';
import { RowBinaryWriter } from '../../storage/rowbinary.js';
import { rowChunks } from '../pipeline/row-chunks.js';
import type { Redaction } from '../processors/redaction.js';
import { SpanSummaries } from '../red-metrics.js';
import { MAX_REASONS } from './result.js';
import { invalidSpanIds, KIND, STATUS } from './traces.js';
import { anyValueToString, doubleToString, isIndexKey } from './values.js';
import { createWireText } from './wire-text.js';

/**
 * The hot path for OTLP traces: from the wire bytes of an ExportTraceServiceRequest straight to
 * otel_traces rows in RowBinary, without building a message tree. It produces exactly the bytes the
 * generic path (fromBinary, tracesToRows, the processors, encodeRowBinary) produces, which the
 * differential and fuzz tests check. Requests it does not handle (malformed ones, groups, a
 * repeated singular message, invalid UTF-8) make it return undefined, and the caller takes the
 * generic path, which decides (and explains) what to do with them.
 */

/** What the fast path made of a request. */
export interface EncodedTraces {
  /** otel_traces rows, RowBinary in the order of TRACES.columns (storage/tables.ts). */
  data: Buffer;
  accepted: number;
  rejected: number;
  /** The first few rejection reasons, worded as the generic path words them. */
  reasons: string[];
  /** One summary per stored span, for the RED metrics. */
  spans: SpanSummaries;
}

/** The processors the rows go through, as the pipeline configured them. */
export interface TraceProcessors {
  /** Resource attributes added where a resource does not carry them (enrichment). */
  resourceDefaults: Readonly<Record<string, string>>;
  /** Resource attributes that replace the data's (the tenant of a tenant-bound token). */
  resourceOverrides?: Readonly<Record<string, string>> | undefined;
  redaction: Redaction | undefined;
}

/** Thrown inside the decoder when the request is not one it handles; never escapes. */
class Unhandled extends Error {}
const UNHANDLED = new Unhandled('left to the generic decoder');

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** The scratch writer's size (see encode). */
const SCRATCH_BYTES = 256 * 1024;
const EMPTY = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);
const EMPTY_MAP = Uint8Array.of(0);

/** The last decoded varint's halves (a varint is read into these to avoid allocating). */
let varLo = 0;
let varHi = 0;

/** A protobuf cursor over `buf`, bounded by `end`. */
class Reader {
  buf: Buffer = EMPTY_BUFFER;
  pos = 0;
  end = 0;

  /** Points the cursor at `buf[start, end)`; returns it. */
  at(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  /** Reads a varint of up to 64 bits into varLo / varHi. */
  varint(): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw UNHANDLED;
      const b = buf[this.pos++] ?? 0;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      if (b < 0x80) {
        varLo = lo >>> 0;
        varHi = hi >>> 0;
        return;
      }
      shift += 7;
    }
    throw UNHANDLED;
  }

  /** A length or tag: a varint that must fit in 32 bits. */
  uint32(): number {
    this.varint();
    if (varHi !== 0) throw UNHANDLED;
    return varLo;
  }

  /** A field's tag; field number 0 and wire types past 5 are invalid (fromBinary refuses them). */
  tag(): number {
    const start = this.pos;
    const tag = this.uint32();
    // fromBinary reads a tag as a varint32: one longer than 5 bytes overflows there.
    if (this.pos - start > 5) throw UNHANDLED;
    if (tag >>> 3 === 0 || (tag & 7) > 5) throw UNHANDLED;
    return tag;
  }

  /** A length-delimited field's bounds, as [start, end). */
  delimited(): number {
    const len = this.uint32();
    const start = this.pos;
    if (start + len > this.end) throw UNHANDLED;
    this.pos = start + len;
    return start;
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) throw UNHANDLED;
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p] ?? 0) | ((b[p + 1] ?? 0) << 8) | ((b[p + 2] ?? 0) << 16) | ((b[p + 3] ?? 0) << 24)) >>> 0;
  }

  /** Skips a field of an unknown number; groups and invalid wire types are left to the generic decoder. */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        return this.varint();
      case WIRE_I64:
        this.fixed32();
        this.fixed32();
        return;
      case WIRE_LEN:
        this.delimited();
        return;
      case WIRE_I32:
        this.fixed32();
        return;
      default:
        throw UNHANDLED;
    }
  }
}

/**
 * The cursors, one per nesting level of the reads (encoding is synchronous and never re-entered):
 * a message of the request (span, status, event, link, resource, scope), a KeyValue, an AnyValue.
 * Reused, so reading allocates no cursor.
 */
const MESSAGE = new Reader();
const KEY_VALUE = new Reader();
const ANY_VALUE = new Reader();
const READERS = [MESSAGE, KEY_VALUE, ANY_VALUE];

/** Node's Buffer reads ASCII fastest through latin1Slice (what toString('latin1') calls after checking its arguments). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Short ASCII texts by their bytes (keys and values repeat from span to span): 4096 slots (2,048 pairs) of 64 bytes, 256 KiB. */
const wireText = createWireText({ slots: 4096, maxBytes: 64 });

/** Text of `buf[start, end)`: ASCII read directly (short texts through the cache), other UTF-8 strictly (invalid text is left to the generic decoder). */
function text(buf: Buffer, start: number, end: number): string {
  const cached = wireText.ascii(buf, start, end);
  if (cached !== undefined) return cached;
  for (let i = start; i < end; i++) if ((buf[i] ?? 0) > 0x7f) return decodeUtf8(buf, start, end);
  return (buf as Latin1Buffer).latin1Slice(start, end);
}

function decodeUtf8(buf: Uint8Array, start: number, end: number): string {
  try {
    return utf8.decode(buf.subarray(start, end));
  } catch {
    throw UNHANDLED;
  }
}

/** Reads a length-delimited string field. */
function readString(r: Reader): string {
  const start = r.delimited();
  return text(r.buf, start, r.pos);
}

function expect(wireType: number, wanted: number): void {
  if (wireType !== wanted) throw UNHANDLED;
}

/** A signed 64-bit varint (varLo / varHi) as decimal text. */
function int64Text(lo: number, hi: number): string {
  if (hi < 0x200000) return String(hi * 4294967296 + lo);
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** AnyValue at depth `depth` (the request is depth 1) as stored text; fields other than scalars go through the generic AnyValue decoder. */
function anyValueText(buf: Buffer, start: number, end: number, depth: number): string {
  const r = ANY_VALUE.at(buf, start, end);
  let out = '';
  let fields = 0;
  while (r.pos < end) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field < 1 || field > 8) {
      r.skip(wireType);
      continue;
    }
    if (++fields > 1 || field > 4) {
      // Several oneof members or a nested value: let the generic decoder apply protobuf's rules.
      try {
        return anyValueToString(fromBinary(AnyValueSchema, buf.subarray(start, end), { readUnknownFields: false, recursionLimit: 101 - depth }));
      } catch {
        throw UNHANDLED;
      }
    }
    switch (field) {
      case 1:
        expect(wireType, WIRE_LEN);
        out = readString(r);
        break;
      case 2:
        expect(wireType, WIRE_VARINT);
        r.varint();
        out = varLo !== 0 || varHi !== 0 ? 'true' : 'false';
        break;
      case 3:
        expect(wireType, WIRE_VARINT);
        r.varint();
        out = int64Text(varLo, varHi);
        break;
      case 4: {
        expect(wireType, WIRE_I64);
        if (r.pos + 8 > end) throw UNHANDLED;
        out = doubleToString(new DataView(buf.buffer, buf.byteOffset + r.pos, 8).getFloat64(0, true));
        r.pos += 8;
        break;
      }
    }
  }
  return out;
}

/**
 * An attribute list as read: keys and values in arrival order, duplicates included (encodeMap keeps
 * a repeated key's last value). A span's list is reused from span to span, without the Map that
 * would be rebuilt for each.
 */
class Attributes {
  readonly keys: string[] = [];
  readonly values: string[] = [];
  size = 0;

  add(key: string, value: string): void {
    this.keys[this.size] = key;
    this.values[this.size] = value;
    this.size++;
  }

  has(key: string): boolean {
    for (let i = 0; i < this.size; i++) if (this.keys[i] === key) return true;
    return false;
  }
}

/** Reads a KeyValue message into `into`, with its AnyValue at depth `depth`. */
function readKeyValue(r: Reader, into: Attributes, depth: number): void {
  const start = r.delimited();
  const kv = KEY_VALUE.at(r.buf, start, r.pos);
  let key = '';
  let value = '';
  let seenValue = false;
  while (kv.pos < kv.end) {
    const tag = kv.tag();
    const field = tag >>> 3;
    if (field === 1) {
      expect(tag & 7, WIRE_LEN);
      key = readString(kv);
    } else if (field === 2) {
      expect(tag & 7, WIRE_LEN);
      if (seenValue) throw UNHANDLED; // a repeated message field merges: generic rules
      seenValue = true;
      const vs = kv.delimited();
      value = anyValueText(kv.buf, vs, kv.pos, depth);
    } else if (field === 3) {
      expect(tag & 7, WIRE_VARINT); // key_strindex (profiles only)
      kv.varint();
    } else kv.skip(tag & 7);
  }
  into.add(key, value);
}

/**
 * Whether entry `a` of `keys` comes before entry `b` in the order of an attribute map built by
 * attributesToMap: sorted, except that array-index keys ("0", "42") come first in numeric order, as
 * in every JavaScript object; the same key by arrival.
 */
function before(keys: readonly string[], a: number, b: number): boolean {
  const ka = keys[a] ?? '';
  const kb = keys[b] ?? '';
  if (ka === kb) return a < b;
  const ia = isIndexKey(ka);
  if (ia !== isIndexKey(kb)) return ia;
  return ia ? Number(ka) < Number(kb) : ka < kb;
}

/** Lists up to this long are put in order by insertion sort, into ORDER (reused); longer ones by Array.prototype.sort. */
const SHORT_LIST = 64;
const ORDER = new Int32Array(SHORT_LIST);

/** The first `n` (at most SHORT_LIST) entries' indexes in map order, in ORDER: insertion sort, which costs nothing on the usual sorted list. */
function sortEntries(keys: readonly string[], n: number): Int32Array {
  const o = ORDER;
  for (let i = 0; i < n; i++) {
    let j = i;
    while (j > 0 && before(keys, i, o[j - 1] ?? 0)) {
      o[j] = o[j - 1] ?? 0;
      j--;
    }
    o[j] = i;
  }
  return o;
}

/** A finished attribute map as the generic path builds it (keys in that order, a repeated key's last value), the processors applied, RowBinary-encoded. */
function encodeMap(w: RowBinaryWriter, entries: Attributes, redaction: Redaction | undefined): void {
  const n = entries.size;
  if (n === 0) {
    w.varUInt(0);
    return;
  }
  const { keys, values } = entries;
  // Insertion sort is quadratic: a long list is sorted by the engine.
  const o = n <= SHORT_LIST ? sortEntries(keys, n) : Int32Array.from(Array.from({ length: n }, (_, i) => i).sort((a, b) => (before(keys, a, b) ? -1 : 1)));
  // Each key once, with the value it arrived with last: the last of its run in `o`.
  let distinct = 1;
  for (let j = 1; j < n; j++) if (keys[o[j] ?? 0] !== keys[o[j - 1] ?? 0]) distinct++;
  w.varUInt(distinct);
  for (let j = 0; j < n; j++) {
    const i = o[j] ?? 0;
    const k = keys[i] ?? '';
    if (j < n - 1 && keys[o[j + 1] ?? 0] === k) continue;
    const v = values[i] ?? '';
    w.string(k);
    w.string(redaction ? redaction.redactAttribute(k, v) : v);
  }
}

/** Writes a DateTime64(9) from a fixed64 at `pos` (unsigned nanoseconds), clamped to the largest DateTime64(9). */
function writeTimestamp(w: RowBinaryWriter, lo: number, hi: number): void {
  if (hi >= 0x80000000) w.u64(0xffffffff, 0x7fffffff);
  else w.u64(lo, hi);
}

/** The parts of one span the row needs, as positions in the request (reused across spans). */
interface SpanFields {
  traceId: [number, number];
  spanId: [number, number];
  parentSpanId: [number, number];
  traceState: string;
  name: string;
  kind: number;
  startLo: number;
  startHi: number;
  endLo: number;
  endHi: number;
  attributes: Attributes;
  events: Array<[number, number]>;
  links: Array<[number, number]>;
  /** The status message's bounds; hasStatus says whether there is one. */
  status: [number, number];
  hasStatus: boolean;
}

/** Span fields to read into, all reset by readSpan. */
function newSpanFields(): SpanFields {
  return { traceId: [0, 0], spanId: [0, 0], parentSpanId: [0, 0], traceState: '', name: '', kind: 0, startLo: 0, startHi: 0, endLo: 0, endHi: 0, attributes: new Attributes(), events: [], links: [], status: [0, 0], hasStatus: false };
}

/** Reads the span at `buf[start, end)` into `f` (reset first: `f`, its arrays and map are reused across spans). */
function readSpan(buf: Buffer, start: number, end: number, f: SpanFields): void {
  const r = MESSAGE.at(buf, start, end);
  f.traceId[0] = f.traceId[1] = 0;
  f.spanId[0] = f.spanId[1] = 0;
  f.parentSpanId[0] = f.parentSpanId[1] = 0;
  f.traceState = '';
  f.name = '';
  f.kind = 0;
  f.startLo = f.startHi = f.endLo = f.endHi = 0;
  f.attributes.size = 0;
  f.events.length = 0;
  f.links.length = 0;
  f.hasStatus = false;
  while (r.pos < end) readSpanField(r, r.tag(), f);
}

/** Sets `pair` to the bounds of the length-delimited field at the reader. */
function bounds(r: Reader, pair: [number, number]): void {
  pair[0] = r.delimited();
  pair[1] = r.pos;
}

/** Whether the span's ids are valid as invalidSpanIds judges them (checked here without slicing the request; invalidSpanIds words the reason). */
function validIds(buf: Buffer, f: SpanFields): boolean {
  const [ts, te] = f.traceId;
  const [ss, se] = f.spanId;
  const parent = f.parentSpanId[1] - f.parentSpanId[0];
  if (te - ts !== 16 || se - ss !== 8 || (parent !== 0 && parent !== 8)) return false;
  let t = 0;
  for (let i = ts; i < te; i++) t |= buf[i] ?? 0;
  let sp = 0;
  for (let i = ss; i < se; i++) sp |= buf[i] ?? 0;
  return t !== 0 && sp !== 0;
}

/** Reads one field of a Span (its tag already read) into `f`; an unknown field is skipped, a wrong wire type left to the generic decoder. */
function readSpanField(r: Reader, tag: number, f: SpanFields): void {
  const wireType = tag & 7;
  switch (tag >>> 3) {
    case 1:
      expect(wireType, WIRE_LEN);
      bounds(r, f.traceId);
      break;
    case 2:
      expect(wireType, WIRE_LEN);
      bounds(r, f.spanId);
      break;
    case 3:
      expect(wireType, WIRE_LEN);
      f.traceState = readString(r);
      break;
    case 4:
      expect(wireType, WIRE_LEN);
      bounds(r, f.parentSpanId);
      break;
    case 5:
      expect(wireType, WIRE_LEN);
      f.name = readString(r);
      break;
    case 6:
      expect(wireType, WIRE_VARINT);
      r.varint();
      f.kind = varLo | 0;
      break;
    case 7:
      expect(wireType, WIRE_I64);
      f.startLo = r.fixed32();
      f.startHi = r.fixed32();
      break;
    case 8:
      expect(wireType, WIRE_I64);
      f.endLo = r.fixed32();
      f.endHi = r.fixed32();
      break;
    case 9:
      expect(wireType, WIRE_LEN);
      readKeyValue(r, f.attributes, 6);
      break;
    case 11:
      expect(wireType, WIRE_LEN);
      f.events.push([r.delimited(), r.pos]);
      break;
    case 13:
      expect(wireType, WIRE_LEN);
      f.links.push([r.delimited(), r.pos]);
      break;
    case 15:
      expect(wireType, WIRE_LEN);
      if (f.hasStatus) throw UNHANDLED;
      f.hasStatus = true;
      bounds(r, f.status);
      break;
    case 10:
    case 12:
    case 14:
      expect(wireType, WIRE_VARINT);
      r.varint();
      break;
    case 16:
      expect(wireType, WIRE_I32);
      r.fixed32();
      break;
    default:
      r.skip(wireType);
  }
}

/** What readStatus returns (reused: read before the next span's). */
const STATUS_READ = { message: '', code: 0 };

/** Status message and code of a span. */
function readStatus(buf: Buffer, bounds: [number, number] | undefined): { message: string; code: number } {
  const out = STATUS_READ;
  out.message = '';
  out.code = 0;
  if (!bounds) return out;
  const r = MESSAGE.at(buf, bounds[0], bounds[1]);
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    if (field === 2) {
      expect(tag & 7, WIRE_LEN);
      out.message = readString(r);
    } else if (field === 3) {
      expect(tag & 7, WIRE_VARINT);
      r.varint();
      out.code = varLo | 0;
    } else r.skip(tag & 7);
  }
  return out;
}

/** A span's events: timestamps (low and high halves in turn), names and attributes. */
interface Events {
  times: number[];
  names: string[];
  attrs: Attributes[];
}

/** A span without events or links, and an empty list (shared: never written to). */
const NO_ATTRIBUTES = new Attributes();
const NO_EVENTS: Events = { times: [], names: [], attrs: [] };
const NO_LINKS: Links = { ids: [], states: [], attrs: [] };

/** Reads a span's events (every span's, even a rejected one's: invalid text must be caught as fromBinary does). */
function readEvents(buf: Buffer, events: Array<[number, number]>): Events {
  const times: number[] = [];
  const names: string[] = [];
  const attrs: Attributes[] = [];
  for (const [start, end] of events) {
    const r = MESSAGE.at(buf, start, end);
    let lo = 0;
    let hi = 0;
    let name = '';
    const a = new Attributes();
    while (r.pos < end) {
      const tag = r.tag();
      const field = tag >>> 3;
      if (field === 1) {
        expect(tag & 7, WIRE_I64);
        lo = r.fixed32();
        hi = r.fixed32();
      } else if (field === 2) {
        expect(tag & 7, WIRE_LEN);
        name = readString(r);
      } else if (field === 3) {
        expect(tag & 7, WIRE_LEN);
        readKeyValue(r, a, 7);
      } else if (field === 4) {
        expect(tag & 7, WIRE_VARINT);
        r.varint();
      } else r.skip(tag & 7);
    }
    times.push(lo, hi);
    names.push(name);
    attrs.push(a);
  }
  return { times, names, attrs };
}

/** Writes the Events.* columns of a span. */
function writeEvents(w: RowBinaryWriter, { times, names, attrs }: Events, redaction: Redaction | undefined): void {
  w.varUInt(names.length);
  for (let i = 0; i < times.length; i += 2) writeTimestamp(w, times[i] ?? 0, times[i + 1] ?? 0);
  w.varUInt(names.length);
  for (let i = 0; i < names.length; i++) w.string(names[i] ?? '');
  w.varUInt(attrs.length);
  for (let i = 0; i < attrs.length; i++) encodeMap(w, attrs[i] ?? NO_ATTRIBUTES, redaction);
}

/** A span's links: id bounds (trace id start/end, span id start/end), trace states and attributes. */
interface Links {
  ids: Array<[number, number, number, number]>;
  states: string[];
  attrs: Attributes[];
}

/** Reads a span's links (every span's, as readEvents). */
function readLinks(buf: Buffer, links: Array<[number, number]>): Links {
  const ids: Array<[number, number, number, number]> = [];
  const states: string[] = [];
  const attrs: Attributes[] = [];
  for (const [start, end] of links) {
    const r = MESSAGE.at(buf, start, end);
    const id: [number, number, number, number] = [0, 0, 0, 0];
    let state = '';
    const a = new Attributes();
    while (r.pos < end) {
      const tag = r.tag();
      const field = tag >>> 3;
      const wireType = tag & 7;
      if (field === 1) {
        expect(wireType, WIRE_LEN);
        id[0] = r.delimited();
        id[1] = r.pos;
      } else if (field === 2) {
        expect(wireType, WIRE_LEN);
        id[2] = r.delimited();
        id[3] = r.pos;
      } else if (field === 3) {
        expect(wireType, WIRE_LEN);
        state = readString(r);
      } else if (field === 4) {
        expect(wireType, WIRE_LEN);
        readKeyValue(r, a, 7);
      } else if (field === 5) {
        expect(wireType, WIRE_VARINT);
        r.varint();
      } else if (field === 6) {
        expect(wireType, WIRE_I32);
        r.fixed32();
      } else r.skip(wireType);
    }
    ids.push(id);
    states.push(state);
    attrs.push(a);
  }
  return { ids, states, attrs };
}

/** Writes the Links.* columns of a span. */
function writeLinks(w: RowBinaryWriter, buf: Buffer, { ids, states, attrs }: Links, redaction: Redaction | undefined): void {
  // Indexed loops: writing a span's (usually empty) lists allocates no iterator.
  w.varUInt(ids.length);
  for (let i = 0; i < ids.length; i++) w.hex(buf, ids[i]?.[0] ?? 0, ids[i]?.[1] ?? 0);
  w.varUInt(ids.length);
  for (let i = 0; i < ids.length; i++) w.hex(buf, ids[i]?.[2] ?? 0, ids[i]?.[3] ?? 0);
  w.varUInt(states.length);
  for (let i = 0; i < states.length; i++) w.string(states[i] ?? '');
  w.varUInt(attrs.length);
  for (let i = 0; i < attrs.length; i++) encodeMap(w, attrs[i] ?? NO_ATTRIBUTES, redaction);
}

/** A resource: its encoded attribute map (processors applied) and service name. */
interface ResourceInfo {
  map: Uint8Array;
  serviceName: string;
}

function readResource(buf: Buffer, bounds: [number, number] | undefined, p: TraceProcessors): ResourceInfo {
  const entries = new Attributes();
  let serviceName: string | undefined;
  if (bounds) {
    const r = MESSAGE.at(buf, bounds[0], bounds[1]);
    while (r.pos < r.end) {
      const tag = r.tag();
      const field = tag >>> 3;
      if (field === 1) {
        expect(tag & 7, WIRE_LEN);
        readKeyValue(r, entries, 5);
        // service.name is the first such attribute, not the last.
        if (serviceName === undefined && entries.keys[entries.size - 1] === 'service.name') serviceName = entries.values[entries.size - 1];
      } else if (field === 2) {
        expect(tag & 7, WIRE_VARINT);
        r.varint();
      } else if (field === 3) throw UNHANDLED; // entity_refs: rare, left to the generic decoder
      else r.skip(tag & 7);
    }
  }
  for (const [k, v] of Object.entries(p.resourceDefaults)) if (!entries.has(k)) entries.add(k, v);
  // Added last, an override is the value its key keeps.
  if (p.resourceOverrides) for (const [k, v] of Object.entries(p.resourceOverrides)) entries.add(k, v);
  const w = new RowBinaryWriter(256);
  encodeMap(w, entries, p.redaction);
  return { map: w.finish(), serviceName: p.redaction ? p.redaction.redactFreeText(serviceName ?? '') : (serviceName ?? '') };
}

/** Name and version of an instrumentation scope. */
function readScope(buf: Buffer, bounds: [number, number] | undefined): { name: string; version: string } {
  const out = { name: '', version: '' };
  if (!bounds) return out;
  const r = MESSAGE.at(buf, bounds[0], bounds[1]);
  while (r.pos < r.end) {
    const tag = r.tag();
    const field = tag >>> 3;
    if (field === 1) {
      expect(tag & 7, WIRE_LEN);
      out.name = readString(r);
    } else if (field === 2) {
      expect(tag & 7, WIRE_LEN);
      out.version = readString(r);
    } else if (field === 3) {
      // Scope attributes have no otel_traces column, but are read so that invalid text is caught as fromBinary does.
      expect(tag & 7, WIRE_LEN);
      readKeyValue(r, new Attributes(), 6);
    } else if (field === 4) {
      expect(tag & 7, WIRE_VARINT);
      r.varint();
    } else r.skip(tag & 7);
  }
  return out;
}

/**
 * The bounds of the singular message field `single` and of each repeated `many` field of a message
 * (ResourceSpans, ScopeSpans: fields 1 and 2, and a schema_url string as field 3; the request: field
 * 1 only); `list` receives the repeated fields' starts and ends in turn, from its start (`count`
 * of them: it keeps its length, so that its storage is reused).
 */
function split(buf: Buffer, start: number, end: number, single: number, many: number, list: number[]): { one: [number, number] | undefined; count: number } {
  const r = MESSAGE.at(buf, start, end);
  let one: [number, number] | undefined;
  let count = 0;
  while (r.pos < end) {
    const tag = r.tag();
    const field = tag >>> 3;
    if (field === 3 && single > 0) {
      expect(tag & 7, WIRE_LEN);
      readString(r); // schema_url: not stored, but must be valid text
    } else if (field === single || field === many) {
      expect(tag & 7, WIRE_LEN);
      const s = r.delimited();
      if (field === many) {
        list[count++] = s;
        list[count++] = r.pos;
      } else if (one) throw UNHANDLED; // a repeated singular message merges: generic rules
      else one = [s, r.pos];
    } else r.skip(tag & 7);
  }
  return { one, count };
}

/**
 * Encodes an ExportTraceServiceRequest's spans as otel_traces RowBinary rows, or returns undefined
 * when the request should take the generic path. Invalid spans are counted and explained exactly
 * as the generic path does.
 */
export function encodeTraceRequest(bytes: Uint8Array, p: TraceProcessors): EncodedTraces | undefined {
  try {
    return encode(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), p);
  } catch (err) {
    if (err instanceof Unhandled) return undefined;
    throw err;
  }
}

/** Rows are written here first (one request at a time: encoding is synchronous), then copied out right-sized. */
let scratch = new RowBinaryWriter(SCRATCH_BYTES);
/** The summaries of a request without spans (shared: its columns are frozen). */
const EMPTY_SUMMARIES = new SpanSummaries().freeze();
/** The bounds lists of the request's resource spans, of one's scope spans, and of one's spans: reused, not grown anew each request. */
const BOUNDS: [number[], number[], number[]] = [[], [], []];
/** Entries a bounds list keeps between requests (32k messages); a longer one, left by a very large request, is let go. */
const MAX_KEPT_BOUNDS = 65_536;

function encode(buf: Buffer, p: TraceProcessors): EncodedTraces {
  const w = scratch;
  w.truncate(0);
  try {
    return encodeInto(w, buf, p);
  } finally {
    // The cursors let go of the request.
    for (const r of READERS) r.at(EMPTY_BUFFER, 0, 0);
    // A very large request leaves the scratch and the bounds lists large: let them go.
    if (w.capacity > 4 * SCRATCH_BYTES) scratch = new RowBinaryWriter(SCRATCH_BYTES);
    for (const list of BOUNDS) if (list.length > MAX_KEPT_BOUNDS) list.length = 0;
  }
}

function encodeInto(w: RowBinaryWriter, buf: Buffer, p: TraceProcessors): EncodedTraces {
  const out: EncodedTraces = { data: Buffer.alloc(0), accepted: 0, rejected: 0, reasons: [], spans: EMPTY_SUMMARIES };
  const f = newSpanFields();
  // Indexed loops over the bounds lists (start, end in turn): no closure or iterator a span.
  const [top, scopes, spans] = BOUNDS;
  const resources = split(buf, 0, buf.length, -1, 1, top).count;
  for (let a = 0; a < resources; a += 2) {
    const rs = split(buf, top[a] ?? 0, top[a + 1] ?? 0, 1, 2, scopes);
    const resource = readResource(buf, rs.one, p);
    for (let b = 0; b < rs.count; b += 2) {
      const ss = split(buf, scopes[b] ?? 0, scopes[b + 1] ?? 0, 1, 2, spans);
      const scope = readScope(buf, ss.one);
      // Sized by the first scope's spans (usually all of them): the summaries outlive the request's scavenges.
      if (out.spans === EMPTY_SUMMARIES) out.spans = new SpanSummaries(ss.count / 2);
      for (let c = 0; c < ss.count; c += 2) {
        readSpan(buf, spans[c] ?? 0, spans[c + 1] ?? 0, f);
        const invalid = writeSpan(w, buf, f, resource, scope, p, out);
        if (invalid === undefined) continue;
        out.rejected += 1;
        if (out.reasons.length < MAX_REASONS) out.reasons.push(`resource_spans[${a / 2}].scope_spans[${b / 2}].spans[${c / 2}]: ${invalid}`);
      }
    }
  }
  out.spans.trim();
  out.data = rowChunks.copy(w.view());
  return out;
}

/**
 * Reads the rest of the span `f` was read from (status, events, links: every span's, for their
 * text) and writes its row, counted in `out`; returns why the span is invalid instead, when it is.
 */
function writeSpan(w: RowBinaryWriter, buf: Buffer, f: SpanFields, resource: ResourceInfo, scope: { name: string; version: string }, p: TraceProcessors, out: EncodedTraces): string | undefined {
  const status = readStatus(buf, f.hasStatus ? f.status : undefined);
  const events = f.events.length === 0 ? NO_EVENTS : readEvents(buf, f.events);
  const links = f.links.length === 0 ? NO_LINKS : readLinks(buf, f.links);
  const invalid = validIds(buf, f) ? undefined : invalidSpanIds(buf.subarray(...f.traceId), buf.subarray(...f.spanId), f.parentSpanId[0] === f.parentSpanId[1] ? EMPTY : buf.subarray(...f.parentSpanId));
  if (invalid) return invalid;
  const kind = KIND[f.kind] ?? 'Unspecified';
  const code = STATUS[status.code] ?? 'Unset';
  // Duration: end - start when end is later (unsigned 64-bit), else 0.
  let dLo = 0;
  let dHi = 0;
  if (f.endHi > f.startHi || (f.endHi === f.startHi && f.endLo > f.startLo)) {
    dLo = f.endLo - f.startLo;
    dHi = f.endHi - f.startHi;
    if (dLo < 0) {
      dLo += 4294967296;
      dHi -= 1;
    }
  }
  const name = p.redaction ? p.redaction.redactFreeText(f.name) : f.name;
  writeTimestamp(w, f.startLo, f.startHi);
  w.hex(buf, f.traceId[0], f.traceId[1]);
  w.hex(buf, f.spanId[0], f.spanId[1]);
  w.hex(buf, f.parentSpanId[0], f.parentSpanId[1]);
  w.string(f.traceState);
  w.string(name);
  w.string(kind);
  w.string(resource.serviceName);
  w.raw(resource.map);
  w.string(scope.name);
  w.string(scope.version);
  if (f.attributes.size === 0) w.raw(EMPTY_MAP);
  else encodeMap(w, f.attributes, p.redaction);
  w.u64(dLo, dHi);
  w.string(code);
  w.string(p.redaction ? p.redaction.redactFreeText(status.message) : status.message);
  writeEvents(w, events, p.redaction);
  writeLinks(w, buf, links, p.redaction);
  out.accepted += 1;
  out.spans.add(resource.serviceName, name, kind, code, (dHi * 4294967296 + dLo) / 1e9);
  return undefined;
}
