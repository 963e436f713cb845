/**
 * Row chunks: copies byte for byte, cut from slabs reused once every chunk of a slab is released,
 * never overwriting a chunk still held; large rows get their own buffer; a bounded number of slabs
 * is kept, none once idle.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRowChunks } from '../../../src/ingest/pipeline/row-chunks.js';

const bytes = (n: number, fill: number) => Buffer.alloc(n, fill);

describe('row chunks', () => {
  afterEach(() => vi.useRealTimers());

  it('copies rows into one slab until it is full, and reuses the slab once all its chunks are released', () => {
    const chunks = createRowChunks({ slabBytes: 1_000, maxFree: 2, idleMs: 1_000 });
    const source = bytes(200, 1);
    const a = chunks.copy(source);
    source.fill(9); // a copy, not a view
    const b = chunks.copy(bytes(200, 2));
    expect([a, b]).toEqual([bytes(200, 1), bytes(200, 2)]);
    expect(b.buffer).toBe(a.buffer);
    chunks.release(a);
    chunks.release(a); // twice: no effect
    const c = chunks.copy(bytes(200, 3));
    // b is still held: c comes after it, and b keeps its bytes.
    expect(c.buffer).toBe(a.buffer);
    expect(c.byteOffset).toBe(b.byteOffset + 200);
    expect(b).toEqual(bytes(200, 2));
    chunks.release(b);
    chunks.release(c);
    // Every chunk released: the slab is filled from its start again.
    const d = chunks.copy(bytes(100, 4));
    expect([d.buffer, d.byteOffset]).toEqual([a.buffer, a.byteOffset]);
    chunks.release(bytes(10, 0)); // not from a slab: ignored
  });

  it('moves to a fresh slab when one is full, keeping the full one for reuse once its chunks are released', () => {
    const chunks = createRowChunks({ slabBytes: 1_000, maxFree: 1, idleMs: 1_000 });
    const held = [1, 2, 3, 4].map((fill) => chunks.copy(bytes(250, fill)));
    const next = chunks.copy(bytes(250, 5));
    expect(next.buffer).not.toBe(held[0]?.buffer);
    expect(held).toEqual([1, 2, 3, 4].map((fill) => bytes(250, fill)));
    for (const h of held) chunks.release(h);
    expect(chunks.keptBytes).toBe(1_000);
    // The next slab needed is the one kept.
    for (const fill of [6, 7, 8]) chunks.copy(bytes(250, fill));
    const reused = chunks.copy(bytes(250, 9));
    expect(reused.buffer).toBe(held[0]?.buffer);
    expect(chunks.keptBytes).toBe(0);
    expect(next).toEqual(bytes(250, 5));
  });

  it('gives rows larger than a quarter of a slab a buffer of their own', () => {
    const chunks = createRowChunks({ slabBytes: 1_000, maxFree: 1, idleMs: 1_000 });
    const small = chunks.copy(bytes(10, 1));
    const large = chunks.copy(bytes(251, 2));
    expect(large).toEqual(bytes(251, 2));
    expect(large.buffer).not.toBe(small.buffer);
  });

  it('keeps no slab once idle', () => {
    vi.useFakeTimers();
    const chunks = createRowChunks({ slabBytes: 1_000, maxFree: 4, idleMs: 5_000 });
    const held = [1, 2, 3, 4, 5].map((fill) => chunks.copy(bytes(250, fill)));
    for (const h of held) chunks.release(h);
    expect(chunks.keptBytes).toBe(1_000);
    vi.advanceTimersByTime(5_000);
    expect(chunks.keptBytes).toBe(0);
    // The slab in use when idle (all released) is let go too: the next copy takes a new one.
    const after = chunks.copy(bytes(10, 6));
    expect(held.some((h) => h.buffer === after.buffer)).toBe(false);
  });

  it('lets go of slabs given back after it went idle, and cuts nothing for empty rows', () => {
    vi.useFakeTimers();
    const chunks = createRowChunks({ slabBytes: 1_000, maxFree: 4, idleMs: 5_000 });
    const held = [1, 2, 3, 4, 5].map((fill) => chunks.copy(bytes(250, fill)));
    vi.advanceTimersByTime(5_000); // idle while the inserts still hold every chunk
    for (const h of held) chunks.release(h);
    expect(chunks.keptBytes).toBe(1_000);
    vi.advanceTimersByTime(5_000);
    expect(chunks.keptBytes).toBe(0);
    // Empty rows take no place in a slab: the slab in use is still reset once its chunks are back.
    const empty = chunks.copy(Buffer.alloc(0));
    expect(empty.length).toBe(0);
    const a = chunks.copy(bytes(100, 1));
    chunks.release(a);
    const b = chunks.copy(bytes(100, 2));
    expect([b.buffer, b.byteOffset]).toEqual([a.buffer, a.byteOffset]);
  });
});
