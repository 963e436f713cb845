import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';

/** What a request would decode into, counted on its bytes before it is decoded. */
export interface ElementCount {
  /** Values the decoder would build: field values, list elements, map entries, messages (counting stops once past the `max` asked for). */
  elements: number;
  /** Deepest nesting of messages (or JSON objects and arrays) seen (counting stops once past the `maxDepth` asked for). */
  depth: number;
}

/**
 * How one field's values are counted on the wire: a nested message (or map entry) to descend
 * into, a packed run of fixed-size or varint elements, or one value.
 */
type FieldPlan = { kind: 'message'; fields: Fields } | { kind: 'fixed'; size: number } | { kind: 'varints' } | { kind: 'value' };
type Fields = Map<number, FieldPlan>;

const VALUE: FieldPlan = { kind: 'value' };
const plans = new WeakMap<DescMessage, Fields>();

function fixedSize(scalar: ScalarType): number {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 8;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return 4;
    default:
      return 0;
  }
}

function fieldPlan(f: DescField): FieldPlan {
  switch (f.fieldKind) {
    case 'message':
      return { kind: 'message', fields: fieldsOf(f.message) };
    case 'list': {
      if (f.listKind === 'message') return { kind: 'message', fields: fieldsOf(f.message) };
      if (f.listKind === 'enum') return { kind: 'varints' };
      if (f.scalar === ScalarType.STRING || f.scalar === ScalarType.BYTES) return VALUE;
      const size = fixedSize(f.scalar);
      return size > 0 ? { kind: 'fixed', size } : { kind: 'varints' };
    }
    case 'map':
      // A map entry is a message of key (1) and value (2).
      return { kind: 'message', fields: new Map([[2, f.mapKind === 'message' ? { kind: 'message', fields: fieldsOf(f.message) } : VALUE]]) };
    default:
      return VALUE;
  }
}

function fieldsOf(desc: DescMessage): Fields {
  let fields = plans.get(desc);
  if (!fields) {
    // Set before the fields are planned: messages nest recursively (AnyValue in KeyValue in AnyValue).
    fields = new Map();
    plans.set(desc, fields);
    for (const f of desc.fields) fields.set(f.number, fieldPlan(f));
  }
  return fields;
}

/** A read position in protobuf bytes. */
class Cursor {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  /** Reads a varint (tags and lengths: up to 2^53); -1 when it runs past the end or over ten bytes. */
  varint(): number {
    const { bytes } = this;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10 && this.pos < bytes.length; i++) {
      const b = bytes[this.pos++] as number;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    return -1;
  }

  /** Skips a value of a scalar wire type (varint, 64-bit, 32-bit); false for other wire types or a varint cut short. */
  skipScalar(wireType: number): boolean {
    if (wireType === 0) return this.varint() >= 0;
    if (wireType === 1) this.pos += 8;
    else if (wireType === 5) this.pos += 4;
    else return false;
    return true;
  }
}

/**
 * Counts, without decoding, what the bytes of a `desc` message would decode into: every field value,
 * list element (packed ones too), map entry and nested message, unknown fields included; and how
 * deep messages nest. Stops once past `max` elements or `maxDepth` levels. Never throws: on
 * malformed bytes it returns what it counted so far, and the decoder says what is wrong. Linear in
 * the bytes, allocation-free but for one frame per nesting level.
 */
export function countProtoElements(desc: DescMessage, bytes: Uint8Array, max: number, maxDepth: number): ElementCount {
  let elements = 0;
  let depth = 0;
  const frames: Fields[] = [fieldsOf(desc)];
  const ends: number[] = [bytes.length];
  const at = new Cursor(bytes);
  while (elements <= max && depth <= maxDepth) {
    const top = frames.length - 1;
    const end = ends[top] as number;
    if (at.pos >= end) {
      if (top === 0) break;
      frames.pop();
      ends.pop();
      continue;
    }
    const tag = at.varint();
    if (tag < 0) break;
    const plan = (frames[top] as Fields).get(Math.floor(tag / 8));
    elements += 1;
    const wireType = tag & 7;
    if (wireType !== 2) {
      // Groups (not used by OTLP) and invalid wire types: the decoder refuses or skips them.
      if (!at.skipScalar(wireType)) break;
      continue;
    }
    const len = at.varint();
    if (len < 0 || at.pos + len > end) break;
    if (plan?.kind === 'message') {
      frames.push(plan.fields);
      ends.push(at.pos + len);
      depth = Math.max(depth, frames.length - 1);
      continue;
    }
    if (plan?.kind === 'fixed') elements += Math.max(0, Math.floor(len / plan.size) - 1);
    else if (plan?.kind === 'varints') {
      let values = 0;
      for (let i = at.pos; i < at.pos + len; i++) if ((bytes[i] as number) < 0x80) values += 1;
      elements += Math.max(0, values - 1);
    }
    at.pos += len;
  }
  return { elements, depth };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

/**
 * Counts, without parsing, an upper bound of the values a JSON text holds (objects, arrays, and
 * one per comma and per container, which covers every member and element) and how deep objects
 * and arrays nest. Stops once past `max` elements or `maxDepth` levels. Never throws: a text that
 * is not JSON is left to the parser to explain.
 */
export function countJsonElements(text: Uint8Array, max: number, maxDepth: number): ElementCount {
  let elements = 1;
  let depth = 0;
  let level = 0;
  let inString = false;
  for (let i = 0; i < text.length && elements <= max && depth <= maxDepth; i++) {
    const c = text[i] as number;
    if (inString) {
      if (c === BACKSLASH) i += 1;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === COMMA) elements += 1;
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      elements += 2;
      level += 1;
      if (level > depth) depth = level;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) level -= 1;
  }
  return { elements, depth };
}

/**
 * Counts the occurrences of field `field` at the top level of a message's bytes (the elements of a
 * repeated message field), skipping everything else. Never throws: on malformed bytes it returns
 * what it counted so far.
 */
export function countTopLevel(bytes: Uint8Array, field: number): number {
  let count = 0;
  const at = new Cursor(bytes);
  while (at.pos < bytes.length) {
    const tag = at.varint();
    if (tag < 0) break;
    if (Math.floor(tag / 8) === field) count += 1;
    if ((tag & 7) === 2) {
      const len = at.varint();
      if (len < 0) break;
      at.pos += len;
    } else if (!at.skipScalar(tag & 7)) break;
  }
  return count;
}
