import type { DescMessage } from '@bufbuild/protobuf';
import { RequestTooLarge } from '../pipeline/errors.js';
import { countJsonElements, countProtoElements } from './element-count.js';

/**
 * Memory a request is expected to take while decoded and converted, per byte of its
 * (decompressed) body, measured on requests of 20,000 spans, log records or data points with ten
 * attributes each: reserved while the body is read, before its elements can be counted. The trace
 * hot path decodes no message; protobuf-es messages take the most.
 */
export const DECODED_PER_BYTE = { fast: 9, decoded: 27, json: 11 } as const;

/** The most memory a usual request of `bytes` may need while decoded, whatever its signal and encoding. */
export const mostDecodedBytes = (bytes: number): number => bytes * Math.max(...Object.values(DECODED_PER_BYTE));

/** Deepest nesting of messages (or JSON objects and arrays) a request may have: protobuf's default recursion limit. */
export const MAX_DEPTH = 100;

/**
 * Memory per element once decoded, converted and encoded (the message or JSON value and its share
 * of the rows), by decoder; decodedBytes adds two bytes per byte of body (the body, and the strings
 * taken from it). Measured on requests of 8,000-12,000 items with ten attributes (three per metric
 * point): 104 bytes an element for traces, 179 for logs, 275 for metrics, 118 for empty
 * attributes (protobuf-es); 141-150 for OTLP/JSON as countJsonElements counts it, 63 for empty objects.
 */
export const DECODED_PER_ELEMENT = { traces: 120, logs: 200, metrics: 300, events: 300, json: 160 } as const;

/** Memory a request of `bytes` holding `elements` (see countElements) takes once decoded, at `perElement` bytes an element. */
export function decodedBytes(bytes: number, elements: number, perElement: number): number {
  return bytes * 2 + elements * perElement;
}

/**
 * Counts, on its bytes and before anything is decoded, what a request would decode into (a
 * `schema` message, or JSON), and refuses it for good (RequestTooLarge, not retried) when it holds
 * more than `maxElements` values (`ingest.max_elements`) or nests deeper than MAX_DEPTH: the
 * decoders hold the event loop and memory in proportion to elements, not bytes.
 */
export function countElements(body: Uint8Array, schema: DescMessage | 'json', maxElements: number): number {
  const count = schema === 'json' ? countJsonElements(body, maxElements, MAX_DEPTH) : countProtoElements(schema, body, maxElements, MAX_DEPTH);
  if (count.elements > maxElements) {
    throw new RequestTooLarge(`the request holds more than ${maxElements} values (attributes, items, array and map entries), the most ingest.max_elements allows; send it in smaller requests`);
  }
  if (count.depth > MAX_DEPTH) throw new RequestTooLarge(`the request nests values more than ${MAX_DEPTH} levels deep`);
  return count.elements;
}
