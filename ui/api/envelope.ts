/**
 * Connect streaming envelopes: a flags byte, a 4-byte big-endian length, then the message. Kept free
 * of DOM types so the Node unit tests check it too.
 */

/** Flag of the last envelope of a response stream (its JSON holds `error` and `metadata`). */
export const END_STREAM = 0b10;

/** One decoded envelope. */
export interface Envelope {
  flags: number;
  data: Uint8Array;
}

/** Frames one JSON message as an envelope (flags 0). */
export function encodeEnvelope(message: unknown): Uint8Array<ArrayBuffer> {
  const data = new TextEncoder().encode(JSON.stringify(message));
  const out = new Uint8Array(5 + data.length);
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/**
 * Splits a byte stream into envelopes, whatever its chunking. `push` returns the envelopes completed
 * by a chunk; a declared length over `maxBytes` throws (the stream is not read further).
 */
export function createEnvelopeReader(maxBytes: number): { push(chunk: Uint8Array): Envelope[]; readonly pending: number } {
  let buffer = new Uint8Array(0);
  return {
    push(chunk) {
      const joined = new Uint8Array(buffer.length + chunk.length);
      joined.set(buffer);
      joined.set(chunk, buffer.length);
      const out: Envelope[] = [];
      let at = 0;
      while (joined.length - at >= 5) {
        const length = new DataView(joined.buffer, joined.byteOffset + at + 1, 4).getUint32(0);
        if (length > maxBytes) throw new Error(`a stream message of ${length} bytes is over the ${maxBytes}-byte bound`);
        if (joined.length - at - 5 < length) break;
        out.push({ flags: joined[at] ?? 0, data: joined.slice(at + 5, at + 5 + length) });
        at += 5 + length;
      }
      buffer = joined.slice(at);
      return out;
    },
    get pending() {
      return buffer.length;
    },
  };
}
