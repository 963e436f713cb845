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
 * one. Two-way set-associative: a text's bytes hash to a pair of slots, which hold the last two
 * texts of that pair (the newer first), so that two texts used in turn do not evict each other.
 * Memory stays at `slots × maxBytes` bytes plus the strings.
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
  if (slots < 2 || (slots & (slots - 1)) !== 0) throw new Error('wire text cache: slots must be a power of two, at least 2');
  const mask = slots - 2;
  const bytes = new Uint8Array(slots * maxBytes);
  const lengths = new Int32Array(slots).fill(-1);
  const texts: string[] = new Array<string>(slots).fill('');
  /** Whether `slot` holds the bytes `buf[start, start + len)`. */
  const holds = (slot: number, buf: Buffer, start: number, len: number): boolean => {
    if (lengths[slot] !== len) return false;
    const base = slot * maxBytes;
    let i = 0;
    while (i < len && bytes[base + i] === buf[start + i]) i++;
    return i === len;
  };
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
      const first = (h ^ (h >>> 15)) & mask;
      const second = first + 1;
      if (holds(first, buf, start, len)) return texts[first];
      if (holds(second, buf, start, len)) return texts[second];
      // A miss: the pair's newer text becomes its older, the new one its newer.
      const base = first * maxBytes;
      const older = lengths[first] ?? -1;
      if (older >= 0) bytes.copyWithin(base + maxBytes, base, base + older);
      lengths[second] = older;
      texts[second] = texts[first] ?? '';
      const text = (buf as Latin1Buffer).latin1Slice(start, end);
      for (let i = 0; i < len; i++) bytes[base + i] = buf[start + i] ?? 0;
      lengths[first] = len;
      texts[first] = text;
      return text;
    },
  };
}
