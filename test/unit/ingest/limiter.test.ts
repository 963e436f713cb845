import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RequestTooLarge, RetryableError } from '../../../src/ingest/pipeline/errors.js';
import { createMemoryLimiter } from '../../../src/ingest/pipeline/limiter.js';

describe('memory limiter', () => {
  it('lets a request grow alone up to the hard limit; past it the request can never fit', () => {
    const limiter = createMemoryLimiter({ limitBytes: 1_000, spikeBytes: 200, metrics: new Registry() });
    // Alone, a request may pass the soft limit (800) in steps: its own bytes do not refuse it.
    let held = 0;
    for (const step of [500, 400, 100]) {
      limiter.acquire(step, { held });
      held += step;
    }
    expect(limiter.buffered).toBe(1_000);
    expect(() => limiter.acquire(1, { held })).toThrow(RequestTooLarge);
    expect(() => limiter.acquire(1, { held })).toThrow('more than ingest.memory.limit (1000 bytes)');
    limiter.release(held);
    expect(() => limiter.acquire(1_001)).toThrow(RequestTooLarge);
  });

  it('refuses growth past the soft limit while other requests hold memory (retryable), and counts both refusals', async () => {
    const metrics = new Registry();
    const limiter = createMemoryLimiter({ limitBytes: 1_000, spikeBytes: 200, metrics });
    limiter.acquire(300);
    let held = 0;
    limiter.acquire(400, { held });
    held += 400;
    expect(() => limiter.acquire(200, { held })).toThrow(RetryableError);
    // Rows of an admitted request are counted, never refused.
    limiter.acquire(5_000, { force: true });
    expect(limiter.buffered).toBe(5_700);
    expect(() => limiter.acquire(2_000)).toThrow(RequestTooLarge);
    const text = await metrics.metrics();
    expect(text).toMatch(/^heimdall_memory_limiter_refused_total 1$/m);
    expect(text).toMatch(/^heimdall_memory_limiter_too_large_total 1$/m);
  });

  it('tells whether a request holding nothing has room now, counting nothing as refused; one that could never fit is too large', async () => {
    const metrics = new Registry();
    const limiter = createMemoryLimiter({ limitBytes: 1_000, spikeBytes: 200, metrics });
    expect(limiter.hasRoom(900)).toBe(true); // nothing buffered: let through alone
    limiter.acquire(300);
    expect(limiter.hasRoom(100, 0.5)).toBe(true);
    expect(limiter.hasRoom(101, 0.5)).toBe(false); // 400 is half the soft limit
    expect(limiter.hasRoom(500)).toBe(true);
    expect(limiter.hasRoom(501)).toBe(false);
    expect(() => limiter.hasRoom(1_001)).toThrow(RequestTooLarge);
    expect(limiter.buffered).toBe(300);
    const text = await metrics.metrics();
    expect(text).toMatch(/^heimdall_memory_limiter_refused_total 0$/m);
    expect(text).toMatch(/^heimdall_memory_limiter_too_large_total 1$/m);
  });
});
