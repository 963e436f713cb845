/** Options for createWireText. */
export interface WireTextOptions {
  /** Slots of the cache: a power of two. */
  slots: number;
  /** Longest text (in bytes) the cache keeps. */
  maxBytes: number;
}

/**
 * Short ASCII texts of protobuf messages (attribute keys and values, span names), remembered by
 * their bytes: a text seen before comes back as the same string, without decoding it or allocating
 * one. Direct-mapped: a slot holds the last text whose bytes hash to it, so memory stays at
 * `slots × maxBytes` bytes plus the strings.
 */
export interface WireText {
  /** The text of `buf[start, end)` when it is ASCII and at most maxBytes long; undefined otherwise (the caller decodes it). */
  ascii(buf: Buffer, start: number, end: number): string | undefined;
}

/** Node's Buffer reads ASCII fastest through latin1Slice (what toString('latin1') calls after checking its arguments). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Creates an empty cache. */
export function createWireText(options: WireTextOptions): WireText {
  const { slots, maxBytes } = options;
  if (slots <= 0 || (slots & (slots - 1)) !== 0) throw new Error('wire text cache: slots must be a power of two');
  const mask = slots - 1;
  const bytes = new Uint8Array(slots * maxBytes);
  const lengths = new Int32Array(slots).fill(-1);
  const texts: string[] = new Array<string>(slots).fill('');
  return {
    ascii(buf, start, end) {
      const len = end - start;
      if (len > maxBytes) return undefined;
      // FNV-1a over the bytes, checking they are ASCII on the way.
      let h = 0x811c9dc5 ^ len;
      for (let i = start; i < end; i++) {
        const b = buf[i] ?? 0;
        if (b > 0x7f) return undefined;
        h = Math.imul(h ^ b, 0x01000193);
      }
      const slot = (h ^ (h >>> 15)) & mask;
      const base = slot * maxBytes;
      if (lengths[slot] === len) {
        let i = 0;
        while (i < len && bytes[base + i] === buf[start + i]) i++;
        if (i === len) return texts[slot];
      }
      const text = (buf as Latin1Buffer).latin1Slice(start, end);
      for (let i = 0; i < len; i++) bytes[base + i] = buf[start + i] ?? 0;
      lengths[slot] = len;
      texts[slot] = text;
      return text;
    },
  };
}
