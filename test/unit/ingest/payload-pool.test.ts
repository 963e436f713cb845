/** The batch payload pool: joins chunks byte for byte, reuses released buffers, keeps a bounded amount, lets go when idle. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createPayloadPool } from '../../../src/ingest/pipeline/payload-pool.js';

const chunk = (n: number, fill: number) => Buffer.alloc(n, fill);

describe('payload pool', () => {
  afterEach(() => vi.useRealTimers());

  it('joins chunks into their concatenation, and hands a single chunk back as it is', () => {
    const pool = createPayloadPool({ maxBuffers: 2, maxBytes: 1 << 20, idleMs: 1_000 });
    const parts = [chunk(3, 1), chunk(0, 9), chunk(5, 2), chunk(1, 3)];
    expect(pool.join(parts)).toEqual(Buffer.concat(parts));
    const one = chunk(10, 4);
    expect(pool.join([one])).toBe(one);
    expect(pool.join([])).toEqual(Buffer.alloc(0));
  });

  it('reuses a released buffer for the next payload it fits, never one still lent', () => {
    const pool = createPayloadPool({ maxBuffers: 2, maxBytes: 1 << 20, idleMs: 1_000 });
    const first = pool.join([chunk(100, 1), chunk(100, 2)]);
    const second = pool.join([chunk(50, 3), chunk(50, 4)]);
    expect(second.buffer).not.toBe(first.buffer);
    pool.release(first);
    pool.release(first); // twice: no effect
    expect(pool.keptBytes).toBe(200);
    const third = pool.join([chunk(60, 5), chunk(60, 6)]);
    expect(third.buffer).toBe(first.buffer);
    expect(third).toEqual(Buffer.concat([chunk(60, 5), chunk(60, 6)]));
    // second still holds its own bytes.
    expect(second).toEqual(Buffer.concat([chunk(50, 3), chunk(50, 4)]));
    pool.release(chunk(10, 0)); // not from the pool: ignored
    expect(pool.keptBytes).toBe(0);
  });

  it('keeps at most maxBuffers buffers of at most maxBytes, and none once idle', () => {
    vi.useFakeTimers();
    const pool = createPayloadPool({ maxBuffers: 2, maxBytes: 1_000, idleMs: 5_000 });
    const payloads = [300, 400, 500, 2_000].map((n) => pool.join([chunk(n / 2, 1), chunk(n / 2, 2)]));
    for (const p of payloads) pool.release(p);
    expect(pool.keptBytes).toBe(900); // the two largest under the bound
    vi.advanceTimersByTime(4_000);
    expect(pool.keptBytes).toBe(900);
    vi.advanceTimersByTime(1_001);
    expect(pool.keptBytes).toBe(0);
  });
});
