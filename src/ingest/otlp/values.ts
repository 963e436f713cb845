import type { AnyValue, KeyValue } from '../../gen/opentelemetry/proto/common/v1/common_pb.js';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lowercase hex of bytes (trace and span ids are stored as hex text). */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += HEX[b];
  return out;
}

/** Whether every byte is zero (an all-zero trace or span id is invalid). */
export function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/** The plain JavaScript value of an AnyValue (nested arrays and maps included), for JSON. */
function anyValueToRaw(value: AnyValue | undefined): unknown {
  const v = value?.value;
  switch (v?.case) {
    case 'stringValue':
    case 'boolValue':
    case 'doubleValue':
      return v.value;
    case 'intValue':
      return Number.isSafeInteger(Number(v.value)) ? Number(v.value) : v.value.toString();
    case 'bytesValue':
      return Buffer.from(v.value).toString('base64');
    case 'arrayValue':
      return v.value.values.map(anyValueToRaw);
    case 'kvlistValue':
      return Object.fromEntries(v.value.values.map((kv) => [kv.key, anyValueToRaw(kv.value)]));
    default:
      return null;
  }
}

/** A double attribute value as text: as JavaScript prints it, with the infinities as +Inf / -Inf. */
export function doubleToString(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
}

/**
 * An AnyValue as the text stored in attribute maps and log bodies, as the Collector renders it:
 * strings as they are, numbers and booleans as text, bytes as base64, arrays and maps as JSON,
 * an empty value as "".
 */
export function anyValueToString(value: AnyValue | undefined): string {
  const v = value?.value;
  switch (v?.case) {
    case 'stringValue':
      return v.value;
    case 'boolValue':
    case 'intValue':
      return String(v.value);
    case 'doubleValue':
      return doubleToString(v.value);
    case undefined:
      return '';
    default: {
      const raw = anyValueToRaw(value);
      return typeof raw === 'string' ? raw : JSON.stringify(raw);
    }
  }
}

/**
 * Attributes as a ClickHouse map with keys in sorted order: equal attribute sets always serialise
 * the same way (no duplicate series, much better compression). A repeated key keeps its last value.
 */
export function attributesToMap(attributes: readonly KeyValue[]): Record<string, string> {
  if (attributes.length === 0) return {};
  const entries = new Map<string, string>();
  for (const kv of attributes) entries.set(kv.key, anyValueToString(kv.value));
  // No prototype: a key such as "__proto__" is stored like any other.
  const out = Object.create(null) as Record<string, string>;
  for (const key of [...entries.keys()].sort()) out[key] = entries.get(key) ?? '';
  return out;
}

/** Whether a key is an array index, which JavaScript objects list first, in numeric order. */
export function isIndexKey(key: string): boolean {
  const c = key.charCodeAt(0);
  return c >= 48 && c <= 57 && /^(?:0|[1-9]\d{0,9})$/.test(key) && Number(key) < 4294967295;
}

/** The `service.name` resource attribute, or "" when absent. */
export function serviceNameOf(attributes: readonly KeyValue[]): string {
  for (const kv of attributes) if (kv.key === 'service.name') return anyValueToString(kv.value);
  return '';
}
