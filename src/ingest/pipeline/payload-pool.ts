/** Options for createPayloadPool. */
export interface PayloadPoolOptions {
  /** Buffers kept for reuse at most. */
  maxBuffers: number;
  /** Largest buffer kept for reuse (a larger batch gets a buffer of its own, freed as usual). */
  maxBytes: number;
  /** Kept buffers are let go once the pool was not used for this long. */
  idleMs: number;
}

/**
 * Buffers for batch payloads, reused from one batch to the next. A fresh multi-megabyte buffer
 * costs more to fault in page by page than to fill: copying a batch's parts into fresh memory
 * measured ~60x slower than into memory used before. At most `maxBuffers × maxBytes` bytes are
 * kept between batches, none once the pool sat idle for `idleMs`.
 */
export interface PayloadPool {
  /** The chunks joined into one buffer (from the pool when one is large enough). */
  join(chunks: readonly Buffer[]): Buffer;
  /** Gives a payload from `join` back once nothing reads it any more. Safe for any buffer, and twice. */
  release(payload: Buffer): void;
  /** Bytes kept for reuse now. */
  readonly keptBytes: number;
}

/**
 * A touch for memory kept for reuse: `onIdle` runs once `idleMs` pass without a touch (an unref'd
 * timer, refreshed by each touch, made again after it ran).
 */
export function idleTouch(idleMs: number, onIdle: () => void): () => void {
  let idle: NodeJS.Timeout | undefined;
  return () => {
    if (idle) return void idle.refresh();
    idle = setTimeout(() => {
      idle = undefined;
      onIdle();
    }, idleMs);
    idle.unref();
  };
}

/** Creates an empty pool. */
export function createPayloadPool(options: PayloadPoolOptions): PayloadPool {
  const free: Buffer[] = [];
  /** The whole buffer behind each payload handed out. */
  const lent = new WeakMap<Buffer, Buffer>();
  const touch = idleTouch(options.idleMs, () => (free.length = 0));
  return {
    join(chunks) {
      const total = chunks.reduce((n, c) => n + c.length, 0);
      if (chunks.length === 1 && chunks[0]) return chunks[0];
      touch();
      // The smallest kept buffer that fits (kept largest first).
      let at = -1;
      for (let i = 0; i < free.length && (free[i]?.length ?? 0) >= total; i++) at = i;
      const whole = at >= 0 ? (free.splice(at, 1)[0] as Buffer) : Buffer.allocUnsafeSlow(total);
      let offset = 0;
      for (const c of chunks) offset += c.copy(whole, offset);
      const payload = whole.subarray(0, total);
      lent.set(payload, whole);
      return payload;
    },
    release(payload) {
      const whole = lent.get(payload);
      if (!whole) return;
      lent.delete(payload);
      if (whole.length > options.maxBytes) return;
      touch();
      free.push(whole);
      // Keep the largest ones: they fit every batch the smaller ones fit.
      free.sort((a, b) => b.length - a.length);
      free.length = Math.min(free.length, options.maxBuffers);
    },
    get keptBytes() {
      return free.reduce((n, b) => n + b.length, 0);
    },
  };
}
